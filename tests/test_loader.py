"""Tests for the tenant loader (claimsengine.adapters.loader)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from claimsengine import ClientPolicy, CustomDomain, SigningAlg, Tenant, TokenDialect, TokenQuota, UserPolicy
from claimsengine.adapters.loader import ConfigError, Loaded, Problem, load_tenant
from claimsengine.auth0 import MANAGEMENT_API_SCOPES
from tests.conftest import EXAMPLE

FIXTURES = Path(__file__).parent / "fixtures" / "loader"
DEPLOY = FIXTURES / "deploy.yaml"
OVERLAY = FIXTURES / "overlay.yaml"
DOMAIN = "acme.auth0.com"
ORDERS = "https://orders.dev.example.test"


def write(tmp_path: Path, text: str, name: str = "tenant.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_deploy(tmp_path: Path, **kwargs: object) -> Loaded:
    """The Deploy CLI fixture with its keywords (CALLBACKS is a list, so it comes from a file)."""
    keyword_file = write(tmp_path, json.dumps({"CALLBACKS": ["https://shop.example.test/cb"]}), "keywords.json")
    return load_tenant(DEPLOY, keywords={"ENV": "dev", "AUTH0_DOMAIN": DOMAIN}, keyword_file=keyword_file, **kwargs)  # type: ignore[arg-type]


def problems(excinfo: pytest.ExceptionInfo[ConfigError]) -> list[str]:
    return [str(p) for p in excinfo.value.problems]


# --- claimsengine's own format -------------------------------------------------------


def test_own_format_yaml_equals_model() -> None:
    loaded = load_tenant(EXAMPLE)
    assert loaded.tenant == Tenant.model_validate(yaml.safe_load(EXAMPLE.read_text()))
    assert loaded.warnings == ()
    assert loaded.notes == ()
    assert loaded.derived_api_secrets == ()
    assert {c.client_id: c.source for c in loaded.credentials} == {
        "nw-m2m-0001": "export",
        "nw-spa-0001": "export",
        "nw-partner-0001": "export",
    }


def test_own_format_json_round_trip(tmp_path: Path) -> None:
    data = yaml.safe_load(EXAMPLE.read_text())
    path = write(tmp_path, json.dumps(data), "tenant.json")
    assert load_tenant(path).tenant == Tenant.model_validate(data)


def test_own_format_domain_argument_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, "domain: a.auth0.com\napis: []\n")
    assert load_tenant(path, domain="b.auth0.com").tenant.domain == "b.auth0.com"


def test_own_format_errors_keep_model_paths(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "domain: a.auth0.com\n"
        "clients:\n"
        "  - {client_id: c1, name: One}\n"
        "  - {client_id: c1, name: Two}\n"
        "client_grants:\n"
        "  - {client_id: nobody, audience: https://x.test}\n",
    )
    with pytest.raises(ConfigError) as excinfo:
        load_tenant(path)
    assert problems(excinfo) == [
        "tenant.yaml:clients[1] (line 4): duplicate client_id 'c1'",
        "tenant.yaml:client_grants[0].client_id (line 6): no client 'nobody'",
    ]


# --- Deploy CLI YAML -----------------------------------------------------------------


def test_deploy_yaml_maps_onto_the_model(tmp_path: Path) -> None:
    loaded = load_deploy(tmp_path, credentials=OVERLAY)
    tenant = loaded.tenant
    assert tenant.domain == DOMAIN
    assert tenant.custom_domains == (CustomDomain(domain="login.example.test"),)
    assert tenant.default_audience is None  # '' means none
    assert tenant.resource_parameter_profile == "compatibility"
    assert tenant.allow_organization_name_in_authentication_api is True
    assert tenant.default_token_quota == TokenQuota(enforce=True, per_hour=100)
    assert tenant.default_organization_token_quota == TokenQuota(enforce=False, per_day=1000)
    orders, legacy = tenant.apis
    assert orders.identifier == ORDERS
    assert orders.scopes == ("read:orders", "write:orders")
    assert (orders.token_lifetime, orders.token_lifetime_for_web) == (3600, 7200)
    assert orders.token_dialect is TokenDialect.ACCESS_TOKEN_AUTHZ
    assert orders.enforce_policies
    assert orders.allow_offline_access
    assert orders.client_policy is ClientPolicy.REQUIRE_CLIENT_GRANT
    assert orders.user_policy is UserPolicy.REQUIRE_CLIENT_GRANT
    assert legacy.signing_alg is SigningAlg.HS256
    assert legacy.signing_secret is not None
    assert loaded.derived_api_secrets == ("https://hs.example.test",)
    billing, overlay, derived, spa = tenant.clients
    assert billing.id_token_lifetime == 3000
    assert billing.metadata == {"team": "billing"}
    assert billing.token_quota == TokenQuota(enforce=True, per_day=50)
    assert derived.is_first_party is False
    assert spa.callbacks == ("https://shop.example.test/cb",)
    assert spa.client_secrets == ()
    acme, globex = tenant.organizations
    assert acme.id.startswith("org_")
    assert globex.id == "org_globex0000001"
    assert overlay.default_organization is not None
    assert overlay.default_organization.organization_id == acme.id
    assert [(g.client_id, g.audience, g.scope) for g in tenant.client_grants] == [
        ("billing-0001", ORDERS, ("read:orders",)),
        ("overlay-0001", f"https://{DOMAIN}/api/v2/", ("read:users",)),
        (derived.client_id, "https://hs.example.test", ()),
    ]
    assert [(r.client_id, r.audience) for r in acme.client_grants] == [("billing-0001", ORDERS)]
    assert tenant.roles[0].permissions[0].permission_name == "read:orders"
    assert loaded.warnings == ()  # connections and emailTemplates are skipped silently
    assert f"organization 'acme': no id in the export; derived stable id {acme.id}" in loaded.notes


@pytest.mark.parametrize("flag", [True, False])
def test_the_revocation_deletes_grant_toggle_of_an_export_sets_the_behaviour_switch(tmp_path: Path, flag: bool) -> None:
    text = f"tenant:\n  flags:\n    revoke_refresh_token_grant: {str(flag).lower()}\n"
    assert load_tenant(write(tmp_path, text), domain=DOMAIN).tenant.behaviour.revoke_refresh_token_grant is flag
    assert load_tenant(write(tmp_path, "tenant:\n  flags: {}\n"), domain=DOMAIN).tenant.behaviour.revoke_refresh_token_grant is False


def test_credentials_precedence_entry_overlay_derived(tmp_path: Path) -> None:
    loaded = load_deploy(tmp_path, credentials=OVERLAY)
    found = {c.name: c for c in loaded.credentials}
    assert (found["Billing Worker"].client_id, found["Billing Worker"].source) == ("billing-0001", "export")
    assert found["Billing Worker"].client_secret is not None
    assert found["Billing Worker"].client_secret.get_secret_value() == "entry-secret-for-tests"
    assert (found["Overlay Worker"].client_id, found["Overlay Worker"].source) == ("overlay-0001", "overlay")
    assert found["Overlay Worker"].client_secret is not None
    assert found["Overlay Worker"].client_secret.get_secret_value() == "overlay-secret-for-tests"
    assert found["Derived Worker"].source == "derived"
    assert len(found["Derived Worker"].client_id) == 32
    assert found["Storefront"].client_secret is None  # public clients get no secret
    again = {c.name: c for c in load_deploy(tmp_path).credentials}
    assert again["Derived Worker"] == found["Derived Worker"]  # stable across loads
    assert again["Overlay Worker"].source == "derived"  # without the overlay
    other = {c.name: c for c in load_deploy(tmp_path, domain="other.auth0.com").credentials}
    assert other["Derived Worker"].client_id != found["Derived Worker"].client_id


def test_overlay_public_keys_and_id_only(tmp_path: Path) -> None:
    pem = "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----\n"
    overlay = write(
        tmp_path, yaml.safe_dump({"Key App": {"client_id": "key-0001", "public_keys": [{"pem": pem, "alg": "PS256"}]}}), "creds.yaml"
    )
    path = write(tmp_path, "clients:\n  - name: Key App\n    app_type: non_interactive\n")
    loaded = load_tenant(path, domain=DOMAIN, credentials=overlay)
    client = loaded.tenant.clients[0]
    assert client.client_id == "key-0001"
    assert client.public_keys[0].alg == "PS256"
    assert client.client_secrets == ()  # private_key_jwt needs no secret
    assert loaded.credentials[0].source == "overlay"
    assert loaded.warnings == ()


def test_overlay_naming_an_unknown_client_warns(tmp_path: Path) -> None:
    overlay = write(tmp_path, "Billing Worker: {client_id: b}\nBiling Worker:\n  client_secret: not-shown\n", "creds.yaml")
    loaded = load_deploy(tmp_path, credentials=overlay)
    assert [str(w) for w in loaded.warnings] == [
        "creds.yaml:Biling Worker (line 2): no client named 'Biling Worker'; these credentials are not used"
    ]


def test_private_key_jwt_credentials_from_export(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "clients:\n"
        "  - name: Signer\n"
        "    app_type: non_interactive\n"
        "    client_authentication_methods:\n"
        "      private_key_jwt:\n"
        "        credentials:\n"
        "          - {name: k1, credential_type: public_key, pem: PEM-TEXT, alg: RS384}\n",
    )
    client = load_tenant(path, domain=DOMAIN).tenant.clients[0]
    assert [(k.pem, k.alg) for k in client.public_keys] == [("PEM-TEXT", "RS384")]


def test_management_api_resource_server_passes_with_a_warning(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "resourceServers:\n  - name: Auth0 Management API\n    identifier: https://##AUTH0_DOMAIN##/api/v2/\n"
        "    scopes:\n      - {value: read:client_summary}\n      - {value: read:users}\n",
    )
    loaded = load_tenant(path, keywords={"AUTH0_DOMAIN": DOMAIN})
    assert loaded.tenant.apis[0].identifier == f"https://{DOMAIN}/api/v2/"
    assert [str(w) for w in loaded.warnings] == [
        "tenant.yaml:resourceServers[0].identifier (line 3): the Management API is built in; this entry's scopes extend its scope list"
    ]
    # Issue 8, item 2: the export's scopes extend the built-in list; it stays a system API.
    management = loaded.tenant.index.apis[f"https://{DOMAIN}/api/v2/"]
    assert management.is_system
    assert management.scopes[: len(MANAGEMENT_API_SCOPES)] == MANAGEMENT_API_SCOPES
    assert management.scopes[len(MANAGEMENT_API_SCOPES) :] == ("read:client_summary",)
    assert loaded.tenant.index.ref(management) == "apis[0]"


def test_the_docs_spelling_required_is_read_as_require_with_a_warning(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "resourceServers:\n"
        "  - identifier: https://x.test\n"
        "clients:\n"
        "  - {name: A, organization_usage: required}\n"
        "clientGrants:\n"
        "  - {client_id: A, audience: https://x.test, organization_usage: required}\n",
    )
    loaded = load_tenant(path, domain=DOMAIN)
    assert loaded.tenant.clients[0].organization_usage == "require"
    assert loaded.tenant.client_grants[0].organization_usage == "require"
    assert [str(w) for w in loaded.warnings] == [
        "tenant.yaml:clients[0].organization_usage (line 4): 'required' read as 'require' (the API's spelling)",
        "tenant.yaml:clientGrants[0].organization_usage (line 6): 'required' read as 'require' (the API's spelling)",
    ]


def test_unknown_fields_warn_with_a_suggestion(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "resourceServers:\n"
        "  - identifier: https://x.test\n"
        "    scopess: [{value: read}]\n"
        "    allow_online_access: true\n"
        "clientGrant: []\n"
        "zzzz: 1\n",
    )
    loaded = load_tenant(path, domain=DOMAIN)
    assert [str(w) for w in loaded.warnings] == [
        "tenant.yaml:clientGrant (line 5): unknown section 'clientGrant' (ignored); did you mean 'clientGrants'?",
        "tenant.yaml:zzzz (line 6): unknown section 'zzzz' (ignored)",
        "tenant.yaml:resourceServers[0].scopess (line 3): unknown field 'scopess'; did you mean 'scopes'?",
    ]
    assert loaded.tenant.apis[0].scopes == ()


# --- broken configurations -----------------------------------------------------------


def test_unresolved_keyword_is_named_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "tenant:\n  friendly_name: x\nresourceServers:\n  - identifier: https://##MISSING##.test\n")
    with pytest.raises(ConfigError) as excinfo:
        load_tenant(path, domain=DOMAIN)
    assert problems(excinfo) == ["tenant.yaml (line 4): keyword ##MISSING## has no value (pass it as a keyword)"]


def test_unknown_client_names_in_grants_and_organizations(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "clients:\n"
        "  - {name: Real, app_type: non_interactive}\n"
        "resourceServers:\n"
        "  - identifier: https://x.test\n"
        "clientGrants:\n"
        "  - client_id: Real\n"
        "    audience: https://x.test\n"
        "  - client_id: Ghost\n"
        "    audience: https://x.test\n"
        "organizations:\n"
        "  - name: o\n"
        "    client_grants:\n"
        "      - {client_id: Phantom, audience: https://x.test}\n",
    )
    with pytest.raises(ConfigError) as excinfo:
        load_tenant(path, domain=DOMAIN)
    assert problems(excinfo) == [
        "tenant.yaml:clientGrants[1].client_id (line 8): no client named 'Ghost'",
        "tenant.yaml:organizations[0].client_grants[0].client_id (line 13): no client named 'Phantom'",
    ]


def test_bad_enum_values_and_every_problem_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "resourceServers:\n"
        "  - identifier: https://x.test\n"
        "    signing_alg: RS257\n"
        "    subject_type_authorization:\n"
        "      client: {policy: allow_everyone}\n"
        "clients:\n"
        "  - name: A\n"
        "    jwt_configuration: {lifetime_in_seconds: 0}\n"
        "clientGrants:\n"
        "  - {client_id: Nobody, audience: https://x.test}\n",
    )
    with pytest.raises(ConfigError) as excinfo:
        load_tenant(path, domain=DOMAIN)
    assert problems(excinfo) == [
        "tenant.yaml:clientGrants[0].client_id (line 10): no client named 'Nobody'",
        "tenant.yaml:resourceServers[0].signing_alg (line 3): 'RS257' is invalid: Input should be 'RS256', 'PS256' or 'HS256'",
        "tenant.yaml:resourceServers[0].subject_type_authorization.client.policy (line 5): "
        "'allow_everyone' is invalid: Input should be 'require_client_grant' or 'deny_all'",
        "tenant.yaml:clients[0].jwt_configuration.lifetime_in_seconds (line 8): 0 is invalid: Input should be greater than or equal to 1",
    ]


def test_duplicate_client_ids_are_refused_but_a_duplicate_name_is_only_a_warning(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "clients:\n  - {name: A, client_id: same, client_secret: s3cr3t-value-1}\n  - {name: B, client_id: same}\n  - {name: A}\n",
    )
    with pytest.raises(ConfigError) as excinfo:
        load_tenant(path, domain=DOMAIN)
    assert problems(excinfo) == ["tenant.yaml:clients[1] (line 3): duplicate client_id 'same'"]


# Issue 8, item 10: Auth0 allows two applications of one name (the client id is the identity).
DUPLICATE_NAMES = """\
clients:
  - {name: Shop, client_id: shop-first, client_secret: first-secret-value, app_type: non_interactive}
  - {name: Shop, client_id: shop-second, client_secret: second-secret-value, app_type: non_interactive}
  - {name: Shop, app_type: non_interactive}
  - {client_id: unnamed-one, client_secret: unnamed-secret-value, app_type: non_interactive}
  - {app_type: non_interactive}
  - {app_type: non_interactive}
resourceServers:
  - {identifier: https://api.example.test, scopes: [{value: read:things}]}
clientGrants:
  - {client_id: Shop, audience: https://api.example.test, scope: [read:things]}
  - {client_id: shop-second, audience: https://api.example.test, scope: []}
  - {client_id: unnamed-one, audience: https://api.example.test, scope: [read:things]}
organizations:
  - name: acme
    client_grants:
      - {client_id: Shop, audience: https://api.example.test}
"""


def test_duplicate_client_names_load_and_a_name_resolves_to_the_first_client(tmp_path: Path) -> None:
    loaded = load_tenant(write(tmp_path, DUPLICATE_NAMES), domain=DOMAIN)
    tenant = loaded.tenant
    ids = [c.client_id for c in tenant.clients]
    assert ids[:2] == ["shop-first", "shop-second"]
    assert ids[3] == "unnamed-one"
    assert len(set(ids)) == 6  # the derived ids of same-named (and unnamed) clients differ
    # By name: the first client named Shop, as the Deploy CLI's convertClientNameToId; by id:
    # the second Shop and the unnamed client keep their explicit ids (no "no client named").
    assert [g.client_id for g in tenant.client_grants] == ["shop-first", "shop-second", "unnamed-one"]
    assert [(r.client_id, r.audience) for r in tenant.organizations[0].client_grants] == [("shop-first", "https://api.example.test")]
    assert [str(w) for w in loaded.warnings] == [
        "tenant.yaml:clients[1].name (line 3): duplicate client name 'Shop': references by name resolve to the first client of "
        "that name; a Deploy CLI import of this export would refuse it (names must be unique)",
        "tenant.yaml:clients[2].name (line 4): duplicate client name 'Shop': references by name resolve to the first client of "
        "that name; a Deploy CLI import of this export would refuse it (names must be unique)",
        "tenant.yaml:clientGrants[0].client_id (line 11): 3 clients are named 'Shop'; resolved to the first (shop-first), "
        "as the Deploy CLI does",
        "tenant.yaml:organizations[0].client_grants[0].client_id (line 17): 3 clients are named 'Shop'; resolved to the first "
        "(shop-first), as the Deploy CLI does",
    ]
    # Each same-named client authenticates as itself.
    secrets = {c.client_id: c.client_secret for c in loaded.credentials}
    assert secrets["shop-first"] is not None
    assert secrets["shop-first"].get_secret_value() == "first-secret-value"
    assert len({s.get_secret_value() for s in secrets.values() if s is not None}) == 6


def test_duplicate_client_names_in_a_directory_export(tmp_path: Path) -> None:
    export = tmp_path / "export"
    (export / "clients").mkdir(parents=True)
    (export / "grants").mkdir()
    for file, client_id in (("Shop.json", "shop-a"), ("Shop (copy).json", "shop-b")):
        (export / "clients" / file).write_text(json.dumps({"name": "Shop", "client_id": client_id, "app_type": "non_interactive"}))
    (export / "resource-servers").mkdir()
    (export / "resource-servers" / "api.json").write_text(json.dumps({"identifier": "https://api.example.test", "scopes": []}))
    (export / "grants" / "by-name.json").write_text(json.dumps({"client_id": "Shop", "audience": "https://api.example.test"}))
    (export / "grants" / "by-id.json").write_text(json.dumps({"client_id": "shop-a", "audience": "https://api.example.test"}))
    loaded = load_tenant(export, domain=DOMAIN)
    assert [c.client_id for c in loaded.tenant.clients] == ["shop-b", "shop-a"]  # files in name order
    # by-name.json names "Shop": the first client of that name in the export (shop-b); by-id.json keeps shop-a.
    assert sorted(g.client_id or "" for g in loaded.tenant.client_grants) == ["shop-a", "shop-b"]
    assert [(w.file, w.path) for w in loaded.warnings] == [("clients/Shop.json", "name"), ("grants/by-name.json", "client_id")]


def test_an_overlay_by_name_applies_to_the_first_client_of_that_name(tmp_path: Path) -> None:
    path = write(tmp_path, "clients:\n  - {name: Twin, app_type: non_interactive}\n  - {name: Twin, app_type: non_interactive}\n")
    overlay = write(tmp_path, "Twin: {client_id: twin-from-overlay, client_secret: overlay-secret-value}\n", "creds.yaml")
    loaded = load_tenant(path, domain=DOMAIN, credentials=overlay)
    first, second = loaded.credentials
    assert (first.client_id, first.source) == ("twin-from-overlay", "overlay")
    assert second.source == "derived"
    assert second.client_id != first.client_id


def test_secrets_never_appear_in_messages(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "clients:\n"
        "  - {name: A, client_secret: 987654321}\n"
        "resourceServers:\n"
        "  - {identifier: https://x.test, signing_alg: HS256, signing_secret: [hunter2]}\n",
    )
    with pytest.raises(ConfigError) as excinfo:
        load_tenant(path, domain=DOMAIN)
    text = str(excinfo.value)
    assert "987654321" not in text
    assert "hunter2" not in text
    assert "tenant.yaml:clients[0].client_secret (line 2): Input should be a valid string" in text


def test_yaml_syntax_error_has_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "tenant:\n  friendly_name: ok\nclients:\n  - name: [unclosed\n  - name: b\n")
    with pytest.raises(ConfigError) as excinfo:
        load_tenant(path, domain=DOMAIN)
    [problem] = excinfo.value.problems
    assert problem.file == "tenant.yaml"
    assert problem.line == 5
    assert problem.message.startswith("invalid YAML")


def test_deploy_yaml_needs_a_domain(tmp_path: Path) -> None:
    path = write(tmp_path, "tenant:\n  friendly_name: x\n")
    with pytest.raises(ConfigError) as excinfo:
        load_tenant(path)
    assert problems(excinfo) == ["tenant.yaml: no canonical domain: pass --auth0-domain or the AUTH0_DOMAIN keyword"]
    assert load_tenant(path, keywords={"AUTH0_DOMAIN": DOMAIN}).tenant.domain == DOMAIN


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- 1\n- 2\n", "tenant.yaml: the configuration must be a mapping at the top level"),
        ("tenant: [1]\n", "tenant.yaml:tenant (line 1): tenant must be a mapping"),
        ("clients: {name: a}\n", "tenant.yaml:clients (line 1): clients must be a list"),
        ("clients:\n  - just a string\n", "tenant.yaml:clients[0] (line 2): each entry of clients must be a mapping"),
    ],
)
def test_malformed_shapes(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        load_tenant(write(tmp_path, text), domain=DOMAIN)
    assert problems(excinfo) == [expected]


def test_missing_file_and_bad_mapping_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as excinfo:
        load_tenant(tmp_path / "absent.yaml", keyword_file=write(tmp_path, "[1, 2]", "kw.json"))
    messages = problems(excinfo)
    assert messages[0] == "kw.json: the keyword file must be a mapping"
    assert messages[1].startswith("absent.yaml: cannot read:")


def test_problem_formatting() -> None:
    assert str(Problem("t.yaml", "clientGrants[2].client_id", "no client named 'X'", 40)) == (
        "t.yaml:clientGrants[2].client_id (line 40): no client named 'X'"
    )
    assert str(Problem("t.yaml", "", "broken")) == "t.yaml: broken"
    error = ConfigError((Problem("a", "x", "one"), Problem("b", "y", "two", 3)))
    assert str(error) == "a:x: one\nb:y (line 3): two"


# --- keywords ------------------------------------------------------------------------


def test_unquoted_keyword_is_replaced_before_yaml_sees_a_comment(tmp_path: Path) -> None:
    # Parsed first, "##AUD##" would start a comment and default_audience would be null.
    path = write(tmp_path, "tenant:\n  default_audience: ##AUD##\nresourceServers:\n  - identifier: https://aud.test\n")
    loaded = load_tenant(path, keywords={"AUD": "https://aud.test"}, domain=DOMAIN)
    assert loaded.tenant.default_audience == "https://aud.test"


def test_at_keyword_inserts_json_and_hash_keyword_inserts_text(tmp_path: Path) -> None:
    keyword_file = write(tmp_path, "CALLBACKS: [https://a.test/cb, https://b.test/cb]\nNAME: Shop\nFIRST: false\n", "keywords.yaml")
    path = write(
        tmp_path,
        "clients:\n"
        "  - name: My ##NAME## App\n"
        "    app_type: spa\n"
        "    callbacks: @@CALLBACKS@@\n"
        "    is_first_party: ##FIRST##\n"
        "  - name: @@NAME@@\n"
        "    app_type: spa\n",
    )
    loaded = load_tenant(path, keyword_file=keyword_file, domain=DOMAIN)
    first, second = loaded.tenant.clients
    assert first.name == "My Shop App"
    assert first.callbacks == ("https://a.test/cb", "https://b.test/cb")
    assert first.is_first_party is False
    assert second.name == "Shop"


def test_keyword_precedence_and_environ_fallback(tmp_path: Path) -> None:
    path = write(tmp_path, "resourceServers:\n  - identifier: https://##A##.##B##.##C##.test\n")
    keyword_file = write(tmp_path, json.dumps({"A": "file", "B": "file"}), "kw.json")
    environ = {"A": "env", "B": "env", "C": "env"}
    loaded = load_tenant(path, keywords={"A": "arg"}, keyword_file=keyword_file, environ=environ, domain=DOMAIN)
    assert loaded.tenant.apis[0].identifier == "https://arg.file.env.test"
    with pytest.raises(ConfigError, match="##C##"):
        load_tenant(path, keywords={"A": "arg"}, keyword_file=keyword_file, domain=DOMAIN)  # environ only when passed


# --- directory format ----------------------------------------------------------------


def test_directory_format(tmp_path: Path) -> None:
    loaded = load_tenant(FIXTURES / "directory", keywords={"ENV": "dev"}, domain="dir.auth0.com")
    tenant = loaded.tenant
    assert tenant.default_audience == "https://orders.example.test"
    assert tenant.custom_domains == (CustomDomain(domain="login.example.test", verified=False),)
    assert [c.name for c in tenant.clients] == ["Billing Worker", "Storefront"]
    assert tenant.clients[1].callbacks == ("https://dev.example.test/callback",)
    billing = tenant.clients[0]
    assert [(g.client_id, g.audience) for g in tenant.client_grants] == [(billing.client_id, "https://orders.example.test")]
    assert tenant.organizations[0].client_grants[0].client_id == billing.client_id
    assert tenant.roles[0].name == "reader"
    assert loaded.warnings == ()


def test_directory_problems_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "clients").mkdir()
    (tmp_path / "grants").mkdir()
    (tmp_path / "custom-domains").mkdir()
    (tmp_path / "tenant.json").write_text("[]")
    (tmp_path / "clients" / "A.json").write_text('{\n  "name": "A",\n  "app_type": "regular_web",\n  "grant_typez": []\n}')
    (tmp_path / "clients" / "B.json").write_text('{\n  "name": "B",\n')
    (tmp_path / "clients" / "C.json").write_text('"just a string"')
    (tmp_path / "grants" / "g.json").write_text('[{"client_id": "Nope", "audience": "https://x.test"}]')
    (tmp_path / "custom-domains" / "d.json").write_text('{"domain": "d.test", "status": "ready"}')
    with pytest.raises(ConfigError) as excinfo:
        load_tenant(tmp_path, domain=DOMAIN)
    assert problems(excinfo) == [
        "tenant.json: tenant.json must be a mapping",
        "clients/B.json (line 3): invalid JSON: Expecting property name enclosed in double quotes",
        "clients/C.json: expected a JSON object or list",
        "grants/g.json:[0].client_id (line 1): no client named 'Nope'",
    ]


def test_cross_reference_problems_arrive_whole_even_with_a_semicolon_in_a_value(tmp_path: Path) -> None:
    # The model passes (path, message) pairs; nothing is split on "; ", so a value containing it survives.
    path = write(tmp_path, "clients:\n  - {name: A, client_id: 'x; y: z'}\n  - {name: B, client_id: 'x; y: z'}\n")
    with pytest.raises(ConfigError) as excinfo:
        load_tenant(path, domain=DOMAIN)
    assert problems(excinfo) == ["tenant.yaml:clients[1] (line 3): duplicate client_id 'x; y: z'"]


def test_the_section_table_covers_every_modelled_section_once() -> None:
    from claimsengine.adapters.loader import IGNORED_SECTIONS, SECTIONS

    keys = [s.key for s in SECTIONS]
    assert len(keys) == len(set(keys))
    assert not set(keys) & IGNORED_SECTIONS
    fields = {s.model_field for s in SECTIONS if s.model_field}
    assert fields <= set(Tenant.model_fields)
    for section in SECTIONS:
        assert not section.reads & section.known, section.key
        assert bool(section.folders) == bool(section.model_field), section.key


def test_source_map_locates_model_paths_in_yaml_and_directory_exports(tmp_path: Path) -> None:
    loaded = load_deploy(tmp_path)
    where = loaded.source.locate("client_grants[0].scope")
    assert where.file == DEPLOY.name
    assert where.path == "clientGrants[0].scope"
    lines = DEPLOY.read_text().splitlines()
    assert where.line is not None
    assert "scope" in lines[where.line - 1]
    secret = loaded.source.locate("clients[0].client_secrets[0]")
    assert secret.path.endswith(".client_secret")
    export = tmp_path / "export"
    (export / "clients").mkdir(parents=True)
    (export / "clients" / "App.json").write_text(json.dumps({"name": "App", "app_type": "non_interactive"}, indent=2))
    directory = load_tenant(export, domain=DOMAIN)
    found = directory.source.locate("clients[0].app_type")
    assert (found.file, found.path, found.line) == ("clients/App.json", "app_type", 3)


def test_a_keyword_of_the_wrong_type_is_named_with_the_fix(tmp_path: Path) -> None:
    path = write(tmp_path, "clients:\n  - name: Shop\n    app_type: regular_web\n    callbacks: @@CALLBACKS@@\n")
    with pytest.raises(ConfigError) as excinfo:
        load_tenant(path, domain=DOMAIN, keywords={"CALLBACKS": "https://shop.example.test/cb"})
    (message,) = problems(excinfo)
    assert message.startswith("tenant.yaml:clients[0].callbacks (line 4):")
    assert "keyword @@CALLBACKS@@, given as str" in message
    assert "--keyword 'CALLBACKS=[" in message
    loaded = load_tenant(path, domain=DOMAIN, keywords={"CALLBACKS": ["https://shop.example.test/cb"]})
    assert loaded.tenant.clients[0].callbacks == ("https://shop.example.test/cb",)
    secret_path = write(tmp_path, "clients:\n  - name: Shop\n    callbacks: @@API_KEY@@\n", "secret.yaml")
    with pytest.raises(ConfigError) as hidden:
        load_tenant(secret_path, domain=DOMAIN, keywords={"API_KEY": "sk-live-123"})
    assert "sk-live-123" not in str(hidden.value)
    assert "(value hidden)" in str(hidden.value)


# Issue 8, item 7: the third-party security mode (clients) and organization opt-in, as the
# Management API and Deploy CLI spell them, in every format.
THIRD_PARTY_YAML = """\
clients:
  - {name: Strict Partner, client_id: tpc_strict, app_type: regular_web, is_first_party: false,
     third_party_security_mode: strict, token_endpoint_auth_method: client_secret_post, client_secret: strict-secret-value}
  - {name: Old Partner, client_id: old-partner, app_type: regular_web, is_first_party: false,
     third_party_security_mode: permissive, token_endpoint_auth_method: client_secret_post, client_secret: old-secret-value}
organizations:
  - {name: open-org, id: org_open, third_party_client_access: allow}
  - {name: closed-org, id: org_closed}
"""


def _third_party_settings(tenant: Tenant) -> tuple[list[str | None], list[str]]:
    return [c.third_party_security_mode for c in tenant.clients], [o.third_party_client_access for o in tenant.organizations]


def test_third_party_security_mode_and_organization_access_are_read_in_every_format(tmp_path: Path) -> None:
    expected = (["strict", "permissive"], ["allow", "block"])
    yaml_loaded = load_tenant(write(tmp_path, THIRD_PARTY_YAML), domain=DOMAIN)
    assert yaml_loaded.warnings == ()
    assert _third_party_settings(yaml_loaded.tenant) == expected
    data = yaml.safe_load(THIRD_PARTY_YAML)
    export = tmp_path / "export"
    for folder, entries in (("clients", data["clients"]), ("organizations", data["organizations"])):
        (export / folder).mkdir(parents=True)
        for entry in entries:
            (export / folder / f"{entry['name']}.json").write_text(json.dumps(entry))
    directory = load_tenant(export, domain=DOMAIN)
    assert directory.warnings == ()
    assert _third_party_settings(directory.tenant) == (["permissive", "strict"], ["block", "allow"])  # files in name order
    own = {
        "domain": DOMAIN,
        "clients": [
            {k: v for k, v in c.items() if k != "client_secret"} | {"client_secrets": [c["client_secret"]]} for c in data["clients"]
        ],
        "organizations": data["organizations"],
    }
    assert _third_party_settings(load_tenant(write(tmp_path, json.dumps(own), "own.json")).tenant) == expected


def test_an_unknown_third_party_security_mode_is_refused_with_its_path(tmp_path: Path) -> None:
    path = write(tmp_path, "clients:\n  - {name: P, client_id: p, is_first_party: false, third_party_security_mode: lax}\n")
    with pytest.raises(ConfigError) as excinfo:
        load_tenant(path, domain=DOMAIN)
    assert problems(excinfo) == [
        "tenant.yaml:clients[0].third_party_security_mode (line 2): 'lax' is invalid: Input should be 'strict' or 'permissive'"
    ]

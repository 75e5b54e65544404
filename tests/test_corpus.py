"""Every real Deploy CLI export in the shared corpus loads, and a few decisions on each are right."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from claimsengine import Issued, Rejected, Rule, TokenRequest, decide
from claimsengine.adapters.loader import ConfigError, Loaded, load_tenant
from claimsengine.lint import lint
from tests.conftest import CORPUS
from tests.node_packages import installed

pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"tenant corpus not found at {CORPUS}")

NOW = 1_700_000_000
CAPTCHA = [
    f"CAPTCHA_{name}"
    for name in (
        "ARKOSE_SECRET", "ARKOSE_SITE_KEY", "FRIENDLY_CAPTCHA_SECRET", "FRIENDLY_CAPTCHA_SITE_KEY", "HCAPTCHA_SECRET",
        "HCAPTCHA_SITE_KEY", "RECAPTCHA_ENTERPRISE_API_KEY", "RECAPTCHA_ENTERPRISE_PROJECT_ID",
        "RECAPTCHA_ENTERPRISE_SITE_KEY", "RECAPTCHA_V2_SECRET", "RECAPTCHA_V2_SITE_KEY",
    )
]  # fmt: skip
# Each corpus entry: its canonical domain (the one its Management API grants name, where it
# has any) and the keywords it needs. @@...@@ values are JSON, so they go through a file.
CASES: dict[str, tuple[str, dict[str, object]]] = {
    "Danco626__a0-deploy__tenant.yaml": ("danco-hooks.auth0.com", {}),
    "JohnDupuis__auth0-config-test__tenant.yaml": ("johndupuis.auth0.com", {}),
    "auth0__auth0-deploy-cli__examples_yaml_tenant.yaml": (
        "example.auth0.com",
        {"ENV": "dev", "SETUP_CONFIG": {"enabled": True}, **dict.fromkeys(CAPTCHA, "test-value")},
    ),
    "auth0__auth0-deploy-cli__test_e2e_testdata_keyword-replacements_yaml_tenant.yaml": (
        "example.auth0.com",
        {"COMPANY_NAME": "Acme", "LANGUAGES": ["en", "fr"]},
    ),
    "auth0__auth0-deploy-cli__test_e2e_testdata_lots-of-configuration_tenant.yaml": (
        "auth0-deploy-cli-e2e.us.auth0.com",
        {"MANDRILL_API_KEY": "test-value"},
    ),
    "infaspublications__auth0-deploy__tenant.yaml": (
        "infas.auth0.com",
        {
            "AUTH0_SITE_DOMAIN": "site.example.test",
            "AUTH0_SMTP_USER": "user",
            "AUTH0_SMTP_PASS": "pass",
            "AUTH0_DEFAULT_FROM_ADDRESS": "noreply@example.test",
        },
    ),
    "pushpabrol__github-actions-auth0-deploy__tenant.yaml": (
        "pushpabrol.auth0.com",
        {"API_IDENTIFIER": "https://api.example.test", "APP_CALLBACKS": ["https://app.example.test/callback"]},
    ),
    "tjones-commits__auth0__tenant.yaml": ("tjones.auth0.com", {}),
    "tswallen__auth0-configuration__tenant.yaml": ("tom-dev.au.auth0.com", {}),
    "zebkailash__eventui-auth0-deployment__tenant.yaml": ("myevents.eu.auth0.com", {}),
    "auth0__auth0-deploy-cli__examples_directory": ("example.auth0.com", {"ENV": "dev", "AUTH0_TENANT_NAME": "example"}),
}
DIRECTORY = "auth0__auth0-deploy-cli__examples_directory"
# The Deploy CLI's YAML example binds a post-login Action whose code.js the corpus does not
# carry (only tenant.yaml was collected); its own tests complete the export.
WITH_ACTION = "auth0__auth0-deploy-cli__examples_yaml_tenant.yaml"


def load(name: str, tmp_path: Path, source: Path | None = None) -> Loaded:
    domain, keywords = CASES[name]
    keyword_file = tmp_path / "keywords.json"
    keyword_file.write_text(json.dumps(keywords | {"AUTH0_DOMAIN": domain}))
    return load_tenant(source or CORPUS / name, keyword_file=keyword_file)


def load_directory(tmp_path: Path) -> Loaded:
    # Its grant names client "My M2M", which has no file in clients/ (see SOURCES.md); add it.
    copy = tmp_path / "directory"
    shutil.copytree(CORPUS / DIRECTORY, copy)
    (copy / "clients" / "My M2M.json").write_text(json.dumps({"name": "My M2M", "app_type": "non_interactive"}))
    return load(DIRECTORY, tmp_path, copy)


def client_credentials(loaded: Loaded, name: str, audience: str) -> Issued | Rejected:
    [creds] = [c for c in loaded.credentials if c.name == name]
    request = TokenRequest(grant_type="client_credentials", client_id=creds.client_id, client_secret=creds.client_secret, audience=audience)
    return decide(request, loaded.tenant, now=NOW)


def test_every_corpus_entry_is_covered() -> None:
    assert sorted(p.name for p in CORPUS.iterdir() if p.name != "SOURCES.md") == sorted(CASES)


@pytest.mark.parametrize("name", sorted(set(CASES) - {DIRECTORY, WITH_ACTION}))
def test_yaml_export_loads(name: str, tmp_path: Path) -> None:
    loaded = load(name, tmp_path)
    assert loaded.tenant.domain == CASES[name][0]
    assert loaded.warnings == ()
    assert len(loaded.credentials) == len(loaded.tenant.clients)
    # Every grant in these exports points at an API that exists (custom or the Management API).
    assert [f for f in lint(loaded.tenant, derived_api_secrets=loaded.derived_api_secrets) if f.code == "grant.missing_api"] == []


def test_directory_export_names_a_client_it_does_not_contain(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as excinfo:
        load(DIRECTORY, tmp_path)
    assert [str(p) for p in excinfo.value.problems] == ["grants/m2m_myapp_api.json:client_id (line 2): no client named 'My M2M'"]


def test_directory_export_loads(tmp_path: Path) -> None:
    loaded = load_directory(tmp_path)
    tenant = loaded.tenant
    assert len(tenant.clients) == 7
    assert {a.identifier for a in tenant.apis} == {"https://dev.myapp.com/api/v1", "https://example.auth0.com/me/"}
    assert [d.domain for d in tenant.custom_domains] == ["my_domain.com"]
    decision = client_credentials(loaded, "My M2M", "https://dev.myapp.com/api/v1")
    assert isinstance(decision, Issued)
    # The grant's only scope is not defined on the API: it is issued as it is (issue 8, item 2;
    # specs/choices.md), and the lint says the API does not define it.
    assert decision.scope == "update:account"
    findings = lint(tenant, derived_api_secrets=loaded.derived_api_secrets)
    assert [(f.code, f.path) for f in findings] == [("grant.undefined_scopes", "client_grants[0].scope")]


def test_keyword_only_file_loads(tmp_path: Path) -> None:
    loaded = load("auth0__auth0-deploy-cli__test_e2e_testdata_keyword-replacements_yaml_tenant.yaml", tmp_path)
    assert loaded.tenant.clients == ()


def test_tswallen_client_with_two_grants_gets_both_audiences(tmp_path: Path) -> None:
    loaded = load("tswallen__auth0-configuration__tenant.yaml", tmp_path)
    management = loaded.tenant.management_api_identifier
    for audience in ("https://localhost:3000", management):
        decision = client_credentials(loaded, "API Explorer Application", audience)
        assert isinstance(decision, Issued), decision
        assert decision.claims["aud"] == audience
    # A Management API grant yields a JWT for the Management API.
    decision = client_credentials(loaded, "logs-to-cloudwatch", management)
    assert isinstance(decision, Issued)
    assert decision.format == "jwt"
    assert decision.claims["aud"] == management == "https://tom-dev.au.auth0.com/api/v2/"
    # The same client has no grant for the custom API.
    rejected = client_credentials(loaded, "logs-to-cloudwatch", "https://localhost:3000")
    assert isinstance(rejected, Rejected)
    assert rejected.rejected_by is Rule.GRANT_MISSING


def test_a_real_export_with_two_applications_of_one_name_loads_and_check_reports_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Issue 8, item 10: the tswallen export with its cloned SPA keeping the name of the app its
    # grants name (Auth0 allows duplicate names; the client id is the identity).
    name = "tswallen__auth0-configuration__tenant.yaml"
    text = (CORPUS / name).read_text(encoding="utf-8")
    assert text.count("  - name: Test App - SPA (cloned)\n") == 1
    variant = tmp_path / "tenant.yaml"
    variant.write_text(text.replace("  - name: Test App - SPA (cloned)\n", "  - name: API Explorer Application\n"), encoding="utf-8")
    loaded = load(name, tmp_path, variant)
    twins = [c for c in loaded.tenant.clients if c.name == "API Explorer Application"]
    assert [c.app_type for c in twins] == ["non_interactive", "spa"]
    # Both grants that name it resolve to the first, as the Deploy CLI's convertClientNameToId does.
    assert {g.client_id for g in loaded.tenant.client_grants if g.client_id in {c.client_id for c in twins}} == {twins[0].client_id}
    assert [w.path for w in loaded.warnings] == ["clients[6].name", "clientGrants[0].client_id", "clientGrants[1].client_id"]
    decision = client_credentials_by_id(loaded, twins[0].client_id, loaded.tenant.management_api_identifier)
    assert isinstance(decision, Issued), decision
    # `claimsengine check` reports the duplicate: the loader's warnings and the lint finding.
    from claimsengine.adapters.cli import main

    keywords = tmp_path / "keywords.json"
    # Exit 1: the export's own errors (two public clients with client_credentials), not the duplicate.
    assert main(["--tenant", str(variant), "--keyword-file", str(keywords), "check", "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert {f["code"] for f in report["findings"] if f["severity"] == "error"} == {"client.public_client_credentials"}
    assert [w["path"] for w in report["warnings"]] == ["clients[6].name", "clientGrants[0].client_id", "clientGrants[1].client_id"]
    duplicate = [f for f in report["findings"] if f["code"] == "client.duplicate_name"]
    assert [(f["severity"], f["source_path"], f["line"]) for f in duplicate] == [("warning", "clients[6].name", 254)]


def client_credentials_by_id(loaded: Loaded, client_id: str, audience: str) -> Issued | Rejected:
    [creds] = [c for c in loaded.credentials if c.client_id == client_id]
    request = TokenRequest(grant_type="client_credentials", client_id=client_id, client_secret=creds.client_secret, audience=audience)
    return decide(request, loaded.tenant, now=NOW)


@pytest.mark.parametrize(
    ("name", "client", "audience"),
    [
        ("tjones-commits__auth0__tenant.yaml", "proof-of-concept (Test Application)", "https://proof-of-concept"),
        ("tswallen__auth0-configuration__tenant.yaml", "Test API (Test Application)", "https://localhost:3000"),
    ],
)
def test_empty_scope_grant_issues_a_token_without_scope(name: str, client: str, audience: str, tmp_path: Path) -> None:
    decision = client_credentials(load(name, tmp_path), client, audience)
    assert isinstance(decision, Issued), decision
    assert decision.format == "jwt"
    assert decision.scope is None
    assert "scope" not in decision.claims


def test_zebkailash_grants(tmp_path: Path) -> None:
    loaded = load("zebkailash__eventui-auth0-deployment__tenant.yaml", tmp_path)
    for grant in loaded.tenant.client_grants:
        [name] = [c.name for c in loaded.tenant.clients if c.client_id == grant.client_id]
        decision = client_credentials(loaded, name, grant.audience)
        assert isinstance(decision, Issued), decision
        assert decision.claims["aud"] == grant.audience


def test_danco_management_api_grant(tmp_path: Path) -> None:
    loaded = load("Danco626__a0-deploy__tenant.yaml", tmp_path)
    management = loaded.tenant.management_api_identifier
    [grant] = [g for g in loaded.tenant.client_grants if g.audience == management][:1]
    [name] = [c.name for c in loaded.tenant.clients if c.client_id == grant.client_id]
    decision = client_credentials(loaded, name, management)
    assert isinstance(decision, Issued), decision
    assert decision.claims["aud"] == management
    assert decision.scope == " ".join(grant.scope)


def test_johndupuis_has_no_apis_and_rejects(tmp_path: Path) -> None:
    loaded = load("JohnDupuis__auth0-config-test__tenant.yaml", tmp_path)
    assert loaded.tenant.apis == ()
    assert loaded.tenant.client_grants == ()
    for creds in loaded.credentials:
        decision = client_credentials(loaded, creds.name, "https://api.example.test")
        assert isinstance(decision, Rejected)
    # The Management API exists but no client has a grant for it.
    [m2m] = [c for c in loaded.tenant.clients if "client_credentials" in c.effective_grant_types][:1]
    decision = client_credentials(loaded, m2m.name, loaded.tenant.management_api_identifier)
    assert isinstance(decision, Rejected)
    assert decision.rejected_by is Rule.GRANT_MISSING


def test_lots_of_configuration_organizations_and_management_grants(tmp_path: Path) -> None:
    loaded = load("auth0__auth0-deploy-cli__test_e2e_testdata_lots-of-configuration_tenant.yaml", tmp_path)
    assert [o.name for o in loaded.tenant.organizations] == ["org1", "org2"]
    assert all(o.id.startswith("org_") for o in loaded.tenant.organizations)
    assert any(c.public_keys for c in loaded.tenant.clients)
    management = loaded.tenant.management_api_identifier
    decision = client_credentials(loaded, "API Explorer Application", management)
    assert isinstance(decision, Issued), decision
    assert decision.claims["aud"] == management


def test_pushpabrol_identifier_and_callbacks_come_from_keywords(tmp_path: Path) -> None:
    loaded = load("pushpabrol__github-actions-auth0-deploy__tenant.yaml", tmp_path)
    assert [a.identifier for a in loaded.tenant.apis] == ["https://api.example.test"]
    assert any(c.callbacks == ("https://app.example.test/callback",) for c in loaded.tenant.clients)


def test_deploy_cli_example_without_its_action_code_says_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as missing:
        load(WITH_ACTION, tmp_path)
    assert [p.message for p in missing.value.problems] == [
        "Action 'action-example': code file './actions/action-example/code.js' not found next to the export"
    ]


def test_deploy_cli_example_runs_its_action_with_lodash_from_npm(tmp_path: Path) -> None:
    """The export completed as the Deploy CLI writes it: code.js in the example's (pre-GA)
    shape next to tenant.yaml, and its lodash dependency installed by npm."""
    node_modules = installed(Path(__file__).resolve().parent / "actions_node", "lodash")
    export = tmp_path / "export"
    (export / "actions" / "action-example").mkdir(parents=True)
    shutil.copy(CORPUS / WITH_ACTION, export / "tenant.yaml")
    (export / "actions" / "action-example" / "code.js").write_text(
        "/** @type {PostLoginAction} */\nmodule.exports = async (event, context) => {\n  console.log('example');\n  return {};\n};\n"
    )
    domain, keywords = CASES[WITH_ACTION]
    loaded = load_tenant(export / "tenant.yaml", keywords={**keywords, "AUTH0_DOMAIN": domain}, node_modules=node_modules)
    assert [a.__name__ for a in loaded.tenant.post_login_actions] == ["action-example"]
    assert [w.message for w in loaded.warnings] == [
        "Action 'action-example': secret MY_SECRET has no value (give it in the Action secrets file or as keyword MY_SECRET)"
    ]


# --- every export through the command line: check, table in every format, diff against itself ---


def _cli_source(name: str, tmp_path: Path) -> tuple[Path, list[str]]:
    """The export (completed where the corpus leaves it incomplete) and the global CLI options to load it."""
    domain, keywords = CASES[name]
    keyword_file = tmp_path / "keywords.json"
    keyword_file.write_text(json.dumps(keywords | {"AUTH0_DOMAIN": domain}))
    options = ["--keyword-file", str(keyword_file)]
    if name == DIRECTORY:
        copy = tmp_path / "directory"
        shutil.copytree(CORPUS / DIRECTORY, copy)
        (copy / "clients" / "My M2M.json").write_text(json.dumps({"name": "My M2M", "app_type": "non_interactive"}))
        return copy, options
    if name == WITH_ACTION:
        node_modules = installed(Path(__file__).resolve().parent / "actions_node", "lodash")
        export = tmp_path / "export"
        (export / "actions" / "action-example").mkdir(parents=True)
        shutil.copy(CORPUS / WITH_ACTION, export / "tenant.yaml")
        (export / "actions" / "action-example" / "code.js").write_text("module.exports = async (event, context) => { return {}; };\n")
        return export / "tenant.yaml", [*options, "--node-modules", str(node_modules)]
    return CORPUS / name, options


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_every_export_runs_check_table_in_every_format_and_diff_against_itself(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import csv
    import io

    from claimsengine.adapters.cli import main

    source, options = _cli_source(name, tmp_path)
    common = ["--tenant", str(source), *options]
    assert main([*common, "check", "--format", "json"]) in (0, 1)
    checked = json.loads(capsys.readouterr().out)
    assert checked["errors"] == sum(f["severity"] == "error" for f in checked["findings"])
    assert main([*common, "table", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert all(isinstance(r["claims"], list) and isinstance(r["rules"], list) for r in rows)
    assert main([*common, "table", "--format", "csv"]) == 0
    assert len(list(csv.DictReader(io.StringIO(capsys.readouterr().out)))) == len(rows)
    assert main([*common, "table", "--format", "markdown"]) == 0
    markdown = capsys.readouterr().out
    assert markdown.startswith("| application |")
    assert markdown.count("\n| ") == len(rows)  # one line per row after the header
    page = tmp_path / "table.html"
    assert main([*common, "table", "--format", "html", "-o", str(page)]) == 0
    assert page.read_text(encoding="utf-8").count("\n") >= len(rows)
    assert main([*common, "diff", str(source), str(source), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_a_clients_refresh_token_settings_are_read_from_the_export(tmp_path: Path) -> None:
    loaded = load("pushpabrol__github-actions-auth0-deploy__tenant.yaml", tmp_path)
    spa = next(c for c in loaded.tenant.clients if c.name == "Demaximus App")
    assert spa.refresh_token is not None
    assert spa.refresh_settings.rotating
    assert spa.refresh_settings.absolute_lifetime == 2592000

"""Tests for the configuration lint: one small tenant per finding."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from claimsengine import (
    Api,
    AuthMethod,
    Client,
    ClientGrant,
    ClientPolicy,
    DefaultOrganization,
    GrantRef,
    Organization,
    OrganizationUsage,
    SigningAlg,
    SubjectType,
    Tenant,
    TokenDialect,
)
from claimsengine.lint import Finding, lint

DOMAIN = "acme.auth0.com"
API = "https://api.acme.test"
M2M = Client(client_id="m2m", name="Worker", app_type="non_interactive", grant_types=("client_credentials",))


def tenant(**fields: object) -> Tenant:
    """A tenant with one API and one M2M client, plus ``fields``."""
    base: dict[str, object] = {"domain": DOMAIN, "apis": (Api(identifier=API, scopes=("read", "write")),), "clients": (M2M,)}
    base.update(fields)
    return Tenant.model_validate(base)


def codes(findings: tuple[Finding, ...]) -> list[tuple[str, str]]:
    return [(f.code, f.path) for f in findings]


def test_clean_tenant_has_no_findings() -> None:
    grants = (
        ClientGrant(client_id="m2m", audience=API, scope=("read",)),
        ClientGrant(client_id="m2m", audience=f"https://{DOMAIN}/api/v2/", scope=("read:users",)),
        ClientGrant(client_id="m2m", audience=API, subject_type=SubjectType.USER, scope=("write",)),
    )
    assert lint(tenant(client_grants=grants, default_audience=API)) == ()


def test_grant_to_missing_api_and_undefined_scopes() -> None:
    grants = (
        ClientGrant(client_id="m2m", audience="https://nowhere.test"),
        ClientGrant(client_id="m2m", audience=API, scope=("read", "admin", "root")),
    )
    findings = lint(tenant(client_grants=grants))
    assert codes(findings) == [("grant.missing_api", "client_grants[0].audience"), ("grant.undefined_scopes", "client_grants[1].scope")]
    assert findings[0].severity == "error"
    assert findings[1].message.endswith(": admin root")


def test_default_audience_missing() -> None:
    findings = lint(tenant(default_audience="https://gone.test"))
    assert findings == (
        Finding(code="tenant.default_audience_missing", severity="error", path="default_audience", message="no API 'https://gone.test'"),
    )


def test_default_audience_may_be_the_management_api() -> None:
    assert lint(tenant(default_audience=f"https://{DOMAIN}/api/v2/")) == ()


def test_hs256_without_secret_and_with_derived_secret() -> None:
    apis = (
        Api(identifier="https://hs.test", signing_alg=SigningAlg.HS256),
        Api(identifier="https://derived.test", signing_alg=SigningAlg.HS256, signing_secret=SecretStr("x")),
        Api(identifier="https://real.test", signing_alg=SigningAlg.HS256, signing_secret=SecretStr("y")),
    )
    findings = lint(tenant(apis=apis), derived_api_secrets={"https://derived.test"})
    assert codes(findings) == [("api.hs256_without_secret", "apis[0]"), ("api.hs256_derived_secret", "apis[1].signing_secret")]


def test_duplicate_client_names_but_not_empty_ones() -> None:
    clients = (M2M, Client(client_id="b", name="Worker"), Client(client_id="c"), Client(client_id="d"))
    findings = lint(tenant(clients=clients))
    assert codes(findings) == [("client.duplicate_name", "clients[1].name")]
    assert "clients[0]" in findings[0].message


def test_grants_that_can_never_fire_for_the_client() -> None:
    clients = (
        Client(client_id="spa", name="SPA", app_type="spa"),
        Client(client_id="web", name="Web", grant_types=("authorization_code",)),
    )
    grants = (
        ClientGrant(client_id="spa", audience=API),
        ClientGrant(client_id="web", audience=API),
        ClientGrant(client_id="spa", audience=API, subject_type=SubjectType.USER),
    )
    assert codes(lint(tenant(clients=clients, client_grants=grants))) == [
        ("grant.public_client", "client_grants[0]"),
        ("grant.client_credentials_disabled", "client_grants[1]"),
    ]


def test_deny_all_api_with_client_grants_and_allow_all_scopes_without_scopes() -> None:
    apis = (Api(identifier=API, client_policy=ClientPolicy.DENY_ALL),)
    grants = (ClientGrant(client_id="m2m", audience=API, allow_all_scopes=True),)
    findings = lint(tenant(apis=apis, client_grants=grants))
    assert codes(findings) == [
        ("grant.api_denies_clients", "client_grants[0]"),
        ("grant.allow_all_scopes_empty", "client_grants[0].allow_all_scopes"),
    ]
    assert [f.severity for f in findings] == ["warning", "info"]


def test_required_organization_that_cannot_be_obtained() -> None:
    org = Organization(id="org_1", name="one")
    with_default = Client(
        client_id="dflt",
        name="Defaulted",
        grant_types=("client_credentials",),
        default_organization=DefaultOrganization(organization_id="org_1"),
    )
    other_flow = Client(
        client_id="other",
        name="Other flow",
        grant_types=("client_credentials",),
        default_organization=DefaultOrganization(organization_id="org_1", flows=("authorization_code",)),
    )
    require = OrganizationUsage.REQUIRE
    grants = (
        ClientGrant(client_id="m2m", audience=API, organization_usage=require),  # unreachable
        ClientGrant(client_id="dflt", audience=API, organization_usage=require),  # default organization
        ClientGrant(client_id="other", audience=API, organization_usage=require),  # default, but not for this flow
        ClientGrant(client_id="m2m", audience=API, organization_usage=require, subject_type=SubjectType.USER, allow_any_organization=True),
        ClientGrant(default_for="third_party_clients", audience=API, organization_usage=require),  # no client at all
    )
    associated = ClientGrant(client_id="m2m", audience="https://assoc.test", organization_usage=require)
    apis = (Api(identifier=API, scopes=("read",)), Api(identifier="https://assoc.test"))
    org = Organization(id="org_1", name="one", client_grants=(GrantRef(client_id="m2m", audience="https://assoc.test"),))
    findings = lint(tenant(apis=apis, clients=(M2M, with_default, other_flow), client_grants=(*grants, associated), organizations=(org,)))
    assert codes(findings) == [
        ("grant.organization_unreachable", "client_grants[0].organization_usage"),
        ("grant.organization_unreachable", "client_grants[2].organization_usage"),
        ("grant.organization_unreachable", "client_grants[4].organization_usage"),
    ]


def test_organization_associated_with_a_deny_grant() -> None:
    grants = (
        ClientGrant(client_id="m2m", audience=API),
        ClientGrant(client_id="m2m", audience="https://user-only.test", subject_type=SubjectType.USER),
        ClientGrant(client_id="m2m", audience="https://allowed.test", organization_usage=OrganizationUsage.ALLOW),
    )
    apis = (Api(identifier=API), Api(identifier="https://user-only.test"), Api(identifier="https://allowed.test"))
    refs = tuple(GrantRef(client_id="m2m", audience=g.audience) for g in grants)
    findings = lint(tenant(apis=apis, client_grants=grants, organizations=(Organization(id="org_1", name="one", client_grants=refs),)))
    assert codes(findings) == [("organization.grant_denies_organizations", "organizations[0].client_grants[0]")]


def test_findings_are_ordered_by_severity_then_tenant_order() -> None:
    apis = (Api(identifier=API, scopes=()), Api(identifier="https://hs.test", signing_alg=SigningAlg.HS256))
    grants = (
        ClientGrant(client_id="m2m", audience=API, allow_all_scopes=True),
        ClientGrant(client_id="m2m", audience="https://missing.test"),
        ClientGrant(client_id="m2m", audience="https://hs.test", scope=("x",)),
    )
    findings = lint(tenant(apis=apis, client_grants=grants))
    assert [f.severity for f in findings] == ["error", "error", "warning", "info"]
    assert lint(tenant(apis=apis, client_grants=grants)) == findings


def test_configuration_auth0_refuses_is_reported() -> None:
    # Issue 8, item 8: token_lifetime_for_web > token_lifetime (terraform-provider-auth0 docs:
    # "Cannot be greater than the token_lifetime value"); a public client with client_credentials
    # (Management API: 400 "Invalid grant types: client_credentials", auth0/auth0.net#188).
    apis = (
        Api(identifier=API, token_lifetime=3600, token_lifetime_for_web=7200),
        Api(identifier="https://authz.test", token_dialect=TokenDialect.ACCESS_TOKEN_AUTHZ),
        Api(identifier="https://rbac.test", token_dialect=TokenDialect.RFC9068_PROFILE_AUTHZ, enforce_policies=True),
    )
    spa = Client(client_id="spa", name="Shop", app_type="spa", grant_types=("authorization_code", "client_credentials"))
    native = Client(client_id="app", app_type="native", token_endpoint_auth_method=AuthMethod.NONE, grant_types=("client_credentials",))
    findings = lint(tenant(apis=apis, clients=(M2M, spa, native)))
    assert codes(findings) == [
        ("api.web_lifetime_exceeds_lifetime", "apis[0].token_lifetime_for_web"),
        ("client.public_client_credentials", "clients[1].grant_types"),
        ("client.public_client_credentials", "clients[2].grant_types"),
        ("api.authz_dialect_without_rbac", "apis[1].token_dialect"),
    ]
    assert [f.severity for f in findings] == ["error", "error", "error", "warning"]
    assert "(7200) is greater than token_lifetime (3600)" in findings[0].message
    assert "'Shop'" in findings[1].message
    assert "'app'" in findings[2].message
    assert "issues none" in findings[3].message


def test_origin_entries_that_can_never_match_are_reported() -> None:
    # Issue 10, item 4 (specs/choices.md "CORS"): only scheme, host and port count; third-party
    # clients may not use wildcards. Such an entry loads (Auth0's lists are free text here) but allows nothing.
    spa = Client(
        client_id="spa",
        app_type="spa",
        web_origins=("https://shop.example.com", "https://shop.example.com/app", "shop.example.com"),
        allowed_origins=("https://*.example.com", "https://kiosk.example.com/?x=1"),
    )
    partner = Client(client_id="partner", is_first_party=False, web_origins=("https://*.partner.example", "https://partner.example"))
    findings = [f for f in lint(tenant(clients=(spa, partner))) if f.code == "client.origin_never_matches"]
    assert [(f.path, f.severity) for f in findings] == [
        ("clients[0].web_origins[1]", "warning"),
        ("clients[0].web_origins[2]", "warning"),
        ("clients[0].allowed_origins[1]", "warning"),
        ("clients[1].web_origins[0]", "warning"),
    ]
    assert "has a path" in findings[0].message
    assert "is not an http(s) origin" in findings[1].message
    assert "third-party" in findings[3].message


@pytest.mark.parametrize("domain", ["https://x.auth0.com", "x.auth0.com/", "x.auth0.com/path", "x .auth0.com"])
def test_a_domain_given_as_a_url_or_with_a_path_is_refused_at_load(domain: str) -> None:
    with pytest.raises(ValidationError, match=r"a domain is a bare host name such as acme\.auth0\.com, not a URL or a path"):
        Tenant(domain=domain)
    with pytest.raises(ValidationError, match=r"custom_domains\.0\.domain"):
        Tenant.model_validate({"domain": DOMAIN, "custom_domains": [{"domain": domain}]})


def test_the_default_web_lifetime_is_not_reported_against_a_short_lifetime() -> None:
    assert lint(tenant(apis=(Api(identifier=API, scopes=("read",), token_lifetime=3600),))) == ()

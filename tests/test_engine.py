"""Edge cases of the core that are clearer as small examples than as golden cases."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from claimsengine import (
    ActionApi,
    Authorized,
    AuthorizeRequest,
    ClientAssertion,
    ClientGrant,
    CredentialsExchangeEvent,
    Issued,
    Rejected,
    Rule,
    Tenant,
    TokenRequest,
    decide,
    served_domain,
)

NOW = 1_700_000_000
API = "https://api.example.com"

BASE: dict[str, Any] = {
    "domain": "acme.auth0.com",
    "custom_domains": [{"domain": "login.acme.com"}, {"domain": "pending.acme.com", "verified": False}],
    "apis": [{"identifier": API, "scopes": ["read", "write"]}],
    "clients": [{"client_id": "m2m", "client_secrets": ["m2m-secret"], "app_type": "non_interactive"}],
    "client_grants": [{"client_id": "m2m", "audience": API, "scope": ["read", "write"]}],
    "users": [{"user_id": "auth0|u"}],
    "roles": [{"name": "reader"}],
    "organizations": [{"id": "org_1", "name": "one"}],
}


def tenant(**changes: Any) -> Tenant:
    return Tenant.model_validate({**BASE, **changes})


def cc(t: Tenant, **fields: Any) -> Issued | Rejected:
    params: dict[str, Any] = {"audience": API, **fields}
    request = TokenRequest(grant_type="client_credentials", client_id="m2m", client_secret=SecretStr("m2m-secret"), **params)
    decision = decide(request, t, now=NOW)
    assert not isinstance(decision, Authorized)
    return decision


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"clients": [*BASE["clients"], *BASE["clients"]]}, "clients[1]: duplicate client_id 'm2m'"),
        ({"apis": [*BASE["apis"], *BASE["apis"]]}, "apis[1]: duplicate identifier"),
        ({"client_grants": [{"client_id": "ghost", "audience": API}]}, "client_grants[0].client_id: no client 'ghost'"),
        (
            {"organizations": [{"id": "org_1", "name": "one", "client_grants": [{"client_id": "m2m", "audience": "https://x"}]}]},
            "organizations[0].client_grants[0]: no client grant",
        ),
        ({"organizations": [{"id": "org_1", "name": "one", "members": [{"user_id": "nobody"}]}]}, "no user 'nobody'"),
        (
            {"organizations": [{"id": "org_1", "name": "one", "members": [{"user_id": "auth0|u", "roles": ["nope"]}]}]},
            "organizations[0].members[0].roles: no role 'nope'",
        ),
        ({"users": [{"user_id": "auth0|u", "roles": ["nope"]}]}, "users[0].roles: no role 'nope'"),
        (
            {"clients": [{"client_id": "m2m", "default_organization": {"organization_id": "org_missing"}}]},
            "clients[0].default_organization: no organization 'org_missing'",
        ),
        ({"behaviour": {"default_domain": "elsewhere.example"}}, "behaviour.default_domain"),
        ({"custom_domains": [{"domain": "acme.auth0.com"}]}, "custom_domains[1]: duplicate domain"),
    ],
)
def test_a_tenant_with_broken_references_fails_with_every_path(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        tenant(**changes)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("grant", "message"),
    [
        ({"audience": API}, "exactly one of client_id and default_for"),
        ({"audience": API, "client_id": "m2m", "default_for": "third_party_clients"}, "exactly one of client_id and default_for"),
        ({"audience": API, "client_id": "m2m", "allow_all_scopes": True, "scope": ["read"]}, "allow_all_scopes"),
    ],
)
def test_a_malformed_client_grant_is_refused_when_built(grant: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ClientGrant.model_validate(grant)


@pytest.mark.parametrize(
    ("host", "served"),
    [
        (None, "acme.auth0.com"),
        ("LOGIN.ACME.COM:443", "login.acme.com"),
        ("login.acme.com.", "login.acme.com"),
        ("[::1]:8443", "acme.auth0.com"),
        ("[::1", "acme.auth0.com"),
        ("127.0.0.1:9000", "acme.auth0.com"),
        ("pending.acme.com", None),
    ],
)
def test_hosts_are_served_as_a_tenant_domain_or_refused(host: str | None, served: str | None) -> None:
    assert served_domain(host, tenant()) == served


def test_a_strict_tenant_refuses_unknown_hosts_at_authorize_too() -> None:
    strict = tenant(behaviour={"unknown_host": "reject"})
    decision = decide(AuthorizeRequest(domain="evil.example", client_id="m2m"), strict, now=NOW)
    assert isinstance(decision, Rejected)
    assert decision.rejected_by is Rule.DOMAIN_UNKNOWN
    assert "evil" not in decision.error_description


def test_an_assertion_type_without_a_parsed_assertion_fails_authentication() -> None:
    t = tenant(clients=[{"client_id": "m2m", "public_keys": [{"pem": "-----BEGIN PUBLIC KEY-----"}]}])
    request = TokenRequest(
        grant_type="client_credentials",
        client_id="m2m",
        client_assertion_type="urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        audience=API,
    )
    decision = decide(request, t, now=NOW)
    assert isinstance(decision, Rejected)
    assert decision.rejected_by is Rule.CLIENT_ASSERTION_INVALID
    assert decision.trace[-1].detail == "the assertion could not be parsed"


def test_an_assertion_signed_with_another_algorithm_than_the_key_fails() -> None:
    t = tenant(clients=[{"client_id": "m2m", "public_keys": [{"pem": "-----BEGIN PUBLIC KEY-----", "alg": "RS256"}]}])
    claims: dict[str, Any] = {"iss": "m2m", "sub": "m2m", "aud": "https://acme.auth0.com/", "exp": NOW + 60, "jti": "j1"}
    assertion = ClientAssertion(alg="PS256", claims=claims, size=600, signature_valid=True, key_alg="RS256")
    request = TokenRequest(
        grant_type="client_credentials",
        client_assertion_type="urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        assertion=assertion,
        audience=API,
    )
    decision = decide(request, t, now=NOW)
    assert isinstance(decision, Rejected)
    assert "does not match the registered key" in decision.trace[-1].detail


def _claims_action(claims: dict[str, Any]) -> Any:
    def action(event: CredentialsExchangeEvent, api: ActionApi) -> None:
        for name, value in claims.items():
            api.access_token.set_custom_claim(name, value)

    return action


def test_urn_namespaces_are_kept_on_custom_apis_but_urn_auth0_is_not() -> None:
    action = _claims_action({"urn:acme:tier": "gold", "urn:auth0:tier": "x", "https://app.auth0.com/x": 1, "https://acme.com/y": 2})
    decision = cc(tenant(credentials_exchange_actions=[action]))
    assert isinstance(decision, Issued)
    assert decision.claims["urn:acme:tier"] == "gold"
    assert decision.claims["https://acme.com/y"] == 2
    assert "urn:auth0:tier" not in decision.claims
    assert "https://app.auth0.com/x" not in decision.claims


def test_on_the_management_api_a_urn_claim_counts_as_not_namespaced() -> None:
    grant = {"client_id": "m2m", "audience": "https://acme.auth0.com/api/v2/", "scope": ["read:users"]}
    t = tenant(client_grants=[grant], credentials_exchange_actions=[_claims_action({"urn:acme:tier": "gold", "https://acme.com/t": 1})])
    decision = cc(t, audience="https://acme.auth0.com/api/v2/")
    assert isinstance(decision, Issued)
    assert "urn:acme:tier" not in decision.claims
    assert decision.claims["https://acme.com/t"] == 1
    assert Rule.ACTION_CLAIM_AUTH0_AUDIENCE in [r.rule for r in decision.trace]


def test_target_scope_edits_are_applied_in_order_and_limited_to_the_grant() -> None:
    def action(event: CredentialsExchangeEvent, api: ActionApi) -> None:
        api.transaction.set_target_scopes(["write", "read", "write", "admin"])
        api.transaction.remove_target_scope("read")
        api.transaction.remove_target_scope("never-there")
        api.transaction.add_target_scope("write")
        api.transaction.add_target_scope("read")

    decision = cc(tenant(credentials_exchange_actions=[action]))
    assert isinstance(decision, Issued)
    assert decision.scope == "write read"


def test_only_the_first_denial_counts() -> None:
    def action(event: CredentialsExchangeEvent, api: ActionApi) -> None:
        api.access.deny("invalid_request", "first")
        api.access.deny("server_error", "second")

    decision = cc(tenant(credentials_exchange_actions=[action]))
    assert isinstance(decision, Rejected)
    assert (decision.error.value, decision.error_description, decision.status) == ("invalid_request", "first", 400)


def test_post_login_actions_can_add_and_remove_access_token_scopes() -> None:
    def action(event: Any, api: ActionApi) -> None:
        api.access_token.remove_scope("write")
        api.access_token.add_scope("openid")
        api.access_token.add_scope("read")

    t = tenant(
        clients=[{"client_id": "web", "client_secrets": ["w"], "app_type": "regular_web", "callbacks": ["https://app.example/cb"]}],
        client_grants=[],
        apis=[{"identifier": API, "scopes": ["read", "write"], "skip_consent_for_verifiable_first_party_clients": True}],
        post_login_actions=[action],
    )
    request = AuthorizeRequest(client_id="web", redirect_uri="https://app.example/cb", audience=API, scope="read write", user_id="auth0|u")
    decision = decide(request, t, now=NOW)
    assert isinstance(decision, Authorized)
    assert decision.grant.scope == ("read", "openid")


def test_authorize_reads_resource_only_under_the_compatibility_profile() -> None:
    t = tenant(
        resource_parameter_profile="compatibility",
        clients=[{"client_id": "web", "client_secrets": ["w"], "app_type": "regular_web", "callbacks": ["https://app.example/cb"]}],
        client_grants=[],
        apis=[{"identifier": API, "scopes": ["read"], "skip_consent_for_verifiable_first_party_clients": True}],
    )
    request = AuthorizeRequest(client_id="web", redirect_uri="https://app.example/cb", resource=API, scope="read", user_id="auth0|u")
    decision = decide(request, t, now=NOW)
    assert isinstance(decision, Authorized)
    assert decision.grant.audience == API
    assert Rule.AUDIENCE_RESOURCE_PARAMETER in [r.rule for r in decision.trace]
    plain = Tenant.model_validate({**t.model_dump(), "resource_parameter_profile": "audience"})
    ignored = decide(request, plain, now=NOW)
    assert isinstance(ignored, Authorized)
    assert ignored.grant.audience is None

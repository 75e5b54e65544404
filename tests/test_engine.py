"""Edge cases of the core that are clearer as small examples than as golden cases."""

from __future__ import annotations

from dataclasses import FrozenInstanceError
from typing import Any, assert_type

import pytest
from pydantic import SecretStr, ValidationError

from claimsengine import (
    DECISION,
    Accepted,
    ActionApi,
    AuthorizationGrant,
    Authorized,
    AuthorizeRequest,
    Behaviour,
    ClientAssertion,
    ClientGrant,
    CredentialsExchangeEvent,
    DeviceAuthorized,
    DeviceCodeRequest,
    ErrorCode,
    Issued,
    PresentedToken,
    Rejected,
    Rule,
    Tenant,
    TokenDialect,
    TokenRequest,
    decide,
    served_domain,
    steps,
    tokens,
    userinfo_claims,
    validate_access_token,
)
from claimsengine.auth0 import CUSTOM_CLAIMS_LIMIT_BYTES
from claimsengine.model import Reason, Session, new_reason, trusted
from claimsengine.steps import Trace, consumes_code, granted_scopes
from claimsengine.tokens import DIALECTS
from claimsengine.tokens import dialect as dialect_entry

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
    return decide(request, t, now=NOW)


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
        ("[::1]:8443", None),
        ("[::1", None),
        ("127.0.0.1:9000", None),
        ("pending.acme.com", None),
    ],
)
def test_hosts_are_served_as_a_tenant_domain_or_refused(host: str | None, served: str | None) -> None:
    # Issue 8, item 5: refusal is the default; the lenient mode serves the canonical domain.
    assert served_domain(host, tenant()) == served
    lenient = tenant(behaviour={"unknown_host": "default"})
    assert served_domain(host, lenient) == (served or (None if host == "pending.acme.com" else "acme.auth0.com"))


def test_unknown_hosts_are_refused_at_authorize_too() -> None:
    strict = tenant()
    decision = decide(AuthorizeRequest(response_type="code", domain="evil.example", client_id="m2m"), strict, now=NOW)
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


@pytest.mark.parametrize(("id_length", "alg_length", "accepted"), [(64, 16, True), (65, 16, False), (64, 17, False)])
def test_assertion_client_ids_and_algs_are_good_up_to_their_r9_limits(id_length: int, alg_length: int, accepted: bool) -> None:
    # R9: iss/sub (the client_id) at most 64 characters, alg at most 16 (client.assertion_invalid).
    client_id = "c" * id_length
    t = tenant(clients=[{"client_id": client_id, "public_keys": [{"pem": "-----BEGIN PUBLIC KEY-----"}]}], client_grants=[])
    claims: dict[str, Any] = {"iss": client_id, "sub": client_id, "aud": "https://acme.auth0.com/", "exp": NOW + 60, "jti": "j1"}
    assertion = ClientAssertion(alg="A" * alg_length, claims=claims, size=600, signature_valid=True)
    request = TokenRequest(
        grant_type="client_credentials",
        client_assertion_type="urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        assertion=assertion,
    )
    decision = decide(request, t, now=NOW)
    assert (decision.trace[1].rule is Rule.CLIENT_ASSERTION_VALID) is accepted, decision.trace


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
    request = AuthorizeRequest(
        response_type="code", client_id="web", redirect_uri="https://app.example/cb", audience=API, scope="read write", user_id="auth0|u"
    )
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
    request = AuthorizeRequest(
        response_type="code", client_id="web", redirect_uri="https://app.example/cb", resource=API, scope="read", user_id="auth0|u"
    )
    decision = decide(request, t, now=NOW)
    assert isinstance(decision, Authorized)
    assert decision.grant.audience == API
    assert Rule.AUDIENCE_RESOURCE_PARAMETER in [r.rule for r in decision.trace]
    plain = Tenant.model_validate({**t.model_dump(), "resource_parameter_profile": "audience"})
    ignored = decide(request, plain, now=NOW)
    assert isinstance(ignored, Authorized)
    assert ignored.grant.audience is None


def test_a_claim_json_cannot_carry_fails_the_exchange_instead_of_raising() -> None:
    decision = cc(tenant(credentials_exchange_actions=[_claims_action({"https://acme.com/when": object()})]))
    assert isinstance(decision, Rejected)
    assert (decision.rejected_by, decision.error.value, decision.status) == (Rule.ACTION_FAILED, "server_error", 500)
    assert decision.error_description == "A server error occurred."  # as for an Action that raises (action-raises)


@pytest.mark.parametrize(
    ("claims", "kept"),
    [
        ({"https://acme.com/a": "x" * (CUSTOM_CLAIMS_LIMIT_BYTES - len("https://acme.com/a") - 2)}, True),  # exactly 100 KB
        ({"https://acme.com/a": "x" * (CUSTOM_CLAIMS_LIMIT_BYTES - len("https://acme.com/a") - 1)}, False),  # one byte more
        ({"https://acme.com/a": "x" * 60_000, "https://acme.com/b": "y" * 60_000}, False),  # each under, together over
    ],
)
def test_custom_claims_are_limited_to_100_kb_in_total(claims: dict[str, Any], kept: bool) -> None:
    # R80: the names and JSON values of all custom claims together, at most 100 KB.
    decision = cc(tenant(credentials_exchange_actions=[_claims_action(claims)]))
    if kept:
        assert isinstance(decision, Issued)
        assert all(decision.claims[name] == value for name, value in claims.items())
    else:
        assert isinstance(decision, Rejected)
        assert (decision.rejected_by, decision.error_description) == (Rule.ACTION_CLAIMS_TOO_LARGE, "Custom claims exceed the 100 KB limit")


WEB: dict[str, Any] = {
    "client_id": "web",
    "client_secrets": ["w"],
    "app_type": "regular_web",
    "callbacks": ["https://app.example/cb"],
    "organization_usage": "allow",
}


def web_authorize(**fields: Any) -> AuthorizeRequest:
    """/authorize for the client "web" at its callback and the API: a code unless ``fields`` say otherwise."""
    defaults: dict[str, Any] = {"response_type": "code", "client_id": "web", "redirect_uri": "https://app.example/cb", "audience": API}
    return AuthorizeRequest(**{**defaults, **fields})


def _login_and_exchange(
    t: Tenant, *, organization: str | None = None, nonce: str | None = None, scope: str = "openid profile read"
) -> Issued | Rejected:
    request = web_authorize(scope=scope, user_id="auth0|u", organization=organization, nonce=nonce, consent=True)
    authorized = decide(request, t, now=NOW)
    assert isinstance(authorized, Authorized), authorized
    return _exchange_code(t, authorized)


@pytest.mark.parametrize(
    ("redirect_uri", "skipped"),
    [
        ("https://app.example/cb", True),
        ("http://localhost:3000/cb", False),
        ("http://dev.localhost:3000/cb", False),
        ("http://DEV.LOCALHOST:3000/cb", False),
        ("http://localhost.example/cb", True),
    ],
)
def test_consent_is_skipped_for_a_first_party_app_unless_its_callback_is_on_localhost(redirect_uri: str, skipped: bool) -> None:
    """R70: a first-party application skips consent for an API that allows it, except through a
    callback that cannot be verified: localhost, its loopback addresses and any *.localhost name
    (RFC 6761), in any case; a name that merely starts with localhost is verifiable."""
    t = tenant(
        apis=[{"identifier": API, "scopes": ["read"], "skip_consent_for_verifiable_first_party_clients": True}],
        clients=[{**WEB, "callbacks": [redirect_uri]}],
        client_grants=[],
    )
    request = web_authorize(redirect_uri=redirect_uri, scope="read", user_id="auth0|u")
    decision = decide(request, t, now=NOW)
    rules = [reason.rule for reason in decision.trace]
    assert (Rule.CONSENT_SKIPPED in rules, Rule.CONSENT_REQUIRED in rules) == (skipped, not skipped), rules


def test_prompt_none_never_shows_consent_so_an_answer_to_it_does_not_count() -> None:
    """consent.required (R70): with prompt=none no consent page is shown, so a request that also
    carries the user's answer (an adapter bug, or a forged one) is refused all the same."""
    t = tenant(clients=[WEB], client_grants=[])
    for consent in (True, False, None):
        request = web_authorize(scope="read", user_id="auth0|u", prompt="none", consent=consent)
        decision = decide(request, t, now=NOW)
        assert isinstance(decision, Rejected), decision
        assert decision.rejected_by is Rule.CONSENT_REQUIRED, consent


def _exchange_code(t: Tenant, authorized: Authorized) -> Issued | Rejected:
    """The web client's code exchange for ``authorized``, a second after ``/authorize``."""
    exchange = TokenRequest(
        grant_type="authorization_code",
        client_id="web",
        client_secret=SecretStr("w"),
        code=SecretStr("c"),
        code_grant=authorized.grant,
        redirect_uri="https://app.example/cb",
    )
    return decide(exchange, t, now=NOW + 1)


def _refresh_request(issued: Issued, **fields: Any) -> TokenRequest:
    """The web client's refresh of the refresh token ``issued`` carries."""
    return TokenRequest(
        grant_type="refresh_token",
        client_id="web",
        client_secret=SecretStr("w"),
        refresh_token=SecretStr("r"),
        refresh_grant=issued.refresh,
        **fields,
    )


def test_the_id_token_carries_the_organization_and_post_login_claims_but_no_nonce_unless_sent() -> None:
    def action(event: Any, api: ActionApi) -> None:
        api.id_token.set_custom_claim("https://acme.com/plan", "gold")
        api.id_token.set_custom_claim("iss", "https://evil.example/")

    t = tenant(
        clients=[WEB],
        client_grants=[],
        allow_organization_name_in_authentication_api=True,
        organizations=[{"id": "org_1", "name": "one", "members": [{"user_id": "auth0|u"}]}],
        post_login_actions=[action],
    )
    decision = _login_and_exchange(t, organization="org_1")
    assert isinstance(decision, Issued)
    assert decision.id_token is not None
    assert decision.id_token["org_id"] == "org_1"
    assert decision.id_token["org_name"] == "one"
    assert decision.id_token["https://acme.com/plan"] == "gold"
    assert decision.id_token["iss"] == "https://acme.auth0.com/", "a restricted claim never overrides a registered one"
    assert "nonce" not in decision.id_token
    with_nonce = _login_and_exchange(t, organization="org_1", nonce="n-1")
    assert isinstance(with_nonce, Issued)
    assert with_nonce.id_token is not None
    assert with_nonce.id_token["nonce"] == "n-1"
    without_names = Tenant.model_validate({**t.model_dump(), "allow_organization_name_in_authentication_api": False})
    nameless = _login_and_exchange(without_names, organization="org_1")
    assert isinstance(nameless, Issued)
    assert nameless.id_token is not None
    assert "org_name" not in nameless.id_token
    assert nameless.id_token["org_id"] == "org_1"


def test_an_oversized_id_token_claim_from_post_login_fails_the_login() -> None:
    def action(event: Any, api: ActionApi) -> None:
        api.id_token.set_custom_claim("https://acme.com/blob", "x" * 200_000)

    t = tenant(clients=[WEB], client_grants=[], post_login_actions=[action])
    request = web_authorize(user_id="auth0|u", consent=True)
    decision = decide(request, t, now=NOW)
    assert isinstance(decision, Rejected)
    assert decision.rejected_by is Rule.ACTION_CLAIMS_TOO_LARGE
    assert decision.redirect_uri == "https://app.example/cb"


def test_in_an_organization_login_only_the_members_organization_roles_count() -> None:
    # Issue 8, item 3 (https://auth0.com/docs/manage-users/organizations/organization-roles).
    perm = {"resource_server_identifier": API, "permission_name": "write"}
    setup: dict[str, Any] = {
        "roles": [
            {"name": "reader", "permissions": [{"resource_server_identifier": API, "permission_name": "read"}]},
            {"name": "deleter", "permissions": [{"resource_server_identifier": API, "permission_name": "delete"}]},
        ],
        "users": [{"user_id": "auth0|u", "roles": ["reader"], "permissions": [perm]}],
        "organizations": [{"id": "org_1", "name": "one", "members": [{"user_id": "auth0|u", "roles": ["deleter"]}]}],
    }
    t = tenant(**setup)
    user = t.index.users["auth0|u"]
    assert t.index.user_permissions(user, API, None) == ("write", "read")
    assert t.index.user_permissions(user, API, "org_1") == ("delete",)
    assert t.index.user_permissions(user, API, "org_2") == (), "not a member: no roles at all"
    assert t.index.user_permissions(user, "https://other.example", None) == ()
    lenient = tenant(**setup, behaviour={"org_login_includes_user_level_rbac": True})
    assert lenient.index.user_permissions(user, API, "org_1") == ("write", "read", "delete")


def test_userinfo_releases_sub_and_only_the_profile_claims_the_scopes_allow() -> None:
    t = tenant(users=[{"user_id": "auth0|u", "profile": {"name": "U", "email": "u@example.com", "custom": 1}}])
    assert userinfo_claims({"sub": "auth0|u", "scope": "openid profile"}, t) == {"sub": "auth0|u", "name": "U"}
    assert userinfo_claims({"sub": "auth0|u", "scope": "openid email profile"}, t) == {
        "sub": "auth0|u",
        "name": "U",
        "email": "u@example.com",
    }
    assert userinfo_claims({"sub": "auth0|u"}, t) == {"sub": "auth0|u"}
    assert userinfo_claims({"sub": "auth0|nobody", "scope": "openid"}, t) is None
    assert userinfo_claims({"scope": "openid"}, t) is None


def test_a_token_for_an_audience_the_tenant_does_not_know_is_pinned_to_rs256() -> None:
    token = PresentedToken(
        header={"alg": "HS256"},
        claims={"iss": "https://acme.auth0.com/", "aud": "https://unknown.example", "exp": NOW + 60},
    )
    verdict = validate_access_token(token, audience="https://unknown.example", domain="acme.auth0.com", tenant=tenant(), now=NOW)
    assert isinstance(verdict, Rejected)
    assert verdict.rejected_by is Rule.VALIDATE_ALG_PINNED


@pytest.mark.parametrize(
    ("claim", "value", "rule"),
    [
        ("exp", float("nan"), Rule.VALIDATE_EXPIRY),
        ("exp", float("inf"), Rule.VALIDATE_EXPIRY),
        ("nbf", float("nan"), Rule.VALIDATE_NOT_BEFORE),
        ("nbf", float("-inf"), Rule.VALIDATE_NOT_BEFORE),
    ],
)
def test_a_nan_or_infinite_exp_or_nbf_is_no_numeric_date(claim: str, value: float, rule: Rule) -> None:
    """Python's json reads NaN and Infinity: RFC 7519's NumericDate is finite, so such a claim is
    refused with its rule (an infinite exp would otherwise never expire, a NaN never compare)."""
    claims: dict[str, Any] = {"iss": "https://acme.auth0.com/", "aud": API, "exp": NOW + 60, claim: value}
    verdict = validate_access_token(
        PresentedToken(header={"alg": "RS256"}, claims=claims), audience=API, domain="acme.auth0.com", tenant=tenant(), now=NOW
    )
    assert isinstance(verdict, Rejected), verdict
    assert verdict.rejected_by is rule


def test_a_third_party_clients_own_grant_outranks_the_default_grant() -> None:
    own = {"client_id": "m2m", "audience": API, "scope": ["read"]}
    default = {"default_for": "third_party_clients", "audience": API, "scope": ["read", "write"]}
    third_party = [{"client_id": "m2m", "client_secrets": ["m2m-secret"], "app_type": "non_interactive", "is_first_party": False}]
    with_own = cc(tenant(clients=third_party, client_grants=[own, default]))
    assert isinstance(with_own, Issued)
    assert with_own.scope == "read"
    # R28: delete the client's own grant and the default grant applies, wider than before.
    fallback = cc(tenant(clients=third_party, client_grants=[default]))
    assert isinstance(fallback, Issued)
    assert fallback.scope == "read write"
    assert Rule.GRANT_DEFAULT_FOR_THIRD_PARTY in [r.rule for r in fallback.trace]


def test_the_compiled_index_is_read_only() -> None:
    index = tenant().index
    with pytest.raises(TypeError):
        index.clients["intruder"] = index.clients["m2m"]  # type: ignore[index]
    same = tenant()
    assert same.index is same.index, "compiled once per tenant"


ORG_GRANT = {"client_id": "m2m", "audience": API, "scope": ["read"], "organization_usage": "allow"}


def test_an_error_override_replaces_the_wire_answer_of_one_rule() -> None:
    overrides = {
        "org.not_associated": {
            "error": "invalid_request",
            "error_description": "{client_id} may not use {organization} for {audience}",
        },
        "org.unknown": {"error_description": "No such organization", "status": 404},
    }
    t = tenant(client_grants=[ORG_GRANT], behaviour={"error_overrides": overrides})
    refused = cc(t, organization="org_1")
    assert isinstance(refused, Rejected)
    assert refused.rejected_by is Rule.ORG_NOT_ASSOCIATED
    assert (refused.error.value, refused.status) == ("invalid_request", 400), "a new code takes its default status"
    assert refused.error_description == f"m2m may not use org_1 for {API}"
    unknown = cc(t, organization="org_nope")
    assert isinstance(unknown, Rejected)
    assert (unknown.error.value, unknown.error_description, unknown.status) == ("invalid_request", "No such organization", 404)
    status_only = cc(tenant(client_grants=[ORG_GRANT], behaviour={"error_overrides": {"org.unknown": {"status": 404}}}), organization="x")
    assert isinstance(status_only, Rejected)
    assert (status_only.error_description, status_only.status) == ("Invalid organization: x", 404), "the text stays"
    untouched = cc(tenant(client_grants=[ORG_GRANT]), organization="org_1")
    assert isinstance(untouched, Rejected)
    assert untouched.error.value == "access_denied"


@pytest.mark.parametrize(
    "template", ["{secret}", "{0}", "{}", "unbalanced {", "{client_id.__class__}", "{audience[0]}", "{client_id!r}", "{audience:>9}"]
)
def test_an_error_override_template_with_unknown_placeholders_fails_at_load(template: str) -> None:
    with pytest.raises(ValidationError, match="error_description may use only"):
        tenant(behaviour={"error_overrides": {"grant.missing": {"error_description": template}}})


def test_an_error_override_for_an_unknown_rule_id_fails_at_load() -> None:
    with pytest.raises(ValidationError):
        tenant(behaviour={"error_overrides": {"grant.mising": {"status": 403}}})


@pytest.mark.parametrize("dialect", list(TokenDialect))
@pytest.mark.parametrize("rbac", [True, False])
def test_each_dialect_carries_the_claims_its_table_entry_names(dialect: TokenDialect, rbac: bool) -> None:
    kind = DIALECTS[dialect]
    t = tenant(
        apis=[{"identifier": API, "scopes": ["read"], "token_dialect": dialect.value, "enforce_policies": rbac}],
        clients=[*BASE["clients"], WEB],
        roles=[{"name": "reader", "permissions": [{"resource_server_identifier": API, "permission_name": "read"}]}],
        users=[{"user_id": "auth0|u", "roles": ["reader"]}],
    )
    machine, user = cc(t), _login_and_exchange(t)
    assert isinstance(machine, Issued)
    assert isinstance(user, Issued)
    for decision, flow_gty in ((machine, "client-credentials"), (user, None)):
        assert decision.header is not None
        assert decision.header.typ == kind.typ
        assert decision.needs_jti is kind.jti
        assert decision.claims[kind.client_claim] == decision.client_id
        assert {"azp", "client_id"} - {kind.client_claim} - set(decision.claims) == {"azp", "client_id"} - {kind.client_claim}
        assert decision.claims.get("gty") == (flow_gty if kind.gty else None)
    # Machine-to-machine tokens carry the granted scopes as permissions (the grant's list, issued
    # as it is), user tokens the user's permissions; both only when the API enforces RBAC (issue 8).
    assert machine.claims.get("permissions") == (["read", "write"] if kind.permissions and rbac else None)
    assert user.claims.get("permissions") == (["read"] if kind.permissions and rbac else None)


def test_the_dialect_table_has_one_entry_per_dialect() -> None:
    assert set(DIALECTS) == set(TokenDialect)
    assert all(DIALECTS[d] == dialect_entry(d) for d in TokenDialect)


def test_a_code_is_used_up_by_an_issued_token_and_by_a_failed_pkce_check_unless_switched_off() -> None:
    # Issue 8, item 9 (RFC 6749 section 10.5; Auth0 is silent: specs/choices.md).
    issued = cc(tenant())
    assert isinstance(issued, Issued)
    failed = Rejected(error=ErrorCode.INVALID_GRANT, error_description="x", status=403, rejected_by=Rule.CODE_PKCE_FAILED, trace=())
    other = failed.model_copy(update={"rejected_by": Rule.CODE_REDIRECT_MISMATCH})
    assert consumes_code(issued, Behaviour())
    assert consumes_code(failed, Behaviour())
    assert not consumes_code(failed, Behaviour(pkce_failure_consumes_code=False))
    assert not consumes_code(other, Behaviour())


def test_decide_says_which_decisions_each_request_can_yield() -> None:
    # Checked by mypy: a TokenRequest never yields Authorized, an AuthorizeRequest never Issued.
    token = cc(tenant())
    assert_type(token, Issued | Rejected)
    authorize = decide(AuthorizeRequest(client_id="nobody"), tenant(), now=NOW)
    assert_type(authorize, Authorized | Rejected)
    assert isinstance(token, Issued)
    assert isinstance(authorize, Rejected)


def test_an_accepted_token_is_a_decision_like_the_others() -> None:
    t = tenant()
    issued = cc(t)
    assert isinstance(issued, Issued)
    assert issued.header is not None
    token = PresentedToken(header=issued.header.model_dump(mode="json"), claims=dict(issued.claims))
    accepted = validate_access_token(token, audience=API, domain=t.domain, tenant=t, now=NOW)
    assert isinstance(accepted, Accepted)
    assert DECISION.validate_json(DECISION.dump_json(accepted)) == accepted


@pytest.mark.parametrize(
    ("method", "challenge", "verifier"),
    [
        ("S256", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "é" * 43),  # non-ASCII S256 verifier
        ("S256", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "\ud800" * 43),  # lone surrogates
        ("plain", "p" * 43, "\ud800" + "p" * 42),  # a plain verifier with a lone surrogate
        ("plain", "\ud800" + "p" * 42, "p" * 43),  # a challenge with a lone surrogate
    ],
)
def test_a_pkce_verifier_or_challenge_outside_ascii_fails_to_match_instead_of_raising(method: str, challenge: str, verifier: str) -> None:
    # Issue 12, item 5 (totality): the S256 hash and the comparison encode what they are given
    # without raising, so such a verifier is a refusal like any other mismatch.
    grant = AuthorizationGrant(
        client_id="web",
        user_id="auth0|u",
        audience=API,
        scope=("read",),
        domain="acme.auth0.com",
        redirect_uri="https://app.example/cb",
        code_challenge=challenge,
        code_challenge_method=method,  # type: ignore[arg-type]
        issued_at=NOW,
    )
    exchange = TokenRequest(
        grant_type="authorization_code",
        client_id="web",
        client_secret=SecretStr("w"),
        code=SecretStr("c"),
        code_grant=grant,
        redirect_uri="https://app.example/cb",
        code_verifier=verifier,
    )
    decision = decide(exchange, tenant(clients=[WEB], client_grants=[]), now=NOW + 1)
    assert isinstance(decision, Rejected)
    assert (decision.rejected_by, decision.error_description) == (Rule.CODE_PKCE_FAILED, "Failed to verify code verifier")


# --- the hot path's compiled facts and fast constructions (issue 13) ---------------------


def test_a_trace_entry_built_on_the_fast_path_equals_one_built_by_its_constructor() -> None:
    built = new_reason(Rule.GRANT_FOUND, "client grant", "client_grants[0]")
    assert built == Reason(Rule.GRANT_FOUND, "client grant", "client_grants[0]")
    assert (built.rule, built.detail, built.ref) == (Rule.GRANT_FOUND, "client grant", "client_grants[0]")
    with pytest.raises(FrozenInstanceError):
        built.detail = "changed"  # type: ignore[misc]


def test_a_trusted_construction_equals_the_validated_one_defaults_and_set_fields_included() -> None:
    decision = cc(tenant())
    assert isinstance(decision, Issued)
    validated = Issued.model_validate(decision.model_dump())
    assert decision == validated
    assert decision.model_dump(exclude_unset=True) == Issued(**decision.model_dump(exclude_unset=True)).model_dump(exclude_unset=True)
    refused = cc(tenant(), audience="https://nowhere.example.com")
    assert isinstance(refused, Rejected)
    assert refused == Rejected.model_validate(refused.model_dump())
    # A field with a default factory gets a fresh value, as the validating constructor gives it.
    first, second = trusted(TokenRequest, grant_type="client_credentials"), trusted(TokenRequest, grant_type="client_credentials")
    assert first == TokenRequest(grant_type="client_credentials")
    assert first.parameters == {}
    assert first.parameters is not second.parameters
    assert first.model_fields_set == {"grant_type"}
    # A value the caller gives for such a field is kept, not replaced by a fresh default.
    given = {"realm": SecretStr("Username-Password-Authentication")}
    kept = trusted(TokenRequest, grant_type="password", parameters=given)
    assert kept == TokenRequest(grant_type="password", parameters=given)
    assert kept.parameters is given
    assert kept.model_fields_set == {"grant_type", "parameters"}


def test_the_public_constructors_still_validate() -> None:
    with pytest.raises(ValidationError):
        Issued.model_validate({**cc_issued().model_dump(), "expires_in": "soon"})


def cc_issued() -> Issued:
    decision = cc(tenant())
    assert isinstance(decision, Issued)
    return decision


def test_a_tenant_remembers_a_bounded_number_of_host_headers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(steps, "HOST_CACHE_LIMIT", 2)
    t = tenant(behaviour={"unknown_host": "default"})
    hosts = ["acme.auth0.com", "ACME.auth0.com.", "login.acme.com:443", "elsewhere.example.com"]
    decisions = [cc(t, domain=host) for host in hosts] + [cc(t, domain=host) for host in hosts]
    assert all(isinstance(d, Issued) for d in decisions)
    assert len(t.index.host_facts) == 2
    fresh = tenant(behaviour={"unknown_host": "default"})
    assert decisions == [cc(fresh, domain=host) for host in hosts] * 2, "remembered or not, a host resolves alike"


def test_a_tenant_remembers_a_bounded_number_of_issuing_domains(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tokens, "ISSUER_CACHE_LIMIT", 1)
    t = tenant()
    first, second, again = cc(t, domain="acme.auth0.com"), cc(t, domain="login.acme.com"), cc(t, domain="login.acme.com")
    assert isinstance(first, Issued)
    assert isinstance(second, Issued)
    assert second == again
    assert (first.issuer, second.issuer) == ("https://acme.auth0.com/", "https://login.acme.com/")
    assert list(t.index.issuer_facts) == ["acme.auth0.com"]


def test_granted_scopes_notes_the_grant_list_once_compiled() -> None:
    t = tenant()
    trace = Trace(t, NOW)
    api, grant = t.index.apis[API], t.client_grants[0]
    assert granted_scopes(grant, api, trace) == granted_scopes(grant, api, trace) == ("read", "write")
    assert [(r.rule, r.detail, r.ref) for r in trace.reasons] == [(Rule.SCOPE_GRANT_LIST, "read write", "client_grants[0]")] * 2


def test_an_undecodable_basic_header_alone_names_no_client() -> None:
    request = TokenRequest(grant_type="client_credentials", basic_client_id="", audience=API)
    decision = decide(request, tenant(), now=NOW)
    assert isinstance(decision, Rejected)
    assert decision.rejected_by is Rule.CLIENT_ID_MISSING


@pytest.mark.parametrize("response_type", ["code", "id_token", "token", "code id_token", "code id_token token"])
def test_every_response_type_returns_the_login_session_to_keep(response_type: str) -> None:
    """A login through a session answers with the session the browser keeps (its last use moved
    to now), whether /authorize returns a code, tokens (implicit) or both (hybrid)."""
    t = tenant(clients=[{**WEB, "grant_types": ["authorization_code", "implicit"]}], client_grants=[])
    session = Session(session_id="session-abc", user_id="auth0|u", auth_time=NOW - 100, last_seen=NOW - 50)
    login = web_authorize(response_type=response_type, scope="openid read", nonce="n-1", consent=True, session=session)
    authorized = decide(login, t, now=NOW)
    assert isinstance(authorized, Authorized), authorized
    assert authorized.session is not None
    assert (authorized.session.session_id, authorized.session.last_seen) == ("session-abc", NOW)


def test_an_access_token_from_authorize_has_no_trace_of_its_own_the_authorize_trace_holds_it() -> None:
    t = tenant(clients=[{**WEB, "grant_types": ["authorization_code", "implicit"]}], client_grants=[])
    authorized = decide(web_authorize(response_type="token", scope="read", user_id="auth0|u", consent=True), t, now=NOW)
    assert isinstance(authorized, Authorized), authorized
    assert authorized.access is not None
    assert authorized.access.trace == ()
    assert Rule.FORMAT_JWT in [reason.rule for reason in authorized.trace]


def test_a_consent_given_outside_an_organization_does_not_count_inside_one() -> None:
    """consent.stored (R70): a consent is for a client, an API and an organization (or none)."""
    t = tenant(
        clients=[WEB],
        client_grants=[],
        organizations=[{"id": "org_1", "name": "one", "members": [{"user_id": "auth0|u"}]}],
        users=[{"user_id": "auth0|u", "consents": [{"client_id": "web", "audience": API, "scopes": ["read"]}]}],
    )
    outside = decide(web_authorize(scope="read", user_id="auth0|u"), t, now=NOW)
    assert isinstance(outside, Authorized), outside
    assert Rule.CONSENT_STORED in [reason.rule for reason in outside.trace]
    inside = decide(web_authorize(scope="read", user_id="auth0|u", organization="org_1"), t, now=NOW)
    assert isinstance(inside, Rejected), inside
    assert inside.rejected_by is Rule.CONSENT_REQUIRED


@pytest.mark.parametrize(("app_type", "allowed"), [("native", True), ("spa", False), ("regular_web", False)])
def test_only_a_native_application_may_ask_for_a_device_code(app_type: str, allowed: bool) -> None:
    """device.client_not_allowed: a public first-party application of another type is refused too."""
    device = "urn:ietf:params:oauth:grant-type:device_code"
    client = {"client_id": "tv", "app_type": app_type, "token_endpoint_auth_method": "none", "grant_types": [device]}
    decision = decide(DeviceCodeRequest(client_id="tv", audience=API, scope="read"), tenant(clients=[client], client_grants=[]), now=NOW)
    if allowed:
        assert isinstance(decision, DeviceAuthorized), decision
    else:
        assert isinstance(decision, Rejected), decision
        assert decision.rejected_by is Rule.DEVICE_CLIENT_NOT_ALLOWED


def test_the_sid_and_auth_time_of_a_login_carry_through_the_code_and_every_refresh() -> None:
    # Issue 8, item 7: the ID token of a login, and of each refresh that continues it, names the
    # same session (sid) and authentication time (auth_time, as max_age was sent).
    t = tenant(clients=[{**WEB, "grant_types": ["authorization_code", "refresh_token"]}], client_grants=[])
    t = Tenant.model_validate({**t.model_dump(), "apis": [{"identifier": API, "scopes": ["read"], "allow_offline_access": True}]})
    login = web_authorize(
        scope="openid offline_access read",
        consent=True,
        max_age="3600",
        session=Session(session_id="session-abc", user_id="auth0|u", auth_time=NOW - 100, last_seen=NOW - 50),
    )
    authorized = decide(login, t, now=NOW)
    assert isinstance(authorized, Authorized), authorized
    issued = _exchange_code(t, authorized)
    assert isinstance(issued, Issued), issued
    assert issued.id_token is not None
    assert issued.refresh is not None
    sid = issued.id_token["sid"]
    assert issued.id_token["auth_time"] == NOW - 100
    assert sid != "session-abc"
    refreshed = decide(_refresh_request(issued), t, now=NOW + 7200)
    assert isinstance(refreshed, Issued), refreshed
    assert refreshed.id_token is not None
    assert (refreshed.id_token["sid"], refreshed.id_token["auth_time"]) == (sid, NOW - 100)
    assert refreshed.id_token["iat"] == NOW + 7200
    # Another session of the same user is another sid; no max_age, no auth_time.
    session = Session(session_id="session-xyz", user_id="auth0|u", auth_time=NOW - 100, last_seen=NOW - 50)
    other = decide(login.model_copy(update={"session": session, "max_age": None}), t, now=NOW)
    assert isinstance(other, Authorized)
    assert other.grant.sid not in (None, sid)
    assert other.grant.id_token_auth_time is None


# A user of the default directory, and that user's password login at the client "web".
PASSWORD_USERS: dict[str, Any] = {
    "default_directory": "Username-Password-Authentication",
    "users": [{"user_id": "auth0|u", "connection": "Username-Password-Authentication", "profile": {"email": "u@acme.com"}}],
}


def password_login(audience: str, **fields: Any) -> TokenRequest:
    return TokenRequest(
        grant_type="password",
        client_id="web",
        client_secret=SecretStr("w"),
        audience=audience,
        password_valid_for=("auth0|u",),
        parameters={"username": SecretStr("u@acme.com"), "password": SecretStr("pw")},
        **fields,
    )


def test_a_password_login_has_no_session_and_its_id_token_no_sid() -> None:
    t = tenant(clients=[{**WEB, "grant_types": ["password"]}], client_grants=[], **PASSWORD_USERS)
    issued = decide(password_login(API, scope="openid"), t, now=NOW)
    assert isinstance(issued, Issued), issued
    assert issued.id_token is not None
    assert "sid" not in issued.id_token


def test_a_configured_api_at_the_mfa_api_identifier_and_the_mfa_api_each_keep_their_own_token_facts() -> None:
    """The compiled token facts are cached by identifier and checked by identity, since a
    configured API and the built-in MFA API may share one: in one tenant, client credentials
    for the configured API and a password login for the MFA API (R63) alternate, and each token
    keeps its own lifetime rule."""
    mfa = "https://acme.auth0.com/mfa/"
    t = tenant(
        apis=[*BASE["apis"], {"identifier": mfa, "scopes": ["read"], "token_lifetime": 3600}],
        clients=[*BASE["clients"], {**WEB, "grant_types": ["password"]}],
        client_grants=[*BASE["client_grants"], {"client_id": "m2m", "audience": mfa, "scope": ["read"]}],
        **PASSWORD_USERS,
    )
    expected = [(Rule.LIFETIME_API, 3600), (Rule.LIFETIME_MFA_API, 600), (Rule.LIFETIME_API, 3600)]
    decisions = [cc(t, audience=mfa), decide(password_login(mfa), t, now=NOW), cc(t, audience=mfa)]
    for decision, (rule, lifetime) in zip(decisions, expected, strict=True):
        assert isinstance(decision, Issued), decision
        lifetime_rules = {reason.rule for reason in decision.trace} & {Rule.LIFETIME_API, Rule.LIFETIME_MFA_API}
        assert (decision.expires_in, lifetime_rules) == (lifetime, {rule})


def test_a_parameter_is_a_string_the_client_sent_never_a_fact_the_adapter_resolved() -> None:
    """steps.parameter reads wire strings only: a named field, a secret one, or one of the
    grant's extra parameters; a request field holding the adapter's facts (a tuple, a flag, the
    quota usage, a resolved grant) is never read as a parameter of that name."""
    request = TokenRequest(
        grant_type="password",
        client_secret=SecretStr("w"),
        password_valid_for=("auth0|u",),
        mfa_code_reused=True,
        parameters={"username": SecretStr("u@acme.com")},
    )
    assert steps.parameter(request, "grant_type") == "password"
    assert steps.parameter(request, "client_secret") == "w"
    assert steps.parameter(request, "username") == "u@acme.com"
    assert steps.parameter(request, "realm") is None
    assert steps.parameter(request, "audience") is None
    for fact in ("password_valid_for", "mfa_code_reused", "quota_usage", "code_grant"):
        assert steps.parameter(request, fact) is None, fact


def _offline_tenant(refresh_token: dict[str, Any]) -> Tenant:
    """The web client with these refresh settings, and an API that allows offline access."""
    return tenant(
        clients=[{**WEB, "grant_types": ["authorization_code", "refresh_token"], "refresh_token": refresh_token}],
        client_grants=[],
        apis=[{"identifier": API, "scopes": ["read"], "allow_offline_access": True}],
    )


def _offline_login(refresh_token: dict[str, Any]) -> Issued:
    """A code exchange with openid and offline_access for the web client with these refresh settings."""
    issued = _login_and_exchange(_offline_tenant(refresh_token), scope="openid offline_access read")
    assert isinstance(issued, Issued), issued
    return issued


def test_a_new_refresh_family_is_forgotten_at_its_absolute_expiry_when_idle_tokens_never_expire() -> None:
    issued = _offline_login(
        {"rotation_type": "rotating", "expiration_type": "expiring", "token_lifetime": 86400, "infinite_idle_token_lifetime": True}
    )
    assert issued.refresh is not None
    assert issued.refresh_family is not None
    assert issued.refresh.expires_at == NOW + 1 + 86400
    assert issued.refresh_family.expires_at == NOW + 1 + 86400, "the facts last as long as its tokens, and no longer"
    idle = _offline_login(
        {"rotation_type": "rotating", "expiration_type": "expiring", "token_lifetime": 86400, "idle_token_lifetime": 3600}
    )
    assert idle.refresh_family is not None
    assert idle.refresh_family.expires_at == NOW + 1 + 3600


def test_a_non_rotating_refresh_moves_its_familys_idle_expiry_to_the_new_last_use() -> None:
    settings = {"rotation_type": "non-rotating", "expiration_type": "expiring", "token_lifetime": 86400, "idle_token_lifetime": 3600}
    issued = _offline_login(settings)
    assert issued.refresh is not None
    assert issued.refresh_family is not None
    assert issued.refresh_family.expires_at == NOW + 1 + 3600
    refreshed = decide(_refresh_request(issued, refresh_family=issued.refresh_family), _offline_tenant(settings), now=NOW + 1800)
    assert isinstance(refreshed, Issued), refreshed
    assert refreshed.refresh is None, "non-rotating: the same refresh token stays valid"
    assert refreshed.refresh_family == issued.refresh_family.model_copy(update={"last_used": NOW + 1800, "expires_at": NOW + 1800 + 3600})


def test_an_access_token_for_an_api_and_userinfo_carries_its_audiences_as_a_json_array() -> None:
    issued = _offline_login({"rotation_type": "non-rotating", "expiration_type": "non-expiring"})
    assert issued.audience == (API, "https://acme.auth0.com/userinfo")
    assert issued.claims["aud"] == [API, "https://acme.auth0.com/userinfo"], "a list, as the signer writes it, not the tuple"


def test_a_strict_third_party_machine_client_keeps_an_api_scope_named_like_an_oidc_scope() -> None:
    """The strict third-party mode drops OpenID Connect scopes from user logins only: a
    machine-to-machine token has no ID token, and an API's own scope called ``email`` is its own."""
    t = tenant(
        apis=[{"identifier": API, "scopes": ["read", "email"]}],
        clients=[
            {
                "client_id": "m2m",
                "client_secrets": ["m2m-secret"],
                "app_type": "non_interactive",
                "is_first_party": False,
                "third_party_security_mode": "strict",
            }
        ],
        client_grants=[{"client_id": "m2m", "audience": API, "scope": ["read", "email"]}],
    )
    issued = cc(t)
    assert isinstance(issued, Issued), issued
    assert issued.scope == "read email"
    assert Rule.SCOPE_THIRD_PARTY_OIDC not in [reason.rule for reason in issued.trace]

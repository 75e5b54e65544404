"""Invariants of the engine, as Hypothesis properties. Each name is the sentence it proves."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from claimsengine import (
    DECISION,
    STATUS,
    Accepted,
    Authorized,
    ClientGrant,
    ErrorCode,
    Issued,
    PresentedToken,
    Rejected,
    Rule,
    Tenant,
    TokenFormat,
    TokenRequest,
    decide,
    validate_access_token,
)
from claimsengine.auth0 import CURRENT_USER_SCOPES, DELETE_CURRENT_USER_SCOPE, OIDC_SCOPES
from claimsengine.model import BUILT_IN_MANAGEMENT_API, BUILT_IN_MFA_API, Session
from claimsengine.testing import API_POOL, authorize_requests, requests_for, tenants, token_requests

NOW = 1_700_000_000

# Where a rule sets a status other than the catalogue's default for the code (R7).
STATUS_OVERRIDES = {
    (ErrorCode.ACCESS_DENIED, 401),  # R8: failed client authentication
    (ErrorCode.SERVER_ERROR, 500),
    (ErrorCode.INVALID_SCOPE, 400),
    (ErrorCode.INVALID_REQUEST, 400),
    (ErrorCode.INVALID_GRANT, 401),  # mfa.token_malformed, mfa.recovery_code_invalid (verify pages: 401)
    (ErrorCode.EXPIRED_TOKEN, 401),  # mfa.token_expired
}


def _rebuild(tenant: Tenant, **changes: Any) -> Tenant:
    data = tenant.model_dump()
    data.update(changes)
    return Tenant.model_validate(data)


@given(st.data())
def test_decide_is_deterministic(data: st.DataObject) -> None:
    tenant = data.draw(tenants())
    request = data.draw(requests_for(tenant))
    first = decide(request, tenant, now=NOW)
    again = decide(request, _rebuild(tenant), now=NOW)
    assert first == again
    assert DECISION.dump_json(first) == DECISION.dump_json(again)


@given(st.data())
def test_decide_never_raises_and_always_explains_itself(data: st.DataObject) -> None:
    tenant = data.draw(tenants())
    decision = decide(data.draw(requests_for(tenant)), tenant, now=NOW)
    assert decision.trace, "every decision carries its trace"
    assert all(isinstance(reason.rule, Rule) for reason in decision.trace)


@given(st.data())
def test_the_order_of_tenant_lists_does_not_matter(data: st.DataObject) -> None:
    tenant = data.draw(tenants())
    request = data.draw(requests_for(tenant))
    shuffled = _rebuild(
        tenant,
        **{
            name: data.draw(st.permutations(getattr(tenant, name)))
            for name in ("apis", "clients", "client_grants", "organizations", "users", "roles", "custom_domains")
        },
    )
    assert decide(request, tenant, now=NOW) == decide(request, shuffled, now=NOW)


def _grant_for(tenant: Tenant, client_id: str, audience: str) -> ClientGrant | None:
    client = tenant.index.clients[client_id]
    return tenant.index.grant_for(client, audience, ClientGrant.model_fields["subject_type"].default)


@given(st.data())
def test_granted_scopes_are_within_the_grant_and_the_api(data: st.DataObject) -> None:
    tenant = data.draw(tenants())
    request = data.draw(token_requests(tenant))
    decision = decide(request, tenant, now=NOW)
    if isinstance(decision, Issued) and decision.api is not None:
        grant = _grant_for(tenant, decision.client_id, decision.api)
        assert grant is not None
        api = tenant.index.apis[decision.api]
        listed = set(grant.scope) & set(api.scopes) if tenant.behaviour.grant_scopes_filtered_by_api_scopes else set(grant.scope)
        allowed = set(api.scopes) if grant.allow_all_scopes else listed
        assert set((decision.scope or "").split()) <= allowed


@given(st.data())
def test_no_client_credentials_token_without_a_matching_grant(data: st.DataObject) -> None:
    tenant = data.draw(tenants())
    request = data.draw(token_requests(tenant))
    decision = decide(request, tenant, now=NOW)
    if isinstance(decision, Issued) and decision.format is TokenFormat.JWT:
        assert decision.api is not None
        assert _grant_for(tenant, decision.client_id, decision.api) is not None


@given(st.data())
def test_the_format_is_jwt_exactly_when_an_api_is_the_audience(data: st.DataObject) -> None:
    tenant = data.draw(tenants())
    decision = decide(data.draw(token_requests(tenant)), tenant, now=NOW)
    if isinstance(decision, Issued):
        api_audience = decision.api is not None and decision.api in tenant.index.apis
        assert (decision.format is TokenFormat.JWT) == api_audience
        if decision.format is TokenFormat.JWT:
            assert decision.header is not None
            assert decision.claims["aud"], "a JWT always has an audience"


VERIFIER = "v" * 43  # RFC 7636 section 4.1: 43 to 128 characters


def _exchange(tenant: Tenant, authorized: Authorized, now: int) -> Issued | Rejected:
    client = tenant.index.clients[authorized.grant.client_id]
    secret = client.client_secrets[0] if client.client_secrets else None
    needs_pkce = client.auth_method.value == "none" or client.strict_third_party(tenant.behaviour)
    request = TokenRequest(
        domain=authorized.grant.domain,
        grant_type="authorization_code",
        client_id=client.client_id,
        client_secret=secret if client.auth_method.value == "client_secret_post" else None,
        basic_client_id=client.client_id if client.auth_method.value == "client_secret_basic" else None,
        basic_client_secret=secret if client.auth_method.value == "client_secret_basic" else None,
        code=SecretStr("code"),
        code_grant=authorized.grant.model_copy(update={"code_challenge": None}),
        redirect_uri=authorized.redirect_uri,
        code_verifier=VERIFIER if needs_pkce else None,
    )
    if needs_pkce:
        request = request.model_copy(
            update={"code_grant": authorized.grant.model_copy(update={"code_challenge": VERIFIER, "code_challenge_method": "plain"})}
        )
    return decide(request, tenant, now=now)


@given(st.data())
def test_an_aud_array_is_only_one_api_plus_the_canonical_userinfo(data: st.DataObject) -> None:
    tenant = data.draw(tenants())
    authorized = decide(data.draw(authorize_requests(tenant)), tenant, now=NOW)
    if not isinstance(authorized, Authorized):
        return
    decision = _exchange(tenant, authorized, NOW + 5)
    if isinstance(decision, Issued) and isinstance(decision.audience, tuple):
        assert len(decision.audience) == 2
        api, userinfo = decision.audience
        assert api in tenant.index.apis
        assert userinfo == f"https://{tenant.domain}/userinfo"
        assert "openid" in (decision.scope or "").split()
        assert tenant.index.apis[api].signing_alg.value != "HS256"


@given(st.data())
def test_a_user_token_for_the_management_api_never_carries_a_scope_outside_the_current_user_family(data: st.DataObject) -> None:
    tenant = data.draw(tenants())
    request = data.draw(authorize_requests(tenant)).model_copy(update={"audience": tenant.management_api_identifier})
    authorized = decide(request, tenant, now=NOW)
    if not isinstance(authorized, Authorized):
        return
    decision = _exchange(tenant, authorized, NOW + 5)
    family = set(CURRENT_USER_SCOPES) | ({DELETE_CURRENT_USER_SCOPE} if tenant.behaviour.delete_current_user_scope else set())
    assert set(authorized.grant.scope) - OIDC_SCOPES <= family
    if isinstance(decision, Issued):
        assert set((decision.scope or "").split()) - OIDC_SCOPES <= family


@given(st.data())
def test_iss_is_always_a_configured_domain_with_a_trailing_slash(data: st.DataObject) -> None:
    tenant = data.draw(tenants())
    decision = decide(data.draw(token_requests(tenant)), tenant, now=NOW)
    if isinstance(decision, Issued):
        domains = {tenant.domain, *(d.domain for d in tenant.custom_domains)}
        assert decision.issuer in {f"https://{d}/" for d in domains}
        assert decision.claims["iss"] == decision.issuer


@given(st.data())
def test_exp_minus_iat_equals_expires_in_equals_the_lifetime_that_applies(data: st.DataObject) -> None:
    tenant = data.draw(tenants())
    decision = decide(data.draw(token_requests(tenant)), tenant, now=NOW)
    if isinstance(decision, Issued):
        exp, iat = decision.claims["exp"], decision.claims["iat"]
        assert isinstance(exp, int)
        assert isinstance(iat, int)
        assert iat == NOW
        assert exp - iat == decision.expires_in
        expected = tenant.index.apis[decision.api].token_lifetime if decision.api is not None else 86400
        assert decision.expires_in == expected


@given(st.data())
def test_every_rejection_has_a_rule_id_and_a_status_from_the_catalogue(data: st.DataObject) -> None:
    tenant = data.draw(tenants())
    decision = decide(data.draw(requests_for(tenant)), tenant, now=NOW)
    if isinstance(decision, Rejected):
        assert decision.rejected_by is decision.trace[-1].rule
        assert decision.status == STATUS[decision.error] or (decision.error, decision.status) in STATUS_OVERRIDES


def _secrets(tenant: Tenant) -> set[str]:
    found = {s.get_secret_value() for c in tenant.clients for s in c.client_secrets}
    found |= {a.signing_secret.get_secret_value() for a in tenant.apis if a.signing_secret is not None}
    return found


@given(st.data())
def test_secrets_never_appear_in_a_decision_or_its_trace(data: st.DataObject) -> None:
    tenant = data.draw(tenants())
    request = data.draw(requests_for(tenant))
    decision = decide(request, tenant, now=NOW)
    text = DECISION.dump_json(decision).decode() + repr(decision) + str(decision)
    presented = [getattr(request, name, None) for name in ("client_secret", "basic_client_secret")]
    secrets = _secrets(tenant) | {s.get_secret_value() for s in presented if isinstance(s, SecretStr)}
    for secret in secrets:
        assert secret not in text


def _narrowings(tenant: Tenant) -> list[Tenant]:
    """Tenants that each take one grant, one grant scope or one organization link away.

    Removing a grant scope narrows always; removing a whole grant does unless a third-party
    default grant stands behind it (see below).
    """
    grants = list(tenant.client_grants)
    options: list[Tenant] = []
    defaults = {(g.audience, g.subject_type) for g in grants if g.default_for is not None}
    for i, grant in enumerate(grants):
        if grant.scope:
            fewer = grant.model_copy(update={"scope": grant.scope[1:]})
            options.append(_rebuild(tenant, client_grants=[*grants[:i], fewer, *grants[i + 1 :]]))
        if grant.client_id is not None and (grant.audience, grant.subject_type) in defaults:
            # R28: a third-party client's own grant outranks the default grant; deleting it
            # falls back to the default, which may be wider. Not a narrowing.
            continue
        pair = (grant.client_id, grant.audience)
        unlinked = [
            o.model_copy(update={"client_grants": tuple(r for r in o.client_grants if (r.client_id, r.audience) != pair)})
            for o in tenant.organizations
        ]
        options.append(_rebuild(tenant, client_grants=grants[:i] + grants[i + 1 :], organizations=unlinked))
    for j, org in enumerate(tenant.organizations):
        if org.client_grants:
            orgs = list(tenant.organizations)
            orgs[j] = org.model_copy(update={"client_grants": org.client_grants[1:]})
            options.append(_rebuild(tenant, organizations=orgs))
    return options


@given(st.data())
def test_removing_a_grant_a_scope_or_an_organization_link_never_widens_a_decision(data: st.DataObject) -> None:
    tenant = data.draw(tenants())
    options = _narrowings(tenant)
    if not options:
        return
    narrower = data.draw(st.sampled_from(options))
    request = data.draw(token_requests(tenant))
    before, after = decide(request, tenant, now=NOW), decide(request, narrower, now=NOW)
    if isinstance(after, Issued):
        assert isinstance(before, Issued), "a narrower tenant issued where the wider one refused"
        if tenant.behaviour.client_credentials_scopes == "requested" or not request.scope:
            assert set((after.scope or "").split()) <= set((before.scope or "").split())


@given(st.data())
def test_the_decision_json_round_trips(data: st.DataObject) -> None:
    tenant = data.draw(tenants())
    decision = decide(data.draw(requests_for(tenant)), tenant, now=NOW)
    assert DECISION.validate_json(DECISION.dump_json(decision)) == decision
    assert json.loads(DECISION.dump_json(decision))["kind"] == decision.kind


@given(st.data())
def test_adding_an_unrelated_api_does_not_change_the_decision(data: st.DataObject) -> None:
    tenant = data.draw(tenants())
    request = data.draw(requests_for(tenant))
    wider = _rebuild(tenant, apis=[*tenant.model_dump()["apis"], {"identifier": "https://unrelated.acme.com", "scopes": ["x"]}])
    assert decide(request, tenant, now=NOW) == decide(request, wider, now=NOW)


@given(st.data())
def test_every_issued_jwt_is_accepted_by_its_api_through_the_issuing_domain(data: st.DataObject) -> None:
    tenant = data.draw(tenants())
    decision = decide(data.draw(token_requests(tenant)), tenant, now=NOW)
    if not (isinstance(decision, Issued) and decision.header is not None and decision.api is not None):
        return
    token = PresentedToken(header=decision.header.model_dump(mode="json"), claims=dict(decision.claims))
    domain = decision.issuer.removeprefix("https://").rstrip("/")
    verdict = validate_access_token(token, audience=decision.api, domain=domain, tenant=tenant, now=NOW + 1)
    assert isinstance(verdict, Accepted), verdict
    expired = validate_access_token(token, audience=decision.api, domain=domain, tenant=tenant, now=NOW + decision.expires_in)
    assert isinstance(expired, Rejected)
    assert expired.rejected_by is Rule.VALIDATE_EXPIRY


@given(st.data())
def test_a_management_api_token_is_valid_only_through_the_domain_that_issued_it(data: st.DataObject) -> None:
    tenant = data.draw(tenants())
    decision = decide(data.draw(token_requests(tenant)), tenant, now=NOW)
    if not (isinstance(decision, Issued) and decision.api == tenant.management_api_identifier and decision.header is not None):
        return
    token = PresentedToken(header=decision.header.model_dump(mode="json"), claims=dict(decision.claims))
    issuing = decision.issuer.removeprefix("https://").rstrip("/")
    for domain in {tenant.domain, *(d.domain for d in tenant.custom_domains)}:
        verdict = validate_access_token(token, audience=decision.api, domain=domain, tenant=tenant, now=NOW)
        assert isinstance(verdict, Accepted) == (domain == issuing)


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=8)
    | st.sampled_from(["https://acme.auth0.com/", API_POOL[0]]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)
_CLAIMS = ("iss", "aud", "exp", "nbf")


@given(st.data())
def test_validate_access_token_answers_every_json_type_of_iss_aud_exp_nbf_with_a_rule_never_an_exception(data: st.DataObject) -> None:
    tenant = data.draw(tenants())
    claims = {name: data.draw(_JSON) for name in data.draw(st.sets(st.sampled_from(_CLAIMS)))}
    audience = data.draw(st.sampled_from([API_POOL[0], tenant.management_api_identifier, tenant.userinfo_audience]))
    token = PresentedToken(header={"alg": "RS256"}, claims={"iss": f"https://{tenant.domain}/", "aud": audience, "exp": NOW + 60, **claims})
    verdict = validate_access_token(token, audience=audience, domain=tenant.domain, tenant=tenant, now=NOW)
    if isinstance(verdict, Rejected):
        assert verdict.rejected_by.value.startswith("validate.")
        assert verdict.trace[-1].rule is verdict.rejected_by
    else:
        assert isinstance(verdict, Accepted)
        assert verdict.trace[-1].rule is Rule.VALIDATE_ACCEPTED


@given(st.data())
def test_authorized_scopes_are_never_more_than_the_user_asked_for(data: st.DataObject) -> None:
    tenant = data.draw(tenants())
    request = data.draw(authorize_requests(tenant))
    decision = decide(request, tenant, now=NOW)
    if isinstance(decision, Authorized):
        assert set(decision.grant.scope) <= set((request.scope or "").split())
        assert decision.redirect_uri in tenant.index.clients[decision.grant.client_id].callbacks


def _resolves(tenant: Tenant, ref: str) -> bool:
    """Whether a trace's configuration reference names a part of ``tenant``."""
    name, bracket, rest = ref.partition("[")
    if bracket:
        items = getattr(tenant, name, None)
        return isinstance(items, tuple) and rest.endswith("]") and 0 <= int(rest[:-1]) < len(items)
    if ref.startswith("behaviour."):
        return ref.removeprefix("behaviour.") in type(tenant.behaviour).model_fields
    return ref in Tenant.model_fields or ref in (BUILT_IN_MANAGEMENT_API, BUILT_IN_MFA_API)


@given(st.data())
def test_every_configuration_a_trace_names_is_a_part_of_the_tenant(data: st.DataObject) -> None:
    tenant = data.draw(tenants())
    decision = decide(data.draw(requests_for(tenant)), tenant, now=NOW)
    refs = [reason.ref for reason in decision.trace if reason.ref]
    assert all(_resolves(tenant, ref) for ref in refs), refs
    # A decision that got as far as the client names the client it read.
    client_rules = {Rule.CLIENT_SECRET_VALID, Rule.CLIENT_PUBLIC, Rule.CLIENT_GRANT_TYPE_ALLOWED}
    for reason in decision.trace:
        if reason.rule in client_rules:
            assert reason.ref.startswith("clients["), reason


@given(st.data())
def test_a_strict_third_party_app_never_gets_an_id_token(data: st.DataObject) -> None:
    tenant = data.draw(tenants())
    chosen = data.draw(st.sampled_from(tenant.clients))
    strict = chosen.model_copy(
        update={"is_first_party": False, "third_party_security_mode": "strict", "grant_types": ("authorization_code", "refresh_token")}
    )
    tenant = _rebuild(tenant, clients=[strict if c.client_id == chosen.client_id else c for c in tenant.clients])
    drawn = data.draw(authorize_requests(tenant))
    # Mostly a well-formed login, so that codes are often issued; the rest of the request is drawn.
    login = {
        "client_id": strict.client_id,
        "response_type": "code",
        "redirect_uri": strict.callbacks[0],
        "consent": True,
        "code_challenge": "c" * 43,
        "code_challenge_method": "S256",
    }
    request = drawn.model_copy(update=login if data.draw(st.integers(0, 3)) else {"client_id": strict.client_id})
    authorized = decide(request, tenant, now=NOW)
    if not isinstance(authorized, Authorized):
        return
    assert request.code_challenge is not None  # PKCE is mandatory for them
    assert not set(authorized.grant.scope) & (OIDC_SCOPES - {"offline_access"})
    # Even a code whose grant holds openid (minted before the strict mode) yields no ID token.
    for grant in (authorized.grant, authorized.grant.model_copy(update={"scope": ("openid", "profile", *authorized.grant.scope)})):
        decision = _exchange(tenant, authorized.model_copy(update={"grant": grant}), NOW + 5)
        if isinstance(decision, Issued):
            assert decision.id_token is None
            assert not isinstance(decision.audience, tuple)
            assert not set((decision.scope or "").split()) & (OIDC_SCOPES - {"offline_access"})


@given(st.data())
def test_every_id_token_of_one_login_session_carries_the_same_sid_and_never_the_session_id(data: st.DataObject) -> None:
    tenant = data.draw(tenants())
    drawn = data.draw(authorize_requests(tenant))
    user = drawn.user_id or "auth0|nobody"
    session = Session(session_id="the-session", user_id=user, auth_time=NOW - 10, last_seen=NOW - 10)
    # The browser's session logs the user in: the first login, a later one, and another session.
    first = drawn.model_copy(update={"scope": "openid", "user_id": None, "session": session})
    again = first.model_copy(update={"nonce": "another-login", "prompt": None})
    other = first.model_copy(update={"session": session.model_copy(update={"session_id": "another-session"})})
    decisions = [decide(request, tenant, now=now) for request, now in ((first, NOW), (again, NOW + 60), (other, NOW))]
    if not all(isinstance(d, Authorized) for d in decisions):
        return
    grants = [d.grant for d in decisions if isinstance(d, Authorized)]
    assert grants[0].sid is not None
    assert len(grants[0].sid) == 32
    assert grants[0].sid == grants[1].sid != grants[2].sid
    issued = _exchange(tenant, decisions[0], NOW + 5)  # type: ignore[arg-type]
    if isinstance(issued, Issued) and issued.id_token is not None:
        assert issued.id_token["sid"] == grants[0].sid

"""The decision engine: what Auth0 issues for a request, or which error it returns, and why.

Theory of operation
-------------------
``decide`` is pure and total. It reads no clock (``now`` is an argument), no randomness
and no environment, and it returns a value for every well-typed request: an ``Issued``
token, an ``Authorized`` code grant, or a ``Rejected`` error. Every step appends a
``Reason`` naming its rule id (see ``specs/rules.toml``), so a decision explains itself.

``POST /oauth/token`` runs these steps in order; the first that fails decides (the order
is the catalogue's suggested one, which every observed error is consistent with):

1. domain: the host the request came through becomes ``iss`` (R50, R95);
2. grant type present and known (R5, R6);
3. client authentication: secret, Basic or private_key_jwt (R3, R4, R8, R9, R11);
4. grant type enabled on the client (R13, R14);
5. per grant:
   - client_credentials: audience (R15-R21), access policy and client grant (R23-R28),
     scopes (R29-R33), organization (R34-R42), quota (R43), Actions (R74-R81);
   - authorization_code: the code, redirect_uri and PKCE;
   - refresh_token: the refresh token and scope narrowing (R66, R72, R73);
6. the token: format and ``aud`` (R44-R47), claims (R53-R58), lifetime (R61-R63),
   signing (R64), response fields (R65, R66).

``GET /authorize`` checks client, redirect, response type, grant type, audience (R22),
organization (R39, R40), the user, the API's user policy (R69), scopes (R67, R68),
consent (R70) and post-login Actions, and yields the grant a code stands for.
"""

from __future__ import annotations

from typing import Any, Literal, overload
from urllib.parse import quote, urlsplit

from pydantic import JsonValue, SecretStr

from claimsengine.auth0 import OIDC_SCOPE_CLAIMS
from claimsengine.cors import origin_refusal, web_message_refusal
from claimsengine.grants import BY_WIRE, FAST_PATHS, Grant, GrantType
from claimsengine.model import (
    Accepted,
    Api,
    AuthMethod,
    AuthorizationGrant,
    Authorized,
    AuthorizeRequest,
    Client,
    ClientAuthentication,
    Consent,
    DeviceApprovalRequest,
    DeviceApproved,
    DeviceAuthorized,
    DeviceCodeRequest,
    DeviceGrant,
    GrantKey,
    Issued,
    LoggedOut,
    LogoutRequest,
    MfaAssociated,
    MfaAssociateRequest,
    MfaChallenged,
    MfaChallengeRequest,
    MfaEnrollment,
    OobGrant,
    Organization,
    PresentedToken,
    Rejected,
    Revoked,
    RevokeRequest,
    Session,
    SigningAlg,
    Tenant,
    TokenRequest,
    User,
)
from claimsengine.responses import (
    CODE,
    ID_TOKEN,
    TOKEN,
    ResponseMode,
    carries_tokens,
    default_mode,
    parse_response_mode,
    parse_response_type,
    wire_response_type,
)
from claimsengine.rules import ErrorCode, Rule
from claimsengine.sessions import authenticated, logout, remember_consent
from claimsengine.steps import (
    ASSERTION_CLOCK_SKEW,
    ASSERTION_MAX_LIFETIME,
    ASSERTION_TYPE,
    GRANT_TYPES_URI,
    NoAudience,
    Trace,
    api_for,
    authenticate,
    check_membership,
    clean,
    client_facts,
    host_address,
    host_name,
    mfa_login,
    parameter,
    post_login,
    repeated_parameters,
    requested_audience,
    resolve_domain,
    served_domain,
    session_sid,
    split_scope,
    user_organization,
    user_scopes,
)
from claimsengine.tokens import id_token_claims, issue, stored_draft

__all__ = [
    "ASSERTION_CLOCK_SKEW",
    "ASSERTION_MAX_LIFETIME",
    "ASSERTION_TYPE",
    "decide",
    "served_domain",
    "userinfo_claims",
    "validate_access_token",
]


Request = (
    TokenRequest
    | AuthorizeRequest
    | DeviceCodeRequest
    | DeviceApprovalRequest
    | RevokeRequest
    | LogoutRequest
    | MfaChallengeRequest
    | MfaAssociateRequest
)
"""Every request ``decide`` takes."""


@overload
def decide(request: TokenRequest, tenant: Tenant, *, now: int) -> Issued | Rejected: ...
@overload
def decide(request: AuthorizeRequest, tenant: Tenant, *, now: int) -> Authorized | Rejected: ...
@overload
def decide(request: DeviceCodeRequest, tenant: Tenant, *, now: int) -> DeviceAuthorized | Rejected: ...
@overload
def decide(request: DeviceApprovalRequest, tenant: Tenant, *, now: int) -> DeviceApproved | Rejected: ...
@overload
def decide(request: RevokeRequest, tenant: Tenant, *, now: int) -> Revoked | Rejected: ...
@overload
def decide(request: LogoutRequest, tenant: Tenant, *, now: int) -> LoggedOut | Rejected: ...
@overload
def decide(request: MfaChallengeRequest, tenant: Tenant, *, now: int) -> MfaChallenged | Rejected: ...
@overload
def decide(request: MfaAssociateRequest, tenant: Tenant, *, now: int) -> MfaAssociated | Rejected: ...
@overload
def decide(
    request: Request, tenant: Tenant, *, now: int
) -> Issued | Rejected | Authorized | DeviceAuthorized | DeviceApproved | Revoked | LoggedOut | MfaChallenged | MfaAssociated: ...
def decide(
    request: Request, tenant: Tenant, *, now: int
) -> Issued | Rejected | Authorized | DeviceAuthorized | DeviceApproved | Revoked | LoggedOut | MfaChallenged | MfaAssociated:
    """Decide what ``tenant`` answers to ``request`` at Unix time ``now``.

    Pure and total: equal inputs give an equal decision, and no valid request makes it
    raise. A ``TokenRequest`` yields ``Issued`` or ``Rejected``; an ``AuthorizeRequest``
    ``Authorized`` or ``Rejected``; a ``DeviceCodeRequest`` ``DeviceAuthorized``; a
    ``DeviceApprovalRequest`` ``DeviceApproved``; a ``RevokeRequest`` ``Revoked``; a
    ``LogoutRequest`` ``LoggedOut``; a ``MfaChallengeRequest`` ``MfaChallenged``; a
    ``MfaAssociateRequest`` ``MfaAssociated`` (or ``Rejected``).
    """
    if isinstance(request, TokenRequest):
        # A grant's fast path decides the common successful request from compiled facts; any
        # other request (it returns None) goes through the steps below.
        fast = FAST_PATHS.get(request.grant_type or "")
        if fast is not None:
            issued = fast(request, tenant, now)
            if issued is not None:
                return issued
        return _token(request, Trace(tenant, now))
    trace = Trace(tenant, now)
    if isinstance(request, AuthorizeRequest):
        return _authorize(request, trace)
    if isinstance(request, DeviceCodeRequest):
        return _device_authorization(request, trace)
    if isinstance(request, DeviceApprovalRequest):
        return _device_approval(request, trace)
    if isinstance(request, LogoutRequest):
        return logout(request, trace)
    if isinstance(request, MfaChallengeRequest):
        return _mfa_challenge(request, trace)
    if isinstance(request, MfaAssociateRequest):
        return _mfa_associate(request, trace)
    return _revoke(request, trace)


# ---------------------------------------------------------------------------------------
# POST /oauth/token
# ---------------------------------------------------------------------------------------


def _token(req: TokenRequest, t: Trace) -> Issued | Rejected:
    domain = resolve_domain(req.domain, t)
    if isinstance(domain, Rejected):
        return domain
    if req.repeated:
        repeated = repeated_parameters(req.repeated, t)
        if repeated is not None:
            return repeated
    malformed = _malformed(req.malformed, t)
    if malformed is not None:
        return malformed
    grant_type = clean(req.grant_type)
    if grant_type is None:
        # request.grant_type_missing (R5)
        return t.reject(Rule.GRANT_TYPE_MISSING, ErrorCode.INVALID_REQUEST, "Missing required parameter: grant_type")
    grant = BY_WIRE.get(grant_type)
    if grant is None:
        # request.grant_type_unsupported (R6)
        text = "Grant type not supported" if t.behaviour.unsupported_grant_wording == "oas" else f"Unsupported grant type: {grant_type}"
        return t.reject(Rule.GRANT_TYPE_UNSUPPORTED, ErrorCode.UNSUPPORTED_GRANT_TYPE, text)
    client = authenticate(req, grant_type, grant.client_authentication, t)
    if isinstance(client, Rejected):
        return client
    refused = origin_refusal(req.origin, client, domain, t)
    if refused is not None:
        return refused
    # client.grant_type_allowed (R13, R14)
    facts = client_facts(client, t)
    allowed = facts.grant_type_allowed.get(grant_type)
    if allowed is None:
        return _grant_type_not_allowed(grant_type, facts.ref, t)
    t.reasons.append(allowed)
    return _dispatch(grant, req, client, domain, t)


def _grant_type_not_allowed(grant_type: str, ref: str, t: Trace) -> Rejected:
    """client.grant_type_not_allowed (R13): the client does not have the grant type enabled."""
    text = f"Grant type '{grant_type}' not allowed for the client."
    return t.reject(Rule.CLIENT_GRANT_TYPE_NOT_ALLOWED, ErrorCode.UNAUTHORIZED_CLIENT, text, error_uri=GRANT_TYPES_URI, ref=ref)


def _malformed(names: tuple[str, ...], t: Trace) -> Rejected | None:
    """request.parameter_malformed (R7): e.g. a JSON number where a string belongs."""
    if not names:
        return None
    name = sorted(names)[0]
    if name == "scope":
        return t.reject(Rule.PARAMETER_MALFORMED, ErrorCode.INVALID_SCOPE, "Scope must be an array or a string")
    return t.reject(Rule.PARAMETER_MALFORMED, ErrorCode.INVALID_REQUEST, f"Invalid parameter type: {name}")


def _dispatch(grant: Grant, req: TokenRequest, client: Client, domain: str, t: Trace) -> Issued | Rejected:
    """Run the declared grant's handler, once its required parameters are present."""
    for name in grant.required:
        if not parameter(req, name):
            # request.parameter_missing: a parameter the grant's declaration requires.
            return t.reject(Rule.PARAMETER_MISSING, ErrorCode.INVALID_REQUEST, f"Missing required parameter: {name}")
    return grant.handler(req, client, domain, t)


# ---------------------------------------------------------------------------------------
# GET /authorize
# ---------------------------------------------------------------------------------------


def _verifiable(redirect_uri: str) -> bool:
    # R70: localhost callbacks can never be verified as belonging to a first-party app.
    host = urlsplit(redirect_uri).hostname or ""
    return host not in ("localhost", "127.0.0.1", "::1") and not host.endswith(".localhost")


def _named_client(
    domain: str | None, client_id: str | None, repeated: tuple[str, ...], t: Trace, *, response_type: str | None = "code"
) -> tuple[str, str] | Rejected:
    """The domain and the client_id of a request that names its client without authenticating.
    ``response_type`` is /authorize's: without one, a request whose client is missing or unknown
    is refused for it first (issue 8, item 9: a live tenant answers a bare /authorize so)."""
    served = resolve_domain(domain, t)
    if isinstance(served, Rejected):
        return served
    refused = repeated_parameters(repeated, t)
    if refused is not None:
        return refused
    named = clean(client_id)
    if clean(response_type) is None and (named is None or named not in t.index.clients):
        return t.reject(Rule.PARAMETER_MISSING, ErrorCode.INVALID_REQUEST, "Missing required parameter: response_type")
    if named is None:
        return t.reject(Rule.CLIENT_ID_MISSING, ErrorCode.INVALID_REQUEST, "Missing required parameter: client_id")
    t.client_id = named
    return served, named


def _authorize(req: AuthorizeRequest, t: Trace) -> Authorized | Rejected:
    decision = _authorize_flow(req, t)
    if isinstance(decision, Rejected) and decision.redirect_uri is not None:
        # An error sent to the callback travels in the response mode asked for, else the
        # response type's default (prompt=none's login_required in web_message, say).
        mode = parse_response_mode(clean(req.response_mode) or "")
        kind = parse_response_type(clean(req.response_type) or "")
        return decision.model_copy(update={"response_mode": mode or default_mode(kind)})
    return decision


def _authorize_flow(req: AuthorizeRequest, t: Trace) -> Authorized | Rejected:
    named = _named_client(req.domain, req.client_id, req.repeated, t, response_type=req.response_type)
    if isinstance(named, Rejected):
        return named
    domain, client_id = named
    client = t.index.clients.get(client_id)
    if client is None:
        return t.reject(Rule.CLIENT_UNKNOWN, ErrorCode.INVALID_REQUEST, f"Unknown client: {client_id}", status=400, ref="clients")
    client_ref = t.index.ref(client)
    redirect_uri = clean(req.redirect_uri) or (client.callbacks[0] if client.callbacks else None)
    if redirect_uri is None:
        return t.reject(Rule.PARAMETER_MISSING, ErrorCode.INVALID_REQUEST, "Missing required parameter: redirect_uri")
    if redirect_uri not in client.callbacks:
        return t.reject(
            Rule.AUTHORIZE_REDIRECT_MISMATCH,
            ErrorCode.INVALID_REQUEST,
            f"Callback URL mismatch. {redirect_uri} is not in the list of allowed callback URLs"
            if t.behaviour.callback_mismatch_wording == "legacy"
            else "Callback URL mismatch. The provided redirect_uri is not in the list of allowed callback URLs.",
            detail=f"{redirect_uri} is not in the list of allowed callback URLs",
            ref=client_ref,
        )
    # From here on, errors go back to the application's callback.
    t.redirect_uri, t.state = redirect_uri, req.state
    response_type = clean(req.response_type)
    if response_type is None:
        return t.reject(Rule.PARAMETER_MISSING, ErrorCode.INVALID_REQUEST, "Missing required parameter: response_type")
    kind = parse_response_type(response_type)
    if kind is None:
        return t.reject(Rule.AUTHORIZE_RESPONSE_TYPE, ErrorCode.UNSUPPORTED_RESPONSE_TYPE, f"Unsupported response type: {response_type}")
    mode = _response_mode(req.response_mode, kind, t)
    if isinstance(mode, Rejected):
        return mode
    if mode is ResponseMode.WEB_MESSAGE:
        # cors.web_message_origin (issue 10, item 4): the answer is posted to the callback's origin.
        unregistered = web_message_refusal(redirect_uri, client, t)
        if unregistered is not None:
            return unregistered
    refused = _response_type_allowed(kind, client, client_ref, t)
    if refused is not None:
        return refused
    if ID_TOKEN in kind:
        # OpenID Connect Core 3.2.2.1, 3.3.2.11: an ID token from /authorize needs openid and a nonce.
        if "openid" not in split_scope(req.scope):
            text = "The openid scope is required for response_type id_token"
            return t.reject(Rule.AUTHORIZE_OPENID_REQUIRED, ErrorCode.INVALID_REQUEST, text)
        if clean(req.nonce) is None:
            return t.reject(Rule.AUTHORIZE_NONCE_REQUIRED, ErrorCode.INVALID_REQUEST, "Missing required parameter: nonce")
    method = clean(req.code_challenge_method)
    challenge = clean(req.code_challenge)
    if challenge is not None and method not in (None, "S256", "plain"):
        return t.reject(Rule.PARAMETER_MALFORMED, ErrorCode.INVALID_REQUEST, "Unsupported code_challenge_method")
    if challenge is None and client.strict_third_party(t.behaviour):
        # authorize.third_party_strict_pkce_required (issue 8, item 7): "All authorization code
        # flows require Proof Key for Code Exchange" for third-party applications.
        text = "Missing required parameter: code_challenge"
        return t.reject(
            Rule.AUTHORIZE_PKCE_REQUIRED, ErrorCode.INVALID_REQUEST, text, detail="a strict third-party application", ref=client_ref
        )
    api = _authorize_audience(req, t)
    if isinstance(api, Rejected):
        return api
    org = user_organization(req.organization, client, t)
    if isinstance(org, Rejected):
        return org
    logged_in = authenticated(req, t)
    if isinstance(logged_in, Rejected):
        return logged_in
    user, session = logged_in
    decision = _logged_in(req, client, user, session, api, org, domain, redirect_uri, challenge, method, (kind, mode), t)
    if isinstance(decision, Rejected) and session is not None:
        # The login (or the session's use) stands though the request failed after it.
        return decision.model_copy(update={"session": session})
    return decision


def _logged_in(
    req: AuthorizeRequest,
    client: Client,
    user: User,
    session: Session | None,
    api: Api | None,
    org: Organization | None,
    domain: str,
    redirect_uri: str,
    challenge: str | None,
    method: str | None,
    response: tuple[frozenset[str], ResponseMode],
    t: Trace,
) -> Authorized | Rejected:
    """/authorize once the user is known: organization membership, scopes, consent, post-login
    Actions, then the grant the code stands for and what ``response`` (the response type and
    mode) returns for it."""
    member = check_membership(org, user, t)
    if member is not None:
        return member
    scopes = user_scopes(split_scope(req.scope), client, user, api, org, t)
    if isinstance(scopes, Rejected):
        return scopes
    consent = _consent(req, client, user, api, org, scopes, redirect_uri, session, t)
    if isinstance(consent, Rejected):
        return consent
    session = remember_consent(session, consent)
    if "none" in split_scope(req.prompt) and t.tenant.mfa_policy == "all-applications":
        # authorize.silent_mfa_required: a silent login cannot ask for the second factor.
        error = ErrorCode(t.behaviour.silent_mfa_error)
        text = "Multifactor authentication required" if error is ErrorCode.MFA_REQUIRED else "Interaction required"
        return t.reject(Rule.AUTHORIZE_SILENT_MFA, error, text, ref="mfa_policy")
    outcome = post_login(client, user, api, org, domain, scopes, t)
    if isinstance(outcome, Rejected):
        return outcome
    scopes, access_claims, id_claims = outcome
    grant = AuthorizationGrant(
        client_id=client.client_id,
        user_id=user.user_id,
        audience=api.identifier if api is not None else None,
        scope=scopes,
        organization_id=org.id if org is not None else None,
        sid=session_sid(domain, user.user_id, session.session_id if session is not None else None),
        id_token_auth_time=_id_token_auth_time(req, session, t),
        redirect_uri=redirect_uri,
        code_challenge=challenge,
        code_challenge_method=("S256" if method == "S256" else "plain") if challenge is not None else None,
        nonce=clean(req.nonce),
        domain=domain,
        issued_at=t.now,
        access_claims=access_claims,
        id_claims=id_claims,
        session_id=session.session_id if session is not None else None,
        auth_time=session.auth_time if session is not None else None,
    )
    return _respond(grant, *response, client, user, session, t)


_CODE_ONLY = frozenset({CODE})


def _response_mode(requested: str | None, kind: frozenset[str], t: Trace) -> ResponseMode | Rejected:
    """authorize.response_mode: the mode asked for, else the response type's default; an
    unknown mode, or a token in the query string, is refused on Auth0's page (auth0.js #479)."""
    value = clean(requested)
    if value is None:
        mode = default_mode(kind)
        if mode is not ResponseMode.QUERY:
            # (A code in the query string, the plain default, goes untraced.)
            t.note(Rule.AUTHORIZE_RESPONSE_MODE, f"{mode} (the default for {wire_response_type(kind)})")
        return mode
    asked = parse_response_mode(value)
    if asked is None or (asked is ResponseMode.QUERY and carries_tokens(kind)):
        t.redirect_uri = None  # never send a token, or an unknown mode's error, to the callback
        text = (
            f"Unsupported response mode: {value}"
            if asked is None
            else f"response_mode=query is not allowed for response_type={wire_response_type(kind)}"
        )
        return t.reject(Rule.AUTHORIZE_RESPONSE_MODE_UNSUPPORTED, ErrorCode.UNSUPPORTED_RESPONSE_MODE, text)
    t.note(Rule.AUTHORIZE_RESPONSE_MODE, f"{asked}, as asked")
    return asked


def _response_type_allowed(kind: frozenset[str], client: Client, ref: str, t: Trace) -> Rejected | None:
    """The grant types a response type needs: authorization_code for a code, implicit for a
    token or an ID token (R13); third-party applications get no token from /authorize."""
    needed = []
    if CODE in kind:
        needed.append("authorization_code")
    if carries_tokens(kind):
        if not client.is_first_party:
            # authorize.implicit_third_party (issue-8 F7.3): third-party apps use the code flow.
            text = f"Unsupported response type: {wire_response_type(kind)}"
            return t.reject(Rule.AUTHORIZE_IMPLICIT_THIRD_PARTY, ErrorCode.UNSUPPORTED_RESPONSE_TYPE, text, ref=ref)
        needed.append("implicit")
    for grant_type in needed:
        if grant_type not in client.effective_grant_types:
            return _grant_type_not_allowed(grant_type, ref, t)
    t.note(Rule.CLIENT_GRANT_TYPE_ALLOWED, " ".join(needed), ref)
    return None


def _respond(
    grant: AuthorizationGrant, kind: frozenset[str], mode: ResponseMode, client: Client, user: User, session: Session | None, t: Trace
) -> Authorized:
    """What /authorize returns for a login: a code, an access token, an ID token, or several."""
    code = CODE in kind
    if code:
        t.note(Rule.AUTHORIZE_CODE_ISSUED, f"code for {' '.join(grant.scope) or '(no scopes)'}")
    access: Issued | None = None
    id_token: dict[str, Any] | None = None
    hashes: tuple[Literal["at_hash", "c_hash"], ...] = ()
    if kind == _CODE_ONLY:
        return Authorized(
            grant=grant, redirect_uri=grant.redirect_uri or "", state=t.state, trace=tuple(t.reasons), session=session, response_mode=mode
        )
    # As the code would be redeemed, but issued here: never refreshable (R62, R63).
    draft = stored_draft(grant, client, grant.domain, user, t)._replace(refreshable=False, web="hybrid" if code else "implicit")
    if TOKEN in kind:
        # authorize.token_issued (R62, R63): no refresh token and no ID token of its own.
        t.note(Rule.AUTHORIZE_TOKEN_ISSUED, "an access token in the response")
        access = issue(draft, t).model_copy(update={"trace": ()})
    if ID_TOKEN in kind:
        id_token = id_token_claims(draft, user, t)
        hashes = (*(("at_hash",) if access is not None else ()), *(("c_hash",) if code else ()))
        t.note(Rule.AUTHORIZE_ID_TOKEN_ISSUED, f"with {' and '.join(hashes)}" if hashes else "no hash claims needed")
    return Authorized(
        grant=grant,
        redirect_uri=grant.redirect_uri or "",
        state=t.state,
        trace=tuple(t.reasons),
        response_type=wire_response_type(kind),
        response_mode=mode,
        code=code,
        access=access,
        id_token=id_token,
        id_token_hashes=hashes,
        session=session,
    )


def _id_token_auth_time(req: AuthorizeRequest, session: Session | None, t: Trace) -> int | None:
    """The ``auth_time`` the ID token will carry (issue 8, item 7): the login session's
    ``auth_time`` (no session: now, the user logs in now), when ``max_age`` was sent or
    ``behaviour.id_token_auth_time`` is ``"always"``; an authentication older than ``max_age``
    is done again, now (OIDC Core section 3.1.2.1). A ``max_age`` that is not a number of
    seconds is ignored."""
    max_age = clean(req.max_age)
    seconds = int(max_age) if max_age is not None and max_age.isascii() and max_age.isdigit() else None
    if seconds is None and t.behaviour.id_token_auth_time == "when_max_age":
        return None
    authenticated = t.now if session is None else session.auth_time
    if seconds is not None and t.now - authenticated > seconds:
        return t.now
    return authenticated


def _authorize_audience(req: AuthorizeRequest, t: Trace) -> Api | Rejected | None:
    audience = requested_audience(req.audience, req.resource, t)
    if isinstance(audience, NoAudience) or audience == t.tenant.userinfo_audience:
        t.note(Rule.AUDIENCE_USERINFO, "the token will be for /userinfo only")
        return None
    return api_for(audience, t, unknown=Rule.AUDIENCE_UNKNOWN_AUTHORIZE, text="Service not found")


def _consent(
    req: AuthorizeRequest,
    client: Client,
    user: User,
    api: Api | None,
    org: Organization | None,
    scopes: tuple[str, ...],
    redirect_uri: str,
    session: Session | None,
    t: Trace,
) -> Rejected | Consent | None:
    """consent.* (R70): a refusal, or the flow goes on (with the consent just given, if any)."""
    prompt = set(split_scope(req.prompt))
    skip = client.is_first_party and (api is None or (api.skip_consent_for_verifiable_first_party_clients and _verifiable(redirect_uri)))
    if skip and "consent" not in prompt:
        t.note(Rule.CONSENT_SKIPPED, "first-party application", t.index.ref(client))
        return None
    audience = api.identifier if api is not None else t.tenant.userinfo_audience
    org_id = org.id if org is not None else None
    remembered = session.consents if session is not None else ()
    stored = next(
        (
            c
            for c in (*user.consents, *remembered)
            if c.client_id == client.client_id and c.audience == audience and c.organization_id == org_id and set(scopes) <= set(c.scopes)
        ),
        None,
    )
    if stored is not None and "consent" not in prompt:
        where = "the user consented before" if stored in user.consents else "the user consented in this session"
        t.note(Rule.CONSENT_STORED, where, t.index.ref(user))
        return None
    if "none" in prompt or req.consent is None:
        return t.reject(Rule.CONSENT_REQUIRED, ErrorCode.CONSENT_REQUIRED, "Consent required")
    if req.consent:
        t.note(Rule.CONSENT_GIVEN, "the user accepted the consent prompt")
        return Consent(client_id=client.client_id, audience=audience, scopes=scopes, organization_id=org_id)
    return t.reject(Rule.CONSENT_DENIED, ErrorCode.ACCESS_DENIED, "User did not authorize the request")


def userinfo_claims(claims: dict[str, Any], tenant: Tenant) -> dict[str, JsonValue] | None:
    """What ``/userinfo`` returns for an accepted token: ``sub`` plus the profile claims the
    token's scopes release (R71). ``None`` when the token's user does not exist."""
    sub = claims.get("sub")
    user = tenant.index.users.get(sub) if isinstance(sub, str) else None
    if user is None:
        return None
    scope = claims.get("scope")
    released = {name for s in (scope.split() if isinstance(scope, str) else ()) for name in OIDC_SCOPE_CLAIMS.get(s, ())}
    profile: dict[str, JsonValue] = {"sub": user.user_id}
    profile.update({name: value for name, value in user.profile.items() if name in released})
    return profile


# ---------------------------------------------------------------------------------------
# POST /oauth/device/code and the user's approval (RFC 8628)
# ---------------------------------------------------------------------------------------


def _device_authorization(req: DeviceCodeRequest, t: Trace) -> DeviceAuthorized | Rejected:
    named = _named_client(req.domain, req.client_id, (), t)
    if isinstance(named, Rejected):
        return named
    malformed = _malformed(req.malformed, t)
    if malformed is not None:
        return malformed
    domain, client_id = named
    client = t.index.clients.get(client_id)
    if client is None:
        return t.auth_failed(Rule.CLIENT_UNKNOWN, "no client with this client_id", "clients")
    ref = t.index.ref(client)
    grant_type = GrantType.DEVICE_CODE.value
    refused = f"Grant type '{grant_type}' not allowed for the client."
    if grant_type not in client.effective_grant_types:
        return t.reject(Rule.CLIENT_GRANT_TYPE_NOT_ALLOWED, ErrorCode.UNAUTHORIZED_CLIENT, refused, error_uri=GRANT_TYPES_URI, ref=ref)
    if req.credentials or client.auth_method is not AuthMethod.NONE or client.app_type != "native" or not client.is_first_party:
        # device.client_not_allowed: native, public, first-party applications only.
        why = "client credentials were sent" if req.credentials else "not a first-party native application with auth method none"
        return t.reject(Rule.DEVICE_CLIENT_NOT_ALLOWED, ErrorCode.UNAUTHORIZED_CLIENT, refused, detail=why, ref=ref)
    t.note(Rule.CLIENT_GRANT_TYPE_ALLOWED, grant_type, ref)
    audience = requested_audience(req.audience, req.resource, t)
    api: Api | None = None
    if not isinstance(audience, NoAudience) and audience != t.tenant.userinfo_audience:
        found = api_for(audience, t, unknown=Rule.AUDIENCE_UNKNOWN, text="Service not found")
        if isinstance(found, Rejected):
            return found
        api = found
    else:
        t.note(Rule.AUDIENCE_USERINFO, "the token will be for /userinfo only")
    behaviour = t.behaviour
    grant = DeviceGrant(
        client_id=client.client_id,
        audience=api.identifier if api is not None else None,
        scope=split_scope(req.scope),
        domain=domain,
        issued_at=t.now,
        expires_in=behaviour.device_code_lifetime,
        interval=behaviour.device_code_interval,
    )
    t.note(Rule.DEVICE_CODE_ISSUED, f"expires in {grant.expires_in} s, poll every {grant.interval} s")
    return DeviceAuthorized(grant=grant, trace=tuple(t.reasons))


def _device_approval(req: DeviceApprovalRequest, t: Trace) -> DeviceApproved | Rejected:
    """The user approves the device: the user part of ``/authorize`` for the device's request."""
    device = req.device_grant
    t.client_id = device.client_id
    client = t.index.clients.get(device.client_id)
    if client is None:
        return t.reject(Rule.DEVICE_CODE_INVALID, ErrorCode.INVALID_GRANT, "Invalid or expired device code.", detail="the client is gone")
    api: Api | None = None
    if device.audience is not None:
        found = api_for(device.audience, t, unknown=Rule.AUDIENCE_UNKNOWN, text="Service not found")
        if isinstance(found, Rejected):
            return found
        api = found
    user = t.index.users.get(req.user_id) if req.user_id is not None else None
    if user is None:
        return t.reject(Rule.AUTHORIZE_LOGIN_REQUIRED, ErrorCode.LOGIN_REQUIRED, "Login required", detail="no authenticated user")
    scopes = user_scopes(split_scope(" ".join(device.scope)), client, user, api, None, t)
    if isinstance(scopes, Rejected):
        return scopes
    outcome = post_login(client, user, api, None, device.domain, scopes, t)
    if isinstance(outcome, Rejected):
        return outcome
    scopes, access_claims, id_claims = outcome
    grant = AuthorizationGrant(
        client_id=client.client_id,
        user_id=user.user_id,
        audience=api.identifier if api is not None else None,
        scope=scopes,
        sid=session_sid(device.domain, user.user_id, None),
        domain=device.domain,
        issued_at=t.now,
        access_claims=access_claims,
        id_claims=id_claims,
    )
    t.note(Rule.DEVICE_APPROVED, f"{user.user_id} approved {' '.join(scopes) or '(no scopes)'}")
    return DeviceApproved(grant=grant, trace=tuple(t.reasons))


# ---------------------------------------------------------------------------------------
# POST /oauth/revoke
# ---------------------------------------------------------------------------------------


def _client_of(
    req: RevokeRequest | MfaChallengeRequest | MfaAssociateRequest, endpoint: str, t: Trace
) -> tuple[str, TokenRequest, Client] | Rejected:
    """Domain, parameter types and client authentication as at the token endpoint, for the
    endpoints beside it: the domain, the credentials (as a token request) and the client."""
    domain = resolve_domain(req.domain, t)
    if isinstance(domain, Rejected):
        return domain
    malformed = _malformed(req.malformed, t)
    if malformed is not None:
        return malformed
    mfa = (None, None) if isinstance(req, RevokeRequest) else (req.mfa_grant, req.mfa_enrollment)
    credentials = TokenRequest(
        **{name: getattr(req, name) for name in ClientAuthentication.model_fields}, mfa_grant=mfa[0], mfa_enrollment=mfa[1]
    )
    client = authenticate(credentials, endpoint, False, t)
    if isinstance(client, Rejected):
        return client
    return domain, credentials, client


def _revoke(req: RevokeRequest, t: Trace) -> Revoked | Rejected:
    found = _client_of(req, "revocation", t)
    if isinstance(found, Rejected):
        return found
    domain, _, client = found
    refused = origin_refusal(req.origin, client, domain, t)
    if refused is not None:
        return refused
    if req.token is None or clean(req.token.get_secret_value()) is None:
        return t.reject(Rule.PARAMETER_MISSING, ErrorCode.INVALID_REQUEST, "Missing required parameter: token")
    grant = req.refresh_grant
    if grant is None or grant.client_id != client.client_id or grant.family is None:
        # revoke.nothing (RFC 7009 section 2.2): an unknown token, or another client's, is not an error.
        return _revoked(t, None, Rule.REVOKE_NOTHING, "not a refresh token of this client that the server tracks")
    if t.behaviour.revoke_refresh_token_grant:
        # revoke.grant: the tenant's "Refresh Token Revocation Deletes Grant" toggle is on.
        key = GrantKey(client_id=grant.client_id, user_id=grant.user_id, audience=grant.audience)
        t.note(
            Rule.REVOKE_GRANT,
            f"every refresh token of {grant.user_id} for this application and audience",
            "behaviour.revoke_refresh_token_grant",
        )
        return Revoked(family=grant.family, grant=key, trace=tuple(t.reasons))
    return _revoked(t, grant.family, Rule.REVOKE_FAMILY, "the token and every token rotated from the same one")


# ---------------------------------------------------------------------------------------
# POST /mfa/challenge
# ---------------------------------------------------------------------------------------

MFA_CHALLENGE_TYPES = ("otp", "oob")


def _mfa_challenge(req: MfaChallengeRequest, t: Trace) -> MfaChallenged | Rejected:
    """The challenge for an ``mfa_required`` login (facts-issue9 M3): the client authenticates
    as at the token endpoint, then the mfa_token and the user's enrolment decide."""
    found = _client_of(req, "mfa_challenge", t)
    if isinstance(found, Rejected):
        return found
    _, credentials, client = found
    return _challenge(credentials, req.challenge_type, client, t)


def _challenge(req: TokenRequest, challenge_type: str | None, client: Client, t: Trace) -> MfaChallenged | Rejected:
    """``POST /mfa/challenge`` for an authenticated ``client``: the challenge type for the
    login behind ``req.mfa_grant``, the first of those the application accepts (``otp oob``
    when it names none) that the user is enrolled with."""
    found = mfa_login(req, client, t)
    if isinstance(found, Rejected):
        return found
    grant, user = found
    mfa = user.mfa
    enrolled = {
        name
        for name, present in (("otp", mfa is not None and mfa.totp_secret is not None), ("oob", mfa is not None and mfa.oob_channel))
        if present
    }
    if not enrolled:
        # mfa.association_required: the user has no authenticator to challenge.
        text = "User is not enrolled. You can use /mfa/associate endpoint to enroll the first authenticator."
        return t.reject(Rule.MFA_ASSOCIATION_REQUIRED, ErrorCode.ASSOCIATION_REQUIRED, text, ref=t.index.ref(user))
    accepted = split_scope(clean(challenge_type) or " ".join(MFA_CHALLENGE_TYPES))
    chosen = next((name for name in accepted if name in enrolled), None)
    if chosen is None or any(name not in MFA_CHALLENGE_TYPES for name in accepted):
        text = "User is not enrolled with any of the requested challenge types."
        detail = f"accepted {' '.join(accepted)}; enrolled {' '.join(sorted(enrolled))}"
        return t.reject(Rule.MFA_CHALLENGE_TYPE_UNSUPPORTED, ErrorCode.UNSUPPORTED_CHALLENGE_TYPE, text, detail=detail)
    if chosen == "otp":
        t.note(Rule.MFA_CHALLENGED, "otp: the user's authenticator app", t.index.ref(user))
        return MfaChallenged(challenge_type="otp", trace=tuple(t.reasons))
    channel = mfa.oob_channel if mfa is not None and mfa.oob_channel is not None else "push"
    oob = OobGrant(client_id=client.client_id, user_id=grant.user_id, channel=channel, issued_at=t.now)
    t.note(Rule.MFA_CHALLENGED, f"oob by {channel}", t.index.ref(user))
    return MfaChallenged(challenge_type="oob", oob=oob, binding_method="prompt" if channel == "sms" else None, trace=tuple(t.reasons))


# ---------------------------------------------------------------------------------------
# POST /mfa/associate
# ---------------------------------------------------------------------------------------

# The channels an out-of-band authenticator is enrolled with, and the OobGrant channel of each:
# "auth0" is Guardian push. voice and email are not modelled.
MFA_ASSOCIATE_CHANNELS: dict[str, Literal["sms", "push"]] = {"sms": "sms", "auth0": "push"}
ALREADY_ENROLLED_TEXT = "User is already enrolled."


def _mfa_associate(req: MfaAssociateRequest, t: Trace) -> MfaAssociated | Rejected:
    """Add an authenticator for the login behind an ``mfa_token`` (the Add an Authenticator
    page): client authentication as at the token endpoint, the mfa_token, the parameters, then
    the user's enrolment. The new authenticator is unconfirmed until an MFA grant uses it."""
    found = _client_of(req, "mfa_associate", t)
    if isinstance(found, Rejected):
        return found
    _, credentials, client = found
    login = mfa_login(credentials, client, t)
    if isinstance(login, Rejected):
        return login
    _, user = login
    kinds = tuple(name for name in req.authenticator_types or () if clean(name) is not None)
    channels = tuple(name for name in req.oob_channels or () if clean(name) is not None)
    if not kinds:
        return t.reject(Rule.PARAMETER_MISSING, ErrorCode.INVALID_REQUEST, "Missing required parameter: authenticator_types")
    oob = kinds == ("oob",)
    if oob and not channels:
        return t.reject(Rule.PARAMETER_MISSING, ErrorCode.INVALID_REQUEST, "Missing required parameter: oob_channels")
    if not (kinds == ("otp",) or (oob and len(channels) == 1 and channels[0] in MFA_ASSOCIATE_CHANNELS)):
        # mfa.authenticator_type_unsupported: one otp, or one oob with channel sms or auth0.
        detail = f"authenticator_types {' '.join(kinds)}; oob_channels {' '.join(channels) or '(none)'}"
        return t.reject(Rule.MFA_AUTHENTICATOR_UNSUPPORTED, ErrorCode.INVALID_REQUEST, "Unsupported authenticator type.", detail=detail)
    if oob and channels == ("sms",) and clean(req.phone_number) is None:
        return t.reject(Rule.PARAMETER_MISSING, ErrorCode.INVALID_REQUEST, "Missing required parameter: phone_number")
    enrolled = user.mfa
    if enrolled is not None and enrolled.confirmed and (enrolled.totp_secret is not None or enrolled.oob_channel is not None):
        # mfa.already_enrolled: an mfa_token adds only the first authenticator.
        return t.reject(Rule.MFA_ALREADY_ENROLLED, ErrorCode.ACCESS_DENIED, ALREADY_ENROLLED_TEXT, ref=t.index.ref(user))
    # The first enrolment brings a recovery code, shown once; a later one keeps the user's.
    kept = enrolled.recovery_code if enrolled is not None else None
    recovery = req.new_recovery_code if kept is None else kept
    shown = req.new_recovery_code if kept is None else None
    with_code = ", with a recovery code" if kept is None else ""
    if not oob:
        issuer = t.tenant.domain.split(".")[0]
        label = quote(f"{issuer}:{user.email or user.user_id}", safe="")
        uri = f"otpauth://totp/{label}?secret={req.new_secret.get_secret_value()}&issuer={quote(issuer, safe='')}"
        t.note(Rule.MFA_ASSOCIATED, f"otp: an authenticator app{with_code}", t.index.ref(user))
        return MfaAssociated(
            authenticator_type="otp",
            user_id=user.user_id,
            secret=req.new_secret,
            barcode_uri=SecretStr(f"{uri}&algorithm=SHA1&digits=6&period=30"),
            recovery_code=shown,
            enrollment=MfaEnrollment(totp_secret=req.new_secret, recovery_code=recovery, confirmed=False),
            trace=tuple(t.reasons),
        )
    channel = MFA_ASSOCIATE_CHANNELS[channels[0]]
    t.note(Rule.MFA_ASSOCIATED, f"oob by {channel}{with_code}", t.index.ref(user))
    return MfaAssociated(
        authenticator_type="oob",
        user_id=user.user_id,
        oob_channel="sms" if channel == "sms" else "auth0",
        oob=OobGrant(client_id=client.client_id, user_id=user.user_id, channel=channel, issued_at=t.now),
        binding_method="prompt" if channel == "sms" else None,
        recovery_code=shown,
        enrollment=MfaEnrollment(oob_channel=channel, recovery_code=recovery, confirmed=False),
        trace=tuple(t.reasons),
    )


def _revoked(t: Trace, family: str | None, rule: Rule, detail: str) -> Revoked:
    t.note(rule, detail)
    return Revoked(family=family, trace=tuple(t.reasons))


# ---------------------------------------------------------------------------------------
# The resource server's side
# ---------------------------------------------------------------------------------------


def _numeric_date(value: object) -> float | None:
    """A JWT NumericDate (RFC 7519: integer or not, finite), or None for any other JSON type."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value or abs(value) == float("inf"):
        return None
    return float(value)


def validate_access_token(token: PresentedToken, *, audience: str, domain: str, tenant: Tenant, now: int) -> Accepted | Rejected:
    """Would ``audience``, called through ``domain``, accept this decoded token at ``now``?

    ``token`` is what a resource server holds after checking the signature: header and
    claims. Rejections are ``invalid_token`` (401) with the rule that failed.
    """
    t = Trace(tenant, now)
    invalid = "Invalid token"
    header, claims = token.header, token.claims
    alg = header.get("alg")
    if not isinstance(alg, str) or alg.lower() == "none":
        return t.reject(Rule.VALIDATE_ALG_NONE, ErrorCode.INVALID_TOKEN, invalid, detail="unsigned tokens are never accepted")
    api = t.index.apis.get(audience)
    if api is not None:
        pinned = {api.signing_alg.value}
    elif audience == tenant.userinfo_audience:
        # /userinfo takes its own opaque tokens (R44, R48: decrypted by the issuer, no
        # signature to pin) and JWTs signed with the tenant key, RS256 or PS256 (R45, R46).
        pinned = {"dir", SigningAlg.RS256.value, SigningAlg.PS256.value}
    else:
        pinned = {SigningAlg.RS256.value}
    if alg not in pinned:
        # validate.alg_pinned (R64): no RS/HS confusion; the API's algorithm only.
        return t.reject(
            Rule.VALIDATE_ALG_PINNED, ErrorCode.INVALID_TOKEN, invalid, detail=f"alg {alg}, expected {' or '.join(sorted(pinned))}"
        )
    # Every JSON type of iss, aud, exp and nbf is judged, never trusted (issue 8, item 6): a
    # value of the wrong type is a rejection with the claim's rule, not an exception.
    iss = claims.get("iss")
    if not isinstance(iss, str) or iss not in t.index.issuers:
        return t.reject(Rule.VALIDATE_ISSUER, ErrorCode.INVALID_TOKEN, invalid, detail="iss is not a domain of this tenant")
    aud = claims.get("aud")
    auds = aud if isinstance(aud, list) else [aud]
    if audience not in [a for a in auds if isinstance(a, str)]:
        return t.reject(Rule.VALIDATE_AUDIENCE, ErrorCode.INVALID_TOKEN, invalid, detail=f"aud does not contain {audience}")
    exp, nbf = _numeric_date(claims.get("exp")), claims.get("nbf")
    if exp is None or exp <= now:
        return t.reject(Rule.VALIDATE_EXPIRY, ErrorCode.INVALID_TOKEN, invalid, detail="exp is missing, not a number or past")
    not_before = _numeric_date(nbf)
    if nbf is not None and (not_before is None or not_before > now):
        return t.reject(Rule.VALIDATE_NOT_BEFORE, ErrorCode.INVALID_TOKEN, invalid, detail="nbf is not a number or in the future")
    if audience == tenant.management_api_identifier and isinstance(aud, list) and len(aud) > 1:
        # validate.management_api_single_audience (issue 8, item 1): "must only hold one value
        # at the aud claim", else the request errors out.
        return t.reject(Rule.VALIDATE_MANAGEMENT_SINGLE_AUDIENCE, ErrorCode.INVALID_TOKEN, invalid, detail="more than one aud value")
    called = {f"https://{host_name(domain)}/", f"https://{host_address(domain)}/"}
    if audience in (tenant.management_api_identifier, tenant.userinfo_audience) and iss not in called:
        # validate.management_api_domain_binding (seed, R51; issue 8, item 6): every Auth0 API,
        # /userinfo included, takes a token only through the domain that issued it.
        return t.reject(
            Rule.VALIDATE_MANAGEMENT_DOMAIN,
            ErrorCode.INVALID_TOKEN,
            invalid,
            detail="a token for an Auth0 API is valid only through the domain that issued it",
        )
    client_id = claims.get("azp", claims.get("client_id"))
    client = t.index.clients.get(client_id) if isinstance(client_id, str) else None
    if audience == tenant.userinfo_audience and client is not None and client.strict_third_party(t.behaviour):
        # validate.third_party_strict_userinfo (issue 8, item 7): "/userinfo returns error" for
        # strict third-party applications (not available in this release).
        return t.reject(
            Rule.VALIDATE_THIRD_PARTY_USERINFO,
            ErrorCode.INVALID_TOKEN,
            invalid,
            detail="/userinfo is not available to strict third-party applications",
            ref=t.index.ref(client),
        )
    t.note(Rule.VALIDATE_ACCEPTED, f"{audience} accepts the token", t.index.ref(api) if api is not None else "")
    return Accepted(trace=tuple(t.reasons))

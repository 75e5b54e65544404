"""The token being issued, as one value, and the dialect table that says what it carries.

A grant handler decides *what* is issued (to whom, for which API, with which scopes) and
describes it as a :class:`Draft`; :func:`issue` turns the draft into an ``Issued`` decision:
format and ``aud`` (R44 to R47), ``iss`` (R50), claims (R53 to R58), lifetime (R61 to R63),
signing (R64), and, for user flows, the refresh and ID tokens (R66, R71).

Which claims an access token carries depends on the API's dialect. :func:`dialect` is the
table, written as an exhaustive ``match``: a ``TokenDialect`` without an entry is a type
error, and a dialect outside ``TokenDialect`` cannot be configured (the model refuses it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal, NamedTuple, assert_never

from pydantic import JsonValue

from claimsengine.auth0 import OIDC_CLAIM_SCOPE, OIDC_SCOPE_CLAIMS
from claimsengine.model import (
    Api,
    AuthorizationGrant,
    Client,
    Issued,
    JwtHeader,
    MfaGrant,
    Organization,
    Reason,
    RefreshFamily,
    RefreshGrant,
    SigningAlg,
    TokenDialect,
    TokenFormat,
    User,
    issuer,
    trusted,
)
from claimsengine.rules import Rule
from claimsengine.steps import Trace, compiled_reason, third_party_oidc

__all__ = [
    "API_V1_LIFETIME",
    "DIALECTS",
    "NO_CLAIMS",
    "USERINFO_LIFETIME",
    "Dialect",
    "Draft",
    "TokenFacts",
    "dialect",
    "family_expiry",
    "id_token_claims",
    "issue",
    "issue_api_v1",
    "stored_draft",
    "stored_targets",
    "token_facts",
]

# R19, R63: fixed lifetimes of opaque tokens.
API_V1_LIFETIME = 86400
USERINFO_LIFETIME = 86400
# R63: an opaque /userinfo token returned by /authorize in the implicit flow.
IMPLICIT_USERINFO_LIFETIME = 7200
# JWT headers are few and immutable: build each once.
_HEADERS = {(alg, typ): JwtHeader.model_construct(alg=alg, typ=typ) for alg in SigningAlg for typ in ("JWT", "at+jwt")}
NO_CLAIMS: Mapping[str, JsonValue] = MappingProxyType({})
_JWT = TokenFormat.JWT  # read per token: a module constant is cheaper than the Enum class lookup


@dataclass(frozen=True, slots=True)
class Dialect:
    """What an access token of one dialect carries (R53 to R58).

    ``client_claim`` names the client (``azp`` in Auth0's profile, ``client_id`` in RFC 9068);
    ``gty`` says whether the grant-type claim is set (when the flow has one); ``permissions``
    whether the ``permissions`` claim is set (machine-to-machine: the granted scopes; user
    flows: the user's permissions when the API enforces RBAC); ``jti`` whether the signer adds
    a ``jti``; ``typ`` is the JWT header type.
    """

    typ: Literal["JWT", "at+jwt"]
    client_claim: Literal["azp", "client_id"]
    gty: bool
    permissions: bool
    jti: bool


_AUTH0 = Dialect(typ="JWT", client_claim="azp", gty=True, permissions=False, jti=False)
_RFC9068 = Dialect(typ="at+jwt", client_claim="client_id", gty=False, permissions=False, jti=True)


def dialect(name: TokenDialect) -> Dialect:
    """The table of dialects: one entry per ``TokenDialect``, checked exhaustive by mypy."""
    match name:
        case TokenDialect.ACCESS_TOKEN:
            return _AUTH0
        case TokenDialect.ACCESS_TOKEN_AUTHZ:
            return Dialect(typ="JWT", client_claim="azp", gty=True, permissions=True, jti=False)
        case TokenDialect.RFC9068_PROFILE:
            return _RFC9068
        case TokenDialect.RFC9068_PROFILE_AUTHZ:
            return Dialect(typ="at+jwt", client_claim="client_id", gty=False, permissions=True, jti=True)
        case _:
            assert_never(name)


DIALECTS: Mapping[TokenDialect, Dialect] = MappingProxyType({name: dialect(name) for name in TokenDialect})


class Draft(NamedTuple):
    """The token a flow decided to issue, before :func:`issue` writes its claims.

    ``user`` is ``None`` for machine-to-machine tokens. ``api`` is ``None`` for a user token
    with no API audience (an opaque ``/userinfo`` token). ``gty`` is the grant-type claim
    the flow sets in Auth0's profile. ``custom`` are the access-token claims Actions set,
    already filtered. For user flows, ``id_claims`` and ``nonce`` go into the ID token (when
    ``openid`` is granted) and ``refreshable`` says whether ``offline_access`` may yield a
    refresh token. A refresh exchange sets ``rotated`` (the token it rotates: the new one
    continues its family) and ``family`` (the family's state after the exchange). ``web``
    marks a token ``/authorize`` returns itself (implicit or hybrid: R62, R63), which never
    comes with an ID token of its own (``/authorize`` issues that separately).

    An immutable named tuple rather than a frozen dataclass: one is built per issued token,
    and a tuple is built in a third of the time (issue 13).
    """

    client: Client
    domain: str
    scopes: tuple[str, ...]
    api: Api | None
    user: User | None = None
    org: Organization | None = None
    gty: str | None = None
    custom: Mapping[str, JsonValue] = NO_CLAIMS
    headers: tuple[tuple[str, str], ...] = ()
    id_claims: Mapping[str, JsonValue] = NO_CLAIMS
    nonce: str | None = None
    refreshable: bool = False
    rotated: RefreshGrant | None = None
    family: RefreshFamily | None = None
    web: Literal["implicit", "hybrid"] | None = None
    sid: str | None = None
    id_token_auth_time: int | None = None


def family_expiry(client: Client, expires_at: int | None, last_used: int) -> int | None:
    """When a family's facts may be forgotten: its absolute expiry or the end of its idle
    window, whichever comes first (``None``: it never expires)."""
    idle = client.refresh_settings.idle_lifetime
    ends = [e for e in (expires_at, last_used + idle if idle is not None else None) if e is not None]
    return min(ends) if ends else None


def issue(draft: Draft, t: Trace) -> Issued:
    """The ``Issued`` decision for ``draft``."""
    user = draft.user
    refresh: RefreshGrant | None = None
    id_token: dict[str, JsonValue] | None = None
    family = draft.family
    if user is not None and not draft.client.is_first_party:
        # A stored grant (a code or refresh token) may predate the client's strict mode.
        kept = third_party_oidc(draft.scopes, draft.client, t)
        if kept != draft.scopes:
            draft = draft._replace(scopes=kept)
    if user is not None:
        refresh = _refresh(draft, user, t)
        if refresh is not None and draft.rotated is None:
            family = RefreshFamily(last_used=t.now, expires_at=family_expiry(draft.client, refresh.expires_at, t.now))
        if "openid" in draft.scopes and draft.web is None:
            id_token = id_token_claims(draft, user, t)
    if draft.api is None:
        assert user is not None, "machine-to-machine tokens always have an API"
        issued = _userinfo_token(draft, user, refresh, id_token, t)
    else:
        issued = _jwt(draft, draft.api, refresh, id_token, t)
    if family is None:
        return issued
    return issued.model_copy(update={"refresh_family": family})


def issue_api_v1(client: Client, domain: str, t: Trace) -> Issued:
    """A legacy API v1 opaque token (R19, R63)."""
    t.note(Rule.FORMAT_OPAQUE, "API v1 token")
    t.note(Rule.LIFETIME_API_V1, f"{API_V1_LIFETIME} s")
    iss = issuer(domain)
    claims: dict[str, JsonValue] = {
        "iss": iss,
        "sub": f"{client.client_id}@clients",
        "iat": t.now,
        "exp": t.now + API_V1_LIFETIME,
        "azp": client.client_id,
    }
    t.note(Rule.RESPONSE_SCOPE_OMITTED, "no scope in an API v1 token")
    return trusted(
        Issued,
        format=TokenFormat.OPAQUE,
        issuer=iss,
        audience=None,
        scope=None,
        claims=claims,
        header=None,
        signing_key=None,
        expires_in=API_V1_LIFETIME,
        client_id=client.client_id,
        trace=tuple(t.reasons),
    )


def _refresh(draft: Draft, user: User, t: Trace) -> RefreshGrant | None:
    rotated = draft.rotated
    if rotated is not None:
        # refresh.rotated: the successor keeps the family, its scopes and its absolute expiry.
        generation = draft.family.current if draft.family is not None else rotated.generation + 1
        return rotated.model_copy(update={"generation": generation})
    if not draft.refreshable:
        return None
    if "offline_access" not in draft.scopes:
        t.note(Rule.REFRESH_OMITTED, "no offline_access: no refresh token")
        return None
    client = draft.client
    settings = client.refresh_settings
    ref = t.index.ref(client)
    if client.app_type == "spa" and not settings.rotating and t.behaviour.spa_refresh_requires_rotation:
        # refresh.spa_requires_rotation: a browser application gets refresh tokens only rotating.
        t.note(Rule.REFRESH_SPA_NEEDS_ROTATION, "single-page application without rotation: no refresh token", ref)
        return None
    # refresh.issued (R66): offline_access made it through the scope rules.
    lifetime = settings.absolute_lifetime
    t.note(
        Rule.REFRESH_ISSUED, f"offline_access granted; {'expires in ' + str(lifetime) + ' s' if lifetime else 'no absolute expiry'}", ref
    )
    return RefreshGrant(
        client_id=client.client_id,
        user_id=user.user_id,
        audience=draft.api.identifier if draft.api is not None else None,
        scope=draft.scopes,
        organization_id=draft.org.id if draft.org is not None else None,
        domain=draft.domain,
        access_claims=dict(draft.custom),
        id_claims=dict(draft.id_claims),
        expires_at=t.now + lifetime if lifetime is not None else None,
        sid=draft.sid,
        id_token_auth_time=draft.id_token_auth_time,
    )


def _org_claims(claims: dict[str, JsonValue], org: Organization | None, t: Trace) -> None:
    # org.* (R38): org_name only with the tenant flag.
    if org is not None:
        claims["org_id"] = org.id
        if t.tenant.allow_organization_name_in_authentication_api:
            claims["org_name"] = org.name


def id_token_claims(draft: Draft, user: User, t: Trace) -> dict[str, JsonValue]:
    """id_token.issued (R71): profile claims only for the scopes that release them."""
    client = draft.client
    lifetime = client.id_token_lifetime or t.behaviour.id_token_lifetime
    claims: dict[str, JsonValue] = {}
    released = [name for scope in draft.scopes for name in OIDC_SCOPE_CLAIMS.get(scope, ())]
    for name in released:
        if name in user.profile:
            claims[name] = user.profile[name]
    withheld = [name for name in user.profile if name not in released and name in OIDC_CLAIM_SCOPE]
    if withheld:
        t.note(Rule.CLAIMS_OIDC_FILTERED, f"id token: withheld {', '.join(withheld)}", t.index.ref(user))
    claims.update({"iss": issuer(draft.domain), "sub": user.user_id, "aud": client.client_id, "iat": t.now, "exp": t.now + lifetime})
    if draft.sid is not None:
        # id_token.session_id (issue 8, item 7): "During user authentication, the Auth0 tenant adds
        # sid to the ID token", the login session's id, also in back-channel logout tokens.
        claims["sid"] = draft.sid
        t.note(Rule.ID_TOKEN_SID, "the login session's id")
    if draft.id_token_auth_time is not None:
        # id_token.auth_time (issue 8, item 7; OIDC Core section 2): when max_age was sent.
        claims["auth_time"] = draft.id_token_auth_time
        t.note(Rule.ID_TOKEN_AUTH_TIME, f"authenticated at {draft.id_token_auth_time}", "behaviour.id_token_auth_time")
    if draft.nonce is not None:
        claims["nonce"] = draft.nonce
    _org_claims(claims, draft.org, t)
    for name, value in draft.id_claims.items():
        claims.setdefault(name, value)
    t.note(Rule.ID_TOKEN_ISSUED, f"{lifetime} s", t.index.ref(client) if client.id_token_lifetime else "behaviour.id_token_lifetime")
    return claims


def _userinfo_token(draft: Draft, user: User, refresh: RefreshGrant | None, id_token: dict[str, JsonValue] | None, t: Trace) -> Issued:
    # format.opaque (R20, R44, R48): no API audience → an opaque token for /userinfo only.
    t.note(Rule.FORMAT_OPAQUE, "audience is /userinfo")
    t.note(Rule.AUD_STRING, t.tenant.userinfo_audience)
    iss = issuer(draft.domain)
    t.note(Rule.ISS_REQUEST_DOMAIN, iss, t.index.domain_refs.get(draft.domain, ""))
    lifetime = USERINFO_LIFETIME
    if draft.web == "implicit":
        lifetime = IMPLICIT_USERINFO_LIFETIME
        t.note(Rule.LIFETIME_USERINFO_IMPLICIT, f"{lifetime} s from the implicit flow, not configurable")
    else:
        t.note(Rule.LIFETIME_USERINFO, f"{lifetime} s, not configurable")
    scope = " ".join(draft.scopes)
    claims: dict[str, JsonValue] = {
        "iss": iss,
        "sub": user.user_id,
        "aud": t.tenant.userinfo_audience,
        "iat": t.now,
        "exp": t.now + lifetime,
        "scope": scope,
        "azp": draft.client.client_id,
    }
    return trusted(
        Issued,
        format=TokenFormat.OPAQUE,
        issuer=iss,
        audience=t.tenant.userinfo_audience,
        scope=scope,
        claims=claims,
        header=None,
        signing_key=None,
        expires_in=lifetime,
        client_id=draft.client.client_id,
        refresh=refresh,
        id_token=id_token,
        trace=tuple(t.reasons),
    )


@dataclass(frozen=True, slots=True)
class TokenFacts:
    """What every JWT for one API shares: its dialect, header and trace entries (R44 to R64)."""

    api: Api
    ref: str
    kind: Dialect
    format_jwt: Reason
    aud_string: Reason
    lifetime: Reason
    claims_m2m: Reason
    claims_user: Reason
    signing: Reason
    header: JwtHeader
    signing_key: Literal["tenant", "api_secret"]


def token_facts(api: Api, t: Trace) -> TokenFacts:
    """The compiled :class:`TokenFacts` of ``api`` (keyed by identity, as :func:`api_facts`)."""
    cache = t.index.token_facts
    facts = cache.get(api.identifier)
    if facts is None or facts.api is not api:
        ref = t.index.ref(api)
        kind = DIALECTS[api.token_dialect]
        lifetime = api.token_lifetime
        if api is t.index.mfa_api:
            lifetime_note = compiled_reason(Rule.LIFETIME_MFA_API, f"{lifetime} s, not configurable", ref)
        else:
            lifetime_note = compiled_reason(Rule.LIFETIME_API, f"{lifetime} s", ref)
        if kind.jti:
            claims_m2m = claims_user = compiled_reason(Rule.CLAIMS_RFC9068, "typ at+jwt, client_id instead of azp, jti, no gty", ref)
        else:
            claims_m2m = compiled_reason(Rule.CLAIMS_M2M, "Auth0 profile", ref)
            claims_user = compiled_reason(Rule.CLAIMS_USER, "Auth0 profile", ref)
        hs256 = api.signing_alg is SigningAlg.HS256
        if hs256:
            signing = compiled_reason(Rule.SIGNING_API_SECRET, "HS256 with the API's signing secret", ref)
        else:
            signing = compiled_reason(Rule.SIGNING_TENANT_KEY, f"{api.signing_alg} with the tenant key", ref)
        facts = TokenFacts(
            api=api,
            ref=ref,
            kind=kind,
            format_jwt=compiled_reason(Rule.FORMAT_JWT, f"audience is the API {api.identifier}", ref),
            aud_string=compiled_reason(Rule.AUD_STRING, api.identifier),
            lifetime=lifetime_note,
            claims_m2m=claims_m2m,
            claims_user=claims_user,
            signing=signing,
            header=_HEADERS[api.signing_alg, kind.typ],
            signing_key="api_secret" if hs256 else "tenant",
        )
        cache[api.identifier] = facts
    return facts


# Issuing domains come from the tenant (or from grants the server sealed): a few per tenant.
ISSUER_CACHE_LIMIT = 1024


def _issuer(domain: str, t: Trace) -> str:
    """``iss`` for ``domain`` (R50), noted in the trace."""
    cache = t.index.issuer_facts
    facts = cache.get(domain)
    if facts is None:
        iss = issuer(domain)
        facts = (iss, compiled_reason(Rule.ISS_REQUEST_DOMAIN, iss, t.index.domain_refs.get(domain, "")))
        if len(cache) < ISSUER_CACHE_LIMIT:
            cache[domain] = facts
    t.reasons.append(facts[1])
    return facts[0]


def _jwt(draft: Draft, api: Api, refresh: RefreshGrant | None, id_token: dict[str, JsonValue] | None, t: Trace) -> Issued:
    """A JWT access token for ``api`` (R44 to R47, R50, R53 to R58, R61, R64, R65)."""
    client, scopes, user = draft.client, draft.scopes, draft.user
    user_flow = user is not None
    facts = token_facts(api, t)
    api_ref = facts.ref
    t.reasons.append(facts.format_jwt)
    audience: str | tuple[str, ...]
    openid = user_flow and "openid" in scopes
    if openid and api.signing_alg is SigningAlg.HS256:
        audience = api.identifier
        t.note(Rule.AUD_HS256_SINGLE, "HS256 APIs never share a token with /userinfo", api_ref)
    elif openid:
        audience = (api.identifier, t.tenant.userinfo_audience)
        t.note(Rule.AUD_ARRAY_WITH_USERINFO, "openid requested: the token is also valid at /userinfo")
    else:
        audience = api.identifier
        t.reasons.append(facts.aud_string)
    iss = _issuer(draft.domain, t)
    kind = facts.kind
    lifetime = api.token_lifetime
    if draft.web is not None:
        # lifetime.api_for_web (R62): token_lifetime_for_web, never beyond token_lifetime.
        lifetime = min(api.token_lifetime_for_web, lifetime)
        t.note(Rule.LIFETIME_API_WEB, f"{lifetime} s (token_lifetime_for_web)", api_ref)
    else:
        t.reasons.append(facts.lifetime)
    scope = " ".join(scopes)
    claims: dict[str, JsonValue] = {
        "iss": iss,
        "sub": user.user_id if user is not None else f"{client.client_id}@clients",
        "aud": list(audience) if isinstance(audience, tuple) else audience,
        "iat": t.now,
        "exp": t.now + lifetime,
    }
    if scopes or user_flow:
        claims["scope"] = scope
    else:
        # scope.empty (R32): no scope claim and no scope field when nothing is granted.
        t.note(Rule.SCOPE_EMPTY, "no scopes: the token has no scope claim")
    if draft.org is not None:
        _org_claims(claims, draft.org, t)
    if kind.permissions and not api.enforce_policies:
        # claims.permissions_rbac_off (issue 8, item 6): the _authz dialects add permissions only
        # "if RBAC (enforce_policies) is enabled for this API".
        t.note(Rule.CLAIMS_PERMISSIONS_RBAC_OFF, "the dialect adds permissions, but RBAC is off", api_ref)
    elif kind.permissions:
        permissions = scopes if user is None else t.index.user_permissions(user, api.identifier, draft.org.id if draft.org else None)
        claims["permissions"] = list(permissions)
        t.note(Rule.CLAIMS_PERMISSIONS_USER if user_flow else Rule.CLAIMS_PERMISSIONS_M2M, f"{len(permissions)} permissions", api_ref)
    if kind.gty and draft.gty is not None:
        claims["gty"] = draft.gty
    claims[kind.client_claim] = client.client_id
    t.reasons.append(facts.claims_user if user_flow else facts.claims_m2m)
    for name, value in draft.custom.items():
        claims.setdefault(name, value)
    t.reasons.append(facts.signing)
    if not scopes and not user_flow:
        t.note(Rule.RESPONSE_SCOPE_OMITTED, "the response has no scope field")
    return trusted(
        Issued,
        format=_JWT,
        issuer=iss,
        audience=audience,
        scope=scope if (scopes or user_flow) else None,
        claims=claims,
        header=facts.header,
        signing_key=facts.signing_key,
        needs_jti=kind.jti,
        expires_in=lifetime,
        client_id=client.client_id,
        api=api.identifier,
        refresh=refresh,
        id_token=id_token,
        headers=draft.headers,
        trace=tuple(t.reasons),
    )


def stored_draft(
    grant: AuthorizationGrant | MfaGrant, client: Client, domain: str, user: User, t: Trace, *, gty: str | None = None
) -> Draft:
    """The token a stored login (a code's or an mfa_token's grant) stands for: its scopes,
    API, organization and the claims its Actions set, refreshable with offline_access."""
    api, org = stored_targets(grant, t)
    return Draft(
        client=client,
        domain=domain,
        scopes=grant.scope,
        api=api,
        user=user,
        org=org,
        gty=gty,
        custom=grant.access_claims,
        id_claims=grant.id_claims,
        nonce=grant.nonce if isinstance(grant, AuthorizationGrant) else None,
        refreshable=True,
        sid=grant.sid,
        id_token_auth_time=grant.id_token_auth_time,
    )


def stored_targets(grant: AuthorizationGrant | RefreshGrant | MfaGrant, t: Trace) -> tuple[Api | None, Organization | None]:
    """The API and organization a stored code, refresh or MFA grant names (either may be gone)."""
    mfa = t.index.mfa_api
    api = (mfa if grant.audience == mfa.identifier else t.index.apis.get(grant.audience)) if grant.audience is not None else None
    org = t.index.organizations_by_id.get(grant.organization_id) if grant.organization_id is not None else None
    return api, org

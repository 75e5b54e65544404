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

import base64
import hashlib
import hmac
import json
from collections.abc import Sequence
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from pydantic import JsonValue

from claimsengine.actions import DENY_STATUS, ActionApi, ClientInfo, CredentialsExchangeEvent, OrganizationInfo, PostLoginEvent
from claimsengine.auth0 import (
    CUSTOM_CLAIMS_LIMIT_BYTES,
    FORBIDDEN_NAMESPACE_HOSTS,
    OIDC_CLAIM_SCOPE,
    OIDC_SCOPE_CLAIMS,
    OIDC_SCOPES,
    RESTRICTED_CLAIMS,
)
from claimsengine.model import (
    Accepted,
    Api,
    AuthMethod,
    AuthorizationGrant,
    Authorized,
    AuthorizeRequest,
    Client,
    ClientGrant,
    GrantType,
    Issued,
    JwtHeader,
    Organization,
    OrganizationUsage,
    PresentedToken,
    Reason,
    RefreshGrant,
    Rejected,
    SigningAlg,
    SubjectType,
    Tenant,
    TenantIndex,
    TokenDialect,
    TokenFormat,
    TokenQuota,
    TokenRequest,
    User,
    UserPolicy,
)
from claimsengine.rules import STATUS, ErrorCode, Rule

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
GRANT_TYPES_URI = "https://auth0.com/docs/clients/client-grant-types"
# R9 limits on a client assertion.
ASSERTION_MAX_BYTES = 2048
ASSERTION_MAX_LIFETIME = 300
ASSERTION_CLOCK_SKEW = 10
ASSERTION_MAX_ID_LENGTH = 64
ASSERTION_MAX_ALG_LENGTH = 16
GRANT_TYPE_VALUES = frozenset(g.value for g in GrantType)
# JWT headers are few and immutable: build each once.
_HEADERS = {(alg, typ): JwtHeader(alg=alg, typ=typ) for alg in SigningAlg for typ in ("JWT", "at+jwt")}
# R19, R63: fixed lifetimes of opaque tokens.
API_V1_LIFETIME = 86400
USERINFO_LIFETIME = 86400


def well_formed(text: str) -> str:
    """``text`` with lone surrogates (a JSON body may carry ``"\\ud800"``) replaced by U+FFFD,
    so every text a decision echoes can be encoded as UTF-8 (core.total)."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


class _Trace:
    """The trace under construction, and the one place that builds rejections."""

    def __init__(self, tenant: Tenant, now: int) -> None:
        self.tenant = tenant
        self.index: TenantIndex = tenant.index
        self.behaviour = tenant.behaviour
        self.now = now
        self.reasons: list[Reason] = []
        self.redirect_uri: str | None = None
        self.state: str | None = None
        # What the request named, as far as the flow got: for error_overrides templates.
        self.client_id: str | None = None
        self.audience: str | None = None
        self.organization: str | None = None

    def note(self, rule: Rule, detail: str = "") -> None:
        self.reasons.append(Reason(rule, detail if detail.isascii() else well_formed(detail)))

    def reject(
        self,
        rule: Rule,
        code: ErrorCode,
        description: str,
        *,
        detail: str = "",
        status: int | None = None,
        error_uri: str | None = None,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> Rejected:
        self.note(rule, detail or description)
        override = self.behaviour.error_overrides.get(rule)
        if override is not None:
            if override.error is not None and override.error is not code:
                code, status = override.error, None
            if override.error_description is not None:
                names = {"client_id": self.client_id, "audience": self.audience, "organization": self.organization}
                description = override.error_description.format(**{k: v or "" for k, v in names.items()})
            if override.status is not None:
                status = override.status
        return Rejected(
            error=code,
            error_description=description if description.isascii() else well_formed(description),
            status=STATUS[code] if status is None else status,
            error_uri=error_uri,
            redirect_uri=self.redirect_uri,
            state=self.state,
            headers=headers,
            rejected_by=rule,
            trace=tuple(self.reasons),
        )

    def auth_failed(self, rule: Rule, detail: str) -> Rejected:
        # R8: one answer for every client-authentication failure, so a caller cannot tell an
        # unknown client from a wrong secret; the trace says which it was.
        if self.behaviour.client_auth_error == "documented":
            return self.reject(rule, ErrorCode.INVALID_CLIENT, "Client authentication failed", detail=detail)
        return self.reject(rule, ErrorCode.ACCESS_DENIED, "Unauthorized", detail=detail, status=401)

    def no_grant(self, rule: Rule, client_id: str, audience: str, detail: str) -> Rejected:
        # R25: the wording changed over time; the era is a tenant behaviour switch.
        era = self.behaviour.no_grant_wording
        see = "See: https://auth0.com/docs/api/v2#!/Client_Grants/post_client_grants"
        if era == "2018":
            text = (
                f'Client is not authorized to access "{audience}". You might probably want to create a '
                f'"client-grant" associated to this API. {see}'
            )
        elif era == "2024":
            text = f'Client is not authorized to access "{audience}". You need to create a "client-grant" associated to this API. {see}'
        else:
            text = (
                f'Client "{client_id}" is not authorized to access resource server "{audience}". '
                'You need to create a "client-grant" associated to this API.'
            )
        return self.reject(rule, ErrorCode.ACCESS_DENIED, text, detail=detail)


def decide(request: TokenRequest | AuthorizeRequest, tenant: Tenant, *, now: int) -> Issued | Rejected | Authorized:
    """Decide what ``tenant`` answers to ``request`` at Unix time ``now``.

    Pure and total: equal inputs give an equal decision, and no valid request makes it
    raise. A ``TokenRequest`` yields ``Issued`` or ``Rejected``; an ``AuthorizeRequest``
    yields ``Authorized`` or ``Rejected``.
    """
    trace = _Trace(tenant, now)
    if isinstance(request, AuthorizeRequest):
        return _authorize(request, trace)
    return _token(request, trace)


# ---------------------------------------------------------------------------------------
# Shared steps
# ---------------------------------------------------------------------------------------


def _clean(value: str | None) -> str | None:
    """Empty and blank parameters count as absent, as SDKs send ``"organization": ""``."""
    if value is None:
        return None
    value = value.strip()
    return value or None


def _split_scope(scope: str | None) -> tuple[str, ...]:
    return tuple(dict.fromkeys((scope or "").split()))


def _host_name(host: str) -> str:
    """A Host header's name: no port, no trailing dot, lower case."""
    name = host.strip().lower()
    if name.startswith("["):
        name = name[: name.find("]") + 1] if "]" in name else name
    elif name.count(":") == 1:
        name = name.rsplit(":", 1)[0]
    return name.rstrip(".")


def served_domain(host: str | None, tenant: Tenant) -> str | None:
    """The tenant domain a request through ``host`` is served as, or ``None`` when refused.

    A verified domain of the tenant serves itself; any other host is served as the default
    domain, unless ``behaviour.unknown_host`` is ``"reject"`` or the host is an unverified
    custom domain (R50, R52, R95). Adapters use this for discovery and JWKS, so they resolve
    hosts exactly as ``decide`` does.
    """
    default = tenant.behaviour.default_domain or tenant.domain
    if host is None:
        return default
    name = _host_name(host)
    index = tenant.index
    if name in index.domains:
        return name
    if tenant.behaviour.unknown_host == "reject" or name in index.unverified_domains:
        return None
    return default


def _resolve_domain(host: str | None, t: _Trace) -> str | Rejected:
    # domain.resolved (R50, R52, R95): the request's host, if it is a verified domain of the
    # tenant, is the issuer; a port, a trailing dot and letter case are not significant.
    served = served_domain(host, t.tenant)
    if served is None:
        # Never echo the host: it is attacker-controlled.
        return t.reject(Rule.DOMAIN_UNKNOWN, ErrorCode.INVALID_REQUEST, "Unknown domain", detail="host is not a verified domain")
    if host is None:
        t.note(Rule.DOMAIN_RESOLVED, f"no host given: served as {served}")
    elif host == served or _host_name(host) == served:
        t.note(Rule.DOMAIN_RESOLVED, f"request came through {served}")
    else:
        t.note(Rule.DOMAIN_RESOLVED, f"host is not a tenant domain: served as {served}")
    return served


def _resolve_organization(value: str, t: _Trace) -> Organization | Rejected:
    # org.name_not_allowed (R39): names only when the tenant flag allows them.
    org = t.index.organizations_by_id.get(value)
    if org is not None:
        return org
    by_name = t.index.organizations_by_name.get(value)
    if by_name is not None:
        if t.tenant.allow_organization_name_in_authentication_api:
            return by_name
        return t.reject(
            Rule.ORG_NAME_NOT_ALLOWED,
            ErrorCode.INVALID_REQUEST,
            "authorization request parameter organization must be an organization id",
        )
    return t.reject(Rule.ORG_UNKNOWN, ErrorCode.INVALID_REQUEST, f"Invalid organization: {value}")


def _is_auth0_api(audience: str, tenant: Tenant) -> bool:
    # R78: Auth0's own APIs (Management, legacy /api, MFA), but not /userinfo.
    base = f"https://{tenant.domain}/"
    return audience.startswith((base + "api", base + "mfa"))


def _system_api_on_custom_domain(audience: str, t: _Trace) -> bool:
    # R16: Auth0's APIs are named by the canonical domain only.
    return any(audience in (f"https://{domain}/api/v2/", f"https://{domain}/userinfo") for domain in t.index.domains - {t.tenant.domain})


def _namespace_allowed(name: str, custom_api: bool) -> bool | None:
    """True/False for a namespaced claim name (allowed or not, R79); None if not namespaced."""
    lowered = name.lower()
    if lowered.startswith(("http://", "https://")):
        host = urlsplit(lowered).hostname or ""
        return not any(host == h or host.endswith("." + h) for h in FORBIDDEN_NAMESPACE_HOSTS)
    if lowered.startswith("urn:") and custom_api:
        return not lowered.startswith("urn:auth0")
    return None


def _filter_claims(
    claims: dict[str, Any], *, auth0_api: bool, custom_api: bool, scopes: Sequence[str], t: _Trace, token: str
) -> dict[str, JsonValue] | Rejected:
    """Apply R71 and R76 to R80 to claims an Action set."""
    kept: dict[str, JsonValue] = {}
    for name, value in claims.items():
        namespaced = _namespace_allowed(name, custom_api)
        if name in RESTRICTED_CLAIMS:
            t.note(Rule.ACTION_CLAIM_RESTRICTED, f"{token}: {name!r} is restricted and was ignored")
        elif namespaced is False:
            t.note(Rule.ACTION_CLAIM_FORBIDDEN_NAMESPACE, f"{token}: {name!r} uses an Auth0-owned namespace")
        elif name in OIDC_CLAIM_SCOPE and OIDC_CLAIM_SCOPE[name] not in scopes:
            t.note(Rule.CLAIMS_OIDC_FILTERED, f"{token}: {name!r} needs scope {OIDC_CLAIM_SCOPE[name]!r}")
        elif namespaced is None and auth0_api and name not in OIDC_CLAIM_SCOPE:
            t.note(Rule.ACTION_CLAIM_AUTH0_AUDIENCE, f"{token}: non-namespaced {name!r} dropped on an Auth0 API")
        else:
            kept[name] = value
            t.note(Rule.ACTION_CLAIM_SET, f"{token}: {name!r}")
    size = 0
    for name, value in kept.items():
        try:
            size += len(name.encode()) + len(json.dumps(value, separators=(",", ":"), allow_nan=False).encode())
        except (TypeError, ValueError):
            # A value JSON cannot carry: in Auth0 the Action itself would have failed.
            return t.reject(Rule.ACTION_FAILED, ErrorCode.SERVER_ERROR, "A server error occurred.", detail=f"{token}: {name!r} is not JSON")
    if size > CUSTOM_CLAIMS_LIMIT_BYTES:
        return t.reject(
            Rule.ACTION_CLAIMS_TOO_LARGE,
            ErrorCode.INVALID_REQUEST,
            "Custom claims exceed the 100 KB limit",
            detail=f"{token}: custom claims take {size} bytes",
        )
    return kept


def _client_info(client: Client) -> ClientInfo:
    return ClientInfo(client.client_id, client.name, MappingProxyType(dict(client.metadata)))


def _org_info(org: Organization | None) -> OrganizationInfo | None:
    return None if org is None else OrganizationInfo(org.id, org.name)


# ---------------------------------------------------------------------------------------
# POST /oauth/token
# ---------------------------------------------------------------------------------------


def _token(req: TokenRequest, t: _Trace) -> Issued | Rejected:
    domain = _resolve_domain(req.domain, t)
    if isinstance(domain, Rejected):
        return domain
    if req.malformed:
        # request.parameter_malformed (R7): e.g. a JSON number where a string belongs.
        name = sorted(req.malformed)[0]
        if name == "scope":
            return t.reject(Rule.PARAMETER_MALFORMED, ErrorCode.INVALID_SCOPE, "Scope must be an array or a string")
        return t.reject(Rule.PARAMETER_MALFORMED, ErrorCode.INVALID_REQUEST, f"Invalid parameter type: {name}")
    grant_type = _clean(req.grant_type)
    if grant_type is None:
        # request.grant_type_missing (R5)
        return t.reject(Rule.GRANT_TYPE_MISSING, ErrorCode.INVALID_REQUEST, "Missing required parameter: grant_type")
    if grant_type not in GRANT_TYPE_VALUES:
        # request.grant_type_unsupported (R6)
        text = "Grant type not supported" if t.behaviour.unsupported_grant_wording == "oas" else f"Unsupported grant type: {grant_type}"
        return t.reject(Rule.GRANT_TYPE_UNSUPPORTED, ErrorCode.UNSUPPORTED_GRANT_TYPE, text)
    gt = GrantType(grant_type)
    client = _authenticate(req, gt, t)
    if isinstance(client, Rejected):
        return client
    # client.grant_type_allowed (R13, R14)
    if gt.value not in client.effective_grant_types:
        return t.reject(
            Rule.CLIENT_GRANT_TYPE_NOT_ALLOWED,
            ErrorCode.UNAUTHORIZED_CLIENT,
            f"Grant type '{gt.value}' not allowed for the client.",
            error_uri=GRANT_TYPES_URI,
        )
    t.note(Rule.CLIENT_GRANT_TYPE_ALLOWED, gt.value)
    if gt is GrantType.CLIENT_CREDENTIALS:
        return _client_credentials(req, client, domain, t)
    if gt is GrantType.AUTHORIZATION_CODE:
        return _authorization_code(req, client, domain, t)
    return _refresh_token(req, client, domain, t)


def _authenticate(req: TokenRequest, gt: GrantType, t: _Trace) -> Client | Rejected:
    """Identify and authenticate the client (R3, R4, R8, R9, R11)."""
    assertion = req.assertion
    subject = assertion.claims.get("sub") if assertion is not None else None
    ids = [i for i in (_clean(req.client_id), _clean(req.basic_client_id), subject if isinstance(subject, str) else None) if i is not None]
    if not ids:
        return t.reject(Rule.CLIENT_ID_MISSING, ErrorCode.INVALID_REQUEST, "Missing required parameter: client_id")
    if len(set(ids)) > 1:
        return t.auth_failed(Rule.CLIENT_AUTH_METHOD_MISMATCH, "the request names more than one client")
    t.client_id = ids[0]
    client = t.index.clients.get(ids[0])
    if client is None:
        return t.auth_failed(Rule.CLIENT_UNKNOWN, "no client with this client_id")
    presented = [
        method
        for method, present in (
            (AuthMethod.CLIENT_SECRET_POST, req.client_secret is not None and req.client_secret.get_secret_value() != ""),
            (AuthMethod.CLIENT_SECRET_BASIC, req.basic_client_id is not None),
            (AuthMethod.PRIVATE_KEY_JWT, assertion is not None or req.client_assertion_type is not None),
        )
        if present
    ]
    registered = client.auth_method
    if len(presented) > 1:
        return t.auth_failed(Rule.CLIENT_AUTH_METHOD_MISMATCH, f"several methods presented: {', '.join(presented)}")
    if registered is AuthMethod.NONE:
        if gt is GrantType.CLIENT_CREDENTIALS:
            # client.public_cannot_use_client_credentials (R11, R12)
            return t.auth_failed(Rule.CLIENT_PUBLIC_CANNOT_USE_CC, "public clients cannot use client_credentials")
        if presented and t.behaviour.strict_auth_method:
            return t.auth_failed(Rule.CLIENT_AUTH_METHOD_MISMATCH, f"public client presented {presented[0]}")
        t.note(Rule.CLIENT_PUBLIC, "public client: identified by client_id only")
        return client
    if not presented:
        return t.auth_failed(Rule.CLIENT_SECRET_INVALID, "confidential client sent no credentials")
    method = presented[0]
    secret_methods = (AuthMethod.CLIENT_SECRET_POST, AuthMethod.CLIENT_SECRET_BASIC)
    mismatch = method != registered and not (
        not t.behaviour.strict_auth_method and method in secret_methods and registered in secret_methods
    )
    if mismatch:
        # client.auth_method_mismatch (R4): treated as a failed authentication.
        return t.auth_failed(Rule.CLIENT_AUTH_METHOD_MISMATCH, f"registered {registered}, presented {method}")
    if method is AuthMethod.PRIVATE_KEY_JWT:
        return _check_assertion(req, client, t)
    secret = req.client_secret if method is AuthMethod.CLIENT_SECRET_POST else req.basic_client_secret
    given = (secret.get_secret_value() if secret is not None else "").encode("utf-8", "surrogatepass")
    if any(hmac.compare_digest(given, s.get_secret_value().encode("utf-8", "surrogatepass")) for s in client.client_secrets):
        t.note(Rule.CLIENT_SECRET_VALID, f"{method}")
        return client
    return t.auth_failed(Rule.CLIENT_SECRET_INVALID, f"{method}: the secret does not match")


def _check_assertion(req: TokenRequest, client: Client, t: _Trace) -> Client | Rejected:
    """client.assertion_* (R9): judge the claims of a signature-checked assertion."""
    a = req.assertion
    problem: str | None = None
    if req.client_assertion_type != ASSERTION_TYPE:
        problem = "client_assertion_type is not jwt-bearer"
    elif a is None:
        problem = "the assertion could not be parsed"
    else:
        claims = a.claims
        exp, iat, nbf, jti = claims.get("exp"), claims.get("iat"), claims.get("nbf"), claims.get("jti")
        auds = claims.get("aud")
        aud_list = auds if isinstance(auds, list) else [auds]
        allowed_aud = {f"https://{d}/" for d in t.index.domains}
        checks: list[tuple[bool, str]] = [
            (a.size <= ASSERTION_MAX_BYTES, f"assertion is {a.size} bytes (max {ASSERTION_MAX_BYTES})"),
            (len(a.alg) <= ASSERTION_MAX_ALG_LENGTH, "alg is too long"),
            (a.signature_valid, "signature does not verify with a registered key"),
            (a.key_alg is None or a.alg == a.key_alg, f"alg {a.alg} does not match the registered key"),
            (claims.get("iss") == client.client_id, "iss is not the client_id"),
            (claims.get("sub") == client.client_id, "sub is not the client_id"),
            (len(client.client_id) <= ASSERTION_MAX_ID_LENGTH, "iss/sub longer than 64 characters"),
            (any(x in allowed_aud for x in aud_list), "aud is not a tenant domain URL with trailing slash"),
            (isinstance(exp, int), "exp is missing"),
            (isinstance(jti, str) and 0 < len(jti) <= ASSERTION_MAX_ID_LENGTH, "jti is missing or too long"),
            (not a.jti_reused, "jti was already used"),
        ]
        problem = next((msg for ok, msg in checks if not ok), None)
        if problem is None:
            assert isinstance(exp, int)
            start = iat if isinstance(iat, int) else t.now
            timing: list[tuple[bool, str]] = [
                (exp + ASSERTION_CLOCK_SKEW >= t.now, "assertion has expired"),
                (exp - start <= ASSERTION_MAX_LIFETIME, "assertion lifetime exceeds 5 minutes"),
                (not isinstance(iat, int) or iat <= t.now + ASSERTION_CLOCK_SKEW, "iat is in the future"),
                (not isinstance(nbf, int) or nbf <= t.now + ASSERTION_CLOCK_SKEW, "nbf is in the future"),
            ]
            problem = next((msg for ok, msg in timing if not ok), None)
    if problem is not None:
        return t.auth_failed(Rule.CLIENT_ASSERTION_INVALID, problem)
    t.note(Rule.CLIENT_ASSERTION_VALID, "private_key_jwt")
    return client


# --- client_credentials ----------------------------------------------------------------


def _client_credentials(req: TokenRequest, client: Client, domain: str, t: _Trace) -> Issued | Rejected:
    audience = _clean(req.audience)
    resource = _clean(req.resource)
    tenant = t.tenant
    if audience is not None:
        t.note(Rule.AUDIENCE_EXPLICIT, audience)
    elif resource is not None and tenant.resource_parameter_profile == "compatibility":
        # audience.resource_parameter (R17)
        audience = resource
        t.note(Rule.AUDIENCE_RESOURCE_PARAMETER, resource)
    elif tenant.allow_api1_non_global_clients:
        # audience.api_v1_legacy (R19): legacy tenants get an API v1 opaque token.
        t.note(Rule.AUDIENCE_API_V1, "no audience: legacy API v1 token, default audience ignored")
        return _issue_api_v1(client, domain, t)
    elif _clean(tenant.default_audience) is not None:
        audience = _clean(tenant.default_audience)
        assert audience is not None
        t.note(Rule.AUDIENCE_DEFAULT, audience)
    else:
        return t.reject(Rule.AUDIENCE_MISSING, ErrorCode.ACCESS_DENIED, "Non-global clients are not allowed access to APIv1")
    t.audience = audience
    api = t.index.apis.get(audience)
    if api is None:
        rule = Rule.AUDIENCE_SYSTEM_API_CANONICAL if _system_api_on_custom_domain(audience, t) else Rule.AUDIENCE_UNKNOWN
        return t.reject(rule, ErrorCode.ACCESS_DENIED, f"Service not enabled within domain: {audience}")
    t.note(Rule.AUDIENCE_MANAGEMENT_API if api.is_system else Rule.AUDIENCE_API, api.identifier)
    if api.client_policy == "deny_all":
        return t.no_grant(Rule.POLICY_CLIENT_DENY_ALL, client.client_id, audience, "the API denies all client access")
    grant = _find_grant(client, api, SubjectType.CLIENT, t)
    if isinstance(grant, Rejected):
        return grant
    granted = _granted_scopes(grant, api, t)
    requested = _split_scope(req.scope)
    scopes = granted
    if requested:
        missing = [s for s in requested if s not in granted]
        if missing:
            # scope.not_granted (R31)
            text = "Client has not been granted scopes: " + t.behaviour.missing_scope_separator.join(missing)
            return t.reject(Rule.SCOPE_NOT_GRANTED, ErrorCode.ACCESS_DENIED, text)
        if t.behaviour.client_credentials_scopes == "requested":
            scopes = tuple(s for s in granted if s in requested)
            t.note(Rule.SCOPE_REQUESTED_SUBSET_HONOURED, " ".join(scopes))
        elif set(requested) != set(granted):
            t.note(Rule.SCOPE_REQUESTED_SUBSET_IGNORED, "client credentials returns every granted scope")
    org = _cc_organization(req, client, grant, api, t)
    if isinstance(org, Rejected):
        return org
    quota = _quota(req, client, org, api, t)
    if isinstance(quota, Rejected):
        return quota
    outcome = _credentials_exchange(client, api, org, domain, requested, scopes, granted, t)
    if isinstance(outcome, Rejected):
        return outcome
    scopes, custom = outcome
    return _issue_jwt(
        client=client,
        api=api,
        subject=f"{client.client_id}@clients",
        scopes=scopes,
        openid=False,
        org=org,
        domain=domain,
        gty="client-credentials",
        permissions=scopes,
        custom=custom,
        headers=quota,
        t=t,
        user_flow=False,
    )


def _find_grant(client: Client, api: Api, subject: SubjectType, t: _Trace) -> ClientGrant | Rejected:
    """The client grant that lets ``client`` reach ``api`` (R24, R25, R28, R69)."""

    def refuse(rule: Rule, detail: str) -> Rejected:
        if subject is SubjectType.USER:
            # R69: user flows answer with the resource-server wording and no advice.
            text = f'Client "{client.client_id}" is not authorized to access resource server "{api.identifier}"'
            return t.reject(rule, ErrorCode.ACCESS_DENIED, text, detail=detail)
        return t.no_grant(rule, client.client_id, api.identifier, detail)

    if not client.is_first_party and api.is_system:
        return refuse(Rule.GRANT_THIRD_PARTY_SYSTEM_API, "third-party apps never get system APIs")
    grant = t.index.grant_for(client, api.identifier, subject)
    if grant is None:
        return refuse(Rule.GRANT_MISSING, f"no {subject} grant for this client and API")
    if grant.client_id is None:
        t.note(Rule.GRANT_DEFAULT_FOR_THIRD_PARTY, "default grant for third-party clients")
    else:
        t.note(Rule.GRANT_FOUND, f"{subject} grant")
    return grant


def _granted_scopes(grant: ClientGrant, api: Api, t: _Trace) -> tuple[str, ...]:
    if grant.allow_all_scopes:
        # scope.allow_all_scopes (R26): every scope the API defines now.
        t.note(Rule.SCOPE_ALL_API_SCOPES, f"{len(api.scopes)} API scopes")
        return api.scopes
    # scope.grant_list (R27, R29, R33): the grant's list, in its order, limited to scopes the
    # API still defines.
    defined = set(api.scopes)
    scopes = tuple(s for s in dict.fromkeys(grant.scope) if s in defined)
    t.note(Rule.SCOPE_GRANT_LIST, " ".join(scopes) or "(none)")
    return scopes


def _cc_organization(req: TokenRequest, client: Client, grant: ClientGrant, api: Api, t: _Trace) -> Organization | Rejected | None:
    """Machine-to-machine access for organizations (R34 to R42)."""
    value = _clean(req.organization)
    t.organization = value
    usage = grant.organization_usage
    if value is not None:
        if not t.tenant.organizations_for_m2m:
            return t.reject(
                Rule.ORG_FEATURE_UNAVAILABLE,
                ErrorCode.INVALID_REQUEST,
                "Organizations for machine-to-machine access are not enabled for this tenant",
            )
        org = _resolve_organization(value, t)
        if isinstance(org, Rejected):
            return org
        if usage is OrganizationUsage.DENY:
            return t.reject(
                Rule.ORG_USAGE_DENY,
                ErrorCode.ACCESS_DENIED,
                f'Client "{client.client_id}" is not allowed to use organizations with resource server "{api.identifier}".',
            )
    elif usage is OrganizationUsage.REQUIRE:
        default = client.default_organization
        if default is None or "client_credentials" not in default.flows:
            return t.reject(
                Rule.ORG_REQUIRED_MISSING,
                ErrorCode.ACCESS_DENIED,
                f'An organization is required to access resource server "{api.identifier}".',
            )
        org = t.index.organizations_by_id[default.organization_id]
        t.organization = org.id
        t.note(Rule.ORG_DEFAULT, org.id)
    else:
        t.note(Rule.ORG_NONE, f"organization_usage {usage}")
        return None
    # org.allowed / org.not_associated (R35): any organization, or only associated ones.
    # Third-party clients can never rely on allow_any_organization.
    if grant.allow_any_organization and client.is_first_party:
        t.note(Rule.ORG_ALLOWED, f"{org.id}: grant allows any organization")
        return org
    if (org.id, client.client_id, api.identifier) in t.index.org_associations:
        t.note(Rule.ORG_ALLOWED, f"{org.id}: grant associated with the organization")
        return org
    return t.reject(
        Rule.ORG_NOT_ASSOCIATED,
        ErrorCode.ACCESS_DENIED,
        f'Client "{client.client_id}" is not authorized to access resource server "{api.identifier}" on behalf of organization "{org.id}".',
    )


def _quota_header(quota: TokenQuota, hour: int, day: int, now: int) -> str:
    parts = []
    for bucket, limit, used, period in (("per_hour", quota.per_hour, hour, 3600), ("per_day", quota.per_day, day, 86400)):
        if limit is not None:
            parts.append(f"b={bucket};q={limit};r={max(limit - used - 1, 0)};t={period - now % period}")
    return ",".join(parts)


def _quota(req: TokenRequest, client: Client, org: Organization | None, api: Api, t: _Trace) -> tuple[tuple[str, str], ...] | Rejected:
    """quota.* (R43, R83): enforce per-client and per-organization token quotas."""
    if api.is_system:
        t.note(Rule.QUOTA_NOT_COUNTED, "Auth0 API audiences do not count toward the quota")
        return ()
    usage = req.quota_usage
    checks = [("Client", client.token_quota or t.tenant.default_token_quota, usage.client_hour, usage.client_day)]
    if org is not None:
        checks.append(
            ("Organization", org.token_quota or t.tenant.default_organization_token_quota, usage.organization_hour, usage.organization_day)
        )
    headers: list[tuple[str, str]] = []
    for who, quota, hour, day in checks:
        if quota is None or not quota.enforce:
            continue
        header = (f"Auth0-{who}-Quota-Limit", _quota_header(quota, hour, day, t.now))
        for limit, used, period in ((quota.per_hour, hour, 3600), (quota.per_day, day, 86400)):
            if limit is not None and used >= limit:
                reset = period - t.now % period
                return t.reject(
                    Rule.QUOTA_EXCEEDED,
                    ErrorCode.TOO_MANY_REQUESTS,
                    f"{who} quota exceeded",
                    headers=(
                        header,
                        ("X-RateLimit-Limit", str(limit)),
                        ("X-RateLimit-Remaining", "0"),
                        ("X-RateLimit-Reset", str(t.now + reset)),
                        ("Retry-After", str(reset)),
                    ),
                )
        headers.append(header)
        t.note(Rule.QUOTA_COUNTED, f"{who.lower()} quota: {header[1]}")
    return tuple(headers)


def _run_actions(
    actions: Sequence[Any], event: CredentialsExchangeEvent | PostLoginEvent, api_obj: ActionApi, trigger: str, t: _Trace
) -> tuple[str, str | None] | Rejected | None:
    """Run Actions in order until one denies (R74, R75): the denial, a failure, or None."""
    for number, action in enumerate(actions, 1):
        try:
            action(event, api_obj)
        except Exception as exc:  # noqa: BLE001 - user code; Auth0 fails the flow
            detail = f"{trigger} action {number} raised {type(exc).__name__}"
            return t.reject(Rule.ACTION_FAILED, ErrorCode.SERVER_ERROR, "A server error occurred.", detail=detail)
        t.note(Rule.ACTION_RAN, f"{trigger} action {number}")
        if api_obj.access.denial is not None:
            return api_obj.access.denial
    return None


def _credentials_exchange(
    client: Client,
    api: Api,
    org: Organization | None,
    domain: str,
    requested: tuple[str, ...],
    scopes: tuple[str, ...],
    granted: tuple[str, ...],
    t: _Trace,
) -> tuple[tuple[str, ...], dict[str, JsonValue]] | Rejected:
    """Run credentials-exchange Actions (R74 to R81)."""
    actions = t.tenant.credentials_exchange_actions
    if not actions:
        return scopes, {}
    api_obj = ActionApi.start(scopes)
    event = CredentialsExchangeEvent(
        client=_client_info(client),
        resource_server=api.identifier,
        hostname=domain,
        custom_domain=domain if domain != t.tenant.domain else None,
        tenant=t.tenant.domain,
        organization=_org_info(org),
        requested_scopes=requested,
        scopes=scopes,
    )
    outcome = _run_actions(actions, event, api_obj, "credentials-exchange", t)
    if isinstance(outcome, Rejected):
        return outcome
    if outcome is not None:
        code, reason = outcome
        # action.deny (R75): unknown codes are treated as server_error.
        error = ErrorCode(code) if code in DENY_STATUS else ErrorCode.SERVER_ERROR
        return t.reject(Rule.ACTION_DENY, error, reason or "", status=DENY_STATUS.get(code, 500))
    custom = _filter_claims(
        api_obj.access_token.claims,
        auth0_api=_is_auth0_api(api.identifier, t.tenant),
        custom_api=not api.is_system,
        scopes=(),
        t=t,
        token="access token",
    )
    if isinstance(custom, Rejected):
        return custom
    target = api_obj.transaction.target_scopes
    final = tuple(s for s in dict.fromkeys(target) if s in granted)
    if final != scopes:
        # action.target_scopes (R81): the target set, limited to the grant.
        t.note(Rule.ACTION_TARGET_SCOPES, " ".join(final) or "(none)")
    return final, custom


# --- the token ---------------------------------------------------------------------------


def _issue_api_v1(client: Client, domain: str, t: _Trace) -> Issued:
    t.note(Rule.FORMAT_OPAQUE, "API v1 token")
    t.note(Rule.LIFETIME_API_V1, f"{API_V1_LIFETIME} s")
    issuer = f"https://{domain}/"
    claims: dict[str, JsonValue] = {
        "iss": issuer,
        "sub": f"{client.client_id}@clients",
        "iat": t.now,
        "exp": t.now + API_V1_LIFETIME,
        "azp": client.client_id,
    }
    t.note(Rule.RESPONSE_SCOPE_OMITTED, "no scope in an API v1 token")
    return Issued(
        format=TokenFormat.OPAQUE,
        issuer=issuer,
        audience=None,
        scope=None,
        claims=claims,
        header=None,
        signing_key=None,
        expires_in=API_V1_LIFETIME,
        client_id=client.client_id,
        trace=tuple(t.reasons),
    )


def _issue_jwt(
    *,
    client: Client,
    api: Api,
    subject: str,
    scopes: tuple[str, ...],
    openid: bool,
    org: Organization | None,
    domain: str,
    gty: str | None,
    permissions: tuple[str, ...] | None,
    custom: dict[str, JsonValue],
    headers: tuple[tuple[str, str], ...],
    t: _Trace,
    user_flow: bool,
    refresh: RefreshGrant | None = None,
    id_token: dict[str, JsonValue] | None = None,
) -> Issued:
    """Build a JWT access token for ``api`` (R44 to R47, R50, R53 to R58, R61, R64, R65)."""
    t.note(Rule.FORMAT_JWT, f"audience is the API {api.identifier}")
    audience: str | tuple[str, ...]
    if openid and api.signing_alg is SigningAlg.HS256:
        audience = api.identifier
        t.note(Rule.AUD_HS256_SINGLE, "HS256 APIs never share a token with /userinfo")
    elif openid:
        audience = (api.identifier, t.tenant.userinfo_audience)
        t.note(Rule.AUD_ARRAY_WITH_USERINFO, "openid requested: the token is also valid at /userinfo")
    else:
        audience = api.identifier
        t.note(Rule.AUD_STRING, api.identifier)
    issuer = f"https://{domain}/"
    t.note(Rule.ISS_REQUEST_DOMAIN, issuer)
    rfc9068 = api.token_dialect in (TokenDialect.RFC9068_PROFILE, TokenDialect.RFC9068_PROFILE_AUTHZ)
    authz = api.token_dialect in (TokenDialect.ACCESS_TOKEN_AUTHZ, TokenDialect.RFC9068_PROFILE_AUTHZ)
    lifetime = api.token_lifetime
    t.note(Rule.LIFETIME_API, f"{lifetime} s")
    scope = " ".join(scopes)
    claims: dict[str, JsonValue] = {
        "iss": issuer,
        "sub": subject,
        "aud": list(audience) if isinstance(audience, tuple) else audience,
        "iat": t.now,
        "exp": t.now + lifetime,
    }
    if scopes or user_flow:
        claims["scope"] = scope
    else:
        # scope.empty (R32): no scope claim and no scope field when nothing is granted.
        t.note(Rule.SCOPE_EMPTY, "no scopes: the token has no scope claim")
    if org is not None:
        # org.* (R38): org_name only with the tenant flag.
        claims["org_id"] = org.id
        if t.tenant.allow_organization_name_in_authentication_api:
            claims["org_name"] = org.name
    if authz and permissions is not None:
        claims["permissions"] = list(permissions)
        t.note(Rule.CLAIMS_PERMISSIONS_USER if user_flow else Rule.CLAIMS_PERMISSIONS_M2M, f"{len(permissions)} permissions")
    if rfc9068:
        claims["client_id"] = client.client_id
        t.note(Rule.CLAIMS_RFC9068, "typ at+jwt, client_id instead of azp, jti, no gty")
    else:
        if gty is not None:
            claims["gty"] = gty
        claims["azp"] = client.client_id
        t.note(Rule.CLAIMS_USER if user_flow else Rule.CLAIMS_M2M, "Auth0 profile")
    for name, value in custom.items():
        claims.setdefault(name, value)
    if api.signing_alg is SigningAlg.HS256:
        t.note(Rule.SIGNING_API_SECRET, "HS256 with the API's signing secret")
    else:
        t.note(Rule.SIGNING_TENANT_KEY, f"{api.signing_alg} with the tenant key")
    if not scopes and not user_flow:
        t.note(Rule.RESPONSE_SCOPE_OMITTED, "the response has no scope field")
    return Issued(
        format=TokenFormat.JWT,
        issuer=issuer,
        audience=audience,
        scope=scope if (scopes or user_flow) else None,
        claims=claims,
        header=_HEADERS[api.signing_alg, "at+jwt" if rfc9068 else "JWT"],
        signing_key="api_secret" if api.signing_alg is SigningAlg.HS256 else "tenant",
        needs_jti=rfc9068,
        expires_in=lifetime,
        client_id=client.client_id,
        api=api.identifier,
        refresh=refresh,
        id_token=id_token,
        headers=headers,
        trace=tuple(t.reasons),
    )


# --- user flows: the code exchange and refresh ------------------------------------------


def _pkce_ok(grant: AuthorizationGrant, verifier: str) -> bool:
    if grant.code_challenge_method == "S256":
        digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
        expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    else:
        expected = verifier
    return hmac.compare_digest(expected.encode("utf-8", "surrogatepass"), (grant.code_challenge or "").encode("utf-8", "surrogatepass"))


def _authorization_code(req: TokenRequest, client: Client, domain: str, t: _Trace) -> Issued | Rejected:
    if req.code is None or not req.code.get_secret_value():
        return t.reject(Rule.PARAMETER_MISSING, ErrorCode.INVALID_REQUEST, "Missing required parameter: code")
    grant = req.code_grant
    invalid = "Invalid authorization code"
    if grant is None:
        return t.reject(Rule.CODE_INVALID, ErrorCode.INVALID_GRANT, invalid, detail="unknown, used or tampered code")
    if grant.client_id != client.client_id:
        return t.reject(Rule.CODE_INVALID, ErrorCode.INVALID_GRANT, invalid, detail="code was issued to another client")
    if t.now > grant.issued_at + t.behaviour.authorization_code_lifetime:
        return t.reject(Rule.CODE_INVALID, ErrorCode.INVALID_GRANT, invalid, detail="code has expired")
    if grant.redirect_uri is not None and _clean(req.redirect_uri) != grant.redirect_uri:
        return t.reject(Rule.CODE_REDIRECT_MISMATCH, ErrorCode.INVALID_GRANT, "Invalid redirect_uri")
    verifier = _clean(req.code_verifier)
    if grant.code_challenge is not None:
        if verifier is None or not _pkce_ok(grant, verifier):
            return t.reject(Rule.CODE_PKCE_FAILED, ErrorCode.INVALID_GRANT, "Failed to verify code verifier")
    elif client.auth_method is AuthMethod.NONE:
        return t.reject(Rule.CODE_PKCE_REQUIRED, ErrorCode.INVALID_REQUEST, "Missing required parameter: code_verifier")
    t.note(Rule.CODE_VERIFIED, "code, redirect_uri and PKCE check out")
    user = t.index.users.get(grant.user_id)
    if user is None:
        return t.reject(Rule.CODE_INVALID, ErrorCode.INVALID_GRANT, invalid, detail="the user no longer exists")
    if not _audience_still_exists(grant.audience, t):
        return t.reject(Rule.CODE_INVALID, ErrorCode.INVALID_GRANT, invalid, detail="the API no longer exists")
    return _issue_user_token(
        client=client,
        user=user,
        audience=grant.audience,
        scopes=grant.scope,
        organization_id=grant.organization_id,
        domain=domain,
        gty=None,
        access_claims=grant.access_claims,
        id_claims=grant.id_claims,
        nonce=grant.nonce,
        may_refresh=True,
        t=t,
    )


def _audience_still_exists(audience: str | None, t: _Trace) -> bool:
    # A code or refresh token for an API deleted since it was issued is no longer good.
    return audience is None or audience in t.index.apis


def _refresh_token(req: TokenRequest, client: Client, domain: str, t: _Trace) -> Issued | Rejected:
    if req.refresh_token is None or not req.refresh_token.get_secret_value():
        return t.reject(Rule.PARAMETER_MISSING, ErrorCode.INVALID_REQUEST, "Missing required parameter: refresh_token")
    grant = req.refresh_grant
    user = t.index.users.get(grant.user_id) if grant is not None else None
    if grant is None or grant.client_id != client.client_id or user is None or not _audience_still_exists(grant.audience, t):
        # refresh.invalid (R73)
        if t.behaviour.refresh_error == "legacy":
            return t.reject(Rule.REFRESH_INVALID, ErrorCode.ACCESS_DENIED, "Unknown or invalid refresh token")
        return t.reject(Rule.REFRESH_INVALID, ErrorCode.INVALID_GRANT, "Unknown or invalid refresh token.")
    scopes = grant.scope
    requested = _split_scope(req.scope)
    if requested:
        beyond = [s for s in requested if s not in grant.scope]
        if beyond:
            return t.reject(
                Rule.SCOPE_REFRESH_EXCEEDS,
                ErrorCode.INVALID_SCOPE,
                "The requested scope exceeds the scope granted by the resource owner",
                detail=f"not in the original grant: {' '.join(beyond)}",
            )
        scopes = tuple(s for s in grant.scope if s in requested)
        t.note(Rule.SCOPE_REFRESH_NARROWED, " ".join(scopes))
    return _issue_user_token(
        client=client,
        user=user,
        audience=grant.audience,
        scopes=scopes,
        organization_id=grant.organization_id,
        domain=domain,
        gty="refresh_token",
        access_claims=grant.access_claims,
        id_claims=grant.id_claims,
        nonce=None,
        may_refresh=False,
        t=t,
    )


def _issue_user_token(
    *,
    client: Client,
    user: User,
    audience: str | None,
    scopes: tuple[str, ...],
    organization_id: str | None,
    domain: str,
    gty: str | None,
    access_claims: dict[str, JsonValue],
    id_claims: dict[str, JsonValue],
    nonce: str | None,
    may_refresh: bool,
    t: _Trace,
) -> Issued | Rejected:
    org = t.index.organizations_by_id.get(organization_id) if organization_id is not None else None
    api = t.index.apis.get(audience) if audience is not None else None
    refresh: RefreshGrant | None = None
    if may_refresh and "offline_access" in scopes:
        # refresh.issued (R66): offline_access made it through the scope rules.
        refresh = RefreshGrant(
            client_id=client.client_id,
            user_id=user.user_id,
            audience=audience,
            scope=scopes,
            organization_id=organization_id,
            domain=domain,
            access_claims=access_claims,
            id_claims=id_claims,
        )
        t.note(Rule.REFRESH_ISSUED, "offline_access granted")
    elif may_refresh:
        t.note(Rule.REFRESH_OMITTED, "no offline_access: no refresh token")
    id_token = _id_token(client, user, scopes, org, domain, nonce, id_claims, t) if "openid" in scopes else None
    if api is None:
        return _issue_userinfo(client, user, scopes, domain, refresh, id_token, t)
    permissions = t.index.user_permissions(user, api.identifier, organization_id) if api.enforce_policies else None
    return _issue_jwt(
        client=client,
        api=api,
        subject=user.user_id,
        scopes=scopes,
        openid="openid" in scopes,
        org=org,
        domain=domain,
        gty=gty,
        permissions=permissions,
        custom=access_claims,
        headers=(),
        t=t,
        user_flow=True,
        refresh=refresh,
        id_token=id_token,
    )


def _issue_userinfo(
    client: Client,
    user: User,
    scopes: tuple[str, ...],
    domain: str,
    refresh: RefreshGrant | None,
    id_token: dict[str, JsonValue] | None,
    t: _Trace,
) -> Issued:
    # format.opaque (R20, R44, R48): no API audience → an opaque token for /userinfo only.
    t.note(Rule.FORMAT_OPAQUE, "audience is /userinfo")
    t.note(Rule.AUD_STRING, t.tenant.userinfo_audience)
    issuer = f"https://{domain}/"
    t.note(Rule.ISS_REQUEST_DOMAIN, issuer)
    t.note(Rule.LIFETIME_USERINFO, f"{USERINFO_LIFETIME} s, not configurable")
    scope = " ".join(scopes)
    claims: dict[str, JsonValue] = {
        "iss": issuer,
        "sub": user.user_id,
        "aud": t.tenant.userinfo_audience,
        "iat": t.now,
        "exp": t.now + USERINFO_LIFETIME,
        "scope": scope,
        "azp": client.client_id,
    }
    return Issued(
        format=TokenFormat.OPAQUE,
        issuer=issuer,
        audience=t.tenant.userinfo_audience,
        scope=scope,
        claims=claims,
        header=None,
        signing_key=None,
        expires_in=USERINFO_LIFETIME,
        client_id=client.client_id,
        refresh=refresh,
        id_token=id_token,
        trace=tuple(t.reasons),
    )


def _id_token(
    client: Client,
    user: User,
    scopes: tuple[str, ...],
    org: Organization | None,
    domain: str,
    nonce: str | None,
    id_claims: dict[str, JsonValue],
    t: _Trace,
) -> dict[str, JsonValue]:
    """id_token.issued (R71): profile claims only for the scopes that release them."""
    lifetime = client.id_token_lifetime or t.behaviour.id_token_lifetime
    claims: dict[str, JsonValue] = {}
    released = [name for scope in scopes for name in OIDC_SCOPE_CLAIMS.get(scope, ())]
    for name in released:
        if name in user.profile:
            claims[name] = user.profile[name]
    withheld = [name for name in user.profile if name not in released and name in OIDC_CLAIM_SCOPE]
    if withheld:
        t.note(Rule.CLAIMS_OIDC_FILTERED, f"id token: withheld {', '.join(withheld)}")
    claims.update(
        {
            "iss": f"https://{domain}/",
            "sub": user.user_id,
            "aud": client.client_id,
            "iat": t.now,
            "exp": t.now + lifetime,
        }
    )
    if nonce is not None:
        claims["nonce"] = nonce
    if org is not None:
        claims["org_id"] = org.id
        if t.tenant.allow_organization_name_in_authentication_api:
            claims["org_name"] = org.name
    for name, value in id_claims.items():
        claims.setdefault(name, value)
    t.note(Rule.ID_TOKEN_ISSUED, f"{lifetime} s")
    return claims


# ---------------------------------------------------------------------------------------
# GET /authorize
# ---------------------------------------------------------------------------------------


def _verifiable(redirect_uri: str) -> bool:
    # R70: localhost callbacks can never be verified as belonging to a first-party app.
    host = urlsplit(redirect_uri).hostname or ""
    return host not in ("localhost", "127.0.0.1", "::1") and not host.endswith(".localhost")


def _authorize(req: AuthorizeRequest, t: _Trace) -> Authorized | Rejected:
    domain = _resolve_domain(req.domain, t)
    if isinstance(domain, Rejected):
        return domain
    client_id = _clean(req.client_id)
    if client_id is None:
        return t.reject(Rule.CLIENT_ID_MISSING, ErrorCode.INVALID_REQUEST, "Missing required parameter: client_id")
    t.client_id = client_id
    client = t.index.clients.get(client_id)
    if client is None:
        return t.reject(Rule.CLIENT_UNKNOWN, ErrorCode.INVALID_REQUEST, f"Unknown client: {client_id}", status=400)
    redirect_uri = _clean(req.redirect_uri) or (client.callbacks[0] if client.callbacks else None)
    if redirect_uri is None:
        return t.reject(Rule.PARAMETER_MISSING, ErrorCode.INVALID_REQUEST, "Missing required parameter: redirect_uri")
    if redirect_uri not in client.callbacks:
        return t.reject(
            Rule.AUTHORIZE_REDIRECT_MISMATCH,
            ErrorCode.INVALID_REQUEST,
            f"Callback URL mismatch. {redirect_uri} is not in the list of allowed callback URLs",
        )
    # From here on, errors go back to the application's callback.
    t.redirect_uri, t.state = redirect_uri, req.state
    response_type = _clean(req.response_type)
    if response_type is None:
        return t.reject(Rule.PARAMETER_MISSING, ErrorCode.INVALID_REQUEST, "Missing required parameter: response_type")
    if response_type != "code":
        return t.reject(Rule.AUTHORIZE_RESPONSE_TYPE, ErrorCode.UNSUPPORTED_RESPONSE_TYPE, f"Unsupported response type: {response_type}")
    if "authorization_code" not in client.effective_grant_types:
        return t.reject(
            Rule.CLIENT_GRANT_TYPE_NOT_ALLOWED,
            ErrorCode.UNAUTHORIZED_CLIENT,
            "Grant type 'authorization_code' not allowed for the client.",
            error_uri=GRANT_TYPES_URI,
        )
    t.note(Rule.CLIENT_GRANT_TYPE_ALLOWED, "authorization_code")
    method = _clean(req.code_challenge_method)
    challenge = _clean(req.code_challenge)
    if challenge is not None and method not in (None, "S256", "plain"):
        return t.reject(Rule.PARAMETER_MALFORMED, ErrorCode.INVALID_REQUEST, "Unsupported code_challenge_method")
    api = _authorize_audience(req, t)
    if isinstance(api, Rejected):
        return api
    org = _authorize_organization(req, client, t)
    if isinstance(org, Rejected):
        return org
    user = t.index.users.get(req.user_id) if req.user_id is not None else None
    if user is None:
        return t.reject(Rule.AUTHORIZE_LOGIN_REQUIRED, ErrorCode.LOGIN_REQUIRED, "Login required", detail="no authenticated user")
    if org is not None and (org.id, user.user_id) not in t.index.memberships:
        return t.reject(Rule.ORG_USER_NOT_MEMBER, ErrorCode.ACCESS_DENIED, f"user {user.user_id} is not part of the {org.id} organization")
    scopes = _user_scopes(req, client, user, api, org, t)
    if isinstance(scopes, Rejected):
        return scopes
    consent = _consent(req, client, user, api, org, scopes, redirect_uri, t)
    if consent is not None:
        return consent
    outcome = _post_login(client, user, api, org, domain, scopes, t)
    if isinstance(outcome, Rejected):
        return outcome
    scopes, access_claims, id_claims = outcome
    grant = AuthorizationGrant(
        client_id=client.client_id,
        user_id=user.user_id,
        audience=api.identifier if api is not None else None,
        scope=scopes,
        organization_id=org.id if org is not None else None,
        redirect_uri=redirect_uri,
        code_challenge=challenge,
        code_challenge_method=("S256" if method == "S256" else "plain") if challenge is not None else None,
        nonce=_clean(req.nonce),
        domain=domain,
        issued_at=t.now,
        access_claims=access_claims,
        id_claims=id_claims,
    )
    t.note(Rule.AUTHORIZE_CODE_ISSUED, f"code for {' '.join(scopes) or '(no scopes)'}")
    return Authorized(grant=grant, redirect_uri=redirect_uri, state=req.state, trace=tuple(t.reasons))


def _authorize_audience(req: AuthorizeRequest, t: _Trace) -> Api | Rejected | None:
    audience = _clean(req.audience)
    resource = _clean(req.resource)
    tenant = t.tenant
    if audience is not None:
        t.note(Rule.AUDIENCE_EXPLICIT, audience)
    elif resource is not None and tenant.resource_parameter_profile == "compatibility":
        # audience.resource_parameter (R17): RFC 8707's resource stands in for audience.
        audience = resource
        t.note(Rule.AUDIENCE_RESOURCE_PARAMETER, resource)
    elif _clean(tenant.default_audience) is not None:
        audience = _clean(tenant.default_audience)
        t.note(Rule.AUDIENCE_DEFAULT, f"{audience}")
    if audience is None or audience == tenant.userinfo_audience:
        t.note(Rule.AUDIENCE_USERINFO, "the token will be for /userinfo only")
        return None
    t.audience = audience
    api = t.index.apis.get(audience)
    if api is None:
        rule = Rule.AUDIENCE_SYSTEM_API_CANONICAL if _system_api_on_custom_domain(audience, t) else Rule.AUDIENCE_UNKNOWN_AUTHORIZE
        return t.reject(rule, ErrorCode.ACCESS_DENIED, f"Service not found: {audience}")
    t.note(Rule.AUDIENCE_MANAGEMENT_API if api.is_system else Rule.AUDIENCE_API, api.identifier)
    return api


def _authorize_organization(req: AuthorizeRequest, client: Client, t: _Trace) -> Organization | Rejected | None:
    value = _clean(req.organization)
    t.organization = value
    if value is None:
        if client.organization_usage is OrganizationUsage.REQUIRE:
            # org.client_requires_organization (R40)
            return t.reject(Rule.ORG_CLIENT_REQUIRES, ErrorCode.INVALID_REQUEST, "parameter organization is required for this client")
        t.note(Rule.ORG_NONE, "no organization")
        return None
    org = _resolve_organization(value, t)
    if isinstance(org, Rejected):
        return org
    if client.organization_usage is OrganizationUsage.DENY:
        return t.reject(Rule.ORG_USAGE_DENY, ErrorCode.INVALID_REQUEST, "parameter organization is not allowed for this client")
    t.note(Rule.ORG_ALLOWED, org.id)
    return org


def _user_scopes(
    req: AuthorizeRequest, client: Client, user: User, api: Api | None, org: Organization | None, t: _Trace
) -> tuple[str, ...] | Rejected:
    """Scopes of a user-delegated token (R66 to R69, R72)."""
    requested = _split_scope(req.scope)
    oidc = tuple(s for s in requested if s in OIDC_SCOPES)
    if oidc:
        t.note(Rule.SCOPE_OIDC_PASSTHROUGH, " ".join(oidc))
    api_scopes: tuple[str, ...] = ()
    if api is not None:
        asked = tuple(s for s in requested if s not in OIDC_SCOPES)
        if api.user_policy is UserPolicy.DENY_ALL:
            return t.reject(
                Rule.POLICY_USER_DENY_ALL,
                ErrorCode.ACCESS_DENIED,
                f'Client "{client.client_id}" is not authorized to access resource server "{api.identifier}"',
            )
        if api.user_policy is UserPolicy.REQUIRE_CLIENT_GRANT or not client.is_first_party:
            if api.user_policy is UserPolicy.REQUIRE_CLIENT_GRANT:
                t.note(Rule.POLICY_USER_REQUIRE_GRANT, "user access needs a user client grant")
            grant = _find_grant(client, api, SubjectType.USER, t)
            if isinstance(grant, Rejected):
                return grant
            allowed = set(api.scopes) if grant.allow_all_scopes else set(grant.scope)
            asked = tuple(s for s in asked if s in allowed)
            t.note(Rule.SCOPE_USER_GRANT, " ".join(asked) or "(none)")
        else:
            t.note(Rule.POLICY_USER_ALLOW_ALL, "any first-party application may ask")
        if api.enforce_policies:
            held = set(t.index.user_permissions(user, api.identifier, org.id if org is not None else None))
            api_scopes = tuple(s for s in asked if s in held)
            t.note(Rule.SCOPE_RBAC, " ".join(api_scopes) or "(none)")
        else:
            defined = set(api.scopes)
            keep = t.behaviour.keep_undefined_user_scopes
            api_scopes = tuple(s for s in asked if keep or s in defined)
            t.note(Rule.SCOPE_NO_RBAC, " ".join(api_scopes) or "(none)")
    scopes = oidc + api_scopes
    if "offline_access" in scopes:
        refresh_ok = "refresh_token" in client.effective_grant_types and (api is None or api.allow_offline_access)
        if not refresh_ok:
            scopes = tuple(s for s in scopes if s != "offline_access")
            t.note(Rule.SCOPE_OFFLINE_ACCESS_DROPPED, "the API or client does not allow offline access")
    return scopes


def _consent(
    req: AuthorizeRequest,
    client: Client,
    user: User,
    api: Api | None,
    org: Organization | None,
    scopes: tuple[str, ...],
    redirect_uri: str,
    t: _Trace,
) -> Rejected | None:
    """consent.* (R70): None when the flow may go on."""
    prompt = set(_split_scope(req.prompt))
    skip = client.is_first_party and (api is None or (api.skip_consent_for_verifiable_first_party_clients and _verifiable(redirect_uri)))
    if skip and "consent" not in prompt:
        t.note(Rule.CONSENT_SKIPPED, "first-party application")
        return None
    audience = api.identifier if api is not None else t.tenant.userinfo_audience
    org_id = org.id if org is not None else None
    stored = any(
        c.client_id == client.client_id and c.audience == audience and c.organization_id == org_id and set(scopes) <= set(c.scopes)
        for c in user.consents
    )
    if stored and "consent" not in prompt:
        t.note(Rule.CONSENT_STORED, "the user consented before")
        return None
    if "none" in prompt or req.consent is None:
        return t.reject(Rule.CONSENT_REQUIRED, ErrorCode.CONSENT_REQUIRED, "Consent required")
    if req.consent:
        t.note(Rule.CONSENT_GIVEN, "the user accepted the consent prompt")
        return None
    return t.reject(Rule.CONSENT_DENIED, ErrorCode.ACCESS_DENIED, "User did not authorize the request")


def _post_login(
    client: Client, user: User, api: Api | None, org: Organization | None, domain: str, scopes: tuple[str, ...], t: _Trace
) -> tuple[tuple[str, ...], dict[str, JsonValue], dict[str, JsonValue]] | Rejected:
    actions = t.tenant.post_login_actions
    if not actions:
        return scopes, {}, {}
    api_obj = ActionApi.start(scopes)
    event = PostLoginEvent(
        client=_client_info(client),
        user_id=user.user_id,
        user_profile=MappingProxyType(dict(user.profile)),
        resource_server=api.identifier if api is not None else None,
        hostname=domain,
        organization=_org_info(org),
        requested_scopes=scopes,
        scopes=scopes,
    )
    outcome = _run_actions(actions, event, api_obj, "post-login", t)
    if isinstance(outcome, Rejected):
        return outcome
    if outcome is not None:
        return t.reject(Rule.ACTION_DENY, ErrorCode.ACCESS_DENIED, outcome[1] or "")
    final = [s for s in scopes if s not in api_obj.access_token.removed_scopes]
    final += [s for s in api_obj.access_token.added_scopes if s not in final]
    if tuple(final) != scopes:
        t.note(Rule.ACTION_TARGET_SCOPES, " ".join(final) or "(none)")
    auth0_api = api is not None and _is_auth0_api(api.identifier, t.tenant)
    custom_api = api is not None and not api.is_system
    access = _filter_claims(
        api_obj.access_token.claims, auth0_api=auth0_api, custom_api=custom_api, scopes=final, t=t, token="access token"
    )
    if isinstance(access, Rejected):
        return access
    id_claims = _filter_claims(api_obj.id_token.claims, auth0_api=False, custom_api=False, scopes=final, t=t, token="id token")
    if isinstance(id_claims, Rejected):
        return id_claims
    return tuple(final), access, id_claims


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
# The resource server's side
# ---------------------------------------------------------------------------------------


def validate_access_token(token: PresentedToken, *, audience: str, domain: str, tenant: Tenant, now: int) -> Accepted | Rejected:
    """Would ``audience``, called through ``domain``, accept this decoded token at ``now``?

    ``token`` is what a resource server holds after checking the signature: header and
    claims. Rejections are ``invalid_token`` (401) with the rule that failed.
    """
    t = _Trace(tenant, now)
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
    issuers = {f"https://{d}/" for d in t.index.domains}
    iss = claims.get("iss")
    if iss not in issuers:
        return t.reject(Rule.VALIDATE_ISSUER, ErrorCode.INVALID_TOKEN, invalid, detail="iss is not a domain of this tenant")
    aud = claims.get("aud")
    auds = aud if isinstance(aud, list) else [aud]
    if audience not in auds:
        return t.reject(Rule.VALIDATE_AUDIENCE, ErrorCode.INVALID_TOKEN, invalid, detail=f"aud does not contain {audience}")
    exp, nbf = claims.get("exp"), claims.get("nbf")
    if not isinstance(exp, int) or exp <= now:
        return t.reject(Rule.VALIDATE_EXPIRY, ErrorCode.INVALID_TOKEN, invalid, detail="exp is missing or past")
    if isinstance(nbf, int) and nbf > now:
        return t.reject(Rule.VALIDATE_NOT_BEFORE, ErrorCode.INVALID_TOKEN, invalid, detail="nbf is in the future")
    if audience == tenant.management_api_identifier:
        called = _host_name(domain)
        if iss != f"https://{called}/":
            # validate.management_api_domain_binding (seed, R51)
            return t.reject(
                Rule.VALIDATE_MANAGEMENT_DOMAIN,
                ErrorCode.INVALID_TOKEN,
                invalid,
                detail="a Management API token is valid only through the domain that issued it",
            )
    t.note(Rule.VALIDATE_ACCEPTED, f"{audience} accepts the token")
    return Accepted(trace=tuple(t.reasons))

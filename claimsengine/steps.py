"""Steps shared by every flow: the trace, the domain, client authentication, the audience,
client grants, Actions and the claims they set.

Each rule here is written once; the grant handlers in ``claimsengine.grants`` and the
``/authorize`` flow in ``claimsengine.engine`` call these steps.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from pydantic import JsonValue, SecretStr

from claimsengine.actions import ActionApi, ClientInfo, CredentialsExchangeEvent, OrganizationInfo, PostLoginEvent
from claimsengine.auth0 import (
    CURRENT_USER_SCOPES,
    CUSTOM_CLAIMS_LIMIT_BYTES,
    DELETE_CURRENT_USER_SCOPE,
    FORBIDDEN_NAMESPACE_HOSTS,
    MFA_API_LIFETIME,
    OIDC_CLAIM_SCOPE,
    OIDC_SCOPES,
    RESTRICTED_CLAIMS,
)
from claimsengine.model import (
    Api,
    AuthMethod,
    Behaviour,
    Client,
    ClientGrant,
    Issued,
    MfaGrant,
    Organization,
    OrganizationUsage,
    Reason,
    Rejected,
    SubjectType,
    Tenant,
    TenantIndex,
    TokenRequest,
    User,
    UserPolicy,
    issuer,
    new_reason,
    trusted,
)
from claimsengine.rules import STATUS, ErrorCode, Rule

__all__ = [
    "ASSERTION_CLOCK_SKEW",
    "ASSERTION_MAX_LIFETIME",
    "ASSERTION_TYPE",
    "GRANT_TYPES_URI",
    "ApiFacts",
    "ClientFacts",
    "GrantFacts",
    "HostFacts",
    "NoAudience",
    "Trace",
    "api_facts",
    "api_for",
    "audience_still_exists",
    "authenticate",
    "check_membership",
    "clean",
    "client_facts",
    "client_info",
    "compiled_reason",
    "consumes_code",
    "filter_claims",
    "find_grant",
    "grant_facts",
    "grant_scopes",
    "granted_scopes",
    "host_address",
    "host_name",
    "is_auth0_api",
    "mfa_login",
    "org_info",
    "parameter",
    "post_login",
    "repeated_parameters",
    "requested_audience",
    "resolve_domain",
    "resolve_organization",
    "run_actions",
    "served_domain",
    "session_sid",
    "split_scope",
    "third_party_oidc",
    "user_organization",
    "user_scopes",
    "well_formed",
]

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
GRANT_TYPES_URI = "https://auth0.com/docs/clients/client-grant-types"
# R9 limits on a client assertion.
ASSERTION_MAX_BYTES = 2048
ASSERTION_MAX_LIFETIME = 300
ASSERTION_CLOCK_SKEW = 10
ASSERTION_MAX_ID_LENGTH = 64
ASSERTION_MAX_ALG_LENGTH = 16


def well_formed(text: str) -> str:
    """``text`` with lone surrogates (a JSON body may carry ``"\\ud800"``) replaced by U+FFFD,
    so every text a decision echoes can be encoded as UTF-8 (core.total)."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


class Trace:
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

    def note(self, rule: Rule, detail: str = "", ref: str = "") -> None:
        """Record that ``rule`` applied; ``ref`` names the configuration it consulted."""
        self.reasons.append(new_reason(rule, detail if detail.isascii() else well_formed(detail), ref))

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
        ref: str = "",
        mfa: MfaGrant | None = None,
    ) -> Rejected:
        self.note(rule, detail or description, ref)
        override = self.behaviour.error_overrides.get(rule)
        if override is not None:
            if override.error is not None and override.error is not code:
                code, status = override.error, None
            if override.error_description is not None:
                names = {"client_id": self.client_id, "audience": self.audience, "organization": self.organization}
                description = override.error_description.format(**{k: v or "" for k, v in names.items()})
            if override.status is not None:
                status = override.status
        return trusted(
            Rejected,
            error=code,
            error_description=description if description.isascii() else well_formed(description),
            status=STATUS[code] if status is None else status,
            error_uri=error_uri,
            redirect_uri=self.redirect_uri,
            state=self.state,
            headers=headers,
            mfa=mfa,
            rejected_by=rule,
            trace=tuple(self.reasons),
        )

    def auth_failed(self, rule: Rule, detail: str, ref: str = "") -> Rejected:
        # R8: one answer for every client-authentication failure, so a caller cannot tell an
        # unknown client from a wrong secret; the trace says which it was.
        if self.behaviour.client_auth_error == "documented":
            return self.reject(rule, ErrorCode.INVALID_CLIENT, "Client authentication failed", detail=detail, ref=ref)
        return self.reject(rule, ErrorCode.ACCESS_DENIED, "Unauthorized", detail=detail, status=401, ref=ref)

    def no_grant(self, rule: Rule, client_id: str, audience: str, detail: str, ref: str = "") -> Rejected:
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
        return self.reject(rule, ErrorCode.ACCESS_DENIED, text, detail=detail, ref=ref)


def compiled_reason(rule: Rule, detail: str, ref: str = "") -> Reason:
    """A trace entry compiled once per tenant: the same value :meth:`Trace.note` records. The
    hot path appends such entries to ``Trace.reasons`` itself (:func:`client_facts` and the like)."""
    return new_reason(rule, detail if detail.isascii() else well_formed(detail), ref)


# --- what a request needs that does not depend on it, compiled once per tenant ------------


@dataclass(frozen=True, slots=True)
class ClientFacts:
    """A client's authentication facts and trace entries (R3, R4, R13, R14)."""

    ref: str
    method: AuthMethod
    secrets: tuple[bytes, ...] = field(repr=False)
    secret_valid: Mapping[AuthMethod, Reason]
    grant_type_allowed: Mapping[str, Reason]


def client_facts(client: Client, t: Trace) -> ClientFacts:
    """The compiled facts of a client of ``t``'s tenant."""
    cache = t.index.client_facts
    facts = cache.get(client.client_id)
    if facts is None:
        ref = t.index.ref(client)
        secret_methods = (AuthMethod.CLIENT_SECRET_POST, AuthMethod.CLIENT_SECRET_BASIC)
        facts = ClientFacts(
            ref=ref,
            method=client.auth_method,
            secrets=tuple(s.get_secret_value().encode("utf-8", "surrogatepass") for s in client.client_secrets),
            secret_valid={m: compiled_reason(Rule.CLIENT_SECRET_VALID, f"{m}", ref) for m in secret_methods},
            grant_type_allowed={g: compiled_reason(Rule.CLIENT_GRANT_TYPE_ALLOWED, g, ref) for g in client.effective_grant_types},
        )
        cache[client.client_id] = facts
    return facts


@dataclass(frozen=True, slots=True)
class ApiFacts:
    """An API's trace entries when a request names it (R15, R16, R18)."""

    api: Api
    ref: str
    explicit: Reason
    found: Reason


def api_facts(api: Api, t: Trace) -> ApiFacts:
    """The compiled facts of an API of ``t``'s tenant (keyed by identity: the built-in MFA API
    and a configured API may share an identifier)."""
    cache = t.index.api_facts
    facts = cache.get(api.identifier)
    if facts is None or facts.api is not api:
        ref = t.index.ref(api)
        rule = Rule.AUDIENCE_MANAGEMENT_API if api.is_system else Rule.AUDIENCE_API
        facts = ApiFacts(api, ref, compiled_reason(Rule.AUDIENCE_EXPLICIT, api.identifier), compiled_reason(rule, api.identifier, ref))
        cache[api.identifier] = facts
    return facts


@dataclass(frozen=True, slots=True)
class GrantFacts:
    """A client grant's scopes and trace entries (R24 to R29, R33, R34)."""

    grant: ClientGrant
    api: Api
    ref: str
    found: Reason
    scopes: tuple[str, ...]
    scope_set: frozenset[str]
    scope_note: Reason
    org_none: Reason


def grant_facts(grant: ClientGrant, api: Api, t: Trace) -> GrantFacts:
    """The compiled facts of a client grant for ``api`` (the API its audience names)."""
    cache = t.index.grant_facts
    facts = cache.get(id(grant))
    if facts is None or facts.grant is not grant or facts.api is not api:
        ref = t.index.ref(grant)
        if grant.client_id is None:
            found = compiled_reason(Rule.GRANT_DEFAULT_FOR_THIRD_PARTY, "default grant for third-party clients", ref)
        else:
            found = compiled_reason(Rule.GRANT_FOUND, f"{grant.subject_type} grant", ref)
        scopes = grant_scopes(grant, api, t.behaviour)
        if grant.allow_all_scopes:
            # scope.allow_all_scopes (R26)
            scope_note = compiled_reason(Rule.SCOPE_ALL_API_SCOPES, f"{len(api.scopes)} API scopes", ref)
        else:
            # scope.grant_list (R27, R29, R33)
            scope_note = compiled_reason(Rule.SCOPE_GRANT_LIST, " ".join(scopes) or "(none)", ref)
        org_none = compiled_reason(Rule.ORG_NONE, f"organization_usage {grant.organization_usage}", ref)
        facts = GrantFacts(grant, api, ref, found, scopes, frozenset(scopes), scope_note, org_none)
        cache[id(grant)] = facts
    return facts


@dataclass(frozen=True, slots=True)
class HostFacts:
    """How a Host header resolves (R50, R52, R95): the domain it is served as, and the entry."""

    served: str
    reason: Reason


# Host headers are the caller's: remember this many distinct ones at most per tenant.
HOST_CACHE_LIMIT = 1024


def consumes_code(decision: Issued | Rejected, behaviour: Behaviour) -> bool:
    """Whether a code exchange used the code up: an issued token does, and so does a failed PKCE
    verification unless ``behaviour.pkce_failure_consumes_code`` is off (issue 8, item 9: RFC 6749
    section 10.5 wants codes used once; Auth0 does not say). Adapters record the code as used."""
    if isinstance(decision, Issued):
        return True
    return decision.rejected_by is Rule.CODE_PKCE_FAILED and behaviour.pkce_failure_consumes_code


def clean(value: str | None) -> str | None:
    """Empty and blank parameters count as absent, as SDKs send ``"organization": ""``."""
    if value is None:
        return None
    value = value.strip()
    return value or None


_NAMED = frozenset(TokenRequest.model_fields)


def parameter(req: TokenRequest, name: str) -> str | None:
    """The value of the wire parameter ``name``: a named field of the request, else one of
    ``req.parameters`` (the parameters a grant declares beyond the named fields)."""
    value = getattr(req, name) if name in _NAMED else req.parameters.get(name)
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    return value if isinstance(value, str) else None


def repeated_parameters(repeated: tuple[str, ...], t: Trace) -> Rejected | None:
    """request.parameter_repeated: the first value of a repeated parameter counts, or the
    request is refused, as ``behaviour.repeated_parameters`` says; form and JSON alike."""
    if not repeated:
        return None
    names = sorted(repeated)
    if t.behaviour.repeated_parameters == "reject":
        return t.reject(
            Rule.PARAMETER_REPEATED,
            ErrorCode.INVALID_REQUEST,
            f"Parameter sent more than once: {names[0]}",
            ref="behaviour.repeated_parameters",
        )
    t.note(Rule.PARAMETER_REPEATED, f"{', '.join(names)}: the first value counts", "behaviour.repeated_parameters")
    return None


def split_scope(scope: str | None) -> tuple[str, ...]:
    return tuple(dict.fromkeys((scope or "").split()))


def _host_parts(host: str) -> tuple[str, str]:
    """A Host header's name (no trailing dot, lower case) and its port (``""`` if none)."""
    name, port = host.strip().lower(), ""
    if name.startswith("["):
        if "]" in name:
            name, port = name[: name.find("]") + 1], name[name.find("]") + 1 :].removeprefix(":")
    elif name.count(":") == 1:
        name, port = name.rsplit(":", 1)
    return name.rstrip("."), port


def host_name(host: str) -> str:
    """A Host header's name: no port, no trailing dot, lower case."""
    return _host_parts(host)[0]


def host_address(host: str) -> str:
    """A Host header as ``name:port`` (``name`` alone without a port), normalised as above.

    A tenant domain that names a port (the address a local server is served as, R50) is
    matched by this form: there the port is part of the domain.
    """
    name, port = _host_parts(host)
    return f"{name}:{port}" if port else name


def served_domain(host: str | None, tenant: Tenant) -> str | None:
    """The tenant domain a request through ``host`` is served as, or ``None`` when refused.

    A verified domain of the tenant serves itself; any other host is served as the default
    domain, unless ``behaviour.unknown_host`` is ``"reject"`` or the host is an unverified
    custom domain (R50, R52, R95). Adapters use this for discovery and JWKS, so they resolve
    hosts exactly as ``decide`` does.
    """
    default = tenant.default_domain
    if host is None:
        return default
    name, address = host_name(host), host_address(host)
    index = tenant.index
    if address in index.domains:
        return address
    if name in index.domains:
        return name
    if tenant.behaviour.unknown_host == "reject" or name in index.unverified_domains:
        return None
    return default


def _host_facts(host: str | None, t: Trace) -> HostFacts | None:
    served = served_domain(host, t.tenant)
    facts: HostFacts | None = None
    if served is not None:
        ref = t.index.domain_refs.get(served, "")
        if host is None:
            detail = f"no host given: served as {served}"
        elif served in (host_name(host), host_address(host)):
            detail = f"request came through {served}"
        else:
            detail = f"host is not a tenant domain: served as {served}"
        facts = HostFacts(served, compiled_reason(Rule.DOMAIN_RESOLVED, detail, ref))
    cache = t.index.host_facts
    if len(cache) < HOST_CACHE_LIMIT:
        cache[host] = facts
    return facts


def resolve_domain(host: str | None, t: Trace) -> str | Rejected:
    # domain.resolved (R50, R52, R95): the request's host, if it is a verified domain of the
    # tenant, is the issuer; a port, a trailing dot and letter case are not significant.
    try:
        facts = t.index.host_facts[host]
    except KeyError:
        facts = _host_facts(host, t)
    if facts is None:
        # Never echo the host: it is attacker-controlled.
        detail = "host is not a verified domain"
        return t.reject(Rule.DOMAIN_UNKNOWN, ErrorCode.INVALID_REQUEST, "Unknown domain", detail=detail, ref="custom_domains")
    t.reasons.append(facts.reason)
    return facts.served


def resolve_organization(value: str, t: Trace) -> Organization | Rejected:
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
            ref="allow_organization_name_in_authentication_api",
        )
    return t.reject(Rule.ORG_UNKNOWN, ErrorCode.INVALID_REQUEST, f"Invalid organization: {value}", ref="organizations")


def is_auth0_api(audience: str, tenant: Tenant) -> bool:
    # R78: Auth0's own APIs (Management, legacy /api, MFA), but not /userinfo.
    base = issuer(tenant.domain)
    return audience.startswith((base + "api", base + "mfa"))


def system_api_on_custom_domain(audience: str, t: Trace) -> bool:
    # R16: Auth0's APIs are named by the canonical domain only.
    return any(audience in (f"https://{domain}/api/v2/", f"https://{domain}/userinfo") for domain in t.index.domains - {t.tenant.domain})


# --- the audience (R15 to R22), for every endpoint ----------------------------------------


class NoAudience(Enum):
    """Why a request has no audience: nothing named and no default, or a legacy API v1 tenant."""

    NONE = "none"
    API_V1 = "api_v1"


def requested_audience(audience: str | None, resource: str | None, t: Trace, *, api_v1: bool = False) -> str | NoAudience:
    """The audience a request names: ``audience`` (R15), else ``resource`` under the
    compatibility profile (R17), else, on a legacy tenant that allows it and only where the
    flow has an API v1 token (``api_v1``), no audience at all (R19), else the tenant's
    default audience (R21)."""
    named = clean(audience)
    tenant = t.tenant
    if named is not None:
        api = t.index.apis.get(named)
        if api is not None:
            t.reasons.append(api_facts(api, t).explicit)
        else:
            t.note(Rule.AUDIENCE_EXPLICIT, named)
        return named
    resource = clean(resource)
    if resource is not None and tenant.resource_parameter_profile == "compatibility":
        # audience.resource_parameter (R17): RFC 8707's resource stands in for audience.
        t.note(Rule.AUDIENCE_RESOURCE_PARAMETER, resource, "resource_parameter_profile")
        return resource
    if api_v1 and tenant.allow_api1_non_global_clients:
        # audience.api_v1_legacy (R19): legacy tenants get an API v1 opaque token.
        t.note(Rule.AUDIENCE_API_V1, "no audience: legacy API v1 token, default audience ignored", "allow_api1_non_global_clients")
        return NoAudience.API_V1
    default = clean(tenant.default_audience)
    if default is not None:
        t.note(Rule.AUDIENCE_DEFAULT, default, "default_audience")
        return default
    return NoAudience.NONE


def api_for(audience: str, t: Trace, *, unknown: Rule, text: str) -> Api | Rejected:
    """The API ``audience`` names (R16, R18, R22). An unknown one is refused with ``unknown``
    and ``text`` (the wording differs per endpoint); an Auth0 API named through a custom
    domain is refused with ``audience.system_api_on_canonical_domain``."""
    t.audience = audience
    api = t.index.apis.get(audience)
    if api is None:
        rule = Rule.AUDIENCE_SYSTEM_API_CANONICAL if system_api_on_custom_domain(audience, t) else unknown
        return t.reject(rule, ErrorCode.ACCESS_DENIED, f"{text}: {audience}", ref="apis")
    t.reasons.append(api_facts(api, t).found)
    return api


def audience_still_exists(audience: str | None, t: Trace) -> bool:
    """A code or refresh token for an API deleted since it was issued is no longer good."""
    return audience is None or audience in t.index.apis or audience == t.index.mfa_api.identifier


def _namespace_allowed(name: str, custom_api: bool) -> bool | None:
    """True/False for a namespaced claim name (allowed or not, R79); None if not namespaced."""
    lowered = name.lower()
    if lowered.startswith(("http://", "https://")):
        host = urlsplit(lowered).hostname or ""
        return not any(host == h or host.endswith("." + h) for h in FORBIDDEN_NAMESPACE_HOSTS)
    if lowered.startswith("urn:") and custom_api:
        return not lowered.startswith("urn:auth0")
    return None


def filter_claims(
    claims: dict[str, Any], *, auth0_api: bool, custom_api: bool, scopes: Sequence[str], t: Trace, token: str
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


def client_info(client: Client) -> ClientInfo:
    return ClientInfo(client.client_id, client.name, MappingProxyType(dict(client.metadata)))


def org_info(org: Organization | None) -> OrganizationInfo | None:
    return None if org is None else OrganizationInfo(org.id, org.name)


# Enum members read per request are module constants: a member lookup on an Enum class costs
# as much as a small function call in Python 3.11 (issue 13).
_POST, _BASIC = AuthMethod.CLIENT_SECRET_POST, AuthMethod.CLIENT_SECRET_BASIC
_PRIVATE_KEY_JWT, _PUBLIC = AuthMethod.PRIVATE_KEY_JWT, AuthMethod.NONE
_SECRET_METHODS = (_POST, _BASIC)


def authenticate(req: TokenRequest, grant_type: str, client_auth_required: bool, t: Trace) -> Client | Rejected:
    """Identify and authenticate the client (R3, R4, R8, R9, R11); ``client_auth_required`` comes
    from the grant's declaration: public clients cannot use such a grant."""
    assertion = req.assertion
    client_id = clean(req.client_id)
    if assertion is None and req.basic_client_id is None:
        # The common case: the client names itself once, in client_id.
        if client_id is None:
            return t.reject(Rule.CLIENT_ID_MISSING, ErrorCode.INVALID_REQUEST, "Missing required parameter: client_id")
    else:
        subject = assertion.claims.get("sub") if assertion is not None else None
        ids = [i for i in (client_id, clean(req.basic_client_id), subject if isinstance(subject, str) else None) if i is not None]
        if not ids:
            return t.reject(Rule.CLIENT_ID_MISSING, ErrorCode.INVALID_REQUEST, "Missing required parameter: client_id")
        if len(set(ids)) > 1:
            return t.auth_failed(Rule.CLIENT_AUTH_METHOD_MISMATCH, "the request names more than one client")
        client_id = ids[0]
    t.client_id = client_id
    client = t.index.clients.get(client_id)
    if client is None:
        return t.auth_failed(Rule.CLIENT_UNKNOWN, "no client with this client_id", "clients")
    facts = client_facts(client, t)
    ref = facts.ref
    secret = req.client_secret
    post = secret is not None and secret.get_secret_value() != ""
    basic = req.basic_client_id is not None
    jwt = assertion is not None or req.client_assertion_type is not None
    presented = _POST if post else _BASIC if basic else _PRIVATE_KEY_JWT if jwt else None
    registered = facts.method
    if post + basic + jwt > 1:
        several = [m for m, on in ((_POST, post), (_BASIC, basic), (_PRIVATE_KEY_JWT, jwt)) if on]
        return t.auth_failed(Rule.CLIENT_AUTH_METHOD_MISMATCH, f"several methods presented: {', '.join(several)}", ref)
    if registered is _PUBLIC:
        if client_auth_required:
            # client.public_cannot_use_client_credentials (R11, R12)
            return t.auth_failed(Rule.CLIENT_PUBLIC_CANNOT_USE_CC, f"public clients cannot use {grant_type}", ref)
        if presented is not None and t.behaviour.strict_auth_method:
            return t.auth_failed(Rule.CLIENT_AUTH_METHOD_MISMATCH, f"public client presented {presented}", ref)
        t.note(Rule.CLIENT_PUBLIC, "public client: identified by client_id only", ref)
        return client
    if presented is None:
        return t.auth_failed(Rule.CLIENT_SECRET_INVALID, "confidential client sent no credentials", ref)
    method = presented
    mismatch = method is not registered and not (
        not t.behaviour.strict_auth_method and method in _SECRET_METHODS and registered in _SECRET_METHODS
    )
    if mismatch:
        # client.auth_method_mismatch (R4): treated as a failed authentication.
        return t.auth_failed(Rule.CLIENT_AUTH_METHOD_MISMATCH, f"registered {registered}, presented {method}", ref)
    if method is _PRIVATE_KEY_JWT:
        return _check_assertion(req, client, t)
    if method is _BASIC:
        secret = req.basic_client_secret
    given = (secret.get_secret_value() if secret is not None else "").encode("utf-8", "surrogatepass")
    for stored in facts.secrets:
        if hmac.compare_digest(given, stored):
            t.reasons.append(facts.secret_valid[method])
            return client
    return t.auth_failed(Rule.CLIENT_SECRET_INVALID, f"{method}: the secret does not match", ref)


def _check_assertion(req: TokenRequest, client: Client, t: Trace) -> Client | Rejected:
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
        allowed_aud = t.index.issuers
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
        return t.auth_failed(Rule.CLIENT_ASSERTION_INVALID, problem, t.index.ref(client))
    t.note(Rule.CLIENT_ASSERTION_VALID, "private_key_jwt", t.index.ref(client))
    return client


def find_grant(client: Client, api: Api, subject: SubjectType, t: Trace) -> ClientGrant | Rejected:
    """The client grant that lets ``client`` reach ``api`` (R24, R25, R28, R69)."""
    if not client.is_first_party and api.is_system:
        detail = "third-party apps never get system APIs"
        return _refuse_grant(Rule.GRANT_THIRD_PARTY_SYSTEM_API, detail, t.index.ref(client), client, api, subject, t)
    grant = t.index.grant_for(client, api.identifier, subject)
    if grant is None:
        return _refuse_grant(Rule.GRANT_MISSING, f"no {subject} grant for this client and API", "client_grants", client, api, subject, t)
    t.reasons.append(grant_facts(grant, api, t).found)
    return grant


def _refuse_grant(rule: Rule, detail: str, ref: str, client: Client, api: Api, subject: SubjectType, t: Trace) -> Rejected:
    if subject is SubjectType.USER:
        # R69: user flows answer with the resource-server wording and no advice.
        text = f'Client "{client.client_id}" is not authorized to access resource server "{api.identifier}"'
        if rule is Rule.GRANT_MISSING and client.strict_third_party(t.behaviour):
            # grant.third_party_strict_missing (issue 8, item 7): "unauthorized_client when
            # requesting tokens" without a client grant, whatever the API's policy.
            return t.reject(Rule.GRANT_THIRD_PARTY_MISSING, ErrorCode.UNAUTHORIZED_CLIENT, text, detail=detail, ref=ref)
        return t.reject(rule, ErrorCode.ACCESS_DENIED, text, detail=detail, ref=ref)
    return t.no_grant(rule, client.client_id, api.identifier, detail, ref)


def grant_scopes(grant: ClientGrant, api: Api, behaviour: Behaviour) -> tuple[str, ...]:
    """The scopes a client grant gives for ``api``: every scope the API defines now when the
    grant allows all (R26), else the grant's list, in its order (R27, R29, R33), as it is
    (issue 8: Auth0 has been observed issuing a granted scope the API does not define) or,
    with ``behaviour.grant_scopes_filtered_by_api_scopes``, limited to scopes the API defines."""
    if grant.allow_all_scopes:
        return api.scopes
    listed = tuple(dict.fromkeys(grant.scope))
    if not behaviour.grant_scopes_filtered_by_api_scopes:
        return listed
    defined = set(api.scopes)
    return tuple(s for s in listed if s in defined)


def granted_scopes(grant: ClientGrant, api: Api, t: Trace) -> tuple[str, ...]:
    """:func:`grant_scopes`, noted in the trace (compiled once per grant: :func:`grant_facts`)."""
    facts = grant_facts(grant, api, t)
    t.reasons.append(facts.scope_note)
    return facts.scopes


def run_actions(
    actions: Sequence[Any], event: CredentialsExchangeEvent | PostLoginEvent, api_obj: ActionApi, trigger: str, t: Trace
) -> tuple[str, str | None] | Rejected | None:
    """Run Actions in order until one denies (R74, R75): the denial, a failure, or None.

    The trace names each Action (its ``__name__``) and the claims it set."""
    field = trigger.replace("-", "_") + "_actions"
    for number, action in enumerate(actions, 1):
        name = f"{trigger} action {number} {getattr(action, '__name__', type(action).__name__)!r}"
        ref = f"{field}[{number - 1}]"
        before = (dict(api_obj.access_token.claims), dict(api_obj.id_token.claims))
        try:
            action(event, api_obj)
        except Exception as exc:  # noqa: BLE001 - user code; Auth0 fails the flow
            detail = f"{name} raised {type(exc).__name__}"
            if trigger == "post-login":
                # An uncaught error in a login ends it as access_denied with the error's message.
                return t.reject(Rule.ACTION_FAILED, ErrorCode.ACCESS_DENIED, str(exc), detail=detail, ref=ref)
            return t.reject(Rule.ACTION_FAILED, ErrorCode.SERVER_ERROR, "A server error occurred.", detail=detail, ref=ref)
        tokens = (("access token", api_obj.access_token.claims, before[0]), ("id token", api_obj.id_token.claims, before[1]))
        effects = [
            f"{token} sets {', '.join(repr(n) for n in changed)}"
            for token, claims, old in tokens
            if (changed := [n for n, v in claims.items() if n not in old or old[n] is not v])
        ]
        if api_obj.access.denial is not None:
            t.note(Rule.ACTION_RAN, f"{name}: {'; '.join([*effects, 'denies'])}", ref)
            return api_obj.access.denial
        t.note(Rule.ACTION_RAN, f"{name}: {'; '.join(effects)}" if effects else name, ref)
    return None


# --- a user's login, shared by /authorize and the password grant -------------------------


def user_organization(organization: str | None, client: Client, t: Trace) -> Organization | Rejected | None:
    """The organization a user login names, if the client may use it (R39, R40)."""
    value = clean(organization)
    t.organization = value
    if value is None:
        if client.organization_usage is OrganizationUsage.REQUIRE:
            # org.client_requires_organization (R40)
            text = "parameter organization is required for this client"
            return t.reject(Rule.ORG_CLIENT_REQUIRES, ErrorCode.INVALID_REQUEST, text, ref=t.index.ref(client))
        t.note(Rule.ORG_NONE, "no organization", t.index.ref(client))
        return None
    org = resolve_organization(value, t)
    if isinstance(org, Rejected):
        return org
    if client.organization_usage is OrganizationUsage.DENY:
        text = "parameter organization is not allowed for this client"
        return t.reject(Rule.ORG_USAGE_DENY, ErrorCode.INVALID_REQUEST, text, ref=t.index.ref(client))
    if org.third_party_client_access == "block" and client.strict_third_party(t.behaviour):
        # org.third_party_client_access_blocked (issue 8, item 7): organizations deny third-party
        # applications unless they opt in with third_party_client_access: allow.
        text = f"parameter organization is invalid: {org.id}"
        return t.reject(Rule.ORG_THIRD_PARTY_BLOCKED, ErrorCode.INVALID_REQUEST, text, ref=t.index.ref(org))
    t.note(Rule.ORG_ALLOWED, org.id, t.index.ref(org))
    return org


def check_membership(org: Organization | None, user: User, t: Trace) -> Rejected | None:
    """org.user_not_member: a login through an organization needs a member (None: fine)."""
    if org is not None and (org.id, user.user_id) not in t.index.memberships:
        text = f"user {user.user_id} is not part of the {org.id} organization"
        return t.reject(Rule.ORG_USER_NOT_MEMBER, ErrorCode.ACCESS_DENIED, text, ref=t.index.ref(org))
    return None


def user_scopes(
    requested: tuple[str, ...], client: Client, user: User, api: Api | None, org: Organization | None, t: Trace
) -> tuple[str, ...] | Rejected:
    """Scopes of a user-delegated token (R66 to R69, R72), from the ``requested`` ones."""
    oidc = third_party_oidc(tuple(s for s in requested if s in OIDC_SCOPES), client, t)
    if oidc:
        t.note(Rule.SCOPE_OIDC_PASSTHROUGH, " ".join(oidc))
    api_scopes: tuple[str, ...] = ()
    if api is not None:
        api_ref = t.index.ref(api)
        asked = tuple(s for s in requested if s not in OIDC_SCOPES)
        if api.user_policy is UserPolicy.DENY_ALL:
            return t.reject(
                Rule.POLICY_USER_DENY_ALL,
                ErrorCode.ACCESS_DENIED,
                f'Client "{client.client_id}" is not authorized to access resource server "{api.identifier}"',
                ref=api_ref,
            )
        if api.user_policy is UserPolicy.REQUIRE_CLIENT_GRANT or not client.is_first_party:
            if api.user_policy is UserPolicy.REQUIRE_CLIENT_GRANT:
                t.note(Rule.POLICY_USER_REQUIRE_GRANT, "user access needs a user client grant", api_ref)
            grant = find_grant(client, api, SubjectType.USER, t)
            if isinstance(grant, Rejected):
                return grant
            allowed = set(api.scopes) if grant.allow_all_scopes else set(grant.scope)
            asked = tuple(s for s in asked if s in allowed)
            t.note(Rule.SCOPE_USER_GRANT, " ".join(asked) or "(none)", t.index.ref(grant))
        else:
            t.note(Rule.POLICY_USER_ALLOW_ALL, "any first-party application may ask", api_ref)
        if api is t.index.management_api:
            api_scopes = _current_user_scopes(asked, t)
        elif api.enforce_policies:
            held = set(t.index.user_permissions(user, api.identifier, org.id if org is not None else None))
            api_scopes = tuple(s for s in asked if s in held)
            t.note(Rule.SCOPE_RBAC, " ".join(api_scopes) or "(none)", t.index.ref(user))
        else:
            defined = set(api.scopes)
            keep = t.behaviour.keep_undefined_user_scopes
            api_scopes = tuple(s for s in asked if keep or s in defined)
            t.note(Rule.SCOPE_NO_RBAC, " ".join(api_scopes) or "(none)", api_ref)
    scopes = oidc + api_scopes
    if "offline_access" in scopes:
        refresh_ok = "refresh_token" in client.effective_grant_types and (api is None or api.allow_offline_access)
        if not refresh_ok:
            scopes = tuple(s for s in scopes if s != "offline_access")
            t.note(Rule.SCOPE_OFFLINE_ACCESS_DROPPED, "the API or client does not allow offline access", t.index.ref(api or client))
    return scopes


def third_party_oidc(scopes: tuple[str, ...], client: Client, t: Trace) -> tuple[str, ...]:
    """scope.third_party_strict_oidc_dropped (issue 8, item 7): a strict third-party application
    gets no OpenID Connect scope (so no ID token); ``offline_access`` (refresh tokens) stays."""
    if not client.strict_third_party(t.behaviour):
        return scopes
    dropped = [s for s in scopes if s in OIDC_SCOPES and s != "offline_access"]
    if not dropped:
        return scopes
    t.note(Rule.SCOPE_THIRD_PARTY_OIDC, f"not processed for a strict third-party application: {' '.join(dropped)}", t.index.ref(client))
    return tuple(s for s in scopes if s not in dropped)


def session_sid(domain: str, user_id: str, session_id: str | None) -> str:
    """The ``sid`` of a login session (issue 8, item 7): a digest of the login session's id
    (never the id itself, which an adapter may draw as it likes), else of the login domain and the
    user (without a session, a user has one session per domain, as with SSO). Deterministic."""
    fact = ("session", session_id) if session_id is not None else ("user", domain, user_id)
    digest = hashlib.sha256("\x00".join(("claimsengine-sid", *fact)).encode("utf-8", "surrogatepass")).digest()
    return base64.urlsafe_b64encode(digest).decode()[:32]


def _current_user_scopes(asked: tuple[str, ...], t: Trace) -> tuple[str, ...]:
    """scope.management_api_current_user (issue 8, item 1): a user token for the Management API
    carries only the current-user family; admin scopes are for client credentials."""
    family = set(CURRENT_USER_SCOPES)
    if t.behaviour.delete_current_user_scope:
        family.add(DELETE_CURRENT_USER_SCOPE)
    kept = tuple(s for s in asked if s in family)
    dropped = [s for s in asked if s not in family]
    detail = " ".join(kept) or "(none)"
    if dropped:
        detail += f"; not issued to user tokens: {' '.join(dropped)}"
    t.note(Rule.SCOPE_MANAGEMENT_CURRENT_USER, detail, "(built-in Management API)")
    return kept


def post_login(
    client: Client, user: User, api: Api | None, org: Organization | None, domain: str, scopes: tuple[str, ...], t: Trace
) -> tuple[tuple[str, ...], dict[str, JsonValue], dict[str, JsonValue]] | Rejected:
    """Run post-login Actions (R74 to R81): the final scopes and the claims they set."""
    actions = t.tenant.post_login_actions
    if not actions:
        return scopes, {}, {}
    api_obj = ActionApi.start(scopes)
    event = PostLoginEvent(
        client=client_info(client),
        user_id=user.user_id,
        user_profile=MappingProxyType(dict(user.profile)),
        resource_server=api.identifier if api is not None else None,
        hostname=domain,
        organization=org_info(org),
        requested_scopes=scopes,
        scopes=scopes,
        roles=tuple(dict.fromkeys((*user.roles, *(t.index.memberships[(org.id, user.user_id)].roles if org is not None else ())))),
        tenant=t.tenant.domain,
        now=t.now,
    )
    outcome = run_actions(actions, event, api_obj, "post-login", t)
    if isinstance(outcome, Rejected):
        return outcome
    if outcome is not None:
        return t.reject(Rule.ACTION_DENY, ErrorCode.ACCESS_DENIED, outcome[1] or "", ref="post_login_actions")
    auth0_api = api is not None and is_auth0_api(api.identifier, t.tenant)
    changes = (*api_obj.access_token.removed_scopes, *api_obj.access_token.added_scopes)
    final = [s for s in scopes if s not in api_obj.access_token.removed_scopes]
    final += [s for s in api_obj.access_token.added_scopes if s not in final]
    if auth0_api and changes:
        # action.scopes_internal_audience_ignored (issue 8, item 1): Auth0 logs "Attempting to add
        # scopes to an access token for an internal audience ... These scopes were ignored."
        assert api is not None
        t.note(Rule.ACTION_SCOPES_INTERNAL_AUDIENCE, f"ignored for the internal audience {api.identifier}: {' '.join(changes)}")
        final = list(scopes)
    elif tuple(final) != scopes:
        t.note(Rule.ACTION_TARGET_SCOPES, " ".join(final) or "(none)")
    custom_api = api is not None and not api.is_system
    access = filter_claims(api_obj.access_token.claims, auth0_api=auth0_api, custom_api=custom_api, scopes=final, t=t, token="access token")
    if isinstance(access, Rejected):
        return access
    id_claims = filter_claims(api_obj.id_token.claims, auth0_api=False, custom_api=False, scopes=final, t=t, token="id token")
    if isinstance(id_claims, Rejected):
        return id_claims
    return tuple(final), access, id_claims


def mfa_login(req: TokenRequest, client: Client, t: Trace) -> tuple[MfaGrant, User] | Rejected:
    """The login an mfa_token stands for (``req.mfa_grant``), if it is still good for this
    client, and its user with the enrolment the store knows (``req.mfa_enrollment``): shared by
    the MFA grants, ``POST /mfa/challenge`` and ``POST /mfa/associate``."""
    grant = req.mfa_grant
    user = t.index.users.get(grant.user_id) if grant is not None else None
    if grant is None or user is None:
        # mfa.token_malformed: not a token this tenant issued (or its user is gone).
        return t.reject(Rule.MFA_TOKEN_MALFORMED, ErrorCode.INVALID_GRANT, "Malformed mfa_token", status=401)
    if grant.client_id != client.client_id:
        return t.reject(Rule.MFA_TOKEN_OTHER_CLIENT, ErrorCode.INVALID_REQUEST, "mfa_token not issued to this client")
    if t.now >= grant.issued_at + MFA_API_LIFETIME:
        # mfa.token_expired (M5): the mfa_token lives 10 minutes.
        return t.reject(Rule.MFA_TOKEN_EXPIRED, ErrorCode.EXPIRED_TOKEN, "mfa_token is expired", status=401)
    if user.blocked:
        return t.reject(Rule.PASSWORD_USER_BLOCKED, ErrorCode.INVALID_GRANT, "user is blocked", ref=t.index.ref(user))
    if req.mfa_enrollment is not None:
        # What POST /mfa/associate enrolled, as the server's store knows it, replaces the tenant's.
        user = user.model_copy(update={"mfa": req.mfa_enrollment})
    return grant, user

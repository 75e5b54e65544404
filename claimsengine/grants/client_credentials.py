"""The ``client_credentials`` grant: machine-to-machine tokens (R15 to R43, R74 to R81)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from hmac import compare_digest
from typing import Any, Literal

from pydantic import JsonValue

from claimsengine.actions import DENY_STATUS, ActionApi, CredentialsExchangeEvent
from claimsengine.model import (
    Api,
    AuthMethod,
    Client,
    Issued,
    JwtHeader,
    Organization,
    OrganizationUsage,
    Reason,
    Rejected,
    SubjectType,
    Tenant,
    TokenFormat,
    TokenQuota,
    TokenRequest,
    trusted_fields,
)
from claimsengine.rules import ErrorCode, Rule
from claimsengine.steps import (
    GrantFacts,
    NoAudience,
    Trace,
    api_facts,
    api_for,
    clean,
    client_facts,
    client_info,
    compiled_reason,
    filter_claims,
    find_grant,
    grant_facts,
    is_auth0_api,
    org_info,
    requested_audience,
    resolve_organization,
    run_actions,
    split_scope,
)
from claimsengine.tokens import NO_CLAIMS, Draft, issue, issue_api_v1, token_facts

__all__ = ["client_credentials", "client_credentials_fast"]


# Enum members read on every request, as module constants (a class lookup costs a call in 3.11).
_API_V1, _UNKNOWN, _CLIENT = NoAudience.API_V1, Rule.AUDIENCE_UNKNOWN, SubjectType.CLIENT
_HONOURED, _REQUIRE = Rule.SCOPE_REQUESTED_SUBSET_HONOURED, OrganizationUsage.REQUIRE


def client_credentials(req: TokenRequest, client: Client, domain: str, t: Trace) -> Issued | Rejected:
    """Decide a client credentials request of an authenticated ``client``."""
    audience = requested_audience(req.audience, req.resource, t, api_v1=True)
    if isinstance(audience, NoAudience):
        if audience is _API_V1:
            return issue_api_v1(client, domain, t)
        text = "Non-global clients are not allowed access to APIv1"
        return t.reject(Rule.AUDIENCE_MISSING, ErrorCode.ACCESS_DENIED, text, ref="default_audience")
    api = api_for(audience, t, unknown=_UNKNOWN, text="Service not enabled within domain")
    if isinstance(api, Rejected):
        return api
    if api.client_policy == "deny_all":
        return t.no_grant(
            Rule.POLICY_CLIENT_DENY_ALL, client.client_id, api.identifier, "the API denies all client access", t.index.ref(api)
        )
    grant = find_grant(client, api, _CLIENT, t)
    if isinstance(grant, Rejected):
        return grant
    facts = grant_facts(grant, api, t)
    t.reasons.append(facts.scope_note)
    granted = facts.scopes
    requested = split_scope(req.scope)
    scopes = granted
    if requested:
        held = facts.scope_set
        missing = [s for s in requested if s not in held]
        if missing:
            # scope.not_granted (R31)
            text = "Client has not been granted scopes: " + t.behaviour.missing_scope_separator.join(missing)
            return t.reject(Rule.SCOPE_NOT_GRANTED, ErrorCode.ACCESS_DENIED, text, ref=t.index.ref(grant))
        if t.behaviour.client_credentials_scopes == "requested":
            scopes = tuple([s for s in granted if s in requested])
            t.note(_HONOURED, " ".join(scopes), "behaviour.client_credentials_scopes")
        elif set(requested) != set(granted):
            t.note(
                Rule.SCOPE_REQUESTED_SUBSET_IGNORED, "client credentials returns every granted scope", "behaviour.client_credentials_scopes"
            )
    org = _cc_organization(req, client, facts, api, t)
    if isinstance(org, Rejected):
        return org
    quota = _quota(req, client, org, api, t)
    if isinstance(quota, Rejected):
        return quota
    custom: Mapping[str, JsonValue] = NO_CLAIMS
    if t.tenant.credentials_exchange_actions:
        outcome = _credentials_exchange(client, api, org, domain, requested, scopes, granted, t)
        if isinstance(outcome, Rejected):
            return outcome
        scopes, custom = outcome
    draft = Draft(client=client, domain=domain, scopes=scopes, api=api, org=org, gty="client-credentials", custom=custom, headers=quota)
    return issue(draft, t)


def _cc_organization(req: TokenRequest, client: Client, facts: GrantFacts, api: Api, t: Trace) -> Organization | Rejected | None:
    """Machine-to-machine access for organizations (R34 to R42)."""
    grant = facts.grant
    value = clean(req.organization)
    t.organization = value
    usage = grant.organization_usage
    if value is not None:
        if not t.tenant.organizations_for_m2m:
            return t.reject(
                Rule.ORG_FEATURE_UNAVAILABLE,
                ErrorCode.INVALID_REQUEST,
                "Organizations for machine-to-machine access are not enabled for this tenant",
                ref="organizations_for_m2m",
            )
        org = resolve_organization(value, t)
        if isinstance(org, Rejected):
            return org
        if usage is OrganizationUsage.DENY:
            return t.reject(
                Rule.ORG_USAGE_DENY,
                ErrorCode.ACCESS_DENIED,
                f'Client "{client.client_id}" is not allowed to use organizations with resource server "{api.identifier}".',
                ref=t.index.ref(grant),
            )
    elif usage is _REQUIRE:
        default = client.default_organization
        if default is None or "client_credentials" not in default.flows:
            return t.reject(
                Rule.ORG_REQUIRED_MISSING,
                ErrorCode.ACCESS_DENIED,
                f'An organization is required to access resource server "{api.identifier}".',
                ref=t.index.ref(grant),
            )
        org = t.index.organizations_by_id[default.organization_id]
        t.organization = org.id
        t.note(Rule.ORG_DEFAULT, org.id, t.index.ref(client))
    else:
        t.reasons.append(facts.org_none)
        return None
    # org.allowed / org.not_associated (R35): any organization, or only associated ones.
    # Third-party clients can never rely on allow_any_organization.
    if grant.allow_any_organization and client.is_first_party:
        t.note(Rule.ORG_ALLOWED, f"{org.id}: grant allows any organization", t.index.ref(grant))
        return org
    if (org.id, client.client_id, api.identifier) in t.index.org_associations:
        t.note(Rule.ORG_ALLOWED, f"{org.id}: grant associated with the organization", t.index.ref(org))
        return org
    return t.reject(
        Rule.ORG_NOT_ASSOCIATED,
        ErrorCode.ACCESS_DENIED,
        f'Client "{client.client_id}" is not authorized to access resource server "{api.identifier}" on behalf of organization "{org.id}".',
        ref=t.index.ref(org),
    )


def _quota_header(quota: TokenQuota, hour: int, day: int, now: int) -> str:
    parts = []
    for bucket, limit, used, period in (("per_hour", quota.per_hour, hour, 3600), ("per_day", quota.per_day, day, 86400)):
        if limit is not None:
            parts.append(f"b={bucket};q={limit};r={max(limit - used - 1, 0)};t={period - now % period}")
    return ",".join(parts)


def _quota(req: TokenRequest, client: Client, org: Organization | None, api: Api, t: Trace) -> tuple[tuple[str, str], ...] | Rejected:
    """quota.* (R43, R83): enforce per-client and per-organization token quotas."""
    if api.is_system:
        t.note(Rule.QUOTA_NOT_COUNTED, "Auth0 API audiences do not count toward the quota", t.index.ref(api))
        return ()
    if org is None and (client.token_quota or t.tenant.default_token_quota) is None:
        return ()
    usage = req.quota_usage
    index = t.index
    checks = [
        (
            "Client",
            client.token_quota or t.tenant.default_token_quota,
            usage.client_hour,
            usage.client_day,
            index.ref(client) if client.token_quota else "default_token_quota",
        )
    ]
    if org is not None:
        checks.append(
            (
                "Organization",
                org.token_quota or t.tenant.default_organization_token_quota,
                usage.organization_hour,
                usage.organization_day,
                index.ref(org) if org.token_quota else "default_organization_token_quota",
            )
        )
    headers: list[tuple[str, str]] = []
    for who, quota, hour, day, ref in checks:
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
                    ref=ref,
                )
        headers.append(header)
        t.note(Rule.QUOTA_COUNTED, f"{who.lower()} quota: {header[1]}", ref)
    return tuple(headers)


def _credentials_exchange(
    client: Client,
    api: Api,
    org: Organization | None,
    domain: str,
    requested: tuple[str, ...],
    scopes: tuple[str, ...],
    granted: tuple[str, ...],
    t: Trace,
) -> tuple[tuple[str, ...], dict[str, JsonValue]] | Rejected:
    """Run credentials-exchange Actions (R74 to R81)."""
    actions = t.tenant.credentials_exchange_actions
    api_obj = ActionApi.start(scopes)
    event = CredentialsExchangeEvent(
        client=client_info(client),
        resource_server=api.identifier,
        hostname=domain,
        custom_domain=domain if domain != t.tenant.domain else None,
        tenant=t.tenant.domain,
        organization=org_info(org),
        requested_scopes=requested,
        scopes=scopes,
        now=t.now,
    )
    outcome = run_actions(actions, event, api_obj, "credentials-exchange", t)
    if isinstance(outcome, Rejected):
        return outcome
    if outcome is not None:
        code, reason = outcome
        # action.deny (R75): unknown codes are treated as server_error.
        error = ErrorCode(code) if code in DENY_STATUS else ErrorCode.SERVER_ERROR
        return t.reject(Rule.ACTION_DENY, error, reason or "", status=DENY_STATUS.get(code, 500), ref="credentials_exchange_actions")
    custom = filter_claims(
        api_obj.access_token.claims,
        auth0_api=is_auth0_api(api.identifier, t.tenant),
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


# --- the fast path: the common successful request, from facts compiled per client and API --

_POST, _BASIC = AuthMethod.CLIENT_SECRET_POST, AuthMethod.CLIENT_SECRET_BASIC
_JWT, _GRANT_TYPE, _GTY = TokenFormat.JWT, "client_credentials", "client-credentials"
_SCOPES_REF = "behaviour.client_credentials_scopes"
_SUBSET_IGNORED = compiled_reason(Rule.SCOPE_REQUESTED_SUBSET_IGNORED, "client credentials returns every granted scope", _SCOPES_REF)
_NOT_COUNTED = "Auth0 API audiences do not count toward the quota"
# The fields the general path passes to ``trusted`` for a JWT (tokens._jwt): the same are "set".
_ISSUED_SET = frozenset(
    {
        *("format", "issuer", "audience", "scope", "claims", "header", "signing_key", "needs_jti", "expires_in"),
        *("client_id", "api", "refresh", "id_token", "headers", "trace"),
    }
)


@dataclass(frozen=True, slots=True)
class Plan:
    """A client whose requests the fast path may decide: its secrets, the trace entries of its
    authentication (R3, R13), the tenant's scope behaviour and its routes, one per API it
    named, filled on first use (``None``: the general path decides requests for that API)."""

    client_id: str
    secrets: tuple[bytes, ...] = field(repr=False)
    head: tuple[Reason, ...]
    honour_requested: bool
    routes: dict[str, Route | None]


@dataclass(frozen=True, slots=True)
class Route:
    """What every token the fast path issues to one client for one API shares: the trace
    entries before the scopes (R15 to R29), between the scopes and ``iss`` (R34, R43 to R46),
    and after ``iss`` (R61, R53, R64), and the token's constant parts."""

    granted: tuple[str, ...]
    held: frozenset[str]
    scope: str
    head: tuple[Reason, ...]
    middle: tuple[Reason, ...]
    tail: tuple[Reason, ...]
    audience: str
    lifetime: int
    sub: str
    gty: bool
    client_claim: str
    honoured: dict[str, Reason]
    issues: dict[tuple[str | None, int, str], Issuance]
    header: JwtHeader
    signing_key: Literal["tenant", "api_secret"]
    needs_jti: bool


def client_credentials_fast(req: TokenRequest, tenant: Tenant, now: int) -> Issued | None:
    """The decision of a client credentials request of the common shape that succeeds, as the
    general path (the common steps, then :func:`client_credentials`) reaches it: the same
    ``Issued``, claims and trace entry for entry, from facts compiled once per client and API.

    The common shape: a Host header already resolved, no repeated or malformed parameter, a
    secret in the body of a confidential ``client_secret_post`` client, an ``audience`` that is
    an API with a client grant, no organization, no Origin, no quota, no credentials-exchange
    Action, an Auth0-profile or RFC 9068 dialect without permissions, and at least one scope.
    Anything else, and any request that would be refused, returns ``None``: then the general
    path decides it (and says why). ``tests/test_fast_path.py`` and ``bench/differential.py``
    check that both paths decide alike."""
    if req.repeated or req.malformed or req.assertion is not None or req.basic_client_id is not None:
        return None
    if req.client_assertion_type is not None or req.origin is not None or req.organization is not None:
        return None
    index = tenant.index
    host = index.host_facts.get(req.domain)
    if host is None:
        return None
    issuer = index.issuer_facts.get(host.served)
    secret = req.client_secret
    if issuer is None or secret is None:
        return None
    plan = index.cc_plans.get(req.client_id or "") or _plan(req.client_id, tenant)
    if plan is None:
        return None
    route = plan.routes.get(req.audience or "") or _route(plan, req.audience, tenant)
    if route is None:
        return None
    # client.secret_valid (R3): constant-time, every registered secret, as authenticate does.
    given = secret.get_secret_value().encode("utf-8", "surrogatepass")
    if not given:
        return None
    for stored in plan.secrets:
        if compare_digest(given, stored):
            break
    else:
        return None
    # The scopes as client_credentials decides them (R29 to R33); repeats do not matter here.
    requested = (req.scope or "").split()
    scope = route.scope
    shape = _SCOPES_ALL
    if requested:
        held = route.held
        for name in requested:
            if name not in held:
                return None
        if plan.honour_requested:
            scope = " ".join([s for s in route.granted if s in requested])
            shape = _SCOPES_HONOURED
        elif held != set(requested):
            shape = _SCOPES_IGNORED
    # Everything but iat and exp is the same for every request of this client, API, Host
    # header and scope: compiled once (``Issuance``), copied here with the two times written in.
    key = (req.domain, shape, scope)
    compiled = route.issues.get(key) or _issuance(route, plan, host.reason, issuer, key)
    claims = {**compiled.claims, "iat": now, "exp": now + route.lifetime}
    return trusted_fields(Issued, {**compiled.fields, "claims": claims}, _ISSUED_SET)


# The scope entries of a request: every granted scope (no entry), an honoured subset (R30), or a
# subset asked for and ignored (R30, behaviour.client_credentials_scopes "grant").
_SCOPES_ALL, _SCOPES_HONOURED, _SCOPES_IGNORED = 0, 1, 2
# Issues remembered per route: one per Host header, scope entry and scope its client asks for.
ISSUE_CACHE_LIMIT = 64


@dataclass(frozen=True, slots=True)
class Issuance:
    """What every ``Issued`` of one route, Host header and scope shares: the claims (``iat``
    and ``exp`` are placeholders, in their places) and the model's fields in its order
    (``claims`` a placeholder), the trace among them."""

    claims: dict[str, JsonValue]
    fields: dict[str, Any]


def _issuance(route: Route, plan: Plan, host: Reason, issuer: tuple[str, Reason], key: tuple[str | None, int, str]) -> Issuance:
    """Compile the :class:`Issuance` of ``key`` (Host header, scope entry, scope) on ``route``."""
    _, shape, scope = key
    notes: tuple[Reason, ...] = ()
    if shape == _SCOPES_HONOURED:
        notes = (route.honoured.get(scope) or _honoured(route, scope),)
    elif shape == _SCOPES_IGNORED:
        notes = (_SUBSET_IGNORED,)
    iss, audience, lifetime = issuer[0], route.audience, route.lifetime
    claims: dict[str, JsonValue] = {"iss": iss, "sub": route.sub, "aud": audience, "iat": 0, "exp": 0, "scope": scope}
    if route.gty:
        claims["gty"] = _GTY
    claims[route.client_claim] = plan.client_id
    fields: dict[str, Any] = {
        "kind": "issued",
        "format": _JWT,
        "issuer": iss,
        "audience": audience,
        "scope": scope,
        "claims": None,
        "header": route.header,
        "signing_key": route.signing_key,
        "needs_jti": route.needs_jti,
        "expires_in": lifetime,
        "token_type": "Bearer",
        "client_id": plan.client_id,
        "api": audience,
        "refresh": None,
        "refresh_family": None,
        "id_token": None,
        "headers": (),
        "trace": (host, *route.head, *notes, *route.middle, issuer[1], *route.tail),
    }
    issuance = Issuance(claims, fields)
    if len(route.issues) < ISSUE_CACHE_LIMIT:
        route.issues[key] = issuance
    return issuance


# scope.requested_subset_honoured entries remembered per route: the subsets its client asks for.
HONOURED_CACHE_LIMIT = 64


def _honoured(route: Route, scope: str) -> Reason:
    """The trace entry of R30 for the honoured subset ``scope`` (the scopes joined)."""
    note = compiled_reason(_HONOURED, scope, _SCOPES_REF)
    if len(route.honoured) < HONOURED_CACHE_LIMIT:
        route.honoured[scope] = note
    return note


def _plan(client_id: str | None, tenant: Tenant) -> Plan | None:
    """Compile (once) the :class:`Plan` of the client a request names, if the fast path may
    decide its requests; an unknown client is not remembered (the caller chose the name)."""
    index = tenant.index
    client = index.clients.get(client_id) if client_id is not None else None
    if client is None or client.client_id in index.cc_plans:
        return None
    facts = client_facts(client, Trace(tenant, 0))
    method = facts.method
    plan = None
    if (
        clean(client.client_id) == client.client_id
        and (method is _POST or (method is _BASIC and not tenant.behaviour.strict_auth_method))
        and _GRANT_TYPE in facts.grant_type_allowed
        and not tenant.credentials_exchange_actions
    ):
        head = (facts.secret_valid[_POST], facts.grant_type_allowed[_GRANT_TYPE])
        plan = Plan(client.client_id, facts.secrets, head, tenant.behaviour.client_credentials_scopes == "requested", {})
    index.cc_plans[client.client_id] = plan
    return plan


def _route(plan: Plan, audience: str | None, tenant: Tenant) -> Route | None:
    """Compile (once) the :class:`Route` of ``plan``'s client to the API ``audience`` names, if
    the fast path may issue its tokens; an audience that is no API is not remembered."""
    index = tenant.index
    api = index.apis.get(audience) if audience is not None else None
    if api is None or api.identifier in plan.routes or clean(api.identifier) != api.identifier:
        return None
    t = Trace(tenant, 0)
    client = index.clients[plan.client_id]
    reachable = api.client_policy != "deny_all" and (client.is_first_party or not api.is_system)
    grant = index.grant_for(client, api.identifier, _CLIENT) if reachable else None
    tokens = token_facts(api, t)
    kind = tokens.kind
    route = None
    quota_free = api.is_system or (client.token_quota or tenant.default_token_quota) is None
    scopes = grant_facts(grant, api, t) if grant is not None and grant.organization_usage is not _REQUIRE else None
    if scopes is not None and scopes.scopes and quota_free and not kind.permissions:
        found = api_facts(api, t)
        quota = (compiled_reason(Rule.QUOTA_NOT_COUNTED, _NOT_COUNTED, index.ref(api)),) if api.is_system else ()
        route = Route(
            granted=scopes.scopes,
            held=scopes.scope_set,
            scope=" ".join(scopes.scopes),
            head=(*plan.head, found.explicit, found.found, scopes.found, scopes.scope_note),
            middle=(scopes.org_none, *quota, tokens.format_jwt, tokens.aud_string),
            tail=(tokens.lifetime, tokens.claims_m2m, tokens.signing),
            audience=api.identifier,
            lifetime=api.token_lifetime,
            sub=f"{client.client_id}@clients",
            gty=kind.gty,
            client_claim=kind.client_claim,
            honoured={},
            issues={},
            header=tokens.header,
            signing_key=tokens.signing_key,
            needs_jti=kind.jti,
        )
    plan.routes[api.identifier] = route
    return route

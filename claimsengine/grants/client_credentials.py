"""The ``client_credentials`` grant: machine-to-machine tokens (R15 to R43, R74 to R81)."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import JsonValue

from claimsengine.actions import DENY_STATUS, ActionApi, CredentialsExchangeEvent
from claimsengine.model import (
    Api,
    Client,
    Issued,
    Organization,
    OrganizationUsage,
    Rejected,
    SubjectType,
    TokenQuota,
    TokenRequest,
)
from claimsengine.rules import ErrorCode, Rule
from claimsengine.steps import (
    GrantFacts,
    NoAudience,
    Trace,
    api_for,
    clean,
    client_info,
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
from claimsengine.tokens import NO_CLAIMS, Draft, issue, issue_api_v1

__all__ = ["client_credentials"]


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

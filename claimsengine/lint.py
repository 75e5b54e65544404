"""Configuration lint: problems in a valid tenant that make grants useless or surprising.

``Tenant`` validation already rejects broken cross-references. The lint looks further:
grants that can never be used, scopes that do not exist, secrets that were made up by
the loader. It is pure: it reads the tenant and returns findings, nothing else.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Literal

from claimsengine.cors import entry_problem
from claimsengine.grants import GrantType
from claimsengine.model import AuthMethod, ClientPolicy, Frozen, OrganizationUsage, SigningAlg, SubjectType, Tenant
from claimsengine.tokens import DIALECTS

__all__ = ["Finding", "lint"]

Severity = Literal["error", "warning", "info"]
_RANK: dict[Severity, int] = {"error": 0, "warning": 1, "info": 2}


class Finding(Frozen):
    """One lint finding: a stable code, how bad it is, where, and why."""

    code: str
    severity: Severity
    path: str
    message: str


def lint(tenant: Tenant, *, derived_api_secrets: Collection[str] = ()) -> tuple[Finding, ...]:
    """Every finding for ``tenant``: errors first, then warnings, then notes; each in tenant order.

    ``derived_api_secrets`` names the HS256 APIs whose signing secret the loader made up.
    """
    index = tenant.index
    found: list[Finding] = []

    def add(code: str, severity: Severity, path: str, message: str) -> None:
        found.append(Finding(code=code, severity=severity, path=path, message=message))

    if tenant.default_audience is not None and tenant.default_audience not in index.apis:
        add("tenant.default_audience_missing", "error", "default_audience", f"no API {tenant.default_audience!r}")

    for i, api in enumerate(tenant.apis):
        if api.signing_alg is SigningAlg.HS256:
            if api.signing_secret is None:
                add("api.hs256_without_secret", "error", f"apis[{i}]", f"HS256 API {api.identifier!r} has no signing_secret")
            elif api.identifier in derived_api_secrets:
                add(
                    "api.hs256_derived_secret",
                    "warning",
                    f"apis[{i}].signing_secret",
                    f"HS256 API {api.identifier!r} uses a derived local-testing secret; resource servers will not know it",
                )

    for i, api in enumerate(tenant.apis):
        # Issue 8, item 8: configuration Auth0 refuses, or accepts to no effect.
        # Only a value the configuration sets: the model's default (7200) is no choice of the tenant.
        if "token_lifetime_for_web" in api.model_fields_set and api.token_lifetime_for_web > api.token_lifetime:
            add(
                "api.web_lifetime_exceeds_lifetime",
                "error",
                f"apis[{i}].token_lifetime_for_web",
                f"token_lifetime_for_web ({api.token_lifetime_for_web}) is greater than token_lifetime ({api.token_lifetime}); "
                "Auth0 refuses it",
            )
        if DIALECTS[api.token_dialect].permissions and not api.enforce_policies:
            add(
                "api.authz_dialect_without_rbac",
                "warning",
                f"apis[{i}].token_dialect",
                f"{api.token_dialect} adds permissions only with RBAC (enforce_policies) on: {api.identifier!r} issues none "
                "(Auth0 accepts this configuration)",
            )

    seen_names: dict[str, int] = {}
    for i, client in enumerate(tenant.clients):
        if client.name and client.name in seen_names:
            add(
                "client.duplicate_name",
                "warning",
                f"clients[{i}].name",
                f"client name {client.name!r} is also used by clients[{seen_names[client.name]}]: Auth0 allows it (the client id "
                f"is the identity), but references by name resolve to clients[{seen_names[client.name]}] and a Deploy CLI "
                "import refuses duplicate names",
            )
        seen_names.setdefault(client.name, i)
        # Issue 10, item 4 (specs/choices.md "CORS"): list entries the CORS decision never matches.
        for field in ("web_origins", "allowed_origins"):
            for j, entry in enumerate(getattr(client, field)):
                problem = entry_problem(entry, first_party=client.is_first_party)
                if problem is not None:
                    add("client.origin_never_matches", "warning", f"clients[{i}].{field}[{j}]", f"{entry!r} {problem}: it allows no origin")
        if client.auth_method is AuthMethod.NONE and GrantType.CLIENT_CREDENTIALS in (client.grant_types or ()):
            add(
                "client.public_client_credentials",
                "error",
                f"clients[{i}].grant_types",
                f"client {client.name or client.client_id!r} has token_endpoint_auth_method none and the client_credentials grant "
                "type; Auth0 refuses it (400 Invalid grant types: client_credentials)",
            )

    for i, grant in enumerate(tenant.client_grants):
        path = f"client_grants[{i}]"
        target = index.apis.get(grant.audience)
        if target is None:
            add("grant.missing_api", "error", f"{path}.audience", f"no API {grant.audience!r}")
        else:
            undefined = [s for s in grant.scope if s not in target.scopes]
            if undefined:
                add(
                    "grant.undefined_scopes",
                    "warning",
                    f"{path}.scope",
                    f"scopes not defined on {target.identifier!r}: {' '.join(undefined)}",
                )
            if grant.allow_all_scopes and not target.scopes:
                add("grant.allow_all_scopes_empty", "info", f"{path}.allow_all_scopes", f"{target.identifier!r} defines no scopes")
            if grant.subject_type is SubjectType.CLIENT and target.client_policy is ClientPolicy.DENY_ALL:
                add("grant.api_denies_clients", "warning", path, f"{target.identifier!r} denies all client-credentials access (deny_all)")
        owner = index.clients.get(grant.client_id) if grant.client_id is not None else None
        if grant.subject_type is SubjectType.CLIENT and owner is not None:
            if owner.auth_method is AuthMethod.NONE:
                add("grant.public_client", "warning", path, f"client {owner.name!r} is public and cannot use client credentials")
            elif GrantType.CLIENT_CREDENTIALS not in owner.effective_grant_types:
                add("grant.client_credentials_disabled", "warning", path, f"client {owner.name!r} does not enable client_credentials")
        if grant.organization_usage is OrganizationUsage.REQUIRE and not grant.allow_any_organization:
            associated = any(
                (grant.client_id, grant.audience) == (ref.client_id, ref.audience) for o in tenant.organizations for ref in o.client_grants
            )
            default = owner.default_organization if owner is not None else None
            has_default = default is not None and GrantType.CLIENT_CREDENTIALS in default.flows
            if not associated and not has_default:
                add(
                    "grant.organization_unreachable",
                    "warning",
                    f"{path}.organization_usage",
                    "organization is required but no organization is associated, allow_any_organization is off "
                    "and the client has no default organization for client credentials",
                )

    # Organizations apply to client-credentials grants, so associations refer to those.
    grants = {(g.client_id, g.audience): g for g in tenant.client_grants if g.subject_type is SubjectType.CLIENT}
    for i, org in enumerate(tenant.organizations):
        for j, ref in enumerate(org.client_grants):
            associated_grant = grants.get((ref.client_id, ref.audience))
            if associated_grant is not None and associated_grant.organization_usage is OrganizationUsage.DENY:
                add(
                    "organization.grant_denies_organizations",
                    "warning",
                    f"organizations[{i}].client_grants[{j}]",
                    f"the grant of {ref.client_id!r} to {ref.audience!r} has organization_usage deny",
                )

    return tuple(sorted(found, key=lambda f: _RANK[f.severity]))

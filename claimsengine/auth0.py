"""Built-in facts about Auth0's own APIs (catalogue R16, R91): pure data, no behaviour."""

from __future__ import annotations

__all__ = [
    "CURRENT_USER_SCOPES",
    "CUSTOM_CLAIMS_LIMIT_BYTES",
    "DELETE_CURRENT_USER_SCOPE",
    "FORBIDDEN_NAMESPACE_HOSTS",
    "MANAGEMENT_API_SCOPES",
    "OIDC_CLAIM_SCOPE",
    "OIDC_SCOPES",
    "OIDC_SCOPE_CLAIMS",
    "RESTRICTED_CLAIMS",
]

# The Management API's scopes (264), in the order a real tenant's Management API resource server
# stores them (catalogue R91). Where it comes from (specs/choices.md, "Management API scopes"):
# the base list and its order are a real 2025 tenant's full Management API client grant exported
# by Terraform; cross-checked with auth0/auth0.net's generated OauthScope (Management API OpenAPI),
# the apis.io index derived from that OpenAPI, and
# https://auth0.com/docs/secure/tokens/manage-refresh-tokens-with-auth0-management-api .
# Scopes named only by the spec (dashboard or Early Access: read:client_summary, delete:tenants, ...)
# are not in it; a tenant adds those, or newer ones, with ``Tenant.management_api_scopes``.
MANAGEMENT_API_SCOPES: tuple[str, ...] = (
    # client_grants
    "read:client_grants",
    "create:client_grants",
    "delete:client_grants",
    "update:client_grants",
    # users
    "read:users",
    "update:users",
    "delete:users",
    "create:users",
    "read:users_app_metadata",
    "update:users_app_metadata",
    "delete:users_app_metadata",
    "create:users_app_metadata",
    "read:user_custom_blocks",
    "create:user_custom_blocks",
    "delete:user_custom_blocks",
    "create:user_tickets",
    # clients
    "read:clients",
    "update:clients",
    "delete:clients",
    "create:clients",
    "read:client_keys",
    "update:client_keys",
    "delete:client_keys",
    "create:client_keys",
    "read:client_credentials",
    "update:client_credentials",
    "delete:client_credentials",
    "create:client_credentials",
    # connections
    "read:connections",
    "update:connections",
    "delete:connections",
    "create:connections",
    # resource_servers
    "read:resource_servers",
    "update:resource_servers",
    "delete:resource_servers",
    "create:resource_servers",
    # device_credentials
    "read:device_credentials",
    "update:device_credentials",
    "delete:device_credentials",
    "create:device_credentials",
    # rules
    "read:rules",
    "update:rules",
    "delete:rules",
    "create:rules",
    "read:rules_configs",
    "update:rules_configs",
    "delete:rules_configs",
    # hooks
    "read:hooks",
    "update:hooks",
    "delete:hooks",
    "create:hooks",
    # actions
    "read:actions",
    "update:actions",
    "delete:actions",
    "create:actions",
    # email_provider
    "read:email_provider",
    "update:email_provider",
    "delete:email_provider",
    "create:email_provider",
    # tokens
    "blacklist:tokens",
    # stats
    "read:stats",
    "read:insights",
    # tenant_settings
    "read:tenant_settings",
    "update:tenant_settings",
    # logs
    "read:logs",
    "read:logs_users",
    # attack_protection
    "read:shields",
    "create:shields",
    "update:shields",
    "delete:shields",
    "read:anomaly_blocks",
    "delete:anomaly_blocks",
    # triggers
    "update:triggers",
    "read:triggers",
    # grants
    "read:grants",
    "delete:grants",
    # guardian
    "read:guardian_factors",
    "update:guardian_factors",
    "read:guardian_enrollments",
    "delete:guardian_enrollments",
    "create:guardian_enrollment_tickets",
    # user_idp_tokens
    "read:user_idp_tokens",
    # passwords_checking_job
    "create:passwords_checking_job",
    "delete:passwords_checking_job",
    # custom_domains
    "read:custom_domains",
    "delete:custom_domains",
    "create:custom_domains",
    "update:custom_domains",
    # email_templates
    "read:email_templates",
    "create:email_templates",
    "update:email_templates",
    # mfa_policies
    "read:mfa_policies",
    "update:mfa_policies",
    # roles
    "read:roles",
    "create:roles",
    "delete:roles",
    "update:roles",
    # prompts
    "read:prompts",
    "update:prompts",
    # branding
    "read:branding",
    "update:branding",
    "delete:branding",
    # log_streams
    "read:log_streams",
    "create:log_streams",
    "delete:log_streams",
    "update:log_streams",
    # signing_keys
    "create:signing_keys",
    "read:signing_keys",
    "update:signing_keys",
    # limits
    "read:limits",
    "update:limits",
    # roles
    "create:role_members",
    "read:role_members",
    "delete:role_members",
    # limits
    "read:entitlements",
    # attack_protection
    "read:attack_protection",
    "update:attack_protection",
    # organizations
    "read:organizations_summary",
    # authentication_methods
    "create:authentication_methods",
    "read:authentication_methods",
    "update:authentication_methods",
    "delete:authentication_methods",
    # organizations
    "read:organizations",
    "update:organizations",
    "create:organizations",
    "delete:organizations",
    "read:organization_discovery_domains",
    "update:organization_discovery_domains",
    "create:organization_discovery_domains",
    "delete:organization_discovery_domains",
    "create:organization_members",
    "read:organization_members",
    "delete:organization_members",
    "create:organization_connections",
    "read:organization_connections",
    "update:organization_connections",
    "delete:organization_connections",
    "create:organization_member_roles",
    "read:organization_member_roles",
    "delete:organization_member_roles",
    "create:organization_invitations",
    "read:organization_invitations",
    "delete:organization_invitations",
    # scim
    "read:scim_config",
    "create:scim_config",
    "update:scim_config",
    "delete:scim_config",
    "create:scim_token",
    "read:scim_token",
    "delete:scim_token",
    # directory_provisionings
    "read:directory_provisionings",
    "create:directory_provisionings",
    "update:directory_provisionings",
    "delete:directory_provisionings",
    # phone
    "delete:phone_providers",
    "create:phone_providers",
    "read:phone_providers",
    "update:phone_providers",
    "delete:phone_templates",
    "create:phone_templates",
    "read:phone_templates",
    "update:phone_templates",
    # encryption_keys
    "create:encryption_keys",
    "read:encryption_keys",
    "update:encryption_keys",
    "delete:encryption_keys",
    # sessions
    "read:sessions",
    "update:sessions",
    "delete:sessions",
    # refresh_tokens
    "read:refresh_tokens",
    "update:refresh_tokens",
    "delete:refresh_tokens",
    # self_service_profiles
    "create:self_service_profiles",
    "read:self_service_profiles",
    "update:self_service_profiles",
    "delete:self_service_profiles",
    # sso_access_tickets
    "create:sso_access_tickets",
    "delete:sso_access_tickets",
    # forms
    "read:forms",
    "update:forms",
    "delete:forms",
    "create:forms",
    # flows
    "read:flows",
    "update:flows",
    "delete:flows",
    "create:flows",
    "read:flows_vault",
    "read:flows_vault_connections",
    "update:flows_vault_connections",
    "delete:flows_vault_connections",
    "create:flows_vault_connections",
    "read:flows_executions",
    "delete:flows_executions",
    # connections
    "read:connections_options",
    "update:connections_options",
    # self_service_profiles
    "read:self_service_profile_custom_texts",
    "update:self_service_profile_custom_texts",
    # network_acls
    "create:network_acls",
    "update:network_acls",
    "read:network_acls",
    "delete:network_acls",
    # vdcs_templates
    "delete:vdcs_templates",
    "read:vdcs_templates",
    "create:vdcs_templates",
    "update:vdcs_templates",
    # custom_signing_keys
    "create:custom_signing_keys",
    "read:custom_signing_keys",
    "update:custom_signing_keys",
    "delete:custom_signing_keys",
    # federated_connections_tokens
    "read:federated_connections_tokens",
    "delete:federated_connections_tokens",
    # user_attribute_profiles
    "create:user_attribute_profiles",
    "read:user_attribute_profiles",
    "update:user_attribute_profiles",
    "delete:user_attribute_profiles",
    # event_streams
    "read:event_streams",
    "create:event_streams",
    "delete:event_streams",
    "update:event_streams",
    "read:event_deliveries",
    "update:event_deliveries",
    # connection_profiles
    "create:connection_profiles",
    "read:connection_profiles",
    "update:connection_profiles",
    "delete:connection_profiles",
    # groups
    "create:group_roles",
    "delete:group_roles",
    "read:user_effective_permissions",
    "read:user_effective_roles",
    # organizations
    "read:organization_member_effective_roles",
    # groups
    "read:user_role_source_groups",
    # organizations
    "read:organization_member_role_source_groups",
    # groups
    "read:user_permission_source_roles",
    "read:group_roles",
    # organizations
    "read:organization_groups",
    "create:organization_groups",
    "delete:organization_groups",
    "read:organization_group_roles",
    "create:organization_group_roles",
    "delete:organization_group_roles",
    # token_exchange_profiles
    "create:token_exchange_profiles",
    "read:token_exchange_profiles",
    "update:token_exchange_profiles",
    "delete:token_exchange_profiles",
    # organizations
    "read:organization_client_grants",
    "create:organization_client_grants",
    "delete:organization_client_grants",
    "read:organization_clients",
    "create:organization_clients",
    "update:organization_clients",
    "delete:organization_clients",
    # events
    "read:events",
    # rate_limit_policies
    "create:rate_limit_policies",
    "read:rate_limit_policies",
    "update:rate_limit_policies",
    "delete:rate_limit_policies",
    # connections
    "read:connections_keys",
    "update:connections_keys",
    "create:connections_keys",
    # groups
    "create:groups",
    "read:groups",
    "update:groups",
    "delete:groups",
    "read:group_members",
)

# The current-user family: the only Management API scopes Auth0 issues to a *user* token for
# https://{tenant}/api/v2/ (admin scopes are for client credentials). Documented:
# https://auth0.com/docs/secure/tokens/access-tokens/management-api-access-tokens/get-management-api-tokens-for-single-page-applications
# (six scopes) and the migration page's matrix, which adds delete:current_user_metadata:
# https://auth0.com/docs/troubleshoot/product-lifecycle/past-migrations/migrate-to-calling-api-with-access-tokens
CURRENT_USER_SCOPES: tuple[str, ...] = (
    "read:current_user",
    "update:current_user_identities",
    "create:current_user_metadata",
    "update:current_user_metadata",
    "delete:current_user_metadata",
    "create:current_user_device_credentials",
    "delete:current_user_device_credentials",
)

# Named by the Management API spec (auth0/auth0.net OauthScope.DeleteCurrentUser) for
# DELETE /api/v2/users/{id} and requested by public SPAs, but on neither docs page: whether Auth0
# issues it to a user token is open (behaviour.delete_current_user_scope, specs/choices.md).
DELETE_CURRENT_USER_SCOPE = "delete:current_user"

# OIDC scopes: never filtered by RBAC (R67) and never grantable to M2M clients (R31).
OIDC_SCOPES: frozenset[str] = frozenset({"openid", "profile", "email", "address", "phone", "offline_access"})

# Claims each OIDC scope releases (R71); profile and email claims need their scope.
OIDC_SCOPE_CLAIMS: dict[str, tuple[str, ...]] = {
    "profile": (
        "name",
        "family_name",
        "given_name",
        "middle_name",
        "nickname",
        "preferred_username",
        "profile",
        "picture",
        "website",
        "gender",
        "birthdate",
        "zoneinfo",
        "locale",
        "updated_at",
    ),
    "email": ("email", "email_verified"),
    "address": ("address",),
    "phone": ("phone_number", "phone_number_verified"),
}

# The same, inverted: the scope that releases each OIDC claim.
OIDC_CLAIM_SCOPE: dict[str, str] = {claim: scope for scope, claims in OIDC_SCOPE_CLAIMS.items() for claim in claims}

# Claim names an Action may never set (R77): silently ignored.
RESTRICTED_CLAIMS: frozenset[str] = frozenset(
    {
        "acr",
        "act",
        "active",
        "amr",
        "at_hash",
        "ath",
        "attest",
        "aud",
        "auth_time",
        "authorization_details",
        "azp",
        "c_hash",
        "client_id",
        "cnf",
        "cty",
        "dest",
        "entitlements",
        "events",
        "exp",
        "groups",
        "gty",
        "htm",
        "htu",
        "iat",
        "internalService",
        "iss",
        "jcard",
        "jku",
        "jti",
        "jwe",
        "jwk",
        "kid",
        "may_act",
        "mky",
        "nbf",
        "nonce",
        "object_id",
        "org_id",
        "org_name",
        "orig",
        "origid",
        "permissions",
        "roles",
        "rph",
        "s_hash",
        "sid",
        "sip_callid",
        "sip_cseq_num",
        "sip_date",
        "sip_from_tag",
        "sip_via_branch",
        "sub",
        "sub_jwk",
        "toe",
        "txn",
        "typ",
        "uuid",
        "vot",
        "vtm",
        "x5t#S256",
    }
)

# Namespaces owned by Auth0 (R79): a custom claim may not live under them.
FORBIDDEN_NAMESPACE_HOSTS: tuple[str, ...] = ("auth0.com", "webtask.io", "webtask.run")

# R80: the total size of custom claims (names plus JSON values) per token.
CUSTOM_CLAIMS_LIMIT_BYTES = 100 * 1024

# R63: the MFA API (``https://{tenant}/mfa/``): its scopes, and its access tokens' fixed lifetime.
MFA_API_SCOPES = ("enroll", "read:authenticators", "remove:authenticators")
MFA_API_LIFETIME = 600

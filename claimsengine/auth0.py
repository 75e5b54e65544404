"""Built-in facts about Auth0's own APIs (catalogue R16, R91): pure data, no behaviour."""

from __future__ import annotations

# The Management API's predefined scopes, in Auth0's order, as exported from a real tenant
# (auth0-deploy-cli e2e export "lots-of-configuration", two grants with the full list).
MANAGEMENT_API_SCOPES: tuple[str, ...] = (
    "read:client_grants",
    "create:client_grants",
    "delete:client_grants",
    "update:client_grants",
    "read:users",
    "update:users",
    "delete:users",
    "create:users",
    "read:users_app_metadata",
    "update:users_app_metadata",
    "delete:users_app_metadata",
    "create:users_app_metadata",
    "create:user_tickets",
    "read:clients",
    "update:clients",
    "delete:clients",
    "create:clients",
    "read:client_keys",
    "update:client_keys",
    "delete:client_keys",
    "create:client_keys",
    "read:connections",
    "update:connections",
    "delete:connections",
    "create:connections",
    "read:resource_servers",
    "update:resource_servers",
    "delete:resource_servers",
    "create:resource_servers",
    "read:device_credentials",
    "update:device_credentials",
    "delete:device_credentials",
    "create:device_credentials",
    "read:rules",
    "update:rules",
    "delete:rules",
    "create:rules",
    "read:rules_configs",
    "update:rules_configs",
    "delete:rules_configs",
    "read:email_provider",
    "update:email_provider",
    "delete:email_provider",
    "create:email_provider",
    "blacklist:tokens",
    "read:stats",
    "read:tenant_settings",
    "update:tenant_settings",
    "read:logs",
    "read:shields",
    "create:shields",
    "delete:shields",
    "read:anomaly_blocks",
    "delete:anomaly_blocks",
    "update:triggers",
    "read:triggers",
    "read:grants",
    "delete:grants",
    "read:guardian_factors",
    "update:guardian_factors",
    "read:guardian_enrollments",
    "delete:guardian_enrollments",
    "create:guardian_enrollment_tickets",
    "read:user_idp_tokens",
    "create:passwords_checking_job",
    "delete:passwords_checking_job",
    "read:custom_domains",
    "delete:custom_domains",
    "create:custom_domains",
    "read:email_templates",
    "create:email_templates",
    "update:email_templates",
    "read:mfa_policies",
    "update:mfa_policies",
    "read:roles",
    "create:roles",
    "delete:roles",
    "update:roles",
    "read:prompts",
    "update:prompts",
    "read:branding",
    "update:branding",
    "read:user_custom_blocks",
    "create:user_custom_blocks",
    "delete:user_custom_blocks",
    "read:hooks",
    "update:hooks",
    "delete:hooks",
    "create:hooks",
    "read:actions",
    "update:actions",
    "delete:actions",
    "create:actions",
    "read:insights",
    "read:logs_users",
    "update:shields",
    "update:custom_domains",
    "delete:branding",
    "read:log_streams",
    "create:log_streams",
    "delete:log_streams",
    "update:log_streams",
    "create:signing_keys",
    "read:signing_keys",
    "update:signing_keys",
    "read:limits",
    "update:limits",
    "create:role_members",
    "read:role_members",
    "delete:role_members",
    "read:entitlements",
    "read:attack_protection",
    "update:attack_protection",
    "read:organizations",
    "update:organizations",
    "create:organizations",
    "delete:organizations",
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
)

# OIDC scopes: never filtered by RBAC (R67) and never grantable to M2M clients (R31).
OIDC_SCOPES: frozenset[str] = frozenset(
    {"openid", "profile", "email", "address", "phone", "offline_access"}
)

# Claims each OIDC scope releases (R71); profile and email claims need their scope.
OIDC_SCOPE_CLAIMS: dict[str, tuple[str, ...]] = {
    "profile": (
        "name", "family_name", "given_name", "middle_name", "nickname", "preferred_username",
        "profile", "picture", "website", "gender", "birthdate", "zoneinfo", "locale", "updated_at",
    ),
    "email": ("email", "email_verified"),
    "address": ("address",),
    "phone": ("phone_number", "phone_number_verified"),
}

# Claim names an Action may never set (R77): silently ignored.
RESTRICTED_CLAIMS: frozenset[str] = frozenset(
    """
    acr act active amr at_hash ath attest aud auth_time authorization_details azp c_hash
    client_id cnf cty dest entitlements events exp groups gty htm htu iat internalService iss
    jcard jku jti jwe jwk kid may_act mky nbf nonce object_id org_id org_name orig origid
    permissions roles rph s_hash sid sip_callid sip_cseq_num sip_date sip_from_tag
    sip_via_branch sub sub_jwk toe txn typ uuid vot vtm x5t#S256
    """.split()
)

# Namespaces owned by Auth0 (R79): a custom claim may not live under them.
FORBIDDEN_NAMESPACE_HOSTS: tuple[str, ...] = ("auth0.com", "webtask.io", "webtask.run")

# R80: the total size of custom claims (names plus JSON values) per token.
CUSTOM_CLAIMS_LIMIT_BYTES = 100 * 1024

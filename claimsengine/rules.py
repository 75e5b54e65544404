"""The engine's vocabulary: rule ids, OAuth error codes and their HTTP statuses.

Rule *statements* live once, in ``specs/rules.toml``; this module only names them.
A test checks that the two sets of ids are equal, so neither can drift.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "STATUS",
    "ErrorCode",
    "Rule",
]


class Rule(StrEnum):
    """Every rule id the engine can put in a trace. Values are the ids used in ``specs/``."""

    # --- request shape -------------------------------------------------------------
    DOMAIN_RESOLVED = "domain.resolved"
    DOMAIN_UNKNOWN = "domain.unknown"
    GRANT_TYPE_MISSING = "request.grant_type_missing"
    GRANT_TYPE_UNSUPPORTED = "request.grant_type_unsupported"
    PARAMETER_MISSING = "request.parameter_missing"
    PARAMETER_MALFORMED = "request.parameter_malformed"
    PARAMETER_REPEATED = "request.parameter_repeated"

    # --- client authentication -----------------------------------------------------
    CLIENT_ID_MISSING = "client.id_missing"
    CLIENT_UNKNOWN = "client.unknown"
    CLIENT_AUTH_METHOD_MISMATCH = "client.auth_method_mismatch"
    CLIENT_SECRET_INVALID = "client.secret_invalid"
    CLIENT_SECRET_VALID = "client.secret_valid"
    CLIENT_ASSERTION_INVALID = "client.assertion_invalid"
    CLIENT_ASSERTION_VALID = "client.assertion_valid"
    CLIENT_PUBLIC = "client.public"
    CLIENT_PUBLIC_CANNOT_USE_CC = "client.public_cannot_use_client_credentials"
    CLIENT_GRANT_TYPE_NOT_ALLOWED = "client.grant_type_not_allowed"
    CLIENT_GRANT_TYPE_ALLOWED = "client.grant_type_allowed"

    # --- audience ----------------------------------------------------------------
    AUDIENCE_EXPLICIT = "audience.explicit"
    AUDIENCE_RESOURCE_PARAMETER = "audience.resource_parameter"
    AUDIENCE_DEFAULT = "audience.default"
    AUDIENCE_API_V1 = "audience.api_v1_legacy"
    AUDIENCE_MISSING = "audience.missing"
    AUDIENCE_USERINFO = "audience.userinfo"
    AUDIENCE_API = "audience.api"
    AUDIENCE_MANAGEMENT_API = "audience.management_api"
    AUDIENCE_SYSTEM_API_CANONICAL = "audience.system_api_on_canonical_domain"
    AUDIENCE_UNKNOWN = "audience.unknown"
    AUDIENCE_UNKNOWN_AUTHORIZE = "audience.unknown_at_authorize"

    # --- access policies and client grants -----------------------------------------
    POLICY_CLIENT_DENY_ALL = "policy.client_deny_all"
    POLICY_USER_DENY_ALL = "policy.user_deny_all"
    POLICY_USER_ALLOW_ALL = "policy.user_allow_all"
    POLICY_USER_REQUIRE_GRANT = "policy.user_require_client_grant"
    GRANT_FOUND = "grant.found"
    GRANT_DEFAULT_FOR_THIRD_PARTY = "grant.default_for_third_party"
    GRANT_MISSING = "grant.missing"
    GRANT_THIRD_PARTY_SYSTEM_API = "grant.third_party_system_api"
    GRANT_THIRD_PARTY_MISSING = "grant.third_party_strict_missing"

    # --- scopes ------------------------------------------------------------------
    SCOPE_ALL_API_SCOPES = "scope.allow_all_scopes"
    SCOPE_GRANT_LIST = "scope.grant_list"
    SCOPE_REQUESTED_SUBSET_IGNORED = "scope.requested_subset_ignored"
    SCOPE_REQUESTED_SUBSET_HONOURED = "scope.requested_subset_honoured"
    SCOPE_NOT_GRANTED = "scope.not_granted"
    SCOPE_EMPTY = "scope.empty"
    SCOPE_RBAC = "scope.rbac"
    SCOPE_NO_RBAC = "scope.no_rbac"
    SCOPE_USER_GRANT = "scope.user_grant"
    SCOPE_MANAGEMENT_CURRENT_USER = "scope.management_api_current_user"
    SCOPE_OIDC_PASSTHROUGH = "scope.oidc_passthrough"
    SCOPE_THIRD_PARTY_OIDC = "scope.third_party_strict_oidc_dropped"
    SCOPE_OFFLINE_ACCESS_DROPPED = "scope.offline_access_dropped"
    SCOPE_REFRESH_NARROWED = "scope.refresh_narrowed"
    SCOPE_REFRESH_EXCEEDS = "scope.refresh_exceeds_original"

    # --- organizations -----------------------------------------------------------
    ORG_FEATURE_UNAVAILABLE = "org.feature_unavailable"
    ORG_NAME_NOT_ALLOWED = "org.name_not_allowed"
    ORG_UNKNOWN = "org.unknown"
    ORG_USAGE_DENY = "org.usage_deny"
    ORG_REQUIRED_MISSING = "org.required_missing"
    ORG_DEFAULT = "org.default_organization"
    ORG_NOT_ASSOCIATED = "org.not_associated"
    ORG_ALLOWED = "org.allowed"
    ORG_NONE = "org.none"
    ORG_CLIENT_REQUIRES = "org.client_requires_organization"
    ORG_USER_NOT_MEMBER = "org.user_not_member"
    ORG_THIRD_PARTY_BLOCKED = "org.third_party_client_access_blocked"

    # --- quotas ------------------------------------------------------------------
    QUOTA_EXCEEDED = "quota.exceeded"
    QUOTA_COUNTED = "quota.counted"
    QUOTA_NOT_COUNTED = "quota.internal_audience_not_counted"

    # --- actions -----------------------------------------------------------------
    ACTION_RAN = "action.ran"
    ACTION_DENY = "action.deny"
    ACTION_FAILED = "action.failed"
    ACTION_CLAIM_SET = "action.claim_set"
    ACTION_CLAIM_RESTRICTED = "action.claim_restricted"
    ACTION_CLAIM_AUTH0_AUDIENCE = "action.claim_non_namespaced_on_auth0_api"
    ACTION_CLAIM_FORBIDDEN_NAMESPACE = "action.claim_forbidden_namespace"
    ACTION_CLAIMS_TOO_LARGE = "action.claims_too_large"
    ACTION_TARGET_SCOPES = "action.target_scopes"
    ACTION_SCOPES_INTERNAL_AUDIENCE = "action.scopes_internal_audience_ignored"

    # --- the token ---------------------------------------------------------------
    FORMAT_OPAQUE = "format.opaque"
    FORMAT_JWT = "format.jwt"
    AUD_STRING = "aud.string"
    AUD_ARRAY_WITH_USERINFO = "aud.array_with_userinfo"
    AUD_HS256_SINGLE = "aud.hs256_single"
    ISS_REQUEST_DOMAIN = "iss.request_domain"
    ISS_AUTHORIZE_DOMAIN = "iss.authorize_domain"
    CLAIMS_M2M = "claims.m2m"
    CLAIMS_USER = "claims.user"
    CLAIMS_RFC9068 = "claims.rfc9068"
    CLAIMS_PERMISSIONS_USER = "claims.permissions_user"
    CLAIMS_PERMISSIONS_M2M = "claims.permissions_m2m"
    CLAIMS_PERMISSIONS_RBAC_OFF = "claims.permissions_rbac_off"
    CLAIMS_OIDC_FILTERED = "claims.oidc_profile_filtered"
    LIFETIME_API = "lifetime.api"
    LIFETIME_USERINFO = "lifetime.userinfo"
    LIFETIME_API_V1 = "lifetime.api_v1"
    LIFETIME_API_WEB = "lifetime.api_for_web"
    LIFETIME_USERINFO_IMPLICIT = "lifetime.userinfo_implicit"
    SIGNING_TENANT_KEY = "signing.tenant_key"
    SIGNING_API_SECRET = "signing.api_secret"
    RESPONSE_SCOPE_OMITTED = "response.scope_omitted"
    REFRESH_ISSUED = "refresh.issued"
    REFRESH_OMITTED = "refresh.omitted"
    REFRESH_INVALID = "refresh.invalid"
    REFRESH_SPA_NEEDS_ROTATION = "refresh.spa_requires_rotation"
    REFRESH_EXPIRED = "refresh.expired"
    REFRESH_IDLE_EXPIRED = "refresh.idle_expired"
    REFRESH_REVOKED = "refresh.revoked"
    REFRESH_REUSED = "refresh.reuse_detected"
    REFRESH_LEEWAY = "refresh.reuse_within_leeway"
    REFRESH_ROTATED = "refresh.rotated"
    REFRESH_NOT_ROTATED = "refresh.not_rotated"
    ID_TOKEN_ISSUED = "id_token.issued"
    ID_TOKEN_SID = "id_token.session_id"
    ID_TOKEN_AUTH_TIME = "id_token.auth_time"

    # --- /authorize and the code exchange ------------------------------------------
    AUTHORIZE_RESPONSE_TYPE = "authorize.response_type_unsupported"
    AUTHORIZE_REDIRECT_MISMATCH = "authorize.redirect_uri_mismatch"
    AUTHORIZE_LOGIN_REQUIRED = "authorize.login_required"
    AUTHORIZE_CODE_ISSUED = "authorize.code_issued"
    AUTHORIZE_RESPONSE_MODE = "authorize.response_mode"
    AUTHORIZE_RESPONSE_MODE_UNSUPPORTED = "authorize.response_mode_unsupported"
    AUTHORIZE_IMPLICIT_THIRD_PARTY = "authorize.implicit_third_party"
    AUTHORIZE_NONCE_REQUIRED = "authorize.nonce_required"
    AUTHORIZE_OPENID_REQUIRED = "authorize.id_token_needs_openid"
    AUTHORIZE_SILENT_MFA = "authorize.silent_mfa_required"
    AUTHORIZE_TOKEN_ISSUED = "authorize.token_issued"
    AUTHORIZE_ID_TOKEN_ISSUED = "authorize.id_token_issued"
    AUTHORIZE_PKCE_REQUIRED = "authorize.third_party_strict_pkce_required"
    CONSENT_SKIPPED = "consent.skipped"
    CONSENT_STORED = "consent.stored"
    CONSENT_REQUIRED = "consent.required"
    CONSENT_GIVEN = "consent.given"
    CONSENT_DENIED = "consent.denied"
    CODE_INVALID = "code.invalid"
    CODE_REDIRECT_MISMATCH = "code.redirect_uri_mismatch"
    CODE_PKCE_FAILED = "code.pkce_failed"
    CODE_PKCE_REQUIRED = "code.pkce_required"
    CODE_VERIFIED = "code.verified"
    CODE_OTHER_DOMAIN_REFUSED = "code.other_domain_refused"

    # --- device authorization (RFC 8628) --------------------------------------------
    DEVICE_CLIENT_NOT_ALLOWED = "device.client_not_allowed"
    DEVICE_CODE_ISSUED = "device.code_issued"
    DEVICE_APPROVED = "device.approved"
    DEVICE_CODE_INVALID = "device.code_invalid"
    DEVICE_EXPIRED = "device.expired"
    DEVICE_SLOW_DOWN = "device.slow_down"
    DEVICE_PENDING = "device.authorization_pending"
    DEVICE_DENIED = "device.access_denied"
    DEVICE_REDEEMED = "device.redeemed"

    # --- revocation (POST /oauth/revoke) ---------------------------------------------
    REVOKE_FAMILY = "revoke.family"
    REVOKE_GRANT = "revoke.grant"
    REVOKE_NOTHING = "revoke.nothing"

    # --- the resource owner password grant and its second factor ---------------------
    PASSWORD_DEFAULT_DIRECTORY = "password.default_directory"
    PASSWORD_REALM = "password.realm"
    PASSWORD_NO_CONNECTION = "password.no_default_connection"
    PASSWORD_INVALID = "password.credentials_invalid"
    PASSWORD_VALID = "password.credentials_valid"
    PASSWORD_USER_BLOCKED = "password.user_blocked"
    PASSWORD_THIRD_PARTY = "password.third_party_client"
    SCOPE_PASSWORD_ALL_API_SCOPES = "scope.password_all_api_scopes"
    AUDIENCE_MFA_API = "audience.mfa_api"
    LIFETIME_MFA_API = "lifetime.mfa_api"
    MFA_REQUIRED = "mfa.required"
    MFA_TOKEN_MALFORMED = "mfa.token_malformed"
    MFA_TOKEN_OTHER_CLIENT = "mfa.token_other_client"
    MFA_TOKEN_EXPIRED = "mfa.token_expired"
    MFA_OTP_INVALID = "mfa.otp_invalid"
    MFA_RECOVERY_CODE_INVALID = "mfa.recovery_code_invalid"
    MFA_VERIFIED = "mfa.verified"
    MFA_CHALLENGED = "mfa.challenged"
    MFA_ASSOCIATION_REQUIRED = "mfa.association_required"
    MFA_CHALLENGE_TYPE_UNSUPPORTED = "mfa.challenge_type_unsupported"
    MFA_OOB_INVALID = "mfa.oob_code_invalid"
    MFA_OOB_PENDING = "mfa.oob_pending"
    MFA_OOB_SLOW_DOWN = "mfa.oob_slow_down"
    MFA_OOB_REJECTED = "mfa.oob_rejected"
    MFA_BINDING_CODE_INVALID = "mfa.binding_code_invalid"
    MFA_ASSOCIATED = "mfa.associated"
    MFA_ALREADY_ENROLLED = "mfa.already_enrolled"
    MFA_AUTHENTICATOR_UNSUPPORTED = "mfa.authenticator_type_unsupported"
    MFA_ENROLLMENT_CONFIRMED = "mfa.enrollment_confirmed"

    # --- browser applications: CORS (issue 10, item 4) --------------------------------
    CORS_NO_ORIGIN = "cors.no_origin"
    CORS_SAME_ORIGIN = "cors.same_origin"
    CORS_PUBLIC_ENDPOINT = "cors.public_endpoint"
    CORS_NOT_A_CORS_ENDPOINT = "cors.not_a_cors_endpoint"
    CORS_WEB_ORIGIN = "cors.web_origin"
    CORS_ALLOWED_ORIGIN = "cors.allowed_origin"
    CORS_CALLBACK_ORIGIN = "cors.callback_origin"
    CORS_CONFIGURED_FOR_A_CLIENT = "cors.configured_for_a_client"
    CORS_ANY_ORIGIN_WITHOUT_CLIENT = "cors.any_origin_without_client"
    CORS_ORIGIN_NOT_ALLOWED = "cors.origin_not_allowed"
    CORS_WEB_MESSAGE_ORIGIN = "cors.web_message_origin"
    CORS_WEB_MESSAGE_ORIGIN_NOT_REGISTERED = "cors.web_message_origin_not_registered"
    # --- login sessions and logout (issue 10 item 3, issue 9 item 7) -----------------
    LOGIN_SUCCEEDED = "login.succeeded"
    LOGIN_CREDENTIALS_INVALID = "login.credentials_invalid"
    LOGIN_USER_BLOCKED = "login.user_blocked"
    SESSION_VALID = "session.valid"
    SESSION_EXPIRED = "session.expired"
    SESSION_IDLE_EXPIRED = "session.idle_expired"
    SESSION_PROMPT_LOGIN = "session.prompt_login"
    SESSION_USER_GONE = "session.user_cannot_log_in"
    LOGOUT_CLIENT_UNKNOWN = "logout.client_unknown"
    LOGOUT_HINT_INVALID = "logout.id_token_hint_invalid"
    LOGOUT_HINT_MISMATCH = "logout.hint_mismatch"
    LOGOUT_HINT_VALID = "logout.id_token_hint_valid"
    LOGOUT_FEDERATED = "logout.federated"
    LOGOUT_RETURN_TO_ALLOWED = "logout.return_to_allowed"
    LOGOUT_RETURN_TO_NOT_ALLOWED = "logout.return_to_not_allowed"
    LOGOUT_RETURN_TO_DEFAULT = "logout.return_to_first_allowed"
    LOGOUT_NO_RETURN_TO = "logout.no_return_to"
    LOGOUT_SESSION_ENDED = "logout.session_ended"

    # --- resource-server side: validating a presented access token -------------------
    VALIDATE_ALG_NONE = "validate.alg_none"
    VALIDATE_ALG_PINNED = "validate.alg_pinned"
    VALIDATE_AUDIENCE = "validate.audience"
    VALIDATE_ISSUER = "validate.issuer"
    VALIDATE_EXPIRY = "validate.expiry"
    VALIDATE_NOT_BEFORE = "validate.not_yet_valid"
    VALIDATE_MANAGEMENT_DOMAIN = "validate.management_api_domain_binding"
    VALIDATE_MANAGEMENT_SINGLE_AUDIENCE = "validate.management_api_single_audience"
    VALIDATE_THIRD_PARTY_USERINFO = "validate.third_party_strict_userinfo"
    VALIDATE_ACCEPTED = "validate.accepted"


class ErrorCode(StrEnum):
    """OAuth 2.0 / Auth0 ``error`` codes the engine can return."""

    INVALID_REQUEST = "invalid_request"
    INVALID_CLIENT = "invalid_client"
    INVALID_GRANT = "invalid_grant"
    INVALID_SCOPE = "invalid_scope"
    UNAUTHORIZED_CLIENT = "unauthorized_client"
    UNSUPPORTED_GRANT_TYPE = "unsupported_grant_type"
    UNSUPPORTED_RESPONSE_TYPE = "unsupported_response_type"
    ACCESS_DENIED = "access_denied"
    LOGIN_REQUIRED = "login_required"
    CONSENT_REQUIRED = "consent_required"
    TOO_MANY_REQUESTS = "too_many_requests"
    SERVER_ERROR = "server_error"
    INVALID_TOKEN = "invalid_token"
    AUTHORIZATION_PENDING = "authorization_pending"
    SLOW_DOWN = "slow_down"
    MFA_REQUIRED = "mfa_required"
    EXPIRED_TOKEN = "expired_token"
    UNSUPPORTED_RESPONSE_MODE = "unsupported_response_mode"
    INTERACTION_REQUIRED = "interaction_required"
    ASSOCIATION_REQUIRED = "association_required"
    UNSUPPORTED_CHALLENGE_TYPE = "unsupported_challenge_type"


# Default HTTP status per error code: Auth0's legacy error table (catalogue R7), where a
# rule does not say otherwise. access_denied is 403 and invalid_client 401 there.
STATUS: dict[ErrorCode, int] = {
    ErrorCode.INVALID_REQUEST: 400,
    ErrorCode.INVALID_CLIENT: 401,
    ErrorCode.INVALID_GRANT: 403,
    ErrorCode.INVALID_SCOPE: 400,
    ErrorCode.UNAUTHORIZED_CLIENT: 403,
    ErrorCode.UNSUPPORTED_GRANT_TYPE: 400,
    ErrorCode.UNSUPPORTED_RESPONSE_TYPE: 501,
    ErrorCode.ACCESS_DENIED: 403,
    ErrorCode.LOGIN_REQUIRED: 400,
    ErrorCode.CONSENT_REQUIRED: 400,
    ErrorCode.TOO_MANY_REQUESTS: 429,
    ErrorCode.SERVER_ERROR: 500,
    ErrorCode.INVALID_TOKEN: 401,
    # RFC 8628 polling errors as Auth0 sends them (device-authorization-flow tutorial).
    ErrorCode.AUTHORIZATION_PENDING: 403,
    ErrorCode.SLOW_DOWN: 429,
    ErrorCode.MFA_REQUIRED: 403,
    ErrorCode.EXPIRED_TOKEN: 403,
    # /authorize errors travel to the callback; the status is that of Auth0's error page.
    ErrorCode.UNSUPPORTED_RESPONSE_MODE: 400,
    ErrorCode.INTERACTION_REQUIRED: 400,
    # POST /mfa/challenge: "400 Invalid request, such as unsupported challenge type or missing enrollment".
    ErrorCode.ASSOCIATION_REQUIRED: 400,
    ErrorCode.UNSUPPORTED_CHALLENGE_TYPE: 400,
}

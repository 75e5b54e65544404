"""The core's values: the tenant configuration, the requests and the decisions.

Everything here is a frozen pydantic model. Sequences are tuples, so a value can be
shared, hashed where it matters and compared byte for byte in golden files.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from string import Formatter
from types import MappingProxyType
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue, SecretStr, TypeAdapter, model_validator

from claimsengine.auth0 import MANAGEMENT_API_SCOPES, MFA_API_LIFETIME, MFA_API_SCOPES
from claimsengine.responses import ResponseMode
from claimsengine.rules import ErrorCode, Rule

if TYPE_CHECKING:
    from claimsengine.grants.client_credentials import Plan
    from claimsengine.steps import ApiFacts, ClientFacts, GrantFacts, HostFacts
    from claimsengine.tokens import TokenFacts

__all__ = [
    "BUILT_IN_MANAGEMENT_API",
    "CONFIDENTIAL_DEFAULT_GRANTS",
    "DECISION",
    "OVERRIDE_PLACEHOLDERS",
    "PUBLIC_APP_TYPES",
    "PUBLIC_DEFAULT_GRANTS",
    "Accepted",
    "ActionFn",
    "Api",
    "AuthMethod",
    "AuthorizationGrant",
    "AuthorizeRequest",
    "Authorized",
    "Behaviour",
    "Client",
    "ClientAssertion",
    "ClientGrant",
    "ClientPolicy",
    "Consent",
    "CrossReferenceError",
    "CustomDomain",
    "Decision",
    "DefaultOrganization",
    "ErrorOverride",
    "Frozen",
    "GrantKey",
    "GrantRef",
    "Issued",
    "JwtHeader",
    "LoggedOut",
    "LogoutRequest",
    "MfaAssociateRequest",
    "MfaAssociated",
    "MfaChallengeRequest",
    "MfaChallenged",
    "OobGrant",
    "OobState",
    "Organization",
    "OrganizationMember",
    "OrganizationUsage",
    "Permission",
    "PresentedToken",
    "PublicKey",
    "QuotaUsage",
    "Reason",
    "RefreshGrant",
    "Rejected",
    "Role",
    "Session",
    "SigningAlg",
    "SubjectType",
    "Tenant",
    "TenantIndex",
    "TokenDialect",
    "TokenFormat",
    "TokenQuota",
    "TokenRequest",
    "User",
    "UserGrant",
    "UserPolicy",
    "auth_method_of",
    "cross_reference_problems",
    "issuer",
    "new_reason",
    "trusted",
    "trusted_fields",
]


class Frozen(BaseModel):
    """Base of every core value: immutable, and strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


# ---------------------------------------------------------------------------------------
# Enumerations (wire values, exactly as Auth0 spells them)
# ---------------------------------------------------------------------------------------


class SigningAlg(StrEnum):
    """An API's access-token signing algorithm (R64)."""

    RS256 = "RS256"
    PS256 = "PS256"
    HS256 = "HS256"


class TokenDialect(StrEnum):
    """An API's access-token profile (R53)."""

    ACCESS_TOKEN = "access_token"
    ACCESS_TOKEN_AUTHZ = "access_token_authz"
    RFC9068_PROFILE = "rfc9068_profile"
    RFC9068_PROFILE_AUTHZ = "rfc9068_profile_authz"


class ClientPolicy(StrEnum):
    """``subject_type_authorization.client.policy`` (R23)."""

    REQUIRE_CLIENT_GRANT = "require_client_grant"
    DENY_ALL = "deny_all"


class UserPolicy(StrEnum):
    """``subject_type_authorization.user.policy`` (R23)."""

    ALLOW_ALL = "allow_all"
    REQUIRE_CLIENT_GRANT = "require_client_grant"
    DENY_ALL = "deny_all"


class OrganizationUsage(StrEnum):
    """How a grant or a client uses organizations (R34, R40)."""

    DENY = "deny"
    ALLOW = "allow"
    REQUIRE = "require"


class AuthMethod(StrEnum):
    """``token_endpoint_auth_method`` (R3)."""

    NONE = "none"
    CLIENT_SECRET_POST = "client_secret_post"
    CLIENT_SECRET_BASIC = "client_secret_basic"
    PRIVATE_KEY_JWT = "private_key_jwt"


class SubjectType(StrEnum):
    """Whom a client grant is for (R24)."""

    CLIENT = "client"
    USER = "user"


class TokenFormat(StrEnum):
    """The issued access token's format (R44)."""

    OPAQUE = "opaque"
    JWT = "jwt"


# Public application types default to no client authentication (R11, R14).
PUBLIC_APP_TYPES = frozenset({"spa", "native"})


def auth_method_of(registered: AuthMethod | str | None, *, has_public_keys: bool, app_type: str | None) -> AuthMethod:
    """A client's authentication method: the registered one, else private_key_jwt when it has
    public keys, else none for public app types, else client_secret_post (R11, R14).

    The one place this default is decided; the loader asks it about raw export records too.
    """
    if registered is not None:
        return AuthMethod(registered)
    if has_public_keys:
        return AuthMethod.PRIVATE_KEY_JWT
    if app_type in PUBLIC_APP_TYPES:
        return AuthMethod.NONE
    return AuthMethod.CLIENT_SECRET_POST


# The trace reference of the Management API when the tenant does not configure it (R91).
BUILT_IN_MANAGEMENT_API = "(built-in Management API)"
BUILT_IN_MFA_API = "(built-in MFA API)"


def issuer(domain: str) -> str:
    """The ``iss`` of tokens issued through ``domain``: ``https://{domain}/`` (R50)."""
    return f"https://{domain}/"


# R14: grant types a client gets when its record does not list any.
CONFIDENTIAL_DEFAULT_GRANTS = ("implicit", "authorization_code", "refresh_token", "client_credentials")
PUBLIC_DEFAULT_GRANTS = ("implicit", "authorization_code", "refresh_token")


# ---------------------------------------------------------------------------------------
# Choices where Auth0's behaviour is unknown or has changed over time
# ---------------------------------------------------------------------------------------


# The placeholders an overridden error_description may use.
OVERRIDE_PLACEHOLDERS = ("client_id", "audience", "organization")


class ErrorOverride(Frozen):
    """Another wire answer for one rejecting rule, for tenants whose Auth0 answers differently.

    The catalogue could not confirm several texts (R42's organization errors among them) and
    recommends keeping them configurable. ``error_description`` may use ``{client_id}``,
    ``{audience}`` and ``{organization}``, as the request named them. A changed ``error``
    without a ``status`` takes that code's default status.
    """

    error: ErrorCode | None = None
    error_description: str | None = None
    status: int | None = Field(default=None, ge=400, le=599)

    @model_validator(mode="after")
    def _template_is_usable(self) -> ErrorOverride:
        if self.error_description is not None:
            names = ", ".join("{" + p + "}" for p in OVERRIDE_PLACEHOLDERS)
            try:
                fields = [(name, spec, conv) for _, name, spec, conv in Formatter().parse(self.error_description) if name is not None]
            except ValueError:
                fields = [("", "", None)]
            # Bare names only: no attribute or index access, conversions or format specs.
            if any(name not in OVERRIDE_PLACEHOLDERS or spec or conv for name, spec, conv in fields):
                raise ValueError(f"error_description may use only {names}, with nothing else inside the braces")
        return self


class Behaviour(Frozen):
    """Switches for behaviour the catalogue marks as inferred, era-dependent or unclear.

    The defaults are the choices recorded in ``specs/choices.md``.
    """

    # R25: the no-grant wording changed in 2018 → 2024 → 2025.
    no_grant_wording: Literal["2018", "2024", "2025"] = "2025"
    # R8 / open question 3: live tenants answer access_denied "Unauthorized"; the docs say
    # invalid_client "Client authentication failed".
    client_auth_error: Literal["observed", "documented"] = "observed"
    # R6: the OAS text, or the form naming the value.
    unsupported_grant_wording: Literal["oas", "named"] = "oas"
    # R30 / open question 1: client credentials returns every granted scope ("grant"), or
    # honours a requested subset ("requested").
    client_credentials_scopes: Literal["grant", "requested"] = "grant"
    # Open question 2: how several missing scopes are joined in the R31 message.
    missing_scope_separator: str = " "
    # R73 / open question 17: the refresh-token error as observed, or as the legacy docs say.
    refresh_error: Literal["observed", "legacy"] = "observed"
    # R4: a client that authenticates with another method than the registered one fails.
    strict_auth_method: bool = True
    # Open question 13: with RBAC off, requested scopes the API does not define are dropped.
    keep_undefined_user_scopes: bool = False
    # A Host that is none of the tenant's domains: refused (issue 8, item 5: real Auth0 never
    # answers for a foreign host), or served as `default_domain` (the old lenient mode).
    unknown_host: Literal["default", "reject"] = "reject"
    # Issue 8, item 9: does a failed PKCE verification use the code up (RFC 6749 section 10.5:
    # single use)? Is a verifier outside RFC 7636's 43 to 128 characters refused? Auth0 is silent.
    pkce_failure_consumes_code: bool = True
    pkce_enforce_verifier_length: bool = True
    # Issue 8, item 9: Auth0's current error page says "The provided redirect_uri is not in the list
    # of allowed callback URLs."; pages up to 2022 named the URL instead.
    callback_mismatch_wording: Literal["current", "legacy"] = "current"
    # Issue 8, item 4: a code exchanged through another domain than its /authorize: issued with
    # the /authorize domain's iss, or refused (invalid_grant). No public source (specs/choices.md).
    code_exchange_cross_domain: Literal["issue_with_authorize_domain", "refuse"] = "issue_with_authorize_domain"
    # Which domain serves unknown hosts; None means the canonical domain.
    default_domain: str | None = None
    # How long an authorization code stays valid, in seconds.
    authorization_code_lifetime: int = Field(default=600, ge=1)
    # A parameter sent more than once: the first value counts (as Auth0's form parsing was
    # observed to do), or the request is refused as RFC 6749 section 3.2 says.
    repeated_parameters: Literal["first", "reject"] = "first"
    # ID-token lifetime when the client does not set one (R14: 36000 s).
    id_token_lifetime: int = Field(default=36000, ge=1)
    # Issue 8, item 2: a client grant's scope that the API does not define is issued as is
    # (False), or dropped (True). No public source settles it (specs/choices.md).
    grant_scopes_filtered_by_api_scopes: bool = False
    # Issue 8, item 3: in an organization login, do direct permissions and tenant-level roles
    # count too? The docs speak only of the roles held in the organization (specs/choices.md).
    org_login_includes_user_level_rbac: bool = False
    # Issue 8, item 1: whether delete:current_user (named by the Management API spec, on no docs
    # page) counts as a current-user scope that user tokens for the Management API may carry.
    delete_current_user_scope: bool = True
    # Inferred: a single-page application gets a refresh token only when its client rotates them.
    spa_refresh_requires_rotation: bool = True
    # Issue 9: the tenant toggle "Refresh Token Revocation Deletes Grant" (Deploy CLI
    # flags.revoke_refresh_token_grant). Off, Auth0's default for tenants created after
    # 13 January 2021: POST /oauth/revoke revokes the token (and its rotation family). On: every
    # refresh token of the same user, application and audience (specs/choices.md).
    revoke_refresh_token_grant: bool = False
    # RFC 8628 device flow: device-code lifetime and polling interval (Auth0: 900 s and 5 s).
    device_code_lifetime: int = Field(default=900, ge=1)
    device_code_interval: int = Field(default=5, ge=1)
    # Issue 9: the least time between two polls of one out-of-band MFA challenge with the mfa-oob
    # grant before slow_down. Auth0 documents slow_down for it but no interval: the device flow's
    # 5 s is assumed (specs/choices.md).
    mfa_oob_interval: int = Field(default=5, ge=1)
    # CORS (issue 10, item 4; specs/choices.md "CORS"): which of a client's lists let a browser
    # origin call /oauth/token, /oauth/revoke, /oauth/device/code and /userinfo. Sources disagree
    # (facts-cors C3): either list or a callback URL's origin; only Allowed Web Origins; or only
    # Allowed Origins (CORS) with the callback origins it includes by default.
    cors_origins: Literal["web_or_allowed", "web_origins", "allowed_origins"] = "web_or_allowed"
    # A preflight names no client: answered for an origin some client of the tenant allows
    # ("configured"), or for any origin ("any", the request itself is still decided by its client).
    cors_preflight: Literal["configured", "any"] = "configured"
    # Issue 9, item 6: prompt=none when the login would need a second factor. auth0-spa-js's FAQ
    # says silent authentication "will fail with an mfa_required error"; OpenID Connect Core
    # 3.1.2.6 names interaction_required for it (specs/choices.md).
    silent_mfa_error: Literal["mfa_required", "interaction_required"] = "mfa_required"
    # Issue 8, item 7: the security mode of a third-party client whose record does not say
    # (third_party_security_mode). Auth0's Dashboard creates only "strict" apps and the Management
    # API defaults to it since 2026-10-23; apps from before April 2026 are "permissive".
    third_party_security_mode: Literal["strict", "permissive"] = "strict"
    # Issue 8, item 7: an ID token carries auth_time only when /authorize sent max_age (as observed,
    # auth0-spa-js#719), or always.
    id_token_auth_time: Literal["when_max_age", "always"] = "when_max_age"
    # R42 and other inferred texts: replace the wire answer of any rejecting rule, by rule id.
    error_overrides: dict[Rule, ErrorOverride] = Field(default_factory=dict)


# ---------------------------------------------------------------------------------------
# The tenant
# ---------------------------------------------------------------------------------------


class Permission(Frozen):
    """One API permission, as Deploy CLI role exports spell it."""

    resource_server_identifier: str
    permission_name: str


class Role(Frozen):
    """A role: a name and the permissions it carries."""

    name: str
    permissions: tuple[Permission, ...] = ()


class Api(Frozen):
    """A resource server (custom API). Defaults follow R93."""

    identifier: Annotated[str, Field(min_length=1)]
    name: str = ""
    scopes: tuple[str, ...] = ()
    signing_alg: SigningAlg = SigningAlg.RS256
    signing_secret: SecretStr | None = None
    token_lifetime: int = Field(default=86400, ge=1, le=2592000)
    token_lifetime_for_web: int = Field(default=7200, ge=1, le=2592000)
    token_dialect: TokenDialect = TokenDialect.ACCESS_TOKEN
    enforce_policies: bool = False
    allow_offline_access: bool = False
    skip_consent_for_verifiable_first_party_clients: bool = False
    client_policy: ClientPolicy = ClientPolicy.REQUIRE_CLIENT_GRANT
    user_policy: UserPolicy = UserPolicy.ALLOW_ALL
    is_system: bool = False


class PublicKey(Frozen):
    """A registered public key for private_key_jwt (R9); at most two per client."""

    kid: str | None = None
    alg: Literal["RS256", "RS384", "PS256"] = "RS256"
    pem: str


class DefaultOrganization(Frozen):
    """A client's default organization (R36)."""

    organization_id: str
    flows: tuple[str, ...] = ("client_credentials",)


class TokenQuota(Frozen):
    """A client-credentials token quota (R43). ``None`` limits are not set."""

    enforce: bool = True
    per_hour: int | None = Field(default=None, ge=0)
    per_day: int | None = Field(default=None, ge=0)


# Refresh-token lifetimes (configure-refresh-token-expiration): at most one year, 365.25 days.
REFRESH_MAX_LIFETIME = 31557600
REFRESH_DEFAULT_IDLE = 2592000


class RefreshTokenSettings(Frozen):
    """A client's ``refresh_token`` settings, as the Management API and Deploy CLI spell them.

    ``infinite_*`` left unset follow ``expiration_type`` (a non-expiring client's tokens never
    expire; an expiring client's do). Lifetimes are in seconds, at most one year.
    """

    model_config = ConfigDict(frozen=True, extra="ignore", defer_build=True)

    rotation_type: Literal["rotating", "non-rotating"] = "non-rotating"
    expiration_type: Literal["expiring", "non-expiring"] = "non-expiring"
    leeway: int = Field(default=0, ge=0)
    token_lifetime: int = Field(default=REFRESH_MAX_LIFETIME, ge=1, le=REFRESH_MAX_LIFETIME)
    idle_token_lifetime: int = Field(default=REFRESH_DEFAULT_IDLE, ge=1, le=REFRESH_MAX_LIFETIME)
    infinite_token_lifetime: bool | None = None
    infinite_idle_token_lifetime: bool | None = None

    @model_validator(mode="after")
    def _consistent(self) -> RefreshTokenSettings:
        if self.rotating and self.expiration_type == "non-expiring":
            raise ValueError("rotating refresh tokens need expiration_type expiring (an expiration lifetime must be set)")
        if self.absolute_lifetime is not None and self.idle_lifetime is not None and self.idle_lifetime > self.absolute_lifetime:
            raise ValueError("idle_token_lifetime may not exceed token_lifetime")
        return self

    @property
    def rotating(self) -> bool:
        return self.rotation_type == "rotating"

    def _finite(self, lifetime: int, infinite: bool | None) -> int | None:
        return None if self.expiration_type == "non-expiring" or infinite is True else lifetime

    @property
    def absolute_lifetime(self) -> int | None:
        """Seconds a token family lives from its first token (fixed at issuance), or None: forever."""
        return self._finite(self.token_lifetime, self.infinite_token_lifetime)

    @property
    def idle_lifetime(self) -> int | None:
        """Seconds a family may go unused before it expires, or None: no idle expiry."""
        return self._finite(self.idle_token_lifetime, self.infinite_idle_token_lifetime)


# Auth0's defaults: non-rotating, non-expiring; single-page applications default into
# rotation with expiring tokens (30 days absolute, 15 days idle in the Dashboard's defaults).
# (Built with model_construct so that importing the core builds no validator: schemas are
# deferred to first use. tests/test_engine.py checks these equal their validated forms.)
DEFAULT_REFRESH_SETTINGS = RefreshTokenSettings.model_construct()
SPA_REFRESH_SETTINGS = RefreshTokenSettings.model_construct(
    rotation_type="rotating", expiration_type="expiring", token_lifetime=2592000, idle_token_lifetime=1296000
)


class Client(Frozen):
    """An application."""

    client_id: Annotated[str, Field(min_length=1)]
    name: str = ""
    client_secrets: tuple[SecretStr, ...] = ()
    app_type: str | None = None
    token_endpoint_auth_method: AuthMethod | None = None
    grant_types: tuple[str, ...] | None = None
    is_first_party: bool = True
    public_keys: tuple[PublicKey, ...] = Field(default=(), max_length=2)
    callbacks: tuple[str, ...] = ()
    organization_usage: OrganizationUsage = OrganizationUsage.DENY
    default_organization: DefaultOrganization | None = None
    token_quota: TokenQuota | None = None
    id_token_lifetime: int | None = Field(default=None, ge=1)
    metadata: dict[str, str] = Field(default_factory=dict)
    refresh_token: RefreshTokenSettings | None = None
    # Browser applications (issue 10, item 4; specs/choices.md "CORS"): Allowed Web Origins,
    # Allowed Origins (CORS) and Allowed Logout URLs, as Auth0's client record names them.
    web_origins: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    allowed_logout_urls: tuple[str, ...] = ()
    # Issue 8, item 7: a third-party client's security mode (ignored for first-party clients);
    # None: the tenant's behaviour.third_party_security_mode.
    third_party_security_mode: Literal["strict", "permissive"] | None = None

    def strict_third_party(self, behaviour: Behaviour) -> bool:
        """Whether this is a third-party application under Auth0's enhanced security controls
        ("strict" mode): no OIDC, PKCE always, a client grant for every API (issue 8, item 7)."""
        if self.is_first_party:
            return False
        return (self.third_party_security_mode or behaviour.third_party_security_mode) == "strict"

    @property
    def refresh_settings(self) -> RefreshTokenSettings:
        """The configured refresh-token settings, or Auth0's defaults for the app type."""
        if self.refresh_token is not None:
            return self.refresh_token
        return SPA_REFRESH_SETTINGS if self.app_type == "spa" else DEFAULT_REFRESH_SETTINGS

    @property
    def auth_method(self) -> AuthMethod:
        """The registered method, or the default for the app type (R11, R14)."""
        return auth_method_of(self.token_endpoint_auth_method, has_public_keys=bool(self.public_keys), app_type=self.app_type)

    @property
    def effective_grant_types(self) -> tuple[str, ...]:
        """The listed grant types, or the defaults of R14."""
        if self.grant_types is not None:
            return self.grant_types
        if self.auth_method is AuthMethod.NONE:
            return PUBLIC_DEFAULT_GRANTS
        return CONFIDENTIAL_DEFAULT_GRANTS


class ClientGrant(Frozen):
    """A client grant: a client (or all third-party clients) may get tokens for an API."""

    id: str | None = None
    client_id: str | None = None
    default_for: Literal["third_party_clients"] | None = None
    audience: Annotated[str, Field(min_length=1)]
    scope: tuple[str, ...] = ()
    allow_all_scopes: bool = False
    subject_type: SubjectType = SubjectType.CLIENT
    organization_usage: OrganizationUsage = OrganizationUsage.DENY
    allow_any_organization: bool = False

    @model_validator(mode="after")
    def _one_subject(self) -> ClientGrant:
        if (self.client_id is None) == (self.default_for is None):
            raise ValueError("a client grant needs exactly one of client_id and default_for")
        if self.allow_all_scopes and self.scope:
            raise ValueError("allow_all_scopes grants may not list scopes (R26)")
        return self

    @property
    def key(self) -> tuple[str, str, SubjectType]:
        """Identity of the grant: (client_id or default_for, audience, subject_type)."""
        return (self.client_id or f"default_for:{self.default_for}", self.audience, self.subject_type)


class GrantRef(Frozen):
    """An organization's association with a client grant, by client and audience (R35)."""

    client_id: str
    audience: str


class OrganizationMember(Frozen):
    """A user's membership in an organization, with the roles they hold there."""

    user_id: str
    roles: tuple[str, ...] = ()


class Organization(Frozen):
    """An organization."""

    id: Annotated[str, Field(min_length=1)]
    name: Annotated[str, Field(min_length=1)]
    client_grants: tuple[GrantRef, ...] = ()
    members: tuple[OrganizationMember, ...] = ()
    token_quota: TokenQuota | None = None
    # Issue 8, item 7: whether strict third-party applications may log users in through it.
    third_party_client_access: Literal["allow", "block"] = "block"


class Consent(Frozen):
    """A consent a user has given to a client for an API's scopes (R70)."""

    client_id: str
    audience: str
    scopes: tuple[str, ...] = ()
    organization_id: str | None = None


class Session(Frozen):
    """A browser's login session at the tenant, as its cookie carries it (the adapter seals and
    unseals the cookie; the core decides whether the session still logs the user in).

    ``auth_time`` is when the user logged in, ``last_seen`` when the session was last used
    (the idle lifetime counts from it); ``consents`` are the grants the user gave during it.
    """

    session_id: Annotated[str, Field(min_length=1)]
    user_id: Annotated[str, Field(min_length=1)]
    auth_time: int
    last_seen: int
    consents: tuple[Consent, ...] = ()


class MfaEnrollment(Frozen):
    """A user's enrolled second factors: an authenticator app's TOTP secret (base32, RFC 6238)
    and a recovery code. Both are secrets: never in a repr, a trace or an error."""

    totp_secret: SecretStr | None = None
    recovery_code: SecretStr | None = None
    # An out-of-band authenticator: Guardian push (approved on the phone) or SMS (a binding code
    # the user types). Tests approve or read it through the server's admin route.
    oob_channel: Literal["push", "sms"] | None = None
    # False for an authenticator added with POST /mfa/associate and not yet verified (the server
    # keeps such enrolments in its store); an enrolment in the tenant is a confirmed one.
    confirmed: bool = True

    @model_validator(mode="after")
    def _base32(self) -> MfaEnrollment:
        if self.totp_secret is not None:
            _check_base32(self.totp_secret, "totp_secret")
        return self


def _check_base32(secret: SecretStr, name: str) -> None:
    compact = secret.get_secret_value().replace(" ", "").upper()
    try:
        base64.b32decode(compact + "=" * (-len(compact) % 8))
    except ValueError:
        raise ValueError(f"{name} must be base32 (RFC 4648), as authenticator apps take it") from None


class User(Frozen):
    """A user who can log in at ``/authorize`` and, with a database ``connection``, with a
    password (the password grant). ``password_hash`` is a bcrypt hash the adapter checks; the
    core never reads it and never sees a password."""

    user_id: Annotated[str, Field(min_length=1)]
    profile: dict[str, JsonValue] = Field(default_factory=dict)
    roles: tuple[str, ...] = ()
    permissions: tuple[Permission, ...] = ()
    consents: tuple[Consent, ...] = ()
    connection: str | None = Field(default=None, description="the database connection the user belongs to")
    username: str | None = None
    blocked: bool = False
    password_hash: SecretStr | None = Field(default=None, repr=False)
    mfa: MfaEnrollment | None = Field(default=None, repr=False)

    @property
    def email(self) -> str | None:
        value = self.profile.get("email")
        return value if isinstance(value, str) else None


def _bare_host(value: str) -> str:
    """Issue 8, item 8: a domain is a host name (a local server's may name a port), never a URL
    or a path: ``https://x.auth0.com`` would become the issuer ``https://https://x.auth0.com/``."""
    if "://" in value or "/" in value or any(c.isspace() for c in value):
        raise ValueError(f"a domain is a bare host name such as acme.auth0.com, not a URL or a path: {value!r}")
    return value


Domain = Annotated[str, Field(min_length=1), AfterValidator(_bare_host)]


class CustomDomain(Frozen):
    """A custom domain (R52, R95). Only verified ones issue tokens."""

    domain: Domain
    verified: bool = True
    is_default: bool = False


# Actions are user code: callables the engine calls with an event and an API object. The
# concrete types live in claimsengine.actions; here they are opaque so the model stays small.
ActionFn = Callable[[Any, Any], None]


class CrossReferenceError(ValueError):
    """Every cross-reference problem of a tenant, as (path, message) pairs; ``str`` lists them."""

    def __init__(self, problems: Sequence[tuple[str, str]]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(f"{path}: {msg}" for path, msg in self.problems))


class Tenant(Frozen):
    """A tenant's configuration: the input every decision is made against.

    Cross-references are checked when the tenant is built; every problem is listed at once.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True, defer_build=True)

    domain: Annotated[Domain, Field(description="canonical domain, e.g. acme.auth0.com")]
    custom_domains: tuple[CustomDomain, ...] = ()
    default_audience: str | None = None
    resource_parameter_profile: Literal["audience", "compatibility"] = "audience"
    allow_organization_name_in_authentication_api: bool = False
    allow_api1_non_global_clients: bool = False
    organizations_for_m2m: bool = True
    default_token_quota: TokenQuota | None = None
    default_organization_token_quota: TokenQuota | None = None
    apis: tuple[Api, ...] = ()
    clients: tuple[Client, ...] = ()
    client_grants: tuple[ClientGrant, ...] = ()
    organizations: tuple[Organization, ...] = ()
    roles: tuple[Role, ...] = ()
    users: tuple[User, ...] = ()
    credentials_exchange_actions: tuple[ActionFn, ...] = ()
    post_login_actions: tuple[ActionFn, ...] = ()
    # Scopes this tenant's Management API defines beyond the built-in list
    # (claimsengine.auth0.MANAGEMENT_API_SCOPES): newer or spec-only scopes (issue 8, item 2).
    management_api_scopes: tuple[str, ...] = ()
    # The connection the password grant uses when no realm is given ("Default Directory").
    default_directory: str | None = None
    # "Require Multi-factor Auth": never, or always (Deploy CLI guardianPolicies "all-applications").
    mfa_policy: Literal["never", "all-applications"] = "never"
    # Login sessions (tenant settings, in hours): the absolute and the idle lifetime.
    session_lifetime: float = Field(default=168, gt=0)
    idle_session_lifetime: float = Field(default=72, gt=0)
    # The tenant-level Allowed Logout URLs (for a logout request that names no client).
    allowed_logout_urls: tuple[str, ...] = ()
    behaviour: Behaviour = Behaviour.model_construct()  # validated defaults: see DEFAULT_REFRESH_SETTINGS

    @model_validator(mode="after")
    def _cross_references(self) -> Tenant:
        problems = cross_reference_problems(self)
        if problems:
            raise CrossReferenceError(problems)
        return self

    @property
    def management_api_identifier(self) -> str:
        """``https://{canonical}/api/v2/`` (R16)."""
        return f"https://{self.domain}/api/v2/"

    @property
    def default_domain(self) -> str:
        """The domain that serves hosts which are none of the tenant's: ``behaviour.default_domain``,
        else the canonical domain (R50)."""
        return self.behaviour.default_domain or self.domain

    @property
    def mfa_api_identifier(self) -> str:
        """``https://{canonical}/mfa/``: the MFA API's audience (R63)."""
        return f"https://{self.domain}/mfa/"

    @property
    def userinfo_audience(self) -> str:
        """``https://{canonical}/userinfo`` (R16)."""
        return f"https://{self.domain}/userinfo"

    @cached_property
    def index(self) -> TenantIndex:
        """The compiled, indexed form; built once per tenant, then every lookup is O(1)."""
        return TenantIndex(self)


def cross_reference_problems(tenant: Tenant) -> list[tuple[str, str]]:
    """Every cross-reference problem in ``tenant`` as (path, message) pairs."""
    problems: list[tuple[str, str]] = []

    def duplicates(path: str, values: list[str], what: str) -> None:
        seen: set[str] = set()
        for i, value in enumerate(values):
            if value in seen:
                problems.append((f"{path}[{i}]", f"duplicate {what} {value!r}"))
            seen.add(value)

    duplicates("clients", [c.client_id for c in tenant.clients], "client_id")
    duplicates("apis", [a.identifier for a in tenant.apis], "identifier")
    duplicates("organizations", [o.id for o in tenant.organizations], "organization id")
    duplicates("organizations", [o.name for o in tenant.organizations], "organization name")
    duplicates("users", [u.user_id for u in tenant.users], "user_id")
    duplicates("roles", [r.name for r in tenant.roles], "role name")
    duplicates("client_grants", ["|".join(g.key) for g in tenant.client_grants], "grant")
    client_ids = {c.client_id for c in tenant.clients}
    for i, grant in enumerate(tenant.client_grants):
        if grant.client_id is not None and grant.client_id not in client_ids:
            problems.append((f"client_grants[{i}].client_id", f"no client {grant.client_id!r}"))
    grant_pairs = {(g.client_id, g.audience) for g in tenant.client_grants}
    users = {u.user_id for u in tenant.users}
    role_names = {r.name for r in tenant.roles}
    for i, org in enumerate(tenant.organizations):
        for j, ref in enumerate(org.client_grants):
            if (ref.client_id, ref.audience) not in grant_pairs:
                problems.append((f"organizations[{i}].client_grants[{j}]", f"no client grant for {ref.client_id!r} to {ref.audience!r}"))
        for j, member in enumerate(org.members):
            if member.user_id not in users:
                problems.append((f"organizations[{i}].members[{j}]", f"no user {member.user_id!r}"))
            problems.extend(
                (f"organizations[{i}].members[{j}].roles", f"no role {name!r}") for name in member.roles if name not in role_names
            )
    for i, user in enumerate(tenant.users):
        problems.extend((f"users[{i}].roles", f"no role {name!r}") for name in user.roles if name not in role_names)
    for i, client in enumerate(tenant.clients):
        default = client.default_organization
        if default is not None and default.organization_id not in {o.id for o in tenant.organizations}:
            problems.append((f"clients[{i}].default_organization", f"no organization {default.organization_id!r}"))
    custom = [d.domain for d in tenant.custom_domains]
    duplicates("custom_domains", [tenant.domain, *custom], "domain")
    default_domain = tenant.behaviour.default_domain
    if default_domain is not None and default_domain not in (tenant.domain, *custom):
        problems.append(("behaviour.default_domain", f"{default_domain!r} is not a domain of this tenant"))
    return problems


class TenantIndex:
    """A tenant compiled for O(1) lookups. Built once by :attr:`Tenant.index`; every mapping of
    the tenant's values is a read-only view, so the compiled form cannot drift from the tenant it
    was built from. The ``*_facts`` caches hold values derived from those, filled on first use."""

    def __init__(self, tenant: Tenant) -> None:
        self.tenant = tenant
        configured = {a.identifier: a for a in tenant.apis}
        exported = configured.pop(tenant.management_api_identifier, None)
        # R91: the Management API is built in. Its scopes are the built-in list, extended by the
        # tenant's own (management_api_scopes, and the scopes of a configured entry with its
        # identifier, as Deploy CLI exports may carry); it stays a system API either way.
        scopes = (*MANAGEMENT_API_SCOPES, *tenant.management_api_scopes, *(exported.scopes if exported is not None else ()))
        management = (exported or Api(identifier=tenant.management_api_identifier, name="Auth0 Management API")).model_copy(
            update={"scopes": tuple(dict.fromkeys(scopes)), "is_system": True}
        )
        self.management_api = management
        self.apis: Mapping[str, Api] = MappingProxyType({management.identifier: management, **configured})
        # R63: the MFA API, for user flows only; its tokens live a fixed 10 minutes.
        self.mfa_api = Api(
            identifier=tenant.mfa_api_identifier,
            name="Auth0 MFA API",
            scopes=MFA_API_SCOPES,
            token_lifetime=MFA_API_LIFETIME,
            is_system=True,
        )
        self.clients: Mapping[str, Client] = MappingProxyType({c.client_id: c for c in tenant.clients})
        self.grants: Mapping[tuple[str, str, SubjectType], ClientGrant] = MappingProxyType({g.key: g for g in tenant.client_grants})
        self.organizations_by_id: Mapping[str, Organization] = MappingProxyType({o.id: o for o in tenant.organizations})
        self.organizations_by_name: Mapping[str, Organization] = MappingProxyType({o.name: o for o in tenant.organizations})
        self.org_associations: frozenset[tuple[str, str, str]] = frozenset(
            (o.id, ref.client_id, ref.audience) for o in tenant.organizations for ref in o.client_grants
        )
        self.users: Mapping[str, User] = MappingProxyType({u.user_id: u for u in tenant.users})
        self.roles: Mapping[str, Role] = MappingProxyType({r.name: r for r in tenant.roles})
        self.memberships: Mapping[tuple[str, str], OrganizationMember] = MappingProxyType(
            {(o.id, m.user_id): m for o in tenant.organizations for m in o.members}
        )
        # Only verified custom domains issue tokens (R95).
        self.domains: frozenset[str] = frozenset([tenant.domain, *(d.domain for d in tenant.custom_domains if d.verified)])
        self.unverified_domains: frozenset[str] = frozenset(d.domain for d in tenant.custom_domains if not d.verified)
        self.issuers: frozenset[str] = frozenset(issuer(d) for d in self.domains)
        # Where each configured value sits in the tenant, for traces: "clients[2]" and so on.
        refs: dict[int, str] = {}
        for name in ("apis", "clients", "client_grants", "organizations", "users", "roles", "custom_domains"):
            refs.update((id(item), f"{name}[{i}]") for i, item in enumerate(getattr(tenant, name)))
        refs[id(management)] = refs.get(id(exported), BUILT_IN_MANAGEMENT_API)
        refs[id(self.mfa_api)] = BUILT_IN_MFA_API
        self._refs: Mapping[int, str] = refs
        self.domain_refs: Mapping[str, str] = MappingProxyType(
            {tenant.domain: "domain", **{d.domain: f"custom_domains[{i}]" for i, d in enumerate(tenant.custom_domains)}}
        )
        # What a request needs that does not depend on the request, per client, API, client grant,
        # Host header and issuing domain: compiled by claimsengine.steps on first use (so building
        # the index stays proportional to the tenant) and never changed after.
        self.client_facts: dict[str, ClientFacts] = {}
        self.api_facts: dict[str, ApiFacts] = {}
        self.grant_facts: dict[int, GrantFacts] = {}
        self.host_facts: dict[str | None, HostFacts | None] = {}
        self.issuer_facts: dict[str, tuple[str, Reason]] = {}
        self.token_facts: dict[str, TokenFacts] = {}
        # The client-credentials fast path's plans, per client (None: the general path decides).
        self.cc_plans: dict[str, Plan | None] = {}

    def ref(self, item: object) -> str:
        """The tenant path of a configured value (``client_grants[3]``), for a trace entry."""
        return self._refs.get(id(item), "")

    def grant_for(self, client: Client, audience: str, subject: SubjectType) -> ClientGrant | None:
        """The client's own grant, else the third-party default grant (R24, R28)."""
        own = self.grants.get((client.client_id, audience, subject))
        if own is not None or client.is_first_party:
            return own
        return self.grants.get(("default_for:third_party_clients", audience, subject))

    def user_permissions(self, user: User, audience: str, organization_id: str | None) -> tuple[str, ...]:
        """A user's permissions for one API (R57). Without an organization: direct permissions and
        tenant roles. In an organization login only the roles the user holds as a member of that
        organization count (issue 8, item 3), unless ``behaviour.org_login_includes_user_level_rbac``."""
        names: list[str] = []
        user_level = organization_id is None or self.tenant.behaviour.org_login_includes_user_level_rbac
        role_names = list(user.roles) if user_level else []
        perms = list(user.permissions) if user_level else []
        if organization_id is not None:
            member = self.memberships.get((organization_id, user.user_id))
            if member is not None:
                role_names.extend(member.roles)
        for name in role_names:
            perms.extend(self.roles[name].permissions)
        for perm in perms:
            if perm.resource_server_identifier == audience and perm.permission_name not in names:
                names.append(perm.permission_name)
        return tuple(names)


# ---------------------------------------------------------------------------------------
# Requests
# ---------------------------------------------------------------------------------------


class ClientAssertion(Frozen):
    """A private_key_jwt assertion, after the adapter checked its signature (R9).

    The adapter does the cryptography; the core judges these facts.
    """

    alg: str
    kid: str | None = None
    claims: dict[str, JsonValue]
    size: int = Field(ge=0, description="length of the compact assertion in bytes")
    signature_valid: bool
    key_alg: str | None = Field(default=None, description="alg of the registered key that verified it")
    jti_reused: bool = False


class QuotaUsage(Frozen):
    """Tokens already issued in the current hour and day, per client and organization (R43)."""

    client_hour: int = Field(default=0, ge=0)
    client_day: int = Field(default=0, ge=0)
    organization_hour: int = Field(default=0, ge=0)
    organization_day: int = Field(default=0, ge=0)


class UserGrant(Frozen):
    """What a user login decided, carried by a sealed value (code, refresh or MFA token) until
    tokens are issued for it: who, for which API and scopes, through which domain, and the
    claims post-login Actions set."""

    client_id: str
    user_id: str
    audience: str | None
    scope: tuple[str, ...]
    organization_id: str | None = None
    domain: str
    access_claims: dict[str, JsonValue] = Field(default_factory=dict)
    id_claims: dict[str, JsonValue] = Field(default_factory=dict)
    # Issue 8, item 7: what the ID token says of the login: sid (a digest of its session, see
    # steps.session_sid) and, when it carries one, auth_time. None: not carried.
    sid: str | None = None
    id_token_auth_time: int | None = None


class AuthorizationGrant(UserGrant):
    """What an authorization code stands for: the outcome of ``/authorize``.

    The adapter turns it into a code and back; the core never sees the code string.
    """

    redirect_uri: str | None = None
    code_challenge: str | None = None
    code_challenge_method: Literal["S256", "plain"] | None = None
    nonce: str | None = None
    issued_at: int
    # The login session the code was issued in (its sid and auth_time); None without one.
    session_id: str | None = None
    auth_time: int | None = None


class MfaGrant(UserGrant):
    """What an ``mfa_token`` stands for: a password login that passed every check but the
    second factor, with the scopes and claims it will issue once the factor is verified.
    The adapter seals it into the token and back; the core never sees the token string."""

    issued_at: int


class OobGrant(Frozen):
    """What an ``oob_code`` from ``POST /mfa/challenge`` stands for: an out-of-band challenge
    sent to a user's authenticator for one client. The adapter names the challenge
    (``challenge_id``, its key in the store) and seals the value into the ``oob_code``."""

    client_id: str
    user_id: str
    channel: Literal["push", "sms"]
    issued_at: int
    challenge_id: str | None = None


class OobState(Frozen):
    """What the server knows about an out-of-band challenge: the user's answer on a push
    authenticator, and the binding code an SMS carried (a secret, compared by the core)."""

    status: Literal["pending", "approved", "denied"] = "pending"
    binding_code: SecretStr | None = Field(default=None, repr=False)
    # When the mfa-oob grant last polled this challenge (None: never), for slow_down.
    last_poll: int | None = None


class RefreshGrant(UserGrant):
    """What a refresh token stands for (R66, R72).

    ``family`` names the chain of tokens rotated from one another (the adapter gives a new
    chain its id; ``None``: not tracked); ``generation`` is this token's place in it.
    ``expires_at`` is the chain's absolute expiry, fixed when its first token was issued.
    """

    family: str | None = None
    generation: int = Field(default=0, ge=0)
    expires_at: int | None = None


class RefreshFamily(Frozen):
    """What the server knows about a refresh-token family: the facts rotation is decided on.

    ``current`` is the generation that may rotate; ``previous`` the one rotated away last,
    accepted again until ``previous_until`` (the leeway); ``last_used`` the time of the last
    successful exchange (or issuance), for idle expiry; ``revoked`` ends the family.
    """

    current: int = Field(default=0, ge=0)
    previous: int | None = None
    previous_until: int = 0
    last_used: int
    revoked: bool = False
    expires_at: int | None = Field(default=None, description="when the server may forget the family")


class DeviceGrant(Frozen):
    """What a device code stands for: the outcome of ``POST /oauth/device/code``.

    The adapter adds ``user_code`` and seals the value into the device code.
    """

    client_id: str
    audience: str | None
    scope: tuple[str, ...]
    domain: str
    issued_at: int
    expires_in: int
    interval: int
    user_code: str | None = None


class DeviceState(Frozen):
    """What the server knows about a device code: the user's answer and the polling so far.

    ``grant`` is what the user approved (as a code would stand for it); ``last_poll`` the
    time of the previous token request; ``expired_reported`` whether ``expired_token`` was
    answered once already; ``redeemed`` whether tokens were issued for it.
    """

    status: Literal["pending", "approved", "denied"] = "pending"
    grant: AuthorizationGrant | None = None
    last_poll: int | None = None
    expired_reported: bool = False
    redeemed: bool = False


class TokenRequest(Frozen):
    """A ``POST /oauth/token`` request in wire form.

    Fields are the parameters as sent; normalising them is the core's job. The adapter
    decodes HTTP Basic credentials into ``basic_client_id``/``basic_client_secret``,
    verifies a client assertion into ``assertion``, and resolves a code or refresh token
    it minted earlier into ``code_grant``/``refresh_grant`` (``None`` when unknown).
    """

    domain: str | None = Field(default=None, description="host the request came through")
    grant_type: str | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    basic_client_id: str | None = None
    basic_client_secret: SecretStr | None = None
    client_assertion_type: str | None = None
    assertion: ClientAssertion | None = None
    audience: str | None = None
    resource: str | None = None
    scope: str | None = None
    organization: str | None = None
    code: SecretStr | None = None
    code_verifier: str | None = Field(default=None, repr=False)  # a secret until the code is redeemed
    redirect_uri: str | None = None
    code_grant: AuthorizationGrant | None = None
    refresh_token: SecretStr | None = None
    refresh_grant: RefreshGrant | None = None
    refresh_family: RefreshFamily | None = Field(default=None, description="the store's facts about refresh_grant's family")
    device_code: SecretStr | None = None
    device_grant: DeviceGrant | None = None
    device_state: DeviceState | None = Field(default=None, description="the store's facts about device_grant's user code")
    quota_usage: QuotaUsage = QuotaUsage.model_construct()
    password_valid_for: tuple[str, ...] = Field(
        default=(), description="users whose stored password hash the presented password matches (the adapter checks the hashes)"
    )
    mfa_grant: MfaGrant | None = Field(default=None, description="the grant behind mfa_token (None: unknown or tampered)")
    mfa_code_reused: bool = Field(default=False, description="the one-time password or recovery code was used before")
    mfa_enrollment: MfaEnrollment | None = Field(
        default=None, description="the store's enrolment of mfa_grant's user (POST /mfa/associate); None: the tenant's"
    )
    oob_grant: OobGrant | None = Field(default=None, description="the challenge behind oob_code (None: unknown or tampered)")
    oob_state: OobState | None = Field(default=None, description="the store's facts about oob_grant's challenge")
    parameters: dict[str, SecretStr] = Field(
        default_factory=dict, description="parameters a grant declares beyond the fields above, as sent (values kept secret)"
    )
    malformed: tuple[str, ...] = Field(default=(), description="parameters sent with a non-string JSON type")
    repeated: tuple[str, ...] = Field(default=(), description="parameters the body carried more than once")
    origin: str | None = Field(default=None, description="the Origin header of a browser's request (None: not sent)")


class AuthorizeRequest(Frozen):
    """A ``GET /authorize`` request, with the login's outcome. ``response_type`` has no default:
    Auth0 refuses a request without it (issue 8, item 9).

    ``user_id`` is the authenticated user (``None``: no session). ``consent`` is the user's
    answer if a consent prompt is shown (``None``: the user was not asked, or did not answer).
    """

    domain: str | None = None
    response_type: str | None = None
    client_id: str | None = None
    redirect_uri: str | None = None
    audience: str | None = None
    resource: str | None = None
    scope: str | None = None
    organization: str | None = None
    prompt: str | None = None
    state: str | None = None
    nonce: str | None = None
    code_challenge: str | None = None
    code_challenge_method: str | None = None
    response_mode: str | None = None
    user_id: str | None = None
    consent: bool | None = None
    repeated: tuple[str, ...] = Field(default=(), description="parameters the query carried more than once")
    # The login session (issue 10, item 3). ``session``: the browser's session from its cookie.
    # ``username``/``password_valid_for``: a login form's credentials (the adapter checks the
    # password; the core sees only which users it matched). ``new_session_id``: the id the
    # adapter drew for the session a login starts (``None``: a login starts no session).
    session: Session | None = None
    username: str | None = None
    password_valid_for: tuple[str, ...] = ()
    new_session_id: str | None = None
    # Issue 8, item 7: OIDC max_age (seconds); with it the ID token carries auth_time.
    max_age: str | None = None


class LogoutRequest(Frozen):
    """A ``GET /v2/logout`` (``endpoint="v2"``: ``return_to``) or ``/oidc/logout``
    (``endpoint="oidc"``: ``post_logout_redirect_uri``, ``id_token_hint``, ``logout_hint``) request.

    The adapter verifies an ``id_token_hint``'s signature: ``hint_claims`` are its claims
    (``None`` with ``id_token_hint`` given: the hint is not a valid ID token of this tenant).
    ``session`` is the browser's session from its cookie.
    """

    domain: str | None = None
    endpoint: Literal["v2", "oidc"] = "v2"
    client_id: str | None = None
    return_to: str | None = None
    federated: bool = False
    id_token_hint: bool = False
    hint_claims: dict[str, JsonValue] | None = None
    logout_hint: str | None = None
    state: str | None = None
    session: Session | None = None
    repeated: tuple[str, ...] = Field(default=(), description="parameters the query carried more than once")


class DeviceCodeRequest(Frozen):
    """A ``POST /oauth/device/code`` request (RFC 8628 section 3.1) in wire form.

    ``credentials`` says the request carried client credentials (a secret, Basic or an
    assertion): device clients are public, so the core refuses them.
    """

    domain: str | None = None
    client_id: str | None = None
    credentials: bool = False
    audience: str | None = None
    resource: str | None = None
    scope: str | None = None
    malformed: tuple[str, ...] = Field(default=(), description="parameters sent with a non-string JSON type")


class DeviceApprovalRequest(Frozen):
    """A user approving a device's user code (what Auth0's activation page does)."""

    device_grant: DeviceGrant
    user_id: str | None = None


class ClientAuthentication(Frozen):
    """The part of a request to an endpoint beside ``/oauth/token`` that authenticates its client:
    the host it came through and the credentials as sent (the core authenticates them as at the
    token endpoint)."""

    domain: str | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    basic_client_id: str | None = None
    basic_client_secret: SecretStr | None = None
    client_assertion_type: str | None = None
    assertion: ClientAssertion | None = None


class MfaChallengeRequest(ClientAuthentication):
    """A ``POST /mfa/challenge`` request: client authentication, the ``mfa_token`` (resolved by
    the adapter into ``mfa_grant``), and the challenge types the application accepts."""

    mfa_grant: MfaGrant | None = None
    challenge_type: str | None = None
    authenticator_id: str | None = None
    malformed: tuple[str, ...] = Field(default=(), description="parameters sent with a non-string JSON type")
    mfa_enrollment: MfaEnrollment | None = Field(default=None, description="the store's enrolment of mfa_grant's user; None: the tenant's")


class MfaAssociateRequest(ClientAuthentication):
    """A ``POST /mfa/associate`` request: client authentication, the ``mfa_token`` sent as the
    bearer token (resolved by the adapter into ``mfa_grant``), the authenticator to add, and
    the store's enrolment of the user (``None``: the tenant's).

    ``new_secret`` and ``new_recovery_code`` are the randomness the adapter drew for this
    request (a base32 TOTP secret, a recovery code); the core decides whether they are used.
    """

    mfa_grant: MfaGrant | None = None
    authenticator_types: tuple[str, ...] | None = None
    oob_channels: tuple[str, ...] | None = None
    phone_number: str | None = None
    mfa_enrollment: MfaEnrollment | None = None
    new_secret: SecretStr = Field(repr=False)
    new_recovery_code: SecretStr = Field(repr=False)
    malformed: tuple[str, ...] = Field(default=(), description="parameters sent with another JSON type")

    @model_validator(mode="after")
    def _base32(self) -> MfaAssociateRequest:
        _check_base32(self.new_secret, "new_secret")
        return self


class RevokeRequest(ClientAuthentication):
    """A ``POST /oauth/revoke`` request: client authentication and the refresh token.

    The adapter resolves a refresh token it minted into ``refresh_grant`` (``None``: unknown).
    """

    token: SecretStr | None = None
    refresh_grant: RefreshGrant | None = None
    malformed: tuple[str, ...] = Field(default=(), description="parameters sent with a non-string JSON type")
    origin: str | None = Field(default=None, description="the Origin header of a browser's request (None: not sent)")


# ---------------------------------------------------------------------------------------
# Decisions
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reason:
    """One step of a decision: the rule that applied, a short human note, and the part of the
    configuration it consulted as a tenant path (``client_grants[3]``; empty when the step read
    only the request). The loader maps such paths to file and line (``Loaded.source``).

    A plain frozen dataclass rather than a pydantic model: a decision carries a dozen of
    these, and building them is the largest cost of ``decide`` otherwise. Pydantic still
    serialises and validates them as fields of the decision models.
    """

    rule: Rule
    detail: str = ""
    # Where, not what: two decisions that differ only in where the configuration sat are equal.
    ref: str = field(default="", compare=False)


_new_object = object.__new__
# The slots' own setters: they store a field without going through the frozen __setattr__.
_set_rule, _set_detail, _set_ref = (vars(Reason)[name].__set__ for name in ("rule", "detail", "ref"))


def new_reason(rule: Rule, detail: str, ref: str) -> Reason:
    """A ``Reason`` built without the frozen dataclass's ``__init__`` (which sets each field
    through ``object.__setattr__``): the trace's hot path. The fields are set once, here; the
    value is as frozen as any other ``Reason`` and equal to ``Reason(rule, detail, ref)``."""
    reason: Reason = _new_object(Reason)
    _set_rule(reason, rule)
    _set_detail(reason, detail)
    _set_ref(reason, ref)
    return reason


class JwtHeader(Frozen):
    """The header choices of a JWT access token (R56, R64); the signer adds ``kid``."""

    alg: SigningAlg
    typ: Literal["JWT", "at+jwt"] = "JWT"


class Issued(Frozen):
    """An issued access token, fully described except for what the signer adds (``jti``, ``kid``)."""

    kind: Literal["issued"] = "issued"
    format: TokenFormat
    issuer: str
    audience: str | tuple[str, ...] | None
    scope: str | None
    # Any, not JsonValue: the engine builds claims from JSON values only (Action claims are
    # checked to be JSON first), and validating every value again per decision is costly.
    # Read-only: a decision is a value.
    claims: Mapping[str, Any]
    header: JwtHeader | None
    signing_key: Literal["tenant", "api_secret"] | None
    needs_jti: bool = False
    expires_in: int
    token_type: Literal["Bearer"] = "Bearer"
    client_id: str
    api: str | None = Field(default=None, description="identifier of the API whose secret signs (HS256)")
    refresh: RefreshGrant | None = None
    refresh_family: RefreshFamily | None = Field(default=None, description="the refresh-token family's state to record")
    id_token: Mapping[str, Any] | None = None
    headers: tuple[tuple[str, str], ...] = ()
    trace: tuple[Reason, ...]


class Rejected(Frozen):
    """A refusal: the OAuth error as Auth0 sends it, and the rule that decided it."""

    kind: Literal["rejected"] = "rejected"
    error: ErrorCode
    error_description: str
    status: int
    error_uri: str | None = None
    redirect_uri: str | None = Field(default=None, description="/authorize: where the error is sent")
    state: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    mfa: MfaGrant | None = Field(default=None, description="mfa_required: what the mfa_token stands for")
    response_mode: ResponseMode | None = Field(default=None, description="/authorize: how the error is sent to redirect_uri")
    rejected_by: Rule
    trace: tuple[Reason, ...]
    # /authorize after a login: the session the browser keeps though the request failed (a
    # consent prompt to answer, say). None when no session was started or used.
    session: Session | None = None


class Authorized(Frozen):
    """``/authorize`` succeeded: answer ``redirect_uri`` in ``response_mode``.

    ``grant`` is what the login decided; a code stands for it when ``code`` is set (the
    response type has ``code``). Implicit and hybrid types add ``access`` (``token``) and the
    claims of an ``id_token``; ``id_token_hashes`` names the hashes of the other response
    parameters the ID token must carry (``at_hash``, ``c_hash``), which the signer computes
    where the token strings exist.
    """

    kind: Literal["authorized"] = "authorized"
    grant: AuthorizationGrant
    redirect_uri: str
    state: str | None = None
    trace: tuple[Reason, ...]
    # The login session to keep in the browser (started, refreshed, or with a new consent).
    session: Session | None = None
    response_type: str = "code"
    response_mode: ResponseMode = ResponseMode.QUERY
    code: bool = True
    access: Issued | None = None
    id_token: Mapping[str, Any] | None = None
    id_token_hashes: tuple[Literal["at_hash", "c_hash"], ...] = ()


class LoggedOut(Frozen):
    """A logout succeeded: end ``session_id``'s session (clear the cookie), then redirect to
    ``redirect_uri`` (with ``state`` for ``/oidc/logout``) or, without one, show a page."""

    kind: Literal["logged_out"] = "logged_out"
    redirect_uri: str | None = None
    state: str | None = None
    session_id: str | None = None
    trace: tuple[Reason, ...]


class Accepted(Frozen):
    """A resource server accepts the presented token."""

    kind: Literal["accepted"] = "accepted"
    trace: tuple[Reason, ...]


class DeviceAuthorized(Frozen):
    """``POST /oauth/device/code`` succeeded: the adapter adds a user code and seals ``grant``."""

    kind: Literal["device_authorized"] = "device_authorized"
    grant: DeviceGrant
    trace: tuple[Reason, ...]


class DeviceApproved(Frozen):
    """A user approved a device: what its device code now stands for, as a code would."""

    kind: Literal["device_approved"] = "device_approved"
    grant: AuthorizationGrant
    trace: tuple[Reason, ...]


class GrantKey(Frozen):
    """A user's grant to an application for an audience: every refresh token issued for the
    same user, application and audience belongs to it (Auth0's "Refresh Token Revocation
    Deletes Grant")."""

    client_id: str
    user_id: str
    audience: str | None


class Revoked(Frozen):
    """``POST /oauth/revoke`` succeeded (200, empty body): ``family`` is the refresh-token
    family the server must revoke (``None``: nothing to revoke); ``grant``, when set, the
    grant whose every refresh-token family goes with it."""

    kind: Literal["revoked"] = "revoked"
    family: str | None = None
    grant: GrantKey | None = None
    trace: tuple[Reason, ...]


class MfaChallenged(Frozen):
    """``POST /mfa/challenge`` succeeded: the challenge type Auth0 chose; for ``oob`` the
    challenge the adapter seals into an ``oob_code`` and whether a binding code is prompted."""

    kind: Literal["mfa_challenged"] = "mfa_challenged"
    challenge_type: Literal["otp", "oob"]
    oob: OobGrant | None = None
    binding_method: Literal["prompt"] | None = None
    trace: tuple[Reason, ...]


class MfaAssociated(Frozen):
    """``POST /mfa/associate`` succeeded: the authenticator added (not yet verified) and what
    the answer carries: for ``otp`` the secret and its ``otpauth://`` URI, for ``oob`` the
    challenge the adapter seals into an ``oob_code`` (``binding_method`` prompt for SMS);
    ``recovery_code`` only on the user's first enrolment. ``enrollment`` is the user's
    enrolment to record, verified by the first MFA grant that uses it."""

    kind: Literal["mfa_associated"] = "mfa_associated"
    authenticator_type: Literal["otp", "oob"]
    user_id: str
    secret: SecretStr | None = Field(default=None, repr=False)
    barcode_uri: SecretStr | None = Field(default=None, repr=False)
    oob_channel: Literal["sms", "auth0"] | None = None
    oob: OobGrant | None = None
    binding_method: Literal["prompt"] | None = None
    recovery_code: SecretStr | None = Field(default=None, repr=False)
    enrollment: MfaEnrollment
    trace: tuple[Reason, ...]


Decision = Annotated[
    Issued | Rejected | Authorized | Accepted | DeviceAuthorized | DeviceApproved | Revoked | LoggedOut | MfaChallenged | MfaAssociated,
    Field(discriminator="kind"),
]
"""Every decision the core makes: ``decide`` gives all but ``Accepted``, ``validate_access_token``
``Accepted`` or ``Rejected``."""
DECISION: TypeAdapter[
    Issued | Rejected | Authorized | Accepted | DeviceAuthorized | DeviceApproved | Revoked | LoggedOut | MfaChallenged | MfaAssociated
] = TypeAdapter(Decision, config=ConfigDict(defer_build=True))


_F = TypeVar("_F", bound=Frozen)
# The instance slots every pydantic model has, set through their own descriptors.
_set_dict, _set_fields_set, _set_extra, _set_private = (
    vars(BaseModel)[name].__set__ for name in ("__dict__", "__pydantic_fields_set__", "__pydantic_extra__", "__pydantic_private__")
)
# Per model: every field in order (its default, or None for a required field or one with a
# default factory), and the fields with a default factory.
_TEMPLATES: dict[type[Frozen], tuple[dict[str, Any], tuple[tuple[str, Callable[[], Any]], ...]]] = {}


def _template(cls: type[Frozen]) -> tuple[dict[str, Any], tuple[tuple[str, Callable[[], Any]], ...]]:
    fields = cls.model_fields
    defaults = {name: None if info.is_required() or info.default_factory is not None else info.default for name, info in fields.items()}
    factories = tuple((name, info.default_factory) for name, info in fields.items() if info.default_factory is not None)
    template = (defaults, factories)
    _TEMPLATES[cls] = template  # type: ignore[assignment]
    return template  # type: ignore[return-value]


def trusted(cls: type[_F], **values: Any) -> _F:
    """An instance of ``cls`` from values the core built itself, without validating them again.

    Validation belongs at the boundary: the public constructors (``Issued(...)``, used by
    adapters, tests and users) still validate every field. The engine's own decisions and
    the wire adapter's requests are assembled from values that are already of their field's
    type (validated tenant values, strings the adapter type-checked), so re-checking them per
    request only costs time. The caller passes every required field. The result equals the
    validated construction of the same values, including which fields count as set
    (``tests/test_engine.py``, ``tests/test_wire.py`` and ``bench/differential.py`` check it)."""
    template = _TEMPLATES.get(cls) or _template(cls)
    data = template[0].copy()
    data.update(values)
    for name, factory in template[1]:
        if name not in values:
            data[name] = factory()
    instance = _new_object(cls)
    _set_dict(instance, data)
    _set_fields_set(instance, set(values))
    _set_extra(instance, None)
    _set_private(instance, None)
    return instance


def trusted_fields(cls: type[_F], fields: dict[str, Any], fields_set: frozenset[str]) -> _F:
    """:func:`trusted` for a hot path that writes every field of ``cls`` itself, in the model's
    field order, and names the fields it counts as set (``fields_set``): no template to copy, no
    keywords to gather. ``tests/test_fast_path.py`` compares its values with the general path's."""
    instance = _new_object(cls)
    _set_dict(instance, fields)
    _set_fields_set(instance, set(fields_set))
    _set_extra(instance, None)
    _set_private(instance, None)
    return instance


class PresentedToken(Frozen):
    """A decoded access token as a resource server sees it: header and claims."""

    header: dict[str, JsonValue]
    claims: dict[str, JsonValue]

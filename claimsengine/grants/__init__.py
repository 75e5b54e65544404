"""The grant types ``POST /oauth/token`` decides: one declaration per grant, as data.

Each grant is declared once, in :func:`declaration`: its wire identifier, its handler, the
parameters it accepts and requires, whether the client must authenticate (public clients
cannot use it), the endpoint it belongs to, and how the decision table reaches it. The
``match`` there is exhaustive (mypy checks it with ``assert_never``), and the engine
dispatches only through :data:`GRANTS`, so a grant cannot be declared without a handler or
handled without a declaration.

Everything else that depends on the set of grants is derived from this table: the wire
parameter list (:data:`TOKEN_PARAMETERS`), discovery's ``grant_types_supported``, the
decision table's grant classes, the Hypothesis strategies in ``claimsengine.testing`` and
the grant section of ``docs/rules.md``.

Adding a grant: write its handler in a module of this package, add a ``GrantType`` member
and its ``case`` below, and give its rules ids, statements and golden cases.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Literal, assert_never

from claimsengine.grants.authorization_code import authorization_code
from claimsengine.grants.client_credentials import client_credentials, client_credentials_fast
from claimsengine.grants.device_code import device_code
from claimsengine.grants.mfa import mfa_oob, mfa_otp, mfa_recovery_code
from claimsengine.grants.password import password, password_realm
from claimsengine.grants.refresh_token import refresh_token
from claimsengine.model import Client, Issued, Rejected, SubjectType, Tenant, TokenRequest
from claimsengine.steps import Trace

__all__ = [
    "BY_WIRE",
    "CLIENT_AUTHENTICATION_PARAMETERS",
    "FAST_PATHS",
    "GRANTS",
    "TOKEN_ENDPOINT",
    "TOKEN_PARAMETERS",
    "FastPath",
    "Grant",
    "GrantType",
    "Handler",
    "declaration",
]

TOKEN_ENDPOINT = "/oauth/token"
# Parameters every grant accepts: how the client identifies and authenticates itself (R3).
# (client_assertion itself is verified by the adapter, which hands the core its claims.)
CLIENT_AUTHENTICATION_PARAMETERS = ("client_id", "client_secret", "client_assertion_type")

# The password grants' own parameters (P1); realm is password-realm's.
PASSWORD_PARAMETERS = ("username", "password", "audience", "resource", "scope", "organization")

Handler = Callable[[TokenRequest, Client, str, Trace], Issued | Rejected]
"""A grant's flow: the request, the authenticated client, the issuing domain, the trace."""

FastPath = Callable[[TokenRequest, Tenant, int], Issued | None]
"""A grant's fast path: the whole decision of a request of its common shape that succeeds
(the same ``Issued``, trace entry for entry, as the common steps and the handler reach), or
``None`` for any other request, which the general path then decides."""


class GrantType(StrEnum):
    """The grant types the engine decides (wire values)."""

    CLIENT_CREDENTIALS = "client_credentials"
    AUTHORIZATION_CODE = "authorization_code"
    REFRESH_TOKEN = "refresh_token"
    DEVICE_CODE = "urn:ietf:params:oauth:grant-type:device_code"
    PASSWORD = "password"
    PASSWORD_REALM = "http://auth0.com/oauth/grant-type/password-realm"
    MFA_OTP = "http://auth0.com/oauth/grant-type/mfa-otp"
    MFA_RECOVERY_CODE = "http://auth0.com/oauth/grant-type/mfa-recovery-code"
    MFA_OOB = "http://auth0.com/oauth/grant-type/mfa-oob"


@dataclass(frozen=True, slots=True)
class Grant:
    """One grant type's declaration.

    ``parameters`` are the grant's own parameters (beyond ``grant_type`` and client
    authentication); ``required`` those without which the request is refused with
    ``request.parameter_missing``. ``client_authentication`` says the client must
    authenticate, so public clients cannot use the grant (R11, R12). ``subject`` is whom the
    token is for: the client itself or a user (it selects the client grant's subject type,
    R24, and what "associated organization" means). ``table`` is how the
    decision table builds a request of this grant: one token request (``"token"``), a
    successful ``/authorize`` then the exchange (``"authorize"``), a token request with the
    table user's credentials (``"password"``), a password login answered ``mfa_required``
    then the second factor (``"mfa"``), ``/oauth/device/code``, the user's answer and a poll
    (``"device"``), a login that gives a refresh token then its exchange (``"refresh"``), or
    not at all (``None``). ``fast`` is the grant's :data:`FastPath`, if it has one:
    ``decide`` tries it first, with the request as it came (the grant's exact wire identifier).
    """

    grant_type: GrantType
    handler: Handler
    summary: str
    parameters: tuple[str, ...]
    required: tuple[str, ...]
    client_authentication: bool
    subject: SubjectType
    table: Literal["token", "authorize", "password", "mfa", "device", "refresh"] | None
    endpoint: str = TOKEN_ENDPOINT
    fast: FastPath | None = None


def declaration(grant_type: GrantType) -> Grant:
    """The table: the declaration of each grant type."""
    match grant_type:
        case GrantType.CLIENT_CREDENTIALS:
            return Grant(
                grant_type,
                client_credentials,
                "a machine-to-machine token for an API, under a client grant",
                parameters=("audience", "resource", "scope", "organization"),
                required=(),
                client_authentication=True,
                subject=SubjectType.CLIENT,
                table="token",
                fast=client_credentials_fast,
            )
        case GrantType.AUTHORIZATION_CODE:
            return Grant(
                grant_type,
                authorization_code,
                "tokens for the user who logged in at /authorize, for a code (with PKCE)",
                parameters=("code", "code_verifier", "redirect_uri"),
                required=("code",),
                client_authentication=False,
                subject=SubjectType.USER,
                table="authorize",
            )
        case GrantType.REFRESH_TOKEN:
            return Grant(
                grant_type,
                refresh_token,
                "new tokens for a refresh token, with the same or a narrower scope",
                parameters=("refresh_token", "scope"),
                required=("refresh_token",),
                client_authentication=False,
                subject=SubjectType.USER,
                table="refresh",
            )
        case GrantType.DEVICE_CODE:
            return Grant(
                grant_type,
                device_code,
                "tokens for the user who approved a device's user code (RFC 8628), polled for",
                parameters=("device_code",),
                required=("device_code",),
                client_authentication=False,
                subject=SubjectType.USER,
                table="device",
            )
        case GrantType.PASSWORD:
            return Grant(
                grant_type,
                password,
                "tokens for a user of the default directory, for their e-mail and password",
                parameters=PASSWORD_PARAMETERS,
                required=("username", "password"),
                client_authentication=False,
                subject=SubjectType.USER,
                table="password",
            )
        case GrantType.PASSWORD_REALM:
            return Grant(
                grant_type,
                password_realm,
                "tokens for a user of the connection named by realm, for their e-mail and password",
                parameters=(*PASSWORD_PARAMETERS, "realm"),
                required=("username", "password", "realm"),
                client_authentication=False,
                subject=SubjectType.USER,
                table="password",
            )
        case GrantType.MFA_OTP:
            return Grant(
                grant_type,
                mfa_otp,
                "the tokens an mfa_required answer withheld, for the user's one-time password",
                parameters=("mfa_token", "otp"),
                required=("mfa_token", "otp"),
                client_authentication=False,
                subject=SubjectType.USER,
                table="mfa",
            )
        case GrantType.MFA_RECOVERY_CODE:
            return Grant(
                grant_type,
                mfa_recovery_code,
                "the tokens an mfa_required answer withheld, for the user's recovery code",
                parameters=("mfa_token", "recovery_code"),
                required=("mfa_token", "recovery_code"),
                client_authentication=False,
                subject=SubjectType.USER,
                table="mfa",
            )
        case GrantType.MFA_OOB:
            return Grant(
                grant_type,
                mfa_oob,
                "the tokens an mfa_required answer withheld, for an out-of-band challenge from /mfa/challenge",
                parameters=("mfa_token", "oob_code", "binding_code"),
                required=("mfa_token", "oob_code"),
                client_authentication=False,
                subject=SubjectType.USER,
                table="mfa",
            )
        case _:
            assert_never(grant_type)


GRANTS: Mapping[GrantType, Grant] = MappingProxyType({grant_type: declaration(grant_type) for grant_type in GrantType})
"""Every grant type's declaration."""
BY_WIRE: Mapping[str, Grant] = MappingProxyType({grant.grant_type.value: grant for grant in GRANTS.values()})
"""The declarations by wire identifier, for dispatch."""
FAST_PATHS: Mapping[str, FastPath] = {grant.grant_type.value: grant.fast for grant in GRANTS.values() if grant.fast is not None}
"""The fast paths by exact wire identifier (a plain dict: read on every token request)."""
TOKEN_PARAMETERS: tuple[str, ...] = tuple(
    dict.fromkeys(("grant_type", *CLIENT_AUTHENTICATION_PARAMETERS, *(p for g in GRANTS.values() for p in g.parameters)))
)
"""Every parameter of ``POST /oauth/token`` the core reads, in declaration order."""

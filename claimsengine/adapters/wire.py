"""Translate between the wire (form or JSON parameters, HTTP headers) and core values.

This module decides nothing: it copies what was sent into ``TokenRequest`` or
``AuthorizeRequest`` (marking parameters of the wrong JSON type as malformed and those sent
more than once as repeated, so the core can decide about them), and renders decisions in
Auth0's response shapes. Form and JSON bodies are read alike: the first value of a repeated
parameter is the one passed on.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote, unquote_plus, urlencode

from pydantic import SecretStr

from claimsengine.grants import TOKEN_PARAMETERS as GRANT_PARAMETERS
from claimsengine.model import (
    AuthorizationGrant,
    Authorized,
    AuthorizeRequest,
    ClientAssertion,
    DeviceCodeRequest,
    DeviceGrant,
    Issued,
    MfaAssociateRequest,
    MfaChallengeRequest,
    MfaEnrollment,
    MfaGrant,
    OobGrant,
    OobState,
    QuotaUsage,
    RefreshGrant,
    Rejected,
    RevokeRequest,
    TokenRequest,
    trusted_fields,
)

# Parameters of POST /oauth/token that the core reads: derived from the grant table.
TOKEN_PARAMETERS = GRANT_PARAMETERS
# Those that are fields of TokenRequest; a grant's other parameters go into its ``parameters``.
_NAMED = frozenset(TokenRequest.model_fields)
_NAMED_SECRETS = ("client_secret", "code", "refresh_token", "device_code")
# The parameters whose repetition is reported, and the fields token_request counts as set.
_TOKEN_REPEATABLE = (*TOKEN_PARAMETERS, "client_assertion")
_TOKEN_REQUEST_SET = frozenset(TokenRequest.model_fields) - {"refresh_family", "device_state"}
# Parameters whose values are secrets wherever they appear, even in a URL where they do not belong.
SECRET_PARAMETERS = frozenset(
    {
        "client_secret",
        "client_assertion",
        "assertion",
        "code",
        "code_verifier",
        "device_code",
        "refresh_token",
        "access_token",
        "id_token",
        "id_token_hint",
        "subject_token",
        "actor_token",
        "token",
        "password",
        "otp",
        "mfa_token",
        "oob_code",
        "binding_code",
        "recovery_code",
        "admin_token",
    }
)
# Headers whose values are secrets (compared case-insensitively, like every HTTP header name).
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie", "x-admin-token"})
# Any parameter whose name ends like these is treated as a secret too (``new_password``, ...).
_SECRET_SUFFIXES = ("_secret", "_token", "password", "_assertion", "_verifier")
REDACTED = "[redacted]"
NO_USAGE = QuotaUsage()  # frozen, so one instance serves every request
AUTHORIZE_PARAMETERS = (
    "response_type",
    "client_id",
    "redirect_uri",
    "audience",
    "resource",
    "scope",
    "organization",
    "prompt",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "response_mode",
    "max_age",
)


class Parameters(dict[str, Any]):
    """Request parameters as sent: the first value of each name, and in ``repeated`` the names
    that came more than once (in order of their first repetition)."""

    def __init__(self, pairs: Iterable[tuple[str, Any]] = ()) -> None:
        super().__init__()
        again: dict[str, None] = {}
        for name, value in pairs:
            if name in self:
                again[name] = None
            else:
                self[name] = value
        self.repeated: tuple[str, ...] = tuple(again)


def form_pairs(text: str, max_fields: int) -> list[tuple[str, str]]:
    """The (name, value) pairs of a form body, exactly as ``parse_qsl(text,
    keep_blank_values=True, max_num_fields=max_fields, encoding="utf-8", errors="strict")``
    gives them (the same pairs, the same ``ValueError`` and ``UnicodeDecodeError``), in about
    half its time: a field without ``+`` or ``%`` is not rewritten."""
    if not text:
        return []
    if max_fields < 1 + text.count("&"):
        raise ValueError("Max number of fields exceeded")
    pairs: list[tuple[str, str]] = []
    for field in text.split("&"):
        if not field:
            continue
        name, _, value = field.partition("=")  # no "=": a blank value, as keep_blank_values
        if "+" in name:
            name = name.replace("+", " ")
        if "%" in name:
            name = unquote(name, encoding="utf-8", errors="strict")
        if "+" in value:
            value = value.replace("+", " ")
        if "%" in value:
            value = unquote(value, encoding="utf-8", errors="strict")
        pairs.append((name, value))
    return pairs


class _JsonObject(list[tuple[str, Any]]):
    """A JSON object as its (name, value) pairs, so a repeated name is seen, not overwritten."""


def json_parameters(text: str) -> Parameters:
    """The parameters of a JSON body. Raises ``ValueError`` for invalid JSON or a body that is
    not an object (and ``RecursionError`` for absurd nesting). A nested object stays a list of
    pairs, which no parameter accepts, so it is reported as malformed."""
    value = json.loads(text, object_pairs_hook=_JsonObject)
    if not isinstance(value, _JsonObject):
        raise ValueError("the body is not a JSON object")
    return Parameters(value)


def _repeated(params: Mapping[str, Any], names: Iterable[str]) -> tuple[str, ...]:
    repeated = params.repeated if isinstance(params, Parameters) else ()
    return tuple(name for name in repeated if name in names) if repeated else ()


def _strings(params: Mapping[str, Any], names: tuple[str, ...]) -> tuple[dict[str, str], list[str]]:
    """The string-valued parameters among ``names``, and the names sent with another type.

    ``null`` counts as absent (SDKs send ``"organization": null``). A JSON array of
    strings for ``scope`` is joined with spaces, as Auth0 accepts both forms (R7).
    """
    values: dict[str, str] = {}
    malformed: list[str] = []
    for name in names:
        value = params.get(name)
        if value is None:
            continue
        if isinstance(value, list) and name == "scope" and all(isinstance(v, str) for v in value):
            value = " ".join(value)
        if isinstance(value, str):
            values[name] = value
        else:
            malformed.append(name)
    return values, malformed


def is_secret(name: str) -> bool:
    """Whether a parameter or header called ``name`` (any case, ``-`` or ``_``) carries a secret."""
    key = name.strip().lower()
    if key in SECRET_HEADERS:
        return True
    key = key.replace("-", "_")
    return key in SECRET_PARAMETERS or key.endswith(_SECRET_SUFFIXES)


def redact_mapping(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` (parameters or headers) with every secret's value masked, for logs and captures."""
    return {name: REDACTED if is_secret(name) else value for name, value in values.items()}


def redact_query(target: str) -> str:
    """``target`` (a path with its query) with the values of secret parameters masked, for logs."""
    path, sep, query = target.partition("?")
    if not sep:
        return target
    pairs = parse_qsl(query, keep_blank_values=True)
    if not any(is_secret(name) for name, _ in pairs):
        return target
    masked = [(name, REDACTED if is_secret(name) else value) for name, value in pairs]
    return path + "?" + urlencode(masked, safe="[]", encoding="utf-8", errors="surrogatepass")


def basic_credentials(authorization: str | None) -> tuple[str | None, SecretStr | None]:
    """Decode ``Authorization: Basic`` into (client_id, client_secret), RFC 6749 section 2.3.1.

    A Basic header that cannot be decoded yields ``("", None)``: the client tried Basic
    and the core will refuse the authentication.
    """
    if authorization is None:
        return None, None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None, None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except ValueError:  # binascii.Error, UnicodeDecodeError, and non-ASCII text for b64decode
        return "", None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        return "", None
    return unquote_plus(client_id), SecretStr(unquote_plus(secret))


def token_request(
    params: Mapping[str, Any],
    *,
    domain: str | None = None,
    authorization: str | None = None,
    assertion: ClientAssertion | None = None,
    code_grant: AuthorizationGrant | None = None,
    refresh_grant: RefreshGrant | None = None,
    device_grant: DeviceGrant | None = None,
    quota_usage: QuotaUsage | None = None,
    password_valid_for: tuple[str, ...] = (),
    mfa_grant: MfaGrant | None = None,
    mfa_code_reused: bool = False,
    origin: str | None = None,
    oob_grant: OobGrant | None = None,
    oob_state: OobState | None = None,
    mfa_enrollment: MfaEnrollment | None = None,
) -> TokenRequest:
    """Build a ``TokenRequest`` from the token endpoint's parameters and headers.

    The caller resolves what needs keys or state: a verified client assertion, and the
    grants behind a code or refresh token it issued earlier.
    """
    values, malformed = _strings(params, TOKEN_PARAMETERS)
    basic_id, basic_secret = basic_credentials(authorization)
    repeated = _repeated(params, _TOKEN_REPEATABLE)
    secret = {name: SecretStr(values.pop(name)) for name in _NAMED_SECRETS if name in values}
    others = {} if values.keys() <= _NAMED else {name: SecretStr(values.pop(name)) for name in [n for n in values if n not in _NAMED]}
    # This is the boundary's validation: _strings let through only strings (and None), and the
    # keyword arguments are the server's own typed values, so every field already has its type;
    # pydantic checking the 32 fields again would only cost time (issue 13). Every field is
    # written here, in the model's order (tests/test_wire.py compares with the validating
    # constructor); all but refresh_family and device_state count as set.
    fields = {
        "domain": domain,
        "grant_type": values.get("grant_type"),
        "client_id": values.get("client_id"),
        "client_secret": secret.get("client_secret"),
        "basic_client_id": basic_id,
        "basic_client_secret": basic_secret,
        "client_assertion_type": values.get("client_assertion_type"),
        "assertion": assertion,
        "audience": values.get("audience"),
        "resource": values.get("resource"),
        "scope": values.get("scope"),
        "organization": values.get("organization"),
        "code": secret.get("code"),
        "code_verifier": values.get("code_verifier"),
        "redirect_uri": values.get("redirect_uri"),
        "code_grant": code_grant,
        "refresh_token": secret.get("refresh_token"),
        "refresh_grant": refresh_grant,
        "refresh_family": None,
        "device_code": secret.get("device_code"),
        "device_grant": device_grant,
        "device_state": None,
        "quota_usage": quota_usage or NO_USAGE,
        "password_valid_for": password_valid_for,
        "mfa_grant": mfa_grant,
        "mfa_code_reused": mfa_code_reused,
        "mfa_enrollment": mfa_enrollment,
        "oob_grant": oob_grant,
        "oob_state": oob_state,
        "parameters": others,
        "malformed": tuple(malformed),
        "repeated": repeated,
        "origin": origin,
    }
    return trusted_fields(TokenRequest, fields, _TOKEN_REQUEST_SET)


def device_code_request(params: Mapping[str, Any], *, domain: str | None = None, credentials: bool = False) -> DeviceCodeRequest:
    """Build a ``DeviceCodeRequest`` from ``POST /oauth/device/code`` parameters; ``credentials``
    says the request carried client credentials (a secret, Basic or an assertion)."""
    values, malformed = _strings(params, ("client_id", "audience", "resource", "scope"))
    return DeviceCodeRequest(domain=domain, credentials=credentials, malformed=tuple(malformed), **values)


def _client_authentication(values: Mapping[str, str], authorization: str | None, assertion: ClientAssertion | None) -> dict[str, Any]:
    """The client-authentication fields every authenticated endpoint's request carries."""
    basic_id, basic_secret = basic_credentials(authorization)
    secret = values.get("client_secret")
    return {
        "client_id": values.get("client_id"),
        "client_secret": SecretStr(secret) if secret is not None else None,
        "basic_client_id": basic_id,
        "basic_client_secret": basic_secret,
        "client_assertion_type": values.get("client_assertion_type"),
        "assertion": assertion,
    }


def mfa_challenge_request(
    params: Mapping[str, Any],
    *,
    domain: str | None = None,
    authorization: str | None = None,
    assertion: ClientAssertion | None = None,
    mfa_grant: MfaGrant | None = None,
    mfa_enrollment: MfaEnrollment | None = None,
) -> MfaChallengeRequest:
    """Build a ``MfaChallengeRequest`` from ``POST /mfa/challenge`` parameters and headers."""
    names = ("client_id", "client_secret", "client_assertion_type", "mfa_token", "challenge_type", "authenticator_id")
    values, malformed = _strings(params, names)
    return MfaChallengeRequest(
        domain=domain,
        **_client_authentication(values, authorization, assertion),
        mfa_grant=mfa_grant,
        challenge_type=values.get("challenge_type"),
        authenticator_id=values.get("authenticator_id"),
        malformed=tuple(malformed),
        mfa_enrollment=mfa_enrollment,
    )


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer`` header (any case of the scheme), or None."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


def _string_list(value: Any) -> tuple[str, ...] | None:
    """A JSON array of strings as it is, a form string split on spaces and commas; None for
    anything else (absent, or of another type)."""
    if isinstance(value, str):
        return tuple(value.replace(",", " ").split())
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    return None


def mfa_associate_request(
    params: Mapping[str, Any],
    *,
    new_secret: str,
    new_recovery_code: str,
    domain: str | None = None,
    assertion: ClientAssertion | None = None,
    mfa_grant: MfaGrant | None = None,
    mfa_enrollment: MfaEnrollment | None = None,
) -> MfaAssociateRequest:
    """Build a ``MfaAssociateRequest`` from ``POST /mfa/associate`` parameters (the bearer
    ``mfa_token`` resolved by the caller into ``mfa_grant``; the Authorization header carries it,
    so there is no Basic client authentication here) and the randomness the server drew."""
    values, malformed = _strings(params, ("client_id", "client_secret", "client_assertion_type", "phone_number"))
    lists = {name: _string_list(params.get(name)) for name in ("authenticator_types", "oob_channels")}
    malformed += [name for name, value in lists.items() if value is None and params.get(name) is not None]
    return MfaAssociateRequest(
        domain=domain,
        **_client_authentication(values, None, assertion),
        mfa_grant=mfa_grant,
        authenticator_types=lists["authenticator_types"],
        oob_channels=lists["oob_channels"],
        phone_number=values.get("phone_number"),
        mfa_enrollment=mfa_enrollment,
        new_secret=SecretStr(new_secret),
        new_recovery_code=SecretStr(new_recovery_code),
        malformed=tuple(malformed),
    )


def revoke_request(
    params: Mapping[str, Any],
    *,
    domain: str | None = None,
    authorization: str | None = None,
    assertion: ClientAssertion | None = None,
    refresh_grant: RefreshGrant | None = None,
    origin: str | None = None,
) -> RevokeRequest:
    """Build a ``RevokeRequest`` from ``POST /oauth/revoke`` parameters and headers."""
    values, malformed = _strings(params, ("client_id", "client_secret", "client_assertion_type", "token"))
    token = values.get("token")
    return RevokeRequest(
        domain=domain,
        **_client_authentication(values, authorization, assertion),
        token=SecretStr(token) if token is not None else None,
        refresh_grant=refresh_grant,
        malformed=tuple(malformed),
        origin=origin,
    )


def authorize_request(
    params: Mapping[str, Any],
    *,
    domain: str | None = None,
    user_id: str | None = None,
    consent: bool | None = None,
    login: Mapping[str, Any] | None = None,
) -> AuthorizeRequest:
    """Build an ``AuthorizeRequest`` from ``/authorize`` query parameters and the login outcome
    (``login``: the session facts, ``session``, ``username``, ``password_valid_for``,
    ``new_session_id``, as the login page gives them)."""
    values, _ = _strings(params, AUTHORIZE_PARAMETERS)
    repeated = _repeated(params, AUTHORIZE_PARAMETERS)
    fields: dict[str, Any] = {**values, **(login or {}), "domain": domain, "user_id": user_id, "consent": consent, "repeated": repeated}
    return AuthorizeRequest.model_validate(fields)


def success_body(issued: Issued, access_token: str, *, refresh_token: str | None = None, id_token: str | None = None) -> dict[str, Any]:
    """Auth0's 200 body (R65): access_token, then scope when the token has one, expires_in,
    token_type, and the refresh and ID tokens when issued."""
    body: dict[str, Any] = {"access_token": access_token}
    if refresh_token is not None:
        body["refresh_token"] = refresh_token
    if id_token is not None:
        body["id_token"] = id_token
    if issued.scope is not None:
        body["scope"] = issued.scope
    body["expires_in"] = issued.expires_in
    body["token_type"] = issued.token_type
    return body


def authorize_parameters(
    authorized: Authorized, *, code: str | None = None, access_token: str | None = None, id_token: str | None = None
) -> list[tuple[str, str]]:
    """The parameters ``/authorize`` returns, in the order of Auth0's samples: the code, the
    access token with its scope, lifetime and type, the ID token, then state (facts-issue9 I2)."""
    params: list[tuple[str, str]] = []
    if code is not None:
        params.append(("code", code))
    access = authorized.access
    if access is not None and access_token is not None:
        params.append(("access_token", access_token))
        if access.scope is not None:
            params.append(("scope", access.scope))
        params += [("expires_in", str(access.expires_in)), ("token_type", access.token_type)]
    if id_token is not None:
        params.append(("id_token", id_token))
    if authorized.state is not None:
        params.append(("state", authorized.state))
    return params


def authorize_error_parameters(rejected: Rejected) -> list[tuple[str, str]]:
    """An /authorize error as the callback gets it: error, error_description, then state."""
    body = error_body(rejected)
    params = [("error", str(body["error"])), ("error_description", str(body["error_description"]))]
    if rejected.state is not None:
        params.append(("state", rejected.state))
    return params


def error_body(rejected: Rejected, *, mfa_token: str | None = None) -> dict[str, Any]:
    """Auth0's error body: error, error_description and, where Auth0 sends it, error_uri; an
    ``mfa_required`` answer carries the ``mfa_token`` (facts-issue9 P8)."""
    body: dict[str, Any] = {"error": rejected.error.value, "error_description": rejected.error_description}
    if rejected.error_uri is not None:
        body["error_uri"] = rejected.error_uri
    if mfa_token is not None:
        body["mfa_token"] = mfa_token
    return body

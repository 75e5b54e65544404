"""Decision-table classes of the grants that present something issued earlier.

Every answer here comes from ``claimsengine.decide``; this module only builds the requests
and the facts a server would hand the core, deterministically:

- ``password`` and ``password-realm``: one token request with the table user's e-mail; the
  password is ``valid`` (the adapter's bcrypt check would match: ``password_valid_for``
  names the user) or ``wrong``. ``realm`` is the user's connection, else the tenant's
  ``default_directory``, else ``Username-Password-Authentication``.
- the MFA grants: a password login (``password``, else ``password-realm``, whichever the
  application allows) with the class's audience, scope and organization; the grant its
  ``mfa_required`` answer carries is the mfa_token. Then the second factor in the class's
  state: the user's current one-time password, recovery code or out-of-band challenge
  (``POST /mfa/challenge`` with ``challenge_type=oob``) ``valid``/``approved``, ``wrong``,
  ``used`` before, ``pending`` or ``denied``.
- the device code grant: ``POST /oauth/device/code`` (audience, scope; a device sends only
  its client_id), then, for ``approved``, the user's approval at ``/activate``, then one poll
  with the device code's facts: ``pending``, ``approved``, ``denied``, ``slow_down`` (polled
  a moment before) or ``expired`` (polled at the end of the code's lifetime).
- ``refresh_token``: a login with the ``offline`` scope class (``authorization_code``, else
  ``password``, else ``password-realm``, else the device code grant, whichever the application
  allows) for the class's audience, domain and organization (a device login names none, so the
  class has none); a password login answered ``mfa_required`` is completed with the user's
  current one-time password when the application allows ``mfa-otp``. Then the refresh request
  with the class's scope and the family's facts in the class's state: ``current``; ``reused at once`` or ``reused after
  leeway`` (the token presented again right after a first refresh, or the client's
  ``leeway`` seconds later); ``revoked`` (after ``POST /oauth/revoke``); ``idle`` (unused for
  the client's ``idle_token_lifetime``) or ``expired`` (presented ``token_lifetime`` seconds
  after the login).

A tenant without users is tabulated for these grants with one representative user added
(:data:`TABLE_USER_ID`, in the default directory, enrolled with an authenticator app, a
recovery code and Guardian push).

A request refused before its grant's own parameters are read (its trace has no
``client.grant_type_allowed``: the domain, the application's credentials or the grant type
itself decided) gets the same answer for every audience, scope, organization and state, so
it is decided once per application, grant and domain. When the earlier steps give nothing to
present (no ``mfa_required``, no refresh token, no out-of-band challenge), the request
presents a value the server does not know, and the rules column starts with the earlier
steps' rules, which say why.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from claimsengine.engine import decide
from claimsengine.grants import BY_WIRE, GrantType
from claimsengine.grants.mfa import TOTP_DRIFT_STEPS, TOTP_STEP, totp
from claimsengine.model import (
    Authorized,
    DeviceApprovalRequest,
    DeviceAuthorized,
    DeviceCodeRequest,
    DeviceState,
    Issued,
    MfaChallenged,
    MfaEnrollment,
    MfaGrant,
    OobGrant,
    OobState,
    RefreshFamily,
    RefreshGrant,
    Rejected,
    Revoked,
    Tenant,
    TokenRequest,
    User,
)
from claimsengine.rules import Rule

from . import wire
from .table import NO_AUDIENCE, Outcome, RequestClass, outcome_of

if TYPE_CHECKING:
    from .table import TableContext

__all__ = ["TABLE_USER_ID", "evaluate", "login_user", "refresh_login_grant", "refused_early", "request_of"]

TABLE_USER_ID = "auth0|decision-table-user"
TABLE_USER_EMAIL = "decision-table-user@example.com"
DEFAULT_CONNECTION = "Username-Password-Authentication"
# The representative user's second factors (example values; the table never sends them anywhere).
TABLE_TOTP_SECRET = "JBSWY3DPEHPK3PXP"
TABLE_RECOVERY_CODE = "DECISIONTABLERECOVERY000"
# What the requests present; the facts say what each stands for.
PASSWORD = "decision-table-password"
MFA_TOKEN = "decision-table-mfa-token"
OOB_CODE = "decision-table-oob-code"
BINDING_CODE = "246810"
WRONG_RECOVERY_CODE = "NOT-THE-RECOVERY-CODE"
DEVICE_CODE = "decision-table-device-code"
REFRESH_TOKEN = "decision-table-refresh-token"
FAMILY = "decision-table-family"

PASSWORD_GRANTS = (GrantType.PASSWORD.value, GrantType.PASSWORD_REALM.value)
MFA_GRANTS = (GrantType.MFA_OTP.value, GrantType.MFA_RECOVERY_CODE.value, GrantType.MFA_OOB.value)
# The login a refresh token comes from: the first of these the application allows.
LOGIN_GRANTS = (GrantType.AUTHORIZATION_CODE.value, *PASSWORD_GRANTS, GrantType.DEVICE_CODE.value)


def evaluate(ctx: TableContext, cls: RequestClass) -> Outcome:
    """The outcome of a class of a grant with ``table`` ``password``, ``mfa``, ``device`` or ``refresh``."""
    early = _early(ctx, cls.client, cls.grant, cls.domain)
    if early is not None:
        return early
    unknown = _unknown(ctx, cls)
    if unknown is not None:
        # The request presents a value the server does not know and names no audience, scope
        # or organization of its own: classes that send the very same request after earlier
        # steps that failed alike share one outcome.
        return ctx._once(("outcome", *unknown), lambda: _outcome(ctx, cls))
    return _outcome(ctx, cls)


def _outcome(ctx: TableContext, cls: RequestClass) -> Outcome:
    request, tenant, now, endpoint, before = request_of(ctx, cls)
    return outcome_of(decide(request, tenant, now=now), cls.domain, endpoint=endpoint, before=before)


def _unknown(ctx: TableContext, cls: RequestClass) -> tuple[str, ...] | None:
    """For a class whose login gave nothing to present: all its outcome depends on (the
    application, grant, domain, the MFA code's state, and why the login gave nothing); else ``None``."""
    kind = BY_WIRE[cls.grant].table
    if kind == "refresh":
        grant, _, why = _refresh_login(ctx, cls)
        return None if grant is not None else (cls.client, cls.grant, cls.domain, "", *why)
    if kind == "mfa":
        mfa, why = _mfa_login(ctx, cls)
        return None if mfa is not None else (cls.client, cls.grant, cls.domain, cls.state, *why)
    return None


# What a password login that issued tokens without asking for a second factor shows of itself.
PASSWORD_LOGIN_RULES = frozenset({Rule.PASSWORD_DEFAULT_DIRECTORY, Rule.PASSWORD_REALM, Rule.PASSWORD_VALID})
# Why a login gave no refresh token, when it issued tokens (the rest of its rules are history).
NO_REFRESH_REASONS = frozenset({Rule.SCOPE_OFFLINE_ACCESS_DROPPED, Rule.REFRESH_OMITTED, Rule.REFRESH_SPA_NEEDS_ROTATION})


def _why(decision: Issued | Rejected | Authorized, reasons: frozenset[Rule]) -> tuple[str, ...]:
    """The rules that say why a login gave nothing to present: a refusal's rule, else those of
    its rules in ``reasons``."""
    if isinstance(decision, Rejected):
        return (decision.rejected_by.value,)
    return tuple(r.rule.value for r in decision.trace if r.rule in reasons)


def refused_early(ctx: TableContext, client_id: str, grant: str) -> dict[str, Outcome] | None:
    """The answer on each domain when every class of (application, grant) is refused before
    the grant's own parameters are read; ``None`` when one domain is not."""
    outcomes = {domain: _early(ctx, client_id, grant, domain) for domain in ctx.domains}
    if any(o is None for o in outcomes.values()):
        return None
    return {domain: o for domain, o in outcomes.items() if o is not None}


Built = tuple[Any, Tenant, int, str, tuple[str, ...]]
"""The last request of a class, the tenant and time it is decided at, its endpoint, and the
rules of the steps before it; or (a rejection, ...) when an earlier step refused."""


def request_of(ctx: TableContext, cls: RequestClass) -> Built:
    """The class's last request (a ``TokenRequest``, or the ``DeviceCodeRequest`` or approval
    that refused), with what it is decided on: ``decide(request, tenant, now=now)``."""
    kind = BY_WIRE[cls.grant].table
    if kind == "password":
        return _password(ctx, cls)
    if kind == "mfa":
        return _mfa(ctx, cls)
    if kind == "device":
        return _device(ctx, cls)
    return _refresh(ctx, cls)


# ---------------------------------------------------------------------------------------
# The user and the requests
# ---------------------------------------------------------------------------------------


def login_user(ctx: TableContext) -> tuple[Tenant, User]:
    """The tenant these grants are decided against, and the user who logs in."""
    return ctx._once(("login user",), lambda: _login_user(ctx))


def _login_user(ctx: TableContext) -> tuple[Tenant, User]:
    tenant = ctx.tenant
    if ctx.user_id is not None:
        return tenant, tenant.index.users[ctx.user_id]
    user = User(
        user_id=TABLE_USER_ID,
        profile={"email": TABLE_USER_EMAIL, "email_verified": True, "name": "Decision Table User"},
        connection=tenant.default_directory or DEFAULT_CONNECTION,
        mfa=MfaEnrollment(totp_secret=SecretStr(TABLE_TOTP_SECRET), recovery_code=SecretStr(TABLE_RECOVERY_CODE), oob_channel="push"),
    )
    fields = {name: getattr(tenant, name) for name in Tenant.model_fields}
    return Tenant(**{**fields, "users": (user,)}), user


def _targets(ctx: TableContext, cls: RequestClass) -> dict[str, str]:
    """The audience, scope and organization parameters of ``cls``."""
    params: dict[str, str] = {}
    if cls.audience != NO_AUDIENCE:
        params["audience"] = cls.audience
    scope = ctx.scope_value(cls)
    if scope is not None:
        params["scope"] = scope
    org = ctx.organization_value(cls)
    if org is not None:
        params["organization"] = org
    return params


def _token_request(ctx: TableContext, cls: RequestClass, params: Mapping[str, str], **facts: Any) -> TokenRequest:
    """A token request of ``cls``'s application (authenticated as it does) with ``params``."""
    client = ctx.tenant.index.clients[cls.client]
    credentials, authorization, assertion = ctx._credentials(client, cls.domain)
    return wire.token_request({**params, **credentials}, domain=cls.domain, authorization=authorization, assertion=assertion, **facts)


def _rules(decision: Any) -> tuple[str, ...]:
    return tuple(r.rule.value for r in decision.trace)


def _early(ctx: TableContext, client_id: str, grant: str, domain: str) -> Outcome | None:
    """The answer of every class of (application, grant, domain) when the grant is refused
    before its own parameters are read; ``None`` when it is not."""
    return ctx._once(("early", client_id, grant, domain), lambda: _find_early(ctx, client_id, grant, domain))


def _find_early(ctx: TableContext, client_id: str, grant: str, domain: str) -> Outcome | None:
    tenant, _ = login_user(ctx)
    probe = RequestClass(client_id, grant, NO_AUDIENCE, "none", domain, "none")
    if BY_WIRE[grant].table == "device":
        decision: Any = decide(wire.device_code_request({"client_id": client_id}, domain=domain), tenant, now=ctx.now)
        endpoint = "/oauth/device/code"
    else:
        required = dict.fromkeys(BY_WIRE[grant].required, "decision-table")
        decision = decide(_token_request(ctx, probe, {"grant_type": grant, **required}), tenant, now=ctx.now)
        endpoint = "/oauth/token"
    if not isinstance(decision, Rejected) or any(r.rule is Rule.CLIENT_GRANT_TYPE_ALLOWED for r in decision.trace):
        return None
    return outcome_of(decision, domain, endpoint=endpoint)


# ---------------------------------------------------------------------------------------
# password, password-realm
# ---------------------------------------------------------------------------------------


def _password_params(ctx: TableContext, grant: str) -> dict[str, str]:
    tenant, user = login_user(ctx)
    params = {"grant_type": grant, "username": user.email or user.username or user.user_id, "password": PASSWORD}
    if grant == GrantType.PASSWORD_REALM.value:
        params["realm"] = user.connection or tenant.default_directory or DEFAULT_CONNECTION
    return params


def _password(ctx: TableContext, cls: RequestClass, scope: str | None = None) -> Built:
    """The password request of ``cls`` (``scope``: sent instead of the class's)."""
    tenant, user = login_user(ctx)
    params = {**_password_params(ctx, cls.grant), **_targets(ctx, cls)}
    if scope is not None:
        params["scope"] = scope
    valid_for = (user.user_id,) if cls.state == "valid" else ()
    return _token_request(ctx, cls, params, password_valid_for=valid_for), tenant, ctx.now, "/oauth/token", ()


# ---------------------------------------------------------------------------------------
# MFA
# ---------------------------------------------------------------------------------------


def _allows(ctx: TableContext, client_id: str, grant: str) -> bool:
    return grant in ctx.tenant.index.clients[client_id].effective_grant_types


def _allowed(ctx: TableContext, client_id: str, grants: tuple[str, ...]) -> str:
    """The first of ``grants`` the application allows (the first of all when it allows none)."""
    return next((g for g in grants if _allows(ctx, client_id, g)), grants[0])


def _mfa_login(ctx: TableContext, cls: RequestClass) -> tuple[MfaGrant | None, tuple[str, ...]]:
    """The grant behind the mfa_token a password login of ``cls`` gets (``None``: it got
    none), and the login's rules."""
    key = ("mfa login", cls.client, cls.audience, cls.scope, cls.domain, cls.organization)
    return ctx._once(key, lambda: _find_mfa_login(ctx, cls))


def _find_mfa_login(ctx: TableContext, cls: RequestClass) -> tuple[MfaGrant | None, tuple[str, ...]]:
    grant = _allowed(ctx, cls.client, PASSWORD_GRANTS)
    login = RequestClass(cls.client, grant, cls.audience, cls.scope, cls.domain, cls.organization, "valid")
    request, tenant, now, _, _ = _password(ctx, login)
    decision = decide(request, tenant, now=now)
    if isinstance(decision, Rejected) and decision.mfa is not None:
        return decision.mfa, _rules(decision)
    # Refused, or tokens issued without a second factor (the password login's own rules say so).
    return None, _why(decision, PASSWORD_LOGIN_RULES)


def _oob_challenge(ctx: TableContext, cls: RequestClass, grant: MfaGrant) -> tuple[OobGrant | None, tuple[str, ...]]:
    key = ("oob challenge", cls.client, cls.audience, cls.scope, cls.domain, cls.organization)
    return ctx._once(key, lambda: _find_oob_challenge(ctx, cls, grant))


def _find_oob_challenge(ctx: TableContext, cls: RequestClass, grant: MfaGrant) -> tuple[OobGrant | None, tuple[str, ...]]:
    tenant, _ = login_user(ctx)
    client = ctx.tenant.index.clients[cls.client]
    credentials, authorization, assertion = ctx._credentials(client, cls.domain)
    params = {**credentials, "mfa_token": MFA_TOKEN, "challenge_type": "oob"}
    request = wire.mfa_challenge_request(params, domain=cls.domain, authorization=authorization, assertion=assertion, mfa_grant=grant)
    decision = decide(request, tenant, now=ctx.now)
    return (decision.oob if isinstance(decision, MfaChallenged) else None), _rules(decision)


def _one_time_passwords(user: User, now: int) -> tuple[str, str]:
    """The user's current one-time password (a placeholder when no app is enrolled) and one
    the engine accepts at no step of its drift window."""
    secret = user.mfa.totp_secret if user.mfa is not None else None
    accepted = set()
    if secret is not None:
        accepted = {totp(secret.get_secret_value(), now + d * TOTP_STEP) for d in range(-TOTP_DRIFT_STEPS, TOTP_DRIFT_STEPS + 1)}
    current = totp(secret.get_secret_value(), now) if secret is not None else None
    wrong = next(code for code in ("000000", "111111", "222222", "333333") if code not in accepted)
    return current or wrong, wrong


def _mfa(ctx: TableContext, cls: RequestClass) -> Built:
    tenant, user = login_user(ctx)
    grant, before = _mfa_login(ctx, cls)
    params = {"grant_type": cls.grant, "mfa_token": MFA_TOKEN}
    facts: dict[str, Any] = {"mfa_grant": grant, "mfa_code_reused": cls.state == "used"}
    if cls.grant == GrantType.MFA_OTP.value:
        current, wrong = _one_time_passwords(user, ctx.now)
        params["otp"] = wrong if cls.state == "wrong" else current
    elif cls.grant == GrantType.MFA_RECOVERY_CODE.value:
        stored = user.mfa.recovery_code if user.mfa is not None else None
        right = stored.get_secret_value() if stored is not None else WRONG_RECOVERY_CODE
        params["recovery_code"] = WRONG_RECOVERY_CODE if cls.state == "wrong" else right
    else:
        params.update(oob_code=OOB_CODE, binding_code=BINDING_CODE)
        oob: OobGrant | None = None
        if grant is not None:
            oob, challenge = _oob_challenge(ctx, cls, grant)
            before = (*before, *challenge)
        if oob is not None:
            answer = (
                OobState(status="approved")
                if cls.state == "approved"
                else OobState(status="denied" if cls.state == "denied" else "pending")
            )
            facts.update(oob_grant=oob, oob_state=answer.model_copy(update={"binding_code": SecretStr(BINDING_CODE)}))
    return _token_request(ctx, cls, params, **facts), tenant, ctx.now, "/oauth/token", before


# ---------------------------------------------------------------------------------------
# Device code
# ---------------------------------------------------------------------------------------


def _device_code(ctx: TableContext, cls: RequestClass, scope: str | None) -> DeviceAuthorized | Rejected:
    key = ("device code", cls.client, cls.audience, cls.scope, cls.domain, scope or "")
    return ctx._once(key, lambda: _find_device_code(ctx, cls, scope))


def _find_device_code(ctx: TableContext, cls: RequestClass, scope: str | None) -> DeviceAuthorized | Rejected:
    tenant, _ = login_user(ctx)
    return decide(_device_code_request(ctx, cls, scope), tenant, now=ctx.now)


def _device_code_request(ctx: TableContext, cls: RequestClass, scope: str | None = None) -> DeviceCodeRequest:
    """``POST /oauth/device/code`` of ``cls`` (``scope``: sent instead of the class's)."""
    # A device sends only its client_id (no secret) with the audience and scope it wants.
    params = {"client_id": cls.client, **_targets(ctx, cls)}
    if scope is not None:
        params["scope"] = scope
    return wire.device_code_request(params, domain=cls.domain)


def _device(ctx: TableContext, cls: RequestClass, scope: str | None = None) -> Built:
    """The poll of ``cls`` (``scope``: the device code request sends it instead of the class's)."""
    tenant, user = login_user(ctx)
    first = _device_code(ctx, cls, scope)
    if isinstance(first, Rejected):
        return _device_code_request(ctx, cls, scope), tenant, ctx.now, "/oauth/device/code", ()
    before = _rules(first)
    device = first.grant
    now = ctx.now
    state = DeviceState(status="pending")
    if cls.state == "approved":
        approval = DeviceApprovalRequest(device_grant=device, user_id=user.user_id)
        key = ("device approval", cls.client, cls.audience, cls.scope, cls.domain, scope or "")
        approved = ctx._once(key, lambda: decide(approval, tenant, now=now))
        if isinstance(approved, Rejected):
            return approval, tenant, now, "/activate", before
        before = (*before, *_rules(approved))
        state = DeviceState(status="approved", grant=approved.grant)
    elif cls.state == "denied":
        state = DeviceState(status="denied")
    elif cls.state == "slow_down":
        state = DeviceState(status="pending", last_poll=now)
    elif cls.state == "expired":
        now = device.issued_at + device.expires_in
    params = {"grant_type": cls.grant, "device_code": DEVICE_CODE}
    poll = _token_request(ctx, cls, params, device_grant=device).model_copy(update={"device_state": state})
    return poll, tenant, now, "/oauth/token", before


# ---------------------------------------------------------------------------------------
# Refresh tokens
# ---------------------------------------------------------------------------------------


def _refresh_login(ctx: TableContext, cls: RequestClass) -> tuple[RefreshGrant | None, RefreshFamily | None, tuple[str, ...]]:
    """The refresh token (with the family's facts) a login of ``cls`` gets, and the login's
    rules; or ``None`` and the rules that say why it got none."""
    key = ("refresh login", cls.client, cls.audience, cls.scope, cls.domain, cls.organization)
    return ctx._once(key, lambda: _find_refresh_login(ctx, cls))


def refresh_login_grant(ctx: TableContext, client_id: str) -> str:
    """The grant of the login a refresh class's token comes from: the first of
    ``LOGIN_GRANTS`` the application allows (the first of all when it allows none)."""
    return _allowed(ctx, client_id, LOGIN_GRANTS)


def _offline(scope: str | None) -> str:
    """A scope with ``offline_access``: without it a login gets no refresh token."""
    return " ".join(dict.fromkeys([*(scope or "").split(), "offline_access"]))


def _find_refresh_login(ctx: TableContext, cls: RequestClass) -> tuple[RefreshGrant | None, RefreshFamily | None, tuple[str, ...]]:
    tenant, user = login_user(ctx)
    grant = refresh_login_grant(ctx, cls.client)
    login = RequestClass(cls.client, grant, cls.audience, cls.scope, cls.domain, cls.organization, "valid")
    scope = _offline(ctx.scope_value(login))
    decision: Issued | Rejected | Authorized
    if grant == GrantType.AUTHORIZATION_CODE.value:
        authorize = ctx.authorize_request(login).model_copy(update={"user_id": user.user_id, "scope": scope})
        decision = decide(authorize, tenant, now=ctx.now)
        before = _rules(decision)
        if isinstance(decision, Authorized):
            decision = decide(ctx.exchange_request(login, decision), tenant, now=ctx.now)
            before = (*before, *_rules(decision))
    elif grant == GrantType.DEVICE_CODE.value:
        # The device code request names no organization: a device login's classes have none.
        device = RequestClass(cls.client, grant, cls.audience, cls.scope, cls.domain, "none", "approved")
        request, tenant, now, _, before = _device(ctx, device, scope)
        decision = decide(request, tenant, now=now)
        before = (*before, *_rules(decision))
    else:
        request, tenant, now, _, _ = _password(ctx, login, scope)
        decision = decide(request, tenant, now=now)
        before = _rules(decision)
        if isinstance(decision, Rejected) and decision.mfa is not None and _allows(ctx, cls.client, GrantType.MFA_OTP.value):
            # The second factor a password login asks for: the user's current one-time password.
            current, _ = _one_time_passwords(user, ctx.now)
            params = {"grant_type": GrantType.MFA_OTP.value, "mfa_token": MFA_TOKEN, "otp": current}
            decision = decide(_token_request(ctx, login, params, mfa_grant=decision.mfa), tenant, now=ctx.now)
            before = (*before, *_rules(decision))
    if not isinstance(decision, Issued) or decision.refresh is None:
        return None, None, _why(decision, NO_REFRESH_REASONS)
    # The server gives every new refresh token a family and records its state (lifecycle.py).
    family = decision.refresh_family or RefreshFamily(last_used=ctx.now)
    return decision.refresh.model_copy(update={"family": FAMILY}), family, before


def _refresh_request(ctx: TableContext, cls: RequestClass, grant: RefreshGrant | None, family: RefreshFamily | None) -> TokenRequest:
    """The refresh request (it asks for no scope: the token keeps the login's)."""
    params = {"grant_type": GrantType.REFRESH_TOKEN.value, "refresh_token": REFRESH_TOKEN}
    return _token_request(ctx, cls, params, refresh_grant=grant).model_copy(update={"refresh_family": family})


def _after_first_refresh(
    ctx: TableContext, cls: RequestClass, grant: RefreshGrant, family: RefreshFamily
) -> tuple[RefreshFamily, tuple[str, ...]]:
    """The family's facts after the token was exchanged once (no scope asked), and that exchange's rules."""
    key = ("first refresh", cls.client, cls.audience, cls.scope, cls.domain, cls.organization)

    def compute() -> tuple[RefreshFamily, tuple[str, ...]]:
        tenant, _ = login_user(ctx)
        decision = decide(_refresh_request(ctx, cls, grant, family), tenant, now=ctx.now)
        after = decision.refresh_family if isinstance(decision, Issued) and decision.refresh_family is not None else family
        return after, _rules(decision)

    return ctx._once(key, compute)


def _revoked(ctx: TableContext, cls: RequestClass, grant: RefreshGrant, family: RefreshFamily) -> tuple[RefreshFamily, tuple[str, ...]]:
    """The family's facts after ``POST /oauth/revoke`` of the token, and the revocation's rules."""
    key = ("revoked", cls.client, cls.audience, cls.scope, cls.domain, cls.organization)

    def compute() -> tuple[RefreshFamily, tuple[str, ...]]:
        tenant, _ = login_user(ctx)
        client = ctx.tenant.index.clients[cls.client]
        credentials, authorization, assertion = ctx._credentials(client, cls.domain)
        request = wire.revoke_request(
            {**credentials, "token": REFRESH_TOKEN},
            domain=cls.domain,
            authorization=authorization,
            assertion=assertion,
            refresh_grant=grant,
        )
        decision = decide(request, tenant, now=ctx.now)
        revoked = isinstance(decision, Revoked) and decision.family is not None
        return (family.model_copy(update={"revoked": True}) if revoked else family), _rules(decision)

    return ctx._once(key, compute)


def _refresh(ctx: TableContext, cls: RequestClass) -> Built:
    tenant, _ = login_user(ctx)
    grant, family, before = _refresh_login(ctx, cls)
    now = ctx.now
    if grant is not None and family is not None:
        settings = ctx.tenant.index.clients[cls.client].refresh_settings
        if cls.state in ("reused at once", "reused after leeway"):
            family, first = _after_first_refresh(ctx, cls, grant, family)
            before = (*before, *first)
            if cls.state == "reused after leeway":
                now += settings.leeway
        elif cls.state == "revoked":
            family, revocation = _revoked(ctx, cls, grant, family)
            before = (*before, *revocation)
        elif cls.state == "idle":
            now += settings.idle_token_lifetime
        elif cls.state == "expired":
            now += settings.token_lifetime
    return _refresh_request(ctx, cls, grant, family), tenant, now, "/oauth/token", before

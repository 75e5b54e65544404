"""Decision-table classes of the grants that present something issued earlier (``table_flows``).

The example tenant allows none of these grants, so this file tabulates the example tenant
with two applications added, modelled on the golden tenant's (specs/tenants/northwind.json):

- ``nw-ropg-0001`` "Warehouse Console": ``password``, ``password-realm``, the three MFA grants
  and ``refresh_token``, a regular web app with no refresh-token settings (Auth0's default:
  non-rotating, non-expiring);
- ``nw-tv-0001`` "Lobby TV": the device code grant and ``refresh_token``, rotating, with the
  golden tenant's settings (leeway 30 s, lifetime 30 days, idle lifetime 15 days).

The login user is alice (an organization member), here in the default directory and enrolled
with an authenticator app, a recovery code and Guardian push. Each tenant exists with and
without the MFA policy that makes a password login answer ``mfa_required``.

What each state must answer is written here from the golden cases (cited by id), not from the
table; and each such row is checked against requests built by hand through
``claimsengine.adapters.wire`` and ``decide``, so that the table and the direct path agree.
"""

from __future__ import annotations

import json
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any

import pyotp
import pytest
import yaml

from claimsengine import Issued, Rejected, Tenant, decide
from claimsengine.adapters import docgen, table, table_flows, table_render, wire
from claimsengine.adapters.table import ANY, NO_STATE, Outcome, RequestClass, Row, TableContext
from claimsengine.adapters.users import with_users
from claimsengine.model import (
    DeviceApprovalRequest,
    DeviceApproved,
    DeviceAuthorized,
    DeviceState,
    MfaChallenged,
    OobState,
    RefreshFamily,
    Revoked,
    TokenRequest,
)
from tests.conftest import EXAMPLE, ROOT

NOW = table.NOW
DOMAIN = "northwind.auth0.com"
ORDERS = "https://api.northwind.com/orders"
ROPG = "nw-ropg-0001"
ROPG_SECRET = "example-ropg-secret-not-for-production"
TV = "nw-tv-0001"
TOTP_SECRET = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"  # RFC 6238's test key, "12345678901234567890"
RECOVERY_CODE = "EXAMPLERECOVERYCODE00000"
DEFAULT_DIRECTORY = "Username-Password-Authentication"

PASSWORD = "password"
REALM = "http://auth0.com/oauth/grant-type/password-realm"
OTP = "http://auth0.com/oauth/grant-type/mfa-otp"
RECOVERY = "http://auth0.com/oauth/grant-type/mfa-recovery-code"
OOB = "http://auth0.com/oauth/grant-type/mfa-oob"
DEVICE = "urn:ietf:params:oauth:grant-type:device_code"
REFRESH = "refresh_token"
FLOW_GRANTS = (REFRESH, DEVICE, PASSWORD, REALM, OTP, RECOVERY, OOB)

# The golden tenant's rotating client (specs/tenants/northwind.json, nw-tv-0001).
LEEWAY, LIFETIME, IDLE = 30, 2_592_000, 1_296_000

# What Auth0 answers, from the golden cases (error, HTTP status, error_description):
WRONG_PASSWORD = ("invalid_grant", 403, "Wrong email or password.")  # password.json password-wrong-password
MFA_REQUIRED = ("mfa_required", 403, "Multifactor authentication required")  # password.json password-mfa-required
OTP_INVALID = ("invalid_grant", 403, "Invalid otp_code.")  # password.json mfa-otp-wrong, mfa-otp-reused
# password.json mfa-recovery-code-wrong; a used one: rules.toml mfa.recovery_code_invalid ("or was used before").
RECOVERY_INVALID = ("invalid_grant", 401, "MFA Authorization rejected.")
MFA_TOKEN_MALFORMED = ("invalid_grant", 401, "Malformed mfa_token")  # password.json mfa-token-malformed
# mfa_oob.json mfa-oob-push-pending
OOB_PENDING = ("authorization_pending", 403, "Authorization pending: please repeat the request in a few seconds.")
OOB_DENIED = ("invalid_grant", 403, "MFA Authorization rejected.")  # mfa_oob.json mfa-oob-push-rejected
DEVICE_PENDING = ("authorization_pending", 403, "User has yet to authorize device code.")  # device.json device-poll-pending
DEVICE_SLOW_DOWN = ("slow_down", 429, "You are polling faster than the specified interval of 5 seconds.")  # device-poll-slow-down
DEVICE_DENIED = ("access_denied", 403, "User cancelled the confirmation prompt.")  # device.json device-poll-denied
DEVICE_EXPIRED = ("expired_token", 403, "The device code has expired.")  # device.json device-poll-expired
# refresh_rotation.json: refresh-rotation-reuse-after-leeway, -family-revoked, -absolute-expiry, -idle-expiry.
REFRESH_INVALID = ("invalid_grant", 403, "Unknown or invalid refresh token.")


def not_allowed(grant: str) -> tuple[str, int, str]:
    """password.json password-grant-not-allowed, mfa-grant-not-allowed; device.json device-code-grant-not-enabled."""
    return ("unauthorized_client", 403, f"Grant type '{grant}' not allowed for the client.")


# ---------------------------------------------------------------------------------------
# The tenants
# ---------------------------------------------------------------------------------------


def flows_data(*, mfa: bool) -> dict[str, Any]:
    """The example tenant (claimsengine's own format) with the two applications added."""
    data: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    data["clients"] += [
        {
            "client_id": ROPG,
            "name": "Warehouse Console",
            "app_type": "regular_web",
            "client_secrets": [ROPG_SECRET],
            "token_endpoint_auth_method": "client_secret_post",
            "grant_types": [PASSWORD, REALM, OTP, RECOVERY, OOB, REFRESH],
        },
        {
            "client_id": TV,
            "name": "Lobby TV",
            "app_type": "native",
            "token_endpoint_auth_method": "none",
            "grant_types": [DEVICE, REFRESH],
            "refresh_token": {
                "rotation_type": "rotating",
                "expiration_type": "expiring",
                "leeway": LEEWAY,
                "token_lifetime": LIFETIME,
                "idle_token_lifetime": IDLE,
            },
        },
    ]
    data["default_directory"] = DEFAULT_DIRECTORY
    data["mfa_policy"] = "all-applications" if mfa else "never"
    alice = next(u for u in data["users"] if u["user_id"] == "auth0|alice")
    alice["connection"] = DEFAULT_DIRECTORY
    alice["mfa"] = {"totp_secret": TOTP_SECRET, "recovery_code": RECOVERY_CODE, "oob_channel": "push"}
    return data


@cache
def flows_tenant(mfa: bool) -> Tenant:
    return Tenant.model_validate(flows_data(mfa=mfa))


@cache
def flows_context(mfa: bool) -> TableContext:
    return TableContext(flows_tenant(mfa))


@cache
def flows_rows(mfa: bool) -> tuple[Row, ...]:
    return tuple(flows_context(mfa).rows())


def row_of(mfa: bool, cls: RequestClass) -> Row:
    """The one row whose cells match ``cls`` (a cell may be ``any``)."""
    [row] = [r for r in flows_rows(mfa) if all(r.request.get(d) in (ANY, cls.get(d)) for d in table.DIMENSIONS)]
    return row


def cls_of(client: str, grant: str, state: str, scope: str = "granted", audience: str = ORDERS, org: str = "none") -> RequestClass:
    return RequestClass(client, grant, audience, scope, DOMAIN, org, state)


def answer(outcome: Outcome) -> tuple[str | None, int | None, str | None]:
    return (outcome.error, outcome.status, outcome.description)


# ---------------------------------------------------------------------------------------
# The requests, built by hand
# ---------------------------------------------------------------------------------------

ALICE_EMAIL = "alice@example.com"
GRANTED = "read:orders write:orders"  # the scope class "granted": the user client grant's scopes


def _ropg(params: dict[str, str], **facts: Any) -> TokenRequest:
    body = {"client_id": ROPG, "client_secret": ROPG_SECRET, **params}
    return wire.token_request(body, domain=DOMAIN, **facts)


def hand_password(tenant: Tenant, grant: str, state: str, scope: str) -> Issued | Rejected:
    params = {"grant_type": grant, "username": ALICE_EMAIL, "password": "alice's password", "audience": ORDERS, "scope": scope}
    if grant == REALM:
        params["realm"] = DEFAULT_DIRECTORY
    # The server's bcrypt check names the users the password matched (adapters/users.py).
    valid_for = ("auth0|alice",) if state == "valid" else ()
    return decide(_ropg(params, password_valid_for=valid_for), tenant, now=NOW)


def _otp_codes() -> tuple[str, str]:
    """Alice's authenticator code now (pyotp, RFC 6238), and a code outside the one-step drift."""
    app = pyotp.TOTP(TOTP_SECRET)
    near = {app.at(NOW + step * 30) for step in (-1, 0, 1)}
    return app.at(NOW), next(c for c in ("000000", "123456", "999999") if c not in near)


def hand_mfa(tenant: Tenant, grant: str, state: str, scope: str) -> Issued | Rejected:
    login = hand_password(tenant, PASSWORD, "valid", scope)
    mfa_grant = login.mfa if isinstance(login, Rejected) else None
    params = {"grant_type": grant, "mfa_token": "an mfa_token the server sealed"}
    facts: dict[str, Any] = {"mfa_grant": mfa_grant, "mfa_code_reused": state == "used"}
    if grant == OTP:
        current, wrong = _otp_codes()
        params["otp"] = wrong if state == "wrong" else current
    elif grant == RECOVERY:
        params["recovery_code"] = "NOTALICESRECOVERYCODE000" if state == "wrong" else RECOVERY_CODE
    else:
        params["oob_code"] = "the oob_code of the challenge"
        challenge = wire.mfa_challenge_request(
            {"client_id": ROPG, "client_secret": ROPG_SECRET, "mfa_token": "x", "challenge_type": "oob"}, domain=DOMAIN, mfa_grant=mfa_grant
        )
        challenged = decide(challenge, tenant, now=NOW)
        if isinstance(challenged, MfaChallenged) and challenged.oob is not None:
            answered = OobState(status="approved") if state == "approved" else OobState(status="denied" if state == "denied" else "pending")
            facts.update(oob_grant=challenged.oob, oob_state=answered)
    return decide(_ropg(params, **facts), tenant, now=NOW)


def hand_device(tenant: Tenant, state: str, scope: str) -> Issued | Rejected | DeviceAuthorized:
    code = decide(wire.device_code_request({"client_id": TV, "audience": ORDERS, "scope": scope}, domain=DOMAIN), tenant, now=NOW)
    assert isinstance(code, DeviceAuthorized), code
    device = code.grant
    now = NOW
    poll_state = DeviceState(status="pending")
    if state == "approved":
        approved = decide(DeviceApprovalRequest(device_grant=device, user_id="auth0|alice"), tenant, now=NOW)
        assert isinstance(approved, DeviceApproved), approved
        poll_state = DeviceState(status="approved", grant=approved.grant)
    elif state == "denied":
        poll_state = DeviceState(status="denied")
    elif state == "slow_down":
        poll_state = DeviceState(status="pending", last_poll=NOW - 1)
    elif state == "expired":
        now = NOW + device.expires_in
    poll = wire.token_request({"grant_type": DEVICE, "client_id": TV, "device_code": "the device code"}, domain=DOMAIN, device_grant=device)
    return decide(poll.model_copy(update={"device_state": poll_state}), tenant, now=now)


def hand_refresh(tenant: Tenant, client: str, state: str, scope: str) -> Issued | Rejected:
    """A login that gives a refresh token, then the refresh in ``state`` (refresh_rotation.json)."""
    # The login asks for the class's scope and offline_access (docs/cli.md, section table).
    wanted = " ".join(dict.fromkeys(["offline_access", *scope.split()]))
    if client == TV:
        login: Any = hand_device(tenant, "approved", wanted)
    else:
        login = hand_password(tenant, PASSWORD, "valid", wanted)
        if isinstance(login, Rejected) and login.mfa is not None:
            login = decide(_ropg({"grant_type": OTP, "mfa_token": "t", "otp": _otp_codes()[0]}, mfa_grant=login.mfa), tenant, now=NOW)
    assert isinstance(login, Issued), login
    assert login.refresh is not None
    grant = login.refresh.model_copy(update={"family": "a family the server named"})
    family = login.refresh_family or RefreshFamily(last_used=NOW)
    secret = {} if client == TV else {"client_secret": ROPG_SECRET}

    def exchange(fam: RefreshFamily, now: int) -> Issued | Rejected:
        params = {"grant_type": REFRESH, "client_id": client, **secret, "refresh_token": "the refresh token"}
        request = wire.token_request(params, domain=DOMAIN, refresh_grant=grant).model_copy(update={"refresh_family": fam})
        return decide(request, tenant, now=now)

    now = NOW
    if state.startswith("reused"):
        first = exchange(family, NOW)
        assert isinstance(first, Issued)
        family = first.refresh_family or family
        now = NOW + (LEEWAY if state == "reused after leeway" else 0)
    elif state == "revoked":
        revoke = wire.revoke_request({"client_id": client, **secret, "token": "t"}, domain=DOMAIN, refresh_grant=grant)
        revoked = decide(revoke, tenant, now=NOW)
        assert isinstance(revoked, Revoked)
        family = family.model_copy(update={"revoked": revoked.family is not None})
    elif state == "idle":
        now = NOW + (IDLE if client == TV else 10 * 365 * 86400)
    elif state == "expired":
        now = NOW + (LIFETIME if client == TV else 10 * 365 * 86400)
    return exchange(family, now)


def hand(mfa: bool, cls: RequestClass) -> Any:
    tenant = flows_tenant(mfa)
    scope = {"granted": GRANTED, "none": "", "offline": f"openid offline_access {GRANTED}"}[cls.scope]
    if cls.grant in (PASSWORD, REALM):
        return hand_password(tenant, cls.grant, cls.state, scope)
    if cls.grant in (OTP, RECOVERY, OOB):
        return hand_mfa(tenant, cls.grant, cls.state, scope)
    if cls.grant == DEVICE:
        return hand_device(tenant, cls.state, scope)
    return hand_refresh(tenant, cls.client, cls.state, scope)


def assert_agrees(mfa: bool, cls: RequestClass) -> Outcome:
    """The row of ``cls`` ends with the outcome of the requests built by hand (before them, the
    table puts the earlier steps' rules), and that outcome is what the hand-built chain answers."""
    row = row_of(mfa, cls)
    decision = hand(mfa, cls)
    own = table.outcome_of(decision, DOMAIN, endpoint=row.outcome.endpoint)
    assert row.outcome.rules[len(row.outcome.rules) - len(own.rules) :] == own.rules, (cls, row.outcome.rules, own.rules)
    assert replace(row.outcome, rules=own.rules) == own, cls
    return row.outcome


# ---------------------------------------------------------------------------------------
# Each grant and state: Auth0's answer, and the same answer by hand
# ---------------------------------------------------------------------------------------

# (grant, state, MFA policy on?) -> (the answer, a rule id the row must show)
ISSUED = ("issued", None, None)
EXPECTED: dict[tuple[str, str, bool], tuple[tuple[str | None, int | None, str | None], str]] = {
    # password.json password-default-directory-all-api-scopes, password-realm-openid-offline
    (PASSWORD, "valid", False): (ISSUED, "password.credentials_valid"),
    (PASSWORD, "wrong", False): (WRONG_PASSWORD, "password.credentials_invalid"),
    (REALM, "valid", False): (ISSUED, "password.realm"),
    (REALM, "wrong", False): (WRONG_PASSWORD, "password.credentials_invalid"),
    (PASSWORD, "valid", True): (MFA_REQUIRED, "mfa.required"),
    # A wrong password never gets an mfa_token (test_password.py's first property).
    (PASSWORD, "wrong", True): (WRONG_PASSWORD, "password.credentials_invalid"),
    (REALM, "valid", True): (MFA_REQUIRED, "mfa.required"),
    (REALM, "wrong", True): (WRONG_PASSWORD, "password.credentials_invalid"),
    # password.json mfa-otp-verified, mfa-otp-wrong, mfa-otp-reused
    (OTP, "valid", True): (ISSUED, "mfa.verified"),
    (OTP, "wrong", True): (OTP_INVALID, "mfa.otp_invalid"),
    (OTP, "used", True): (OTP_INVALID, "mfa.otp_invalid"),
    # password.json mfa-recovery-code-verified, mfa-recovery-code-wrong
    (RECOVERY, "valid", True): (ISSUED, "mfa.verified"),
    (RECOVERY, "wrong", True): (RECOVERY_INVALID, "mfa.recovery_code_invalid"),
    (RECOVERY, "used", True): (RECOVERY_INVALID, "mfa.recovery_code_invalid"),
    # mfa_oob.json mfa-challenge-oob-push, mfa-oob-push-approved, -pending, -rejected
    (OOB, "approved", True): (ISSUED, "mfa.verified"),
    (OOB, "pending", True): (OOB_PENDING, "mfa.oob_pending"),
    (OOB, "denied", True): (OOB_DENIED, "mfa.oob_rejected"),
    # Without the MFA policy the password login issues tokens: the MFA grants present an
    # mfa_token the server never issued (password.json mfa-token-malformed).
    (OTP, "valid", False): (MFA_TOKEN_MALFORMED, "mfa.token_malformed"),
    (RECOVERY, "valid", False): (MFA_TOKEN_MALFORMED, "mfa.token_malformed"),
    (OOB, "approved", False): (MFA_TOKEN_MALFORMED, "mfa.token_malformed"),
}
# device.json device-poll-*: the same with and without the MFA policy (the user approves at /activate).
DEVICE_EXPECTED = {
    "pending": (DEVICE_PENDING, "device.authorization_pending"),
    "approved": (ISSUED, "device.redeemed"),
    "denied": (DEVICE_DENIED, "device.access_denied"),
    "slow_down": (DEVICE_SLOW_DOWN, "device.slow_down"),
    "expired": (DEVICE_EXPIRED, "device.expired"),
}
# refresh_rotation.json: a rotating client (nw-tv-0001) ...
ROTATING = {
    "current": (ISSUED, "refresh.rotated"),  # refresh-rotation-rotates
    "reused at once": (ISSUED, "refresh.reuse_within_leeway"),  # refresh-rotation-leeway-reuse
    "reused after leeway": (REFRESH_INVALID, "refresh.reuse_detected"),  # refresh-rotation-reuse-after-leeway
    "revoked": (REFRESH_INVALID, "refresh.revoked"),  # revoke-refresh-family, refresh-rotation-family-revoked
    "idle": (REFRESH_INVALID, "refresh.idle_expired"),  # refresh-rotation-idle-expiry
    "expired": (REFRESH_INVALID, "refresh.expired"),  # refresh-rotation-absolute-expiry
}
# ... and a non-rotating, non-expiring one (refresh-non-rotating-stays-valid): the token stays
# valid, is never idle or expired, and only revocation ends it.
NON_ROTATING = dict.fromkeys(ROTATING, (ISSUED, "refresh.not_rotated")) | {"revoked": (REFRESH_INVALID, "refresh.revoked")}

CASES = (
    [(mfa, cls_of(ROPG, grant, state)) for (grant, state, mfa) in EXPECTED]
    + [(mfa, cls_of(TV, DEVICE, state)) for state in DEVICE_EXPECTED for mfa in (False, True)]
    + [(mfa, cls_of(TV, REFRESH, state)) for state in ROTATING for mfa in (False, True)]
    + [(mfa, cls_of(ROPG, REFRESH, state)) for state in NON_ROTATING for mfa in (False, True)]
)


def expected(mfa: bool, cls: RequestClass) -> tuple[tuple[str | None, int | None, str | None], str]:
    if cls.grant == DEVICE:
        return DEVICE_EXPECTED[cls.state]
    if cls.grant == REFRESH:
        return (ROTATING if cls.client == TV else NON_ROTATING)[cls.state]
    return EXPECTED[(cls.grant, cls.state, mfa)]


def case_id(value: object) -> str:
    if isinstance(value, RequestClass):
        return f"{value.client}-{value.grant.rsplit('/', 1)[-1]}-{value.state}"
    return "mfa" if value else "no-mfa"


@pytest.mark.parametrize(("mfa", "cls"), CASES, ids=case_id)
def test_each_state_answers_what_auth0_answers_and_what_the_requests_built_by_hand_answer(mfa: bool, cls: RequestClass) -> None:
    (error, status, description), rule = expected(mfa, cls)
    outcome = assert_agrees(mfa, cls)
    if error == "issued":
        assert outcome.kind == "issued", (cls, outcome.summary())
    else:
        assert answer(outcome) == (error, status, description), (cls, outcome.summary())
    assert rule in outcome.rules, (cls, outcome.rules)


def test_every_state_of_every_flow_grant_is_checked() -> None:
    checked = {(cls.client, cls.grant, cls.state) for _, cls in CASES}
    for grant in FLOW_GRANTS:
        client = TV if grant == DEVICE else ROPG
        assert {(client, grant, s) for s in table.STATES[grant]} <= checked, grant
    assert {(TV, REFRESH, s) for s in table.STATES[REFRESH]} <= checked


@pytest.mark.parametrize("mfa", [False, True])
def test_issued_tokens_carry_what_the_golden_cases_issue(mfa: bool) -> None:
    # password.json password-default-directory-all-api-scopes: every API scope RBAC lets the
    # user hold (alice's role order-reader: read:orders), gty password, no refresh token.
    if not mfa:
        issued = row_of(mfa, cls_of(ROPG, PASSWORD, "valid")).outcome
        assert (issued.aud, issued.scope, issued.expires_in, issued.refresh_token) == (ORDERS, "read:orders", 86400, False)
        assert "gty" in issued.claims
    # password.json mfa-otp-verified: completing MFA issues the withheld tokens, gty password.
    else:
        for grant, state in ((OTP, "valid"), (RECOVERY, "valid"), (OOB, "approved")):
            issued = row_of(mfa, cls_of(ROPG, grant, state, scope="offline")).outcome
            assert issued.aud == (ORDERS, f"https://{DOMAIN}/userinfo"), grant
            assert issued.scope == "openid offline_access read:orders", grant
            assert (issued.id_token, issued.refresh_token, "gty" in issued.claims) == (True, True, True), grant
    # device.json device-poll-approved: access, ID and (rotating) refresh tokens.
    device = row_of(mfa, cls_of(TV, DEVICE, "approved", scope="offline")).outcome
    assert (device.id_token, device.refresh_token, device.expires_in) == (True, True, 86400)
    # refresh-rotation-rotates returns a new refresh token; refresh-non-rotating-stays-valid none.
    assert row_of(mfa, cls_of(TV, REFRESH, "current")).outcome.refresh_token is True
    assert row_of(mfa, cls_of(ROPG, REFRESH, "current")).outcome.refresh_token is False


def test_a_refresh_row_starts_with_the_login_that_gave_the_token() -> None:
    # The TV logs in through the device flow; with the MFA policy, the password login is
    # completed with the authenticator's code before it gives a refresh token.
    tv = row_of(False, cls_of(TV, REFRESH, "current")).outcome.rules
    assert tv.index("device.code_issued") < tv.index("device.approved") < tv.index("device.redeemed") < tv.index("refresh.rotated")
    ropg = row_of(True, cls_of(ROPG, REFRESH, "current")).outcome.rules
    assert ropg.index("mfa.required") < ropg.index("mfa.verified") < ropg.index("refresh.not_rotated")
    # A device login names no organization: its refresh classes have only "none".
    ctx = flows_context(False)
    tv_classes = list(ctx.classes(ctx.tenant.index.clients[TV], REFRESH))
    assert {c.organization for c in tv_classes} == {"none"}
    assert {c.organization for c in ctx.classes(ctx.tenant.index.clients[ROPG], REFRESH)} >= {"none", "associated", "unknown"}


def test_a_login_that_gives_nothing_to_present_says_why_in_the_rules() -> None:
    # The Reports API does not allow offline access: no refresh token, so the refresh presents
    # one the server does not know (refresh_rotation.json refresh-rotation-family-unknown).
    reports = row_of(False, cls_of(ROPG, REFRESH, "current", audience="https://reports.northwind.com")).outcome
    assert answer(reports) == REFRESH_INVALID
    assert reports.rules[0] == "scope.offline_access_dropped"
    assert reports.rules[-1] == "refresh.invalid"
    # An organization the application may not use: the login is refused, and says so first.
    org = row_of(True, cls_of(ROPG, OTP, "valid", org="unknown")).outcome
    assert answer(org) == MFA_TOKEN_MALFORMED
    assert org.rules[0] == "org.unknown"


def test_grants_the_application_does_not_allow_are_one_row_each() -> None:
    for client, grants in ((ROPG, (DEVICE,)), (TV, (PASSWORD, REALM, OTP, RECOVERY, OOB))):
        for grant in grants:
            rows = [r for r in flows_rows(False) if (r.request.client, r.request.grant) == (client, grant)]
            assert len(rows) == 1, (client, grant)
            assert answer(rows[0].outcome) == not_allowed(grant)
            assert rows[0].outcome.endpoint == ("/oauth/device/code" if grant == DEVICE else "/oauth/token")


@pytest.mark.parametrize("mfa", [False, True])
def test_rows_partition_the_classes_of_the_flows_tenant(mfa: bool) -> None:
    ctx = flows_context(mfa)
    covered = [c for row in flows_rows(mfa) for c in ctx.expand(row.request)]
    everything = list(ctx.all_classes())
    assert len(covered) == len(set(covered)) == len(everything)
    assert set(covered) == set(everything)
    states = {r.request.state for r in flows_rows(mfa) if r.request.grant in FLOW_GRANTS}
    assert states - {ANY} <= {s for grant in FLOW_GRANTS for s in table.STATES[grant]}
    assert {r.request.state for r in flows_rows(mfa) if r.request.grant not in FLOW_GRANTS} == {NO_STATE}


def test_the_representative_user_is_added_only_to_a_tenant_without_users(tmp_path: Path) -> None:
    empty = Tenant.model_validate({**flows_data(mfa=False), "users": [], "organizations": []})
    tenant, user = table_flows.login_user(TableContext(empty))
    assert user.user_id == table_flows.TABLE_USER_ID
    assert [u.user_id for u in tenant.users] == [table_flows.TABLE_USER_ID]
    assert user.connection == DEFAULT_DIRECTORY
    # Its password logs in: the table's password rows are about the grant, not a missing user.
    ctx = TableContext(empty)
    assert row_of_ctx(ctx, cls_of(ROPG, PASSWORD, "valid")).outcome.kind == "issued"
    # A users file (Auth0's bulk import shape) gives the tenant users: none is added.
    users = ROOT / "tests" / "fixtures" / "users"
    data = flows_data(mfa=False)
    no_members = [{**o, "members": []} for o in data["organizations"]]
    bare = Tenant.model_validate({**data, "users": [], "organizations": no_members})
    companion = tmp_path / "assignments.json"
    membership = {"organizations": {"acme": [{"user_id": "auth0|frank0001", "roles": ["order-admin"]}]}}
    companion.write_text(json.dumps(membership), encoding="utf-8")
    imported = with_users(bare, users / "users.json", companion)
    tenant, user = table_flows.login_user(TableContext(imported))
    assert tenant is imported
    assert table_flows.TABLE_USER_ID not in {u.user_id for u in tenant.users}
    assert user.user_id == "auth0|frank0001"  # the organization member (the companion file)
    with_alice = TableContext(flows_tenant(False))
    assert table_flows.login_user(with_alice) == (with_alice.tenant, with_alice.tenant.index.users["auth0|alice"])


def test_the_table_logs_in_as_an_organization_member_with_a_connection_when_there_is_one() -> None:
    data = flows_data(mfa=False)
    bob = next(u for u in data["users"] if u["user_id"] == "auth0|bob")
    # bob (listed first, no connection) and alice (a connection) are both members of acme.
    data["users"] = [bob, *(u for u in data["users"] if u is not bob)]
    for org in data["organizations"]:
        if org["name"] == "acme":
            org["members"] = [{"user_id": "auth0|bob"}, *org["members"]]
    ctx = TableContext(Tenant.model_validate(data))
    assert ctx.user_id == "auth0|alice"
    assert row_of_ctx(ctx, cls_of(ROPG, PASSWORD, "valid")).outcome.kind == "issued"
    # Without a member who has a connection, the first member still logs in (organization rows).
    alice = next(u for u in data["users"] if u["user_id"] == "auth0|alice")
    del alice["connection"]
    assert TableContext(Tenant.model_validate(data)).user_id == "auth0|bob"
    # A member comes before a non-member with a connection.
    alice["connection"] = DEFAULT_DIRECTORY
    for org in data["organizations"]:
        org["members"] = [m for m in org.get("members", []) if m["user_id"] != "auth0|alice"]
    assert TableContext(Tenant.model_validate(data)).user_id == "auth0|bob"


def row_of_ctx(ctx: TableContext, cls: RequestClass) -> Row:
    client = ctx.tenant.index.clients[cls.client]
    [row] = [r for r in ctx.group_rows(client, cls.grant) if all(r.request.get(d) in (ANY, cls.get(d)) for d in table.DIMENSIONS)]
    return row


def test_markdown_and_json_carry_the_state_column() -> None:
    rows = [r for r in flows_rows(False) if r.request.client == TV]
    page = "".join(table_render.render_markdown(iter(rows)))
    header = next(line for line in page.splitlines() if line.startswith("| application |"))
    assert [c.strip() for c in header.strip("|").split("|")][:7] == ["application", *table.DIMENSIONS[1:]]
    for state in ("pending", "approved", "denied", "slow_down", "expired", "reused after leeway", "idle"):
        assert f"| {state} |" in page, state
    data = json.loads("".join(table_render.render_json(iter(rows))))
    assert {d["state"] for d in data if d["grant"] == DEVICE} >= set(table.STATES[DEVICE])
    assert all(d["state"] == "-" for d in data if d["grant"] in ("client_credentials", "authorization_code"))
    slow = next(d for d in data if d["grant"] == DEVICE and d["state"] == "slow_down")
    assert (slow["error"], slow["status"], slow["error_description"]) == DEVICE_SLOW_DOWN


def test_the_docs_show_the_flows_excerpt_generated_from_the_bundled_flows_tenant() -> None:
    # tests/test_docs.py compares the whole page with the generator; this pins where the
    # excerpt comes from and what it must show.
    page = (ROOT / "docs" / "decision-table.md").read_text(encoding="utf-8")
    excerpt = docgen.flows_excerpt(docgen.load_flows_example())
    assert page.endswith(excerpt)
    assert excerpt.startswith(docgen.FLOWS_HEADING)
    for state in ("mfa_required", "slow_down", "reused after leeway", "refresh.reuse_detected", "mfa.verified"):
        assert state in excerpt, state


def test_a_refresh_token_never_outlives_a_refused_login() -> None:
    # The table never presents a refresh token a login did not issue: every refresh row whose
    # rules show no refresh.issued is refused.
    for mfa in (False, True):
        for row in flows_rows(mfa):
            if row.request.grant == REFRESH and "refresh.issued" not in row.outcome.rules:
                assert answer(row.outcome) in (REFRESH_INVALID, not_allowed(REFRESH)), row


def test_the_table_agrees_with_requests_by_hand_for_a_tenant_without_secrets_on_the_wire() -> None:
    # What the table presents is never in its output: no password, code or recovery code.
    text = "".join(table_render.render_json(iter(flows_rows(True))))
    for secret in (ROPG_SECRET, TOTP_SECRET, RECOVERY_CODE, table_flows.PASSWORD, table_flows.REFRESH_TOKEN):
        assert secret not in text

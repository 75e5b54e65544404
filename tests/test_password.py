"""The password grants and MFA: invariants as Hypothesis properties (each name is the sentence
it proves), and the few edges the golden cases in specs/cases/password.json do not pin."""

from __future__ import annotations

import json

import pyotp
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr, ValidationError

from claimsengine import ErrorCode, Issued, MfaEnrollment, MfaGrant, Rejected, Rule, Tenant, TokenRequest, decide
from claimsengine.grants.mfa import TOTP_STEP, totp
from claimsengine.testing import TOTP_SECRET, password_requests, tenants
from tests.conftest import ROOT

NOW = 1_700_000_000
OTP_GRANT = "http://auth0.com/oauth/grant-type/mfa-otp"
RECOVERY_GRANT = "http://auth0.com/oauth/grant-type/mfa-recovery-code"


def _without_mfa(tenant: Tenant) -> Tenant:
    fields = {name: getattr(tenant, name) for name in Tenant.model_fields}
    return Tenant.model_validate({**fields, "mfa_policy": "never"})


def _with_mfa(tenant: Tenant) -> Tenant:
    fields = {name: getattr(tenant, name) for name in Tenant.model_fields}
    return Tenant.model_validate({**fields, "mfa_policy": "all-applications"})


def _otp_request(password_request: TokenRequest, grant: MfaGrant, now: int) -> TokenRequest:
    """The mfa-otp request completing ``password_request``, with the authenticator's code at ``now``."""
    return TokenRequest(
        domain=password_request.domain,
        grant_type=OTP_GRANT,
        client_id=password_request.client_id,
        client_secret=password_request.client_secret,
        mfa_grant=grant,
        parameters={"mfa_token": SecretStr("sealed"), "otp": SecretStr(totp(TOTP_SECRET, now) or "")},
    )


@given(st.data())
def test_a_password_grant_never_issues_for_a_wrong_password(data: st.DataObject) -> None:
    tenant = data.draw(tenants())
    request = data.draw(password_requests(tenant)).model_copy(update={"password_valid_for": ()})
    decision = decide(request, tenant, now=NOW)
    assert not isinstance(decision, Issued)
    assert decision.mfa is None, "no mfa_token without the password"


@given(st.data())
def test_an_unknown_user_and_a_wrong_password_get_the_same_answer(data: st.DataObject) -> None:
    tenant = data.draw(tenants())
    request = data.draw(password_requests(tenant))
    wrong = decide(request.model_copy(update={"password_valid_for": ()}), tenant, now=NOW)
    unknown = decide(
        request.model_copy(update={"parameters": {**request.parameters, "username": SecretStr("nobody@acme.com")}}), tenant, now=NOW
    )
    assert isinstance(wrong, Rejected)
    assert isinstance(unknown, Rejected)
    if wrong.rejected_by is Rule.PASSWORD_INVALID:
        # The same request with an unknown username reaches the same check, with the same answer.
        assert unknown.rejected_by is Rule.PASSWORD_INVALID
        assert (wrong.error, wrong.error_description, wrong.status) == (unknown.error, unknown.error_description, unknown.status)
        assert (wrong.error, wrong.error_description, wrong.status) == (ErrorCode.INVALID_GRANT, "Wrong email or password.", 403)


@given(st.data())
def test_the_grant_check_comes_before_the_connection_and_the_credentials(data: st.DataObject) -> None:
    tenant = data.draw(tenants())
    request = data.draw(password_requests(tenant))
    decision = decide(request, tenant, now=NOW)
    rules = [reason.rule for reason in decision.trace]
    for later in (Rule.PASSWORD_NO_CONNECTION, Rule.PASSWORD_INVALID, Rule.PASSWORD_VALID, Rule.PASSWORD_USER_BLOCKED):
        if later in rules:
            assert Rule.CLIENT_GRANT_TYPE_ALLOWED in rules[: rules.index(later)]
    if Rule.PASSWORD_INVALID in rules or Rule.PASSWORD_VALID in rules:
        assert Rule.PASSWORD_DEFAULT_DIRECTORY in rules or Rule.PASSWORD_REALM in rules


@given(st.data())
def test_a_blocked_user_never_gets_a_token_or_an_mfa_token(data: st.DataObject) -> None:
    tenant = data.draw(tenants())
    request = data.draw(password_requests(tenant))
    decision = decide(request, tenant, now=NOW)
    user = next((u for u in tenant.users if isinstance(decision, Issued) and decision.claims.get("sub") == u.user_id), None)
    assert user is None or not user.blocked
    assert not (isinstance(decision, Rejected) and decision.mfa is not None and tenant.index.users[decision.mfa.user_id].blocked)


@given(st.data())
def test_completing_mfa_issues_exactly_what_the_password_grant_issues_without_mfa(data: st.DataObject) -> None:
    tenant = data.draw(tenants())
    request = data.draw(password_requests(tenant))
    plain = decide(request, _without_mfa(tenant), now=NOW)
    withheld = decide(request, _with_mfa(tenant), now=NOW)
    if not isinstance(plain, Issued):
        assert isinstance(withheld, Rejected)
        assert withheld.mfa is None
        return
    assert isinstance(withheld, Rejected)
    assert withheld.error is ErrorCode.MFA_REQUIRED
    assert withheld.status == 403
    assert withheld.mfa is not None
    later = NOW + data.draw(st.integers(min_value=0, max_value=599))
    completion = _otp_request(request, withheld.mfa, later)
    done = decide(completion, _with_mfa(tenant), now=later)
    enrolled = tenant.index.users[withheld.mfa.user_id].mfa is not None
    grants = tenant.index.clients[withheld.mfa.client_id].effective_grant_types
    if not enrolled or OTP_GRANT not in grants:
        assert isinstance(done, Rejected)
        return
    assert isinstance(done, Issued), done
    shifted = {name: value - (later - NOW) if name in ("iat", "exp") else value for name, value in done.claims.items()}
    assert shifted == dict(plain.claims)
    assert (done.scope, done.audience, done.expires_in) == (plain.scope, plain.audience, plain.expires_in)
    assert (done.refresh is None) == (plain.refresh is None)


@given(st.data())
def test_an_mfa_token_is_never_accepted_ten_minutes_after_the_password(data: st.DataObject) -> None:
    tenant = data.draw(tenants())
    request = data.draw(password_requests(tenant))
    withheld = decide(request, _with_mfa(tenant), now=NOW)
    if not (isinstance(withheld, Rejected) and withheld.mfa is not None):
        return
    later = NOW + data.draw(st.integers(min_value=600, max_value=10**6))
    completion = _otp_request(request, withheld.mfa, later)
    assert not isinstance(decide(completion, tenant, now=later), Issued)


@given(st.integers(min_value=0, max_value=253_402_300_000), st.binary(min_size=14, max_size=32))
def test_the_one_time_password_is_rfc_6238_as_pyotp_computes_it(now: int, key: bytes) -> None:
    import base64

    secret = base64.b32encode(key).decode().rstrip("=")
    assert totp(secret, now) == pyotp.TOTP(secret).at(now)


@given(st.integers(min_value=0, max_value=2**40), st.integers(min_value=2, max_value=1000))
def test_an_otp_more_than_one_step_away_is_refused(now: int, steps: int) -> None:
    tenant = Tenant.model_validate(
        {
            "domain": "acme.auth0.com",
            "clients": [{"client_id": "app", "client_secrets": ["s"], "grant_types": [OTP_GRANT]}],
            "users": [{"user_id": "auth0|u", "mfa": {"totp_secret": TOTP_SECRET}}],
        }
    )
    grant = MfaGrant(client_id="app", user_id="auth0|u", audience=None, scope=("openid",), domain="acme.auth0.com", issued_at=now)
    code = totp(TOTP_SECRET, now + steps * TOTP_STEP) or ""
    current = {totp(TOTP_SECRET, now + d * TOTP_STEP) for d in (-1, 0, 1)}
    request = TokenRequest(
        grant_type=OTP_GRANT,
        client_id="app",
        client_secret=SecretStr("s"),
        mfa_grant=grant,
        parameters={"mfa_token": SecretStr("t"), "otp": SecretStr(code)},
    )
    decision = decide(request, tenant, now=now)
    assert isinstance(decision, Issued) == (code in current)


def test_a_secret_that_is_not_base32_fails_at_load_and_yields_no_code() -> None:
    with pytest.raises(ValidationError, match="base32"):
        MfaEnrollment(totp_secret=SecretStr("not base32!"))
    assert MfaEnrollment(recovery_code=SecretStr("RECOVERY1")).totp_secret is None
    assert totp("not base32!", NOW) is None
    assert totp(TOTP_SECRET, -1) is None
    assert totp(TOTP_SECRET, 2**64 * TOTP_STEP) is None


def test_a_totp_secret_written_in_groups_or_lower_case_gives_the_same_codes() -> None:
    """Authenticator apps show a secret in groups of four, often in lower case, and the model
    accepts it so: its codes are those of the compact upper-case secret."""
    assert totp(TOTP_SECRET, NOW) is not None
    assert totp("JBSW Y3DP EHPK 3PXP", NOW) == totp("jbswy3dpehpk3pxp", NOW) == totp(TOTP_SECRET, NOW)


def test_a_recovery_code_with_a_lone_surrogate_is_compared_instead_of_raising() -> None:
    """A tenant file may hold any JSON string, "\\ud800" included: the stored recovery code is
    compared as the given one is (surrogatepass), so the same code matches and another is refused."""
    stored = "\ud800RECOVERY"
    tenant = Tenant.model_validate(
        {
            "domain": "acme.auth0.com",
            "clients": [{"client_id": "app", "client_secrets": ["s"], "grant_types": [RECOVERY_GRANT]}],
            "users": [{"user_id": "auth0|u", "mfa": {"recovery_code": stored}}],
        }
    )
    grant = MfaGrant(client_id="app", user_id="auth0|u", audience=None, scope=("openid",), domain="acme.auth0.com", issued_at=NOW)

    def recover(code: str) -> Issued | Rejected:
        params = {"mfa_token": SecretStr("t"), "recovery_code": SecretStr(code)}
        request = TokenRequest(grant_type=RECOVERY_GRANT, client_id="app", client_secret=SecretStr("s"), mfa_grant=grant, parameters=params)
        return decide(request, tenant, now=NOW)

    assert isinstance(recover(stored), Issued)
    refused = recover("\udfffRECOVERY")
    assert isinstance(refused, Rejected)
    assert refused.rejected_by is Rule.MFA_RECOVERY_CODE_INVALID


def test_the_user_repr_shows_no_password_hash_and_no_second_factor() -> None:
    user = Tenant.model_validate(
        {
            "domain": "acme.auth0.com",
            "users": [
                {
                    "user_id": "auth0|u",
                    "password_hash": "$2b$04$abcdefghijklmnopqrstuu5Kq7pu/ZxqKhbUoTHuqS4P3oC5v8SuW",
                    "mfa": {"totp_secret": TOTP_SECRET, "recovery_code": "RECOVERY1"},
                }
            ],
        }
    ).users[0]
    shown = repr(user) + str(user)
    assert "$2b$" not in shown
    assert TOTP_SECRET not in shown
    assert "RECOVERY1" not in shown


@pytest.mark.parametrize("username", [" ", "   ", "\t\n"])
def test_a_blank_username_names_no_user_even_one_without_an_email(username: str) -> None:
    spec = json.loads((ROOT / "specs" / "tenants" / "northwind.json").read_text(encoding="utf-8"))
    # A user of the default directory with neither an e-mail nor a username: a blank username,
    # stripped to "", must not match their missing e-mail (P4: the answer of a wrong password).
    # An empty username is another case: a missing parameter.
    spec["users"].insert(0, {"user_id": "auth0|no-email", "profile": {}, "connection": spec["default_directory"]})
    tenant = Tenant.model_validate(spec)
    request = TokenRequest(
        domain="northwind.auth0.com",
        grant_type="password",
        client_id="nw-ropg-0001",
        client_secret=SecretStr("spec-ropg-secret-JJJJ"),
        audience="https://api.northwind.com/orders",
        parameters={"username": SecretStr(username), "password": SecretStr("whatever")},
        password_valid_for=("auth0|no-email",),
    )
    decision = decide(request, tenant, now=NOW)
    assert isinstance(decision, Rejected), decision
    assert decision.rejected_by is Rule.PASSWORD_INVALID
    assert (decision.error, decision.error_description, decision.status) == (ErrorCode.INVALID_GRANT, "Wrong email or password.", 403)

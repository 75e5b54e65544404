"""The mfa-oob grant's polling in the core (issue 9): a property for ``slow_down`` (its name is
the sentence it proves). Golden cases: ``specs/cases/mfa_oob.json``; over HTTP on a loopback
server with Authlib: ``test_mfa_oob_server.py``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from claimsengine import Issued, MfaGrant, Rejected, Rule, Tenant, TokenRequest, decide
from claimsengine.model import OobGrant, OobState

ROOT = Path(__file__).resolve().parent.parent
TENANT = Tenant.model_validate_json((ROOT / "specs" / "tenants" / "northwind.json").read_text())
NOW = 1_767_226_500
INTERVAL = TENANT.behaviour.mfa_oob_interval


def mfa_login(user_id: str, issued_at: int) -> MfaGrant:
    """The mfa_token's login of ``user_id`` at the password client."""
    return MfaGrant(
        client_id="nw-ropg-0001",
        user_id=user_id,
        audience="https://api.northwind.com/orders",
        scope=("openid",),
        domain="northwind.auth0.com",
        issued_at=issued_at,
    )


def oob_request(user_id: str, login_at: int, challenge: OobGrant, state: OobState, **parameters: str) -> TokenRequest:
    """An mfa-oob request of nw-ropg-0001 completing ``user_id``'s login at ``login_at``."""
    return TokenRequest(
        domain="northwind.auth0.com",
        grant_type="http://auth0.com/oauth/grant-type/mfa-oob",
        client_id="nw-ropg-0001",
        client_secret=SecretStr("spec-ropg-secret-JJJJ"),
        mfa_grant=mfa_login(user_id, login_at),
        oob_grant=challenge,
        oob_state=state,
        parameters={"mfa_token": SecretStr("t"), "oob_code": SecretStr("c"), **{k: SecretStr(v) for k, v in parameters.items()}},
    )


def poll(status: Literal["pending", "approved", "denied"], last_poll: int | None, now: int) -> Issued | Rejected:
    push = OobGrant(client_id="nw-ropg-0001", user_id="auth0|alice", channel="push", issued_at=NOW - 30)
    request = oob_request("auth0|alice", NOW - 60, push, OobState(status=status, last_poll=last_poll))
    return decide(request, TENANT, now=now)


@given(st.sampled_from(["pending", "approved", "denied"]), st.one_of(st.none(), st.integers(0, 400)), st.integers(0, 400))
def test_a_push_polled_sooner_than_the_interval_after_its_previous_poll_gets_slow_down_whatever_its_answer_and_otherwise_never(
    status: Literal["pending", "approved", "denied"], previous: int | None, since_challenge: int
) -> None:
    now = NOW - 30 + since_challenge
    last_poll = None if previous is None else min(previous, since_challenge) + NOW - 30
    decision = poll(status, last_poll, now)
    too_fast = last_poll is not None and now - last_poll < INTERVAL
    slowed = isinstance(decision, Rejected) and decision.rejected_by is Rule.MFA_OOB_SLOW_DOWN
    assert slowed == too_fast
    if slowed:
        assert isinstance(decision, Rejected)
        assert (decision.error, decision.status) == ("slow_down", 429)
    else:
        expected = {"pending": Rule.MFA_OOB_PENDING, "denied": Rule.MFA_OOB_REJECTED, "approved": Rule.MFA_VERIFIED}[status]
        assert expected in [reason.rule for reason in decision.trace]


def test_a_binding_code_with_a_lone_surrogate_is_refused_instead_of_raising() -> None:
    """A JSON body may carry "\\ud800": the binding code is compared as bytes (surrogatepass) and
    does not match, so the answer is mfa.binding_code_invalid, never an exception."""
    sms = OobGrant(client_id="nw-ropg-0001", user_id="auth0|erin", channel="sms", issued_at=NOW - 60)
    for code in ("\ud800123456", "123456\udfff"):
        request = oob_request("auth0|erin", NOW - 120, sms, OobState(binding_code=SecretStr("123456")), binding_code=code)
        decision = decide(request, TENANT, now=NOW)
        assert isinstance(decision, Rejected), decision
        assert decision.rejected_by is Rule.MFA_BINDING_CODE_INVALID

"""``POST /mfa/associate`` in the core (issue 9): properties (each name is the sentence it
proves) and the edges the golden cases in ``specs/cases/mfa_associate.json`` do not reach.
Over HTTP on a loopback server: ``test_mfa_associate_server.py``."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr, ValidationError

from claimsengine import (
    Issued,
    MfaAssociated,
    MfaAssociateRequest,
    MfaEnrollment,
    MfaGrant,
    Rejected,
    Rule,
    Tenant,
    TokenRequest,
    decide,
)
from claimsengine.grants.mfa import totp

ROOT = Path(__file__).resolve().parent.parent
TENANT = Tenant.model_validate_json((ROOT / "specs" / "tenants" / "northwind.json").read_text())
NOW = 1_767_226_500
CLIENT: dict[str, Any] = {"domain": "northwind.auth0.com", "client_id": "nw-ropg-0001", "client_secret": SecretStr("spec-ropg-secret-JJJJ")}
MFA_OTP = "http://auth0.com/oauth/grant-type/mfa-otp"


def login(user: str, now: int) -> MfaGrant:
    return MfaGrant(
        client_id="nw-ropg-0001",
        user_id=user,
        audience="https://api.northwind.com/orders",
        scope=("openid",),
        domain="northwind.auth0.com",
        issued_at=now,
    )


def associate(
    now: int, secret: str = "JBSWY3DPEHPK3PXP", enrollment: MfaEnrollment | None = None, **extra: Any
) -> MfaAssociated | Rejected:
    request = MfaAssociateRequest(
        **CLIENT,
        mfa_grant=login("auth0|bob", now - 5),
        new_secret=SecretStr(secret),
        new_recovery_code=SecretStr("SPECNEWRECOVERYCODE00001"),
        mfa_enrollment=enrollment,
        **({"authenticator_types": ("otp",)} | extra),
    )
    return decide(request, TENANT, now=now)


@given(st.binary(min_size=10, max_size=32), st.integers(NOW, NOW + 10 * 365 * 86400))
def test_the_secret_an_association_returns_always_completes_the_login_with_its_code_and_confirms_the_authenticator(
    key: bytes, now: int
) -> None:
    secret = base64.b32encode(key).decode().rstrip("=")
    added = associate(now, secret)
    assert isinstance(added, MfaAssociated)
    assert added.secret is not None
    assert added.secret.get_secret_value() == secret
    assert not added.enrollment.confirmed
    code = totp(secret, now + 20)
    assert code is not None
    request = TokenRequest(
        **CLIENT,
        grant_type=MFA_OTP,
        mfa_grant=login("auth0|bob", now - 5),
        mfa_enrollment=added.enrollment,
        parameters={"mfa_token": SecretStr("t"), "otp": SecretStr(code)},
    )
    issued = decide(request, TENANT, now=now + 20)
    assert isinstance(issued, Issued)
    assert Rule.MFA_ENROLLMENT_CONFIRMED in [reason.rule for reason in issued.trace]
    # Once confirmed, the same code completes logins without confirming anything again.
    confirmed = request.model_copy(update={"mfa_enrollment": added.enrollment.model_copy(update={"confirmed": True})})
    again = decide(confirmed, TENANT, now=now + 20)
    assert isinstance(again, Issued)
    assert Rule.MFA_ENROLLMENT_CONFIRMED not in [reason.rule for reason in again.trace]


ENROLMENTS = st.one_of(
    st.none(),
    st.builds(
        MfaEnrollment,
        totp_secret=st.sampled_from([None, SecretStr("JBSWY3DPEHPK3PXP")]),
        recovery_code=st.sampled_from([None, SecretStr("SPECRECOVERYCODEBOB00000")]),
        oob_channel=st.sampled_from([None, "push", "sms"]),
        confirmed=st.booleans(),
    ),
)


@given(ENROLMENTS, st.sampled_from([{"authenticator_types": ("otp",)}, {"authenticator_types": ("oob",), "oob_channels": ("auth0",)}]))
def test_an_association_shows_a_recovery_code_exactly_when_the_user_has_none_and_never_adds_to_an_active_authenticator(
    enrollment: MfaEnrollment | None, kind: dict[str, Any]
) -> None:
    decision = associate(NOW, enrollment=enrollment, **kind)
    active = enrollment is not None and enrollment.confirmed and (enrollment.totp_secret is not None or enrollment.oob_channel is not None)
    if active:
        assert isinstance(decision, Rejected)
        assert decision.rejected_by is Rule.MFA_ALREADY_ENROLLED
        return
    assert isinstance(decision, MfaAssociated)
    had_code = enrollment is not None and enrollment.recovery_code is not None
    assert (decision.recovery_code is None) == had_code
    assert decision.enrollment.recovery_code is not None
    if enrollment is not None and enrollment.recovery_code is not None:
        assert decision.enrollment.recovery_code == enrollment.recovery_code, "the user's recovery code is kept"
    assert not decision.enrollment.confirmed


def test_the_barcode_uri_names_the_tenant_and_the_user_as_auth0s_does() -> None:
    """mfa.associated (specs/choices.md): otpauth://totp/{tenant}:{user}?secret=...&issuer={tenant}&...,
    the docs' sample shape, the tenant named by the first label of its canonical domain."""
    associated = associate(NOW)
    assert isinstance(associated, MfaAssociated), associated
    assert associated.barcode_uri is not None
    assert associated.barcode_uri.get_secret_value() == (
        "otpauth://totp/northwind%3Abob%40northwind.com?secret=JBSWY3DPEHPK3PXP&issuer=northwind&algorithm=SHA1&digits=6&period=30"
    )


def test_the_secret_drawn_for_an_association_must_be_base32() -> None:
    with pytest.raises(ValidationError, match="new_secret must be base32"):
        MfaAssociateRequest(client_id="x", new_secret=SecretStr("not base32!"), new_recovery_code=SecretStr("r"))


def test_blank_list_entries_count_as_absent_and_a_parameter_of_another_type_is_refused() -> None:
    blank = associate(NOW, authenticator_types=(" ",))
    assert isinstance(blank, Rejected)
    assert blank.error_description == "Missing required parameter: authenticator_types"
    two = associate(NOW, authenticator_types=("otp", "oob"), oob_channels=("sms",))
    assert isinstance(two, Rejected)
    assert two.rejected_by is Rule.MFA_AUTHENTICATOR_UNSUPPORTED
    malformed = associate(NOW, malformed=("authenticator_types",))
    assert isinstance(malformed, Rejected)
    assert malformed.rejected_by is Rule.PARAMETER_MALFORMED
    other_client = decide(
        MfaAssociateRequest(
            domain="northwind.auth0.com",
            client_id="nw-ropg-0001",
            client_secret=SecretStr("wrong"),
            mfa_grant=login("auth0|bob", NOW),
            authenticator_types=("otp",),
            new_secret=SecretStr("JBSWY3DPEHPK3PXP"),
            new_recovery_code=SecretStr("r"),
        ),
        TENANT,
        now=NOW,
    )
    assert isinstance(other_client, Rejected)
    assert other_client.status == 401

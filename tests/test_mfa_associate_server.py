"""``POST /mfa/associate`` over HTTP on a real loopback server (issue 9): a user without a
second factor logs in with the password grant, gets ``mfa_required``, enrols an authenticator
app or an SMS authenticator with the ``mfa_token`` as the bearer token, and completes the login
with the MFA grant, which confirms the enrolment. The one-time password is computed from the
returned secret at the fake tenant's injected clock (RFC 6238, ``claimsengine.grants.mfa.totp``).

Users come from Auth0's bulk import format (``tests/fixtures/users``); frank has no factor.
Sources: https://auth0.com/docs/api/authentication/multi-factor-authentication/add-an-authenticator ;
https://auth0.com/docs/secure/multi-factor-authentication/authenticate-using-ropg-flow-with-mfa/enroll-and-challenge-otp-authenticators
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import pytest

from claimsengine import Tenant
from claimsengine.adapters.pytest_plugin import Auth0Clock
from claimsengine.adapters.server import LiveServer, create_app, serve_in_thread
from claimsengine.adapters.signing import KeySet
from claimsengine.adapters.users import with_users
from claimsengine.grants.mfa import totp
from tests.test_mfa_oob_server import ASSIGNMENTS, CLIENT, FRANK, HENRY, MFA_OOB, ORDERS, SPEC_TENANT, USERS

NOW = 1_767_226_500
MFA_OTP = "http://auth0.com/oauth/grant-type/mfa-otp"
MFA_RECOVERY = "http://auth0.com/oauth/grant-type/mfa-recovery-code"
KEYS = KeySet.generate(seed=12)


class Fake:
    def __init__(self, live: LiveServer, clock: Auth0Clock, http: httpx.Client) -> None:
        self.live, self.clock, self.http = live, clock, http

    def mfa_token(self, who: tuple[str, str]) -> str:
        body = {**CLIENT, "grant_type": "password", "username": who[0], "password": who[1], "audience": ORDERS, "scope": "openid"}
        refused = self.http.post(f"{self.live.url}/oauth/token", data=body)
        assert (refused.status_code, refused.json()["error"]) == (403, "mfa_required"), refused.text
        token: str = refused.json()["mfa_token"]
        return token

    def associate(self, token: str | None, **body: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return self.http.post(f"{self.live.url}/mfa/associate", json={**CLIENT, **body}, headers=headers)

    def token(self, **body: str) -> httpx.Response:
        return self.http.post(f"{self.live.url}/oauth/token", data={**CLIENT, **body})


@pytest.fixture
def fake() -> Iterator[Fake]:
    """A fresh loopback server per test (enrolments are state), its clock fixed at NOW."""
    base = with_users(Tenant.model_validate_json(SPEC_TENANT.read_text()), USERS, ASSIGNMENTS)
    tenant = Tenant.model_validate({**{name: getattr(base, name) for name in Tenant.model_fields}, "mfa_policy": "all-applications"})
    clock = Auth0Clock(NOW)
    app = create_app(tenant, keys=KEYS, clock=clock, admin=True, admin_token="test-admin-token")
    with serve_in_thread(app) as live, httpx.Client(timeout=10) as http:
        yield Fake(live, clock, http)


def test_an_authenticator_app_enrolled_with_associate_completes_the_login_and_is_then_the_users_factor(fake: Fake) -> None:
    token = fake.mfa_token(FRANK)
    # Before: nothing to challenge (the text points at /mfa/associate).
    assert fake.http.post(f"{fake.live.url}/mfa/challenge", data={**CLIENT, "mfa_token": token}).json()["error"] == "association_required"
    enrolled = fake.associate(token, authenticator_types=["otp"])
    assert enrolled.status_code == 200, enrolled.text
    body = enrolled.json()
    assert set(body) == {"authenticator_type", "secret", "barcode_uri", "recovery_codes"}
    assert body["authenticator_type"] == "otp"
    uri = urlsplit(body["barcode_uri"])
    assert (uri.scheme, uri.netloc, unquote(uri.path)) == ("otpauth", "totp", "/northwind:frank@northwind.com")
    assert parse_qs(uri.query) == {
        "secret": [body["secret"]],
        "issuer": ["northwind"],
        "algorithm": ["SHA1"],
        "digits": ["6"],
        "period": ["30"],
    }
    (recovery,) = body["recovery_codes"]
    assert len(recovery) == 24
    assert enrolled.headers["cache-control"] == "no-store"
    # The authenticator app shows the code for the fake tenant's time.
    code = totp(body["secret"], NOW)
    assert code is not None
    wrong = fake.token(grant_type=MFA_OTP, mfa_token=token, otp=str((int(code) + 1) % 10**6).zfill(6))
    assert (wrong.status_code, wrong.json()["error_description"]) == (403, "Invalid otp_code.")
    issued = fake.token(grant_type=MFA_OTP, mfa_token=token, otp=code)
    assert issued.status_code == 200, issued.text
    assert "mfa.enrollment_confirmed" in issued.headers["x-claimsengine-rules"]
    # The next login: the enrolled app is the user's factor, and the mfa_token adds no other.
    fake.clock.advance(60)
    again = fake.mfa_token(FRANK)
    refused = fake.associate(again, authenticator_types=["otp"])
    assert (refused.status_code, refused.json()) == (403, {"error": "access_denied", "error_description": "User is already enrolled."})
    assert fake.http.post(f"{fake.live.url}/mfa/challenge", data={**CLIENT, "mfa_token": again}).json() == {"challenge_type": "otp"}
    later = totp(body["secret"], NOW + 60)
    assert later is not None
    assert fake.token(grant_type=MFA_OTP, mfa_token=again, otp=later).status_code == 200
    # The recovery code shown at enrolment completes a login too, once.
    third = fake.mfa_token(FRANK)
    assert fake.token(grant_type=MFA_RECOVERY, mfa_token=third, recovery_code=recovery).status_code == 200


def test_an_sms_authenticator_enrolled_with_associate_takes_the_binding_code_it_carried(fake: Fake) -> None:
    token = fake.mfa_token(FRANK)
    missing = fake.associate(token, authenticator_types=["oob"], oob_channels=["sms"])
    assert (missing.status_code, missing.json()["error_description"]) == (400, "Missing required parameter: phone_number")
    enrolled = fake.associate(token, authenticator_types=["oob"], oob_channels=["sms"], phone_number="+15555550100")
    assert enrolled.status_code == 200, enrolled.text
    body = enrolled.json()
    assert set(body) == {"authenticator_type", "oob_channel", "oob_code", "binding_method", "recovery_codes"}
    assert (body["authenticator_type"], body["oob_channel"], body["binding_method"]) == ("oob", "sms", "prompt")
    sms = fake.http.post(
        f"{fake.live.url}/admin/mfa/oob",
        json={"oob_code": body["oob_code"], "action": "read"},
        headers={"Authorization": "Bearer test-admin-token"},
    ).json()
    issued = fake.token(grant_type=MFA_OOB, mfa_token=token, oob_code=body["oob_code"], binding_code=sms["binding_code"])
    assert issued.status_code == 200, issued.text
    assert "mfa.enrollment_confirmed" in issued.headers["x-claimsengine-rules"]


def test_an_unverified_authenticator_is_replaced_by_the_next_association_without_new_recovery_codes(fake: Fake) -> None:
    token = fake.mfa_token(FRANK)
    first = fake.associate(token, authenticator_types="otp").json()  # a form-style string works too
    second = fake.associate(token, authenticator_types=["otp"]).json()
    assert "recovery_codes" in first
    assert "recovery_codes" not in second
    assert first["secret"] != second["secret"]
    stale, current = totp(first["secret"], NOW), totp(second["secret"], NOW)
    assert stale is not None
    assert current is not None
    assert fake.token(grant_type=MFA_OTP, mfa_token=token, otp=stale).status_code == 403
    assert fake.token(grant_type=MFA_OTP, mfa_token=token, otp=current).status_code == 200


def test_associate_refuses_a_missing_or_expired_mfa_token_and_unsupported_authenticators(fake: Fake) -> None:
    assert fake.associate(None, authenticator_types=["otp"]).json() == {
        "error": "invalid_grant",
        "error_description": "Malformed mfa_token",
    }
    assert fake.associate("not-a-token", authenticator_types=["otp"]).status_code == 401
    token = fake.mfa_token(FRANK)
    for body, description in (
        ({}, "Missing required parameter: authenticator_types"),
        ({"authenticator_types": ["oob"]}, "Missing required parameter: oob_channels"),
        ({"authenticator_types": ["webauthn-roaming"]}, "Unsupported authenticator type."),
        ({"authenticator_types": ["oob"], "oob_channels": ["voice"]}, "Unsupported authenticator type."),
    ):
        refused = fake.associate(token, **body)
        assert (refused.status_code, refused.json()) == (400, {"error": "invalid_request", "error_description": description}), body
    # henry has an authenticator app in the tenant already.
    henry = fake.associate(fake.mfa_token(HENRY), authenticator_types=["otp"])
    assert (henry.status_code, henry.json()["error_description"]) == (403, "User is already enrolled.")
    fake.clock.advance(600)
    expired = fake.associate(token, authenticator_types=["otp"])
    assert (expired.status_code, expired.json()) == (401, {"error": "expired_token", "error_description": "mfa_token is expired"})
    wrong_client = fake.http.post(
        f"{fake.live.url}/mfa/associate",
        json={"client_id": CLIENT["client_id"], "client_secret": "wrong", "authenticator_types": ["otp"]},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert wrong_client.status_code == 401

"""mfa-oob over HTTP (issue 9, item 2): ``mfa_required``, ``POST /mfa/challenge``, the user's
answer through ``POST /admin/mfa/oob`` (what the phone does), and the ``mfa-oob`` grant polled
until then. The last step is Authlib's ``OAuth2Session.fetch_token`` (version in the ids).

Users come from Auth0's bulk import format (``tests/fixtures/users``): henry has an
authenticator app and, here, a push authenticator; frank an SMS one.
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
import pytest

from claimsengine import MfaEnrollment, Tenant
from claimsengine.adapters.pytest_plugin import Auth0Clock
from claimsengine.adapters.server import LiveServer, create_app, serve_in_thread
from claimsengine.adapters.signing import KeySet
from claimsengine.adapters.users import with_users

ROOT = Path(__file__).resolve().parent.parent
SPEC_TENANT = ROOT / "specs" / "tenants" / "northwind.json"
USERS = ROOT / "tests" / "fixtures" / "users" / "users.json"
ASSIGNMENTS = ROOT / "tests" / "fixtures" / "users" / "assignments.json"
ORDERS = "https://api.northwind.com/orders"
CLIENT = {"client_id": "nw-ropg-0001", "client_secret": "spec-ropg-secret-JJJJ"}
HENRY = ("henry@northwind.com", "fixture-password-henry")
FRANK = ("frank@northwind.com", "fixture-password-frank")
MFA_OOB = "http://auth0.com/oauth/grant-type/mfa-oob"
AUTHLIB = f"Authlib {version('authlib')}"
# The fake tenant's clock: polls of one push are behaviour.mfa_oob_interval (5 s) apart.
CLOCK = Auth0Clock(1_767_226_500)


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    base = with_users(Tenant.model_validate_json(SPEC_TENANT.read_text()), USERS, ASSIGNMENTS)
    channels = {"auth0|henry0001": "push", "auth0|frank0001": "sms"}
    users = []
    for user in base.users:
        channel = channels.get(user.user_id)
        if channel is not None:
            enrolled = user.mfa or MfaEnrollment()
            user = user.model_copy(update={"mfa": enrolled.model_copy(update={"oob_channel": channel})})
        users.append(user)
    fields = {name: getattr(base, name) for name in Tenant.model_fields}
    tenant = Tenant.model_validate({**fields, "users": users, "mfa_policy": "all-applications"})
    app = create_app(tenant, keys=KeySet.generate(seed=11), admin=True, admin_token="test-admin-token", clock=CLOCK)
    with serve_in_thread(app) as live:
        yield live


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


def mfa_token(server: LiveServer, http: httpx.Client, who: tuple[str, str]) -> str:
    body = {**CLIENT, "grant_type": "password", "username": who[0], "password": who[1], "audience": ORDERS, "scope": "openid"}
    refused = http.post(f"{server.url}/oauth/token", data=body)
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"] == "mfa_required"
    token: str = refused.json()["mfa_token"]
    return token


def challenge(server: LiveServer, http: httpx.Client, token: str, **extra: str) -> httpx.Response:
    return http.post(f"{server.url}/mfa/challenge", data={**CLIENT, "mfa_token": token, **extra})


def phone(server: LiveServer, http: httpx.Client, **body: str) -> httpx.Response:
    return http.post(f"{server.url}/admin/mfa/oob", json=body, headers={"Authorization": "Bearer test-admin-token"})


def test_discovery_names_the_challenge_endpoint(server: LiveServer, http: httpx.Client) -> None:
    metadata = http.get(f"{server.url}/.well-known/openid-configuration").json()
    assert metadata["mfa_challenge_endpoint"] == f"{server.url}/mfa/challenge"
    assert MFA_OOB in metadata["grant_types_supported"]


@pytest.mark.parametrize("client", [AUTHLIB])
def test_a_push_is_pending_until_the_user_approves_then_issues_once(client: str, server: LiveServer, http: httpx.Client) -> None:
    from authlib.integrations.requests_client import OAuth2Session, OAuthError

    token = mfa_token(server, http, HENRY)
    # henry has an authenticator app too: otp comes first unless the application asks for oob.
    assert challenge(server, http, token).json() == {"challenge_type": "otp"}
    answer = challenge(server, http, token, challenge_type="oob")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["challenge_type"] == "oob"
    assert "binding_method" not in body
    with OAuth2Session(CLIENT["client_id"], CLIENT["client_secret"], token_endpoint_auth_method="client_secret_post") as session:

        def poll() -> dict[str, Any]:
            issued: dict[str, Any] = session.fetch_token(
                f"{server.url}/oauth/token", grant_type=MFA_OOB, mfa_token=token, oob_code=body["oob_code"]
            )
            return issued

        with pytest.raises(OAuthError) as pending:
            poll()
        assert pending.value.error == "authorization_pending", client
        assert pending.value.description == "Authorization pending: please repeat the request in a few seconds."
        # Polling again at once is too fast: slow_down (RFC 8628's error, as the device flow's).
        with pytest.raises(OAuthError) as too_fast:
            poll()
        assert (too_fast.value.error, too_fast.value.description) == (
            "slow_down",
            "You are polling faster than the specified interval of 5 seconds.",
        ), client
        # The user approves the push on the phone (by user: the SDK may hide the oob_code).
        assert phone(server, http, user_id="auth0|henry0001", action="approve").json() == {"status": "approved"}
        CLOCK.advance(5)
        issued = poll()
        assert issued["token_type"] == "Bearer"
        assert issued["expires_in"] == 86400
        assert "id_token" in issued
        # The same challenge never completes a login twice.
        with pytest.raises(OAuthError) as again:
            poll()
        assert (again.value.error, again.value.description) == ("invalid_grant", "Invalid oob_code.")
    assert phone(server, http, user_id="auth0|henry0001", action="deny").status_code == 409


def test_polling_a_push_sooner_than_the_interval_after_the_previous_poll_answers_slow_down(server: LiveServer, http: httpx.Client) -> None:
    token = mfa_token(server, http, HENRY)
    oob_code = challenge(server, http, token, challenge_type="oob").json()["oob_code"]

    def poll() -> tuple[int, str]:
        answer = http.post(f"{server.url}/oauth/token", data={**CLIENT, "grant_type": MFA_OOB, "mfa_token": token, "oob_code": oob_code})
        return answer.status_code, answer.json()["error"]

    assert poll() == (403, "authorization_pending")
    CLOCK.advance(2)
    assert poll() == (429, "slow_down")
    # Each poll restarts the interval, a too fast one included (6 s after the first, 4 after the last).
    CLOCK.advance(4)
    assert poll() == (429, "slow_down")
    CLOCK.advance(5)
    assert poll() == (403, "authorization_pending")
    assert phone(server, http, oob_code=oob_code, action="deny").json() == {"status": "denied"}
    CLOCK.advance(5)
    assert poll() == (403, "invalid_grant")


def test_a_declined_push_is_final(server: LiveServer, http: httpx.Client) -> None:
    token = mfa_token(server, http, HENRY)
    oob_code = challenge(server, http, token, challenge_type="oob").json()["oob_code"]
    assert phone(server, http, oob_code=oob_code, action="deny").json() == {"status": "denied"}
    refused = http.post(f"{server.url}/oauth/token", data={**CLIENT, "grant_type": MFA_OOB, "mfa_token": token, "oob_code": oob_code})
    assert refused.status_code == 403
    assert refused.json() == {"error": "invalid_grant", "error_description": "MFA Authorization rejected."}


def test_an_sms_challenge_takes_the_binding_code_it_carried(server: LiveServer, http: httpx.Client) -> None:
    token = mfa_token(server, http, FRANK)
    assert challenge(server, http, token, challenge_type="otp").json()["error"] == "unsupported_challenge_type"
    body = challenge(server, http, token).json()
    assert body["challenge_type"] == "oob"
    assert body["binding_method"] == "prompt"
    sms = phone(server, http, oob_code=body["oob_code"], action="read").json()
    assert sms["status"] == "pending"
    assert len(sms["binding_code"]) == 6
    assert sms["binding_code"].isdigit()
    exchange = {**CLIENT, "grant_type": MFA_OOB, "mfa_token": token, "oob_code": body["oob_code"]}
    wrong = str((int(sms["binding_code"]) + 1) % 10**6).zfill(6)
    refused = http.post(f"{server.url}/oauth/token", data={**exchange, "binding_code": wrong})
    assert refused.json() == {"error": "invalid_grant", "error_description": "Invalid binding_code."}
    issued = http.post(f"{server.url}/oauth/token", data={**exchange, "binding_code": sms["binding_code"]})
    assert issued.status_code == 200, issued.text
    assert issued.json()["scope"] == "openid read:orders"  # frank's role, as the password grant gives it


def test_an_oob_code_is_sealed_and_bound_to_its_login(server: LiveServer, http: httpx.Client) -> None:
    henry, frank = mfa_token(server, http, HENRY), mfa_token(server, http, FRANK)
    frank_code = challenge(server, http, frank).json()["oob_code"]
    assert phone(server, http, oob_code=frank_code + "x", action="approve").status_code == 404
    crossed = http.post(f"{server.url}/oauth/token", data={**CLIENT, "grant_type": MFA_OOB, "mfa_token": henry, "oob_code": frank_code})
    assert crossed.json()["error_description"] == "Invalid oob_code."
    forged = http.post(f"{server.url}/oauth/token", data={**CLIENT, "grant_type": MFA_OOB, "mfa_token": henry, "oob_code": "forged"})
    assert forged.json()["error_description"] == "Invalid oob_code."
    # The admin route needs its token and names a challenge.
    assert http.post(f"{server.url}/admin/mfa/oob", json={"user_id": "auth0|frank0001", "action": "approve"}).status_code == 401
    assert phone(server, http, action="approve").status_code == 400
    assert phone(server, http, user_id="auth0|nobody", action="read").status_code == 404

"""Real clients drive the device flow, refresh-token rotation and revocation over loopback TLS.

* the device flow (RFC 8628): the device authorization request with httpx (neither Authlib nor
  auth0-python has a client for RFC 8628's first step), then Authlib's ``OAuth2Session``
  (requests integration) polls the token endpoint with the device code grant, honouring
  ``authorization_pending`` and ``slow_down``, while the user approves in another thread;
* rotation and reuse detection with auth0-python's ``GetToken.refresh_token``;
* revocation with auth0-python's ``RevokeToken.revoke_refresh_token``.

The versions of the clients are in each test's assertion messages (``importlib.metadata``).
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from claimsengine import DeviceApproved, Tenant
from claimsengine.adapters.server import LiveServer, create_app, serve_in_thread
from claimsengine.adapters.signing import KeySet

pytestmark = pytest.mark.interop

ROOT = Path(__file__).resolve().parent.parent
TV = "nw-tv-0001"
ORDERS = "https://api.northwind.com/orders"
DEVICE = "urn:ietf:params:oauth:grant-type:device_code"
AUTHLIB = f"Authlib {version('authlib')}"
AUTH0_PYTHON = f"auth0-python {version('auth0-python')}"


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    """The spec tenant, with a 1 s polling interval (the test waits for real) and no leeway."""
    data = json.loads((ROOT / "specs" / "tenants" / "northwind.json").read_text())
    data["behaviour"] = {"device_code_interval": 1}
    for client in data["clients"]:
        if client["client_id"] == TV:
            client["refresh_token"]["leeway"] = 0
    app = create_app(Tenant.model_validate(data), keys=KeySet.generate(), default_user="auth0|alice")
    with serve_in_thread(app, tls=True) as live:
        yield live


def device_tokens(server: LiveServer) -> dict[str, Any]:
    """Run the device flow as a device and its user would; the device's token response."""
    from authlib.integrations.base_client.errors import OAuthError
    from authlib.integrations.requests_client import OAuth2Session

    ca = ssl.create_default_context(cafile=str(server.ca_path))
    with httpx.Client(verify=ca, timeout=10) as http:
        metadata = http.get(f"https://{server.domain}/.well-known/openid-configuration").json()
        started = http.post(
            metadata["device_authorization_endpoint"],
            data={"client_id": TV, "audience": ORDERS, "scope": "openid offline_access read:orders"},
        )
    assert started.status_code == 200, started.text
    grant = started.json()
    approved = threading.Event()
    answers: list[str] = []

    def user() -> None:
        # The user reads the code on the screen and approves it a moment later.
        approved.wait(10)
        outcome = server.fake.answer_device(grant["user_code"], None, approve=True)
        answers.append("approved" if isinstance(outcome, DeviceApproved) else str(outcome))

    person = threading.Thread(target=user)
    person.start()
    seen: list[str] = []
    interval = grant["interval"]
    with OAuth2Session(TV, token_endpoint_auth_method="none") as device:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                token: dict[str, Any] = device.fetch_token(
                    metadata["token_endpoint"], grant_type=DEVICE, device_code=grant["device_code"], verify=str(server.ca_path), timeout=10
                )
                break
            except OAuthError as error:
                seen.append(error.error)
                if error.error == "slow_down":
                    interval += 5
                approved.set()
                time.sleep(interval)
        else:
            pytest.fail(f"{AUTHLIB}: no token within 30 s ({seen})")
    person.join(10)
    assert answers == ["approved"]
    assert seen[0] == "authorization_pending", (AUTHLIB, seen)
    return token


def test_authlib_polls_the_device_code_grant_until_the_user_approves(server: LiveServer) -> None:
    token = device_tokens(server)
    assert {"access_token", "refresh_token", "id_token", "expires_in", "token_type"} <= set(token), AUTHLIB
    claims = jwt.decode(token["access_token"], options={"verify_signature": False})
    assert claims["sub"] == "auth0|alice"
    assert claims["aud"] == [ORDERS, "https://northwind.auth0.com/userinfo"]
    assert claims["azp"] == TV


def test_auth0_python_rotates_a_refresh_token_and_a_reuse_revokes_its_family(server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from auth0.authentication import GetToken
    from auth0.authentication.exceptions import Auth0Error

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(server.ca_path))
    first = device_tokens(server)["refresh_token"]
    sdk = GetToken(server.domain, TV)
    rotated = sdk.refresh_token(first)
    assert rotated["refresh_token"] != first, AUTH0_PYTHON
    assert jwt.decode(rotated["access_token"], options={"verify_signature": False})["gty"] == "refresh_token"
    with pytest.raises(Auth0Error) as reused:
        sdk.refresh_token(first)
    assert (reused.value.status_code, reused.value.error_code, reused.value.message) == (
        403,
        "invalid_grant",
        "Unknown or invalid refresh token.",
    ), AUTH0_PYTHON
    with pytest.raises(Auth0Error) as family:
        sdk.refresh_token(rotated["refresh_token"])
    assert family.value.error_code == "invalid_grant", "the reuse revoked the whole family"


def test_auth0_python_revokes_a_refresh_token(server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from auth0.authentication import GetToken, RevokeToken
    from auth0.authentication.exceptions import Auth0Error

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(server.ca_path))
    token = device_tokens(server)["refresh_token"]
    RevokeToken(server.domain, TV).revoke_refresh_token(token)
    with pytest.raises(Auth0Error) as refused:
        GetToken(server.domain, TV).refresh_token(token)
    assert (refused.value.status_code, refused.value.error_code) == (403, "invalid_grant"), AUTH0_PYTHON

"""The server's side of refresh-token rotation, revocation and the device flow: the facts it
reads from the store, what it records after each decision, the endpoints
(``POST /oauth/device/code``, ``POST /oauth/revoke``, ``POST /admin/device``) and discovery.

In process (httpx over ASGI); real clients over loopback are in ``test_lifecycle_interop.py``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from claimsengine import DeviceApproved, Rejected, Tenant
from claimsengine.adapters import lifecycle
from claimsengine.adapters.pytest_plugin import Auth0Clock
from claimsengine.adapters.server import asgi_client, create_app
from claimsengine.adapters.signing import KeySet
from claimsengine.adapters.store import MemoryStore

ROOT = Path(__file__).resolve().parent.parent
NOW = 1_767_226_500
TV = "nw-tv-0001"
ORDERS = "https://api.northwind.com/orders"
DEVICE = "urn:ietf:params:oauth:grant-type:device_code"
WEB, WEB_SECRET = "nw-web-0001", "spec-web-secret-GGGG"
KEYS = KeySet.generate(seed=9)


def spec_tenant(**behaviour: Any) -> Tenant:
    data = json.loads((ROOT / "specs" / "tenants" / "northwind.json").read_text())
    data["behaviour"] = behaviour
    return Tenant.model_validate(data)


class Fake:
    """An in-process fake tenant with a clock the test moves."""

    def __init__(self, tenant: Tenant, *, admin: bool = False) -> None:
        self.clock = Auth0Clock(NOW)
        self.app = create_app(tenant, keys=KEYS, clock=self.clock, default_user="auth0|alice", admin=admin, store=MemoryStore())

    @property
    def admin_token(self) -> str:
        token = self.app.state.auth0.admin_token
        assert isinstance(token, str)
        return token


@pytest.fixture
def fake() -> Fake:
    return Fake(spec_tenant())


@pytest.fixture
def http(fake: Fake) -> Iterator[httpx.Client]:
    with asgi_client(fake.app) as client:
        yield client


def device_code(http: httpx.Client, **extra: str) -> dict[str, Any]:
    response = http.post(
        "/oauth/device/code", data={"client_id": TV, "audience": ORDERS, "scope": "openid offline_access read:orders", **extra}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def poll(http: httpx.Client, code: str) -> httpx.Response:
    return http.post("/oauth/token", data={"grant_type": DEVICE, "client_id": TV, "device_code": code})


def refresh(http: httpx.Client, token: str, client_id: str = TV, **extra: str) -> httpx.Response:
    return http.post("/oauth/token", data={"grant_type": "refresh_token", "client_id": client_id, "refresh_token": token, **extra})


def tv_refresh_token(fake: Fake, http: httpx.Client) -> str:
    """A rotating refresh token for the TV client, through the device flow."""
    issued = device_code(http)
    assert isinstance(fake.app.state.auth0.answer_device(issued["user_code"], None, approve=True), DeviceApproved)
    response = poll(http, issued["device_code"])
    assert response.status_code == 200, response.text
    token: str = response.json()["refresh_token"]
    return token


def test_the_device_flow_answers_pending_slow_down_then_issues_once(fake: Fake, http: httpx.Client) -> None:
    issued = device_code(http)
    assert issued["expires_in"] == 900
    assert issued["interval"] == 5
    assert issued["verification_uri"] == "https://northwind.auth0.com/activate"
    assert issued["verification_uri_complete"] == f"https://northwind.auth0.com/activate?user_code={issued['user_code']}"
    assert len(issued["user_code"]) == 9
    assert set(issued["user_code"].replace("-", "")) <= set(lifecycle.USER_CODE_LETTERS)
    pending = poll(http, issued["device_code"])
    assert (pending.status_code, pending.json()) == (
        403,
        {"error": "authorization_pending", "error_description": "User has yet to authorize device code."},
    )
    fake.clock.advance(2)
    too_fast = poll(http, issued["device_code"])
    assert too_fast.status_code == 429
    assert too_fast.json()["error"] == "slow_down"
    # The user types the code in lower case without the hyphen: still theirs.
    outcome = fake.app.state.auth0.answer_device(issued["user_code"].lower().replace("-", ""), "auth0|alice", approve=True)
    assert isinstance(outcome, DeviceApproved)
    fake.clock.advance(5)
    tokens = poll(http, issued["device_code"])
    assert tokens.status_code == 200, tokens.text
    assert set(tokens.json()) == {"access_token", "refresh_token", "id_token", "scope", "expires_in", "token_type"}
    fake.clock.advance(5)
    again = poll(http, issued["device_code"])
    assert (again.status_code, again.json()["error"]) == (403, "invalid_grant")


def test_a_denied_device_gets_access_denied_and_an_expired_one_expired_token_once(fake: Fake, http: httpx.Client) -> None:
    denied = device_code(http)
    assert fake.app.state.auth0.answer_device(denied["user_code"], None, approve=False) == "denied"
    assert fake.app.state.auth0.answer_device(denied["user_code"], None, approve=True) == "answered"
    assert fake.app.state.auth0.answer_device("BBBB-BBBB", None, approve=True) == "unknown"
    response = poll(http, denied["device_code"])
    assert (response.status_code, response.json()["error_description"]) == (403, "User cancelled the confirmation prompt.")
    late = device_code(http)
    fake.clock.advance(900)
    first, then = poll(http, late["device_code"]), None
    fake.clock.advance(5)
    then = poll(http, late["device_code"])
    assert (first.status_code, first.json()["error"]) == (403, "expired_token")
    assert (then.status_code, then.json()["error"]) == (403, "invalid_grant")


def test_an_approval_the_core_refuses_is_not_recorded(fake: Fake, http: httpx.Client) -> None:
    issued = device_code(http)
    refused = fake.app.state.auth0.answer_device(issued["user_code"], "auth0|nobody", approve=True)
    assert isinstance(refused, Rejected)
    assert refused.error == "login_required"
    assert poll(http, issued["device_code"]).json()["error"] == "authorization_pending"


def test_device_authorization_refuses_credentials_and_confidential_clients(http: httpx.Client) -> None:
    with_secret = http.post("/oauth/device/code", data={"client_id": TV, "client_secret": "x"})
    confidential = http.post("/oauth/device/code", data={"client_id": WEB})
    for response in (with_secret, confidential):
        assert response.status_code == 403
        assert response.json() == {
            "error": "unauthorized_client",
            "error_description": f"Grant type '{DEVICE}' not allowed for the client.",
            **({"error_uri": "https://auth0.com/docs/clients/client-grant-types"} if response is confidential else {}),
        }
    assert http.post("/oauth/device/code", content=b"{", headers={"content-type": "application/json"}).status_code == 400


def test_rotation_over_http_issues_a_new_token_and_reuse_revokes_the_family(fake: Fake, http: httpx.Client) -> None:
    first = tv_refresh_token(fake, http)
    rotated = refresh(http, first)
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()["refresh_token"]
    assert second != first
    # Within the TV client's 30 s leeway the previous token is accepted once more.
    fake.clock.advance(10)
    within = refresh(http, first)
    assert within.status_code == 200
    third = within.json()["refresh_token"]
    # The token it had been rotated to is no longer current: reuse, the whole family goes.
    reused = refresh(http, second)
    assert (reused.status_code, reused.json()) == (
        403,
        {"error": "invalid_grant", "error_description": "Unknown or invalid refresh token."},
    )
    assert refresh(http, third).status_code == 403
    assert refresh(http, first).status_code == 403


def test_revocation_answers_200_with_an_empty_body_and_the_family_never_issues_again(fake: Fake, http: httpx.Client) -> None:
    token = tv_refresh_token(fake, http)
    successor = refresh(http, token).json()["refresh_token"]
    revoked = http.post("/oauth/revoke", data={"client_id": TV, "token": token})
    assert (revoked.status_code, revoked.content) == (200, b"")
    assert refresh(http, successor).status_code == 403
    unknown = http.post("/oauth/revoke", data={"client_id": TV, "token": "not-a-token"})
    assert (unknown.status_code, unknown.content) == (200, b"")
    missing = http.post("/oauth/revoke", data={"client_id": TV})
    assert (missing.status_code, missing.json()["error_description"]) == (400, "Missing required parameter: token")
    wrong = http.post("/oauth/revoke", data={"client_id": WEB, "client_secret": "wrong", "token": token})
    assert wrong.status_code == 401


def test_a_non_rotating_token_stays_valid_and_is_not_replaced(http: httpx.Client, fake: Fake) -> None:
    query = {"response_type": "code", "client_id": WEB, "redirect_uri": "https://portal.northwind.com/callback"}
    query |= {"scope": "openid offline_access", "audience": ORDERS}
    code = httpx.URL(http.get("/authorize", params=query).headers["location"]).params["code"]
    exchange = {"grant_type": "authorization_code", "client_id": WEB, "client_secret": WEB_SECRET, "code": code}
    issued = http.post("/oauth/token", data={**exchange, "redirect_uri": "https://portal.northwind.com/callback"})
    token = issued.json()["refresh_token"]
    for _ in range(3):
        fake.clock.advance(60)
        again = refresh(http, token, WEB, client_secret=WEB_SECRET)
        assert again.status_code == 200
        assert "refresh_token" not in again.json()


def test_discovery_names_the_device_and_revocation_endpoints(http: httpx.Client) -> None:
    document = http.get("/.well-known/openid-configuration").json()
    assert document["device_authorization_endpoint"] == "https://northwind.auth0.com/oauth/device/code"
    assert document["revocation_endpoint"] == "https://northwind.auth0.com/oauth/revoke"
    assert DEVICE in document["grant_types_supported"]


def test_the_admin_route_answers_user_codes_with_the_admin_token_only() -> None:
    fake = Fake(spec_tenant(), admin=True)
    with asgi_client(fake.app) as http:
        issued = device_code(http)
        body = {"user_code": issued["user_code"], "action": "approve", "user_id": "auth0|bob"}
        assert http.post("/admin/device", json=body).status_code == 401
        auth = {"authorization": f"Bearer {fake.admin_token}"}
        assert http.post("/admin/device", json={"user_code": 1}, headers=auth).status_code == 400
        assert http.post("/admin/device", content=b"{", headers=auth).status_code == 400
        approved = http.post("/admin/device", json=body, headers=auth)
        assert approved.json() == {"user_code": issued["user_code"], "status": "approved"}
        assert http.post("/admin/device", json=body, headers=auth).status_code == 409
        unknown = http.post("/admin/device", json={**body, "user_code": "BBBB-BBBB"}, headers=auth)
        assert unknown.status_code == 404
        other = device_code(http)
        nobody = http.post(
            "/admin/device", json={"user_code": other["user_code"], "action": "approve", "user_id": "auth0|none"}, headers=auth
        )
        assert (nobody.status_code, nobody.json()["error"]) == (400, "login_required")
        deny = http.post("/admin/device", json={"user_code": other["user_code"], "action": "deny"}, headers=auth)
        assert deny.json()["status"] == "denied"
        fake.clock.advance(5)
        tokens = poll(http, issued["device_code"])
        assert tokens.status_code == 200
        assert tokens.json()["access_token"]

"""The pytest plugin: fixtures for testing code against a fake Auth0 tenant."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from starlette.applications import Starlette

from claimsengine import Tenant
from claimsengine.adapters.loader import load_tenant
from claimsengine.adapters.pytest_plugin import Auth0Clock
from claimsengine.adapters.server import EXAMPLE_TENANT, LiveServer

ORDERS = "https://api.northwind.com/orders"
CC = {
    "grant_type": "client_credentials",
    "client_id": "nw-m2m-0001",
    "client_secret": "example-billing-secret-not-for-production",
    "audience": ORDERS,
}
SMALL = Tenant.model_validate(
    {
        "domain": "tiny.auth0.com",
        "apis": [{"identifier": "https://tiny.example/api", "scopes": ["ping"]}],
        "clients": [{"client_id": "tiny-m2m", "client_secrets": ["tiny-secret"], "grant_types": ["client_credentials"]}],
        "client_grants": [{"client_id": "tiny-m2m", "audience": "https://tiny.example/api", "scope": ["ping"]}],
    }
)


def test_importing_the_plugin_loads_no_server_dependencies() -> None:
    probe = (
        "import sys, claimsengine.adapters.pytest_plugin as p; "
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'starlette', 'uvicorn', 'httpx', 'joserfc', 'trustme', 'yaml'}); "
        "print(','.join(heavy))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""


def test_clock_controls() -> None:
    clock = Auth0Clock(1000)
    assert clock() == 1000
    assert clock.advance(5) == 1005
    clock.set(42)
    assert clock.now == 42


def test_default_tenant_and_sync_client(auth0_client: httpx.Client, auth0_clock: Auth0Clock) -> None:
    response = auth0_client.post("/oauth/token", data=CC)
    assert response.status_code == 200
    claims = jwt.decode(response.json()["access_token"], options={"verify_signature": False})
    assert claims["iss"] == "https://northwind.auth0.com/"
    assert claims["iat"] == auth0_clock.now


@pytest.mark.auth0_tenant(default_user="auth0|alice")
def test_clock_expires_codes(auth0_client: httpx.Client, auth0_clock: Auth0Clock) -> None:
    verifier = "v" * 43
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    params = {
        "client_id": "nw-spa-0001",
        "response_type": "code",
        "scope": "openid",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    location = auth0_client.get("/authorize", params=params).headers["location"]
    code = parse_qs(urlsplit(location).query)["code"][0]
    auth0_clock.advance(601)  # codes live 600 s
    body = {"grant_type": "authorization_code", "client_id": "nw-spa-0001", "code": code, "code_verifier": verifier}
    response = auth0_client.post("/oauth/token", data={**body, "redirect_uri": "https://shop.northwind.com/callback"})
    assert response.json() == {"error": "invalid_grant", "error_description": "Invalid authorization code"}


@pytest.mark.auth0_tenant(tenant=SMALL)
def test_marker_with_a_tenant_built_in_code(auth0_client: httpx.Client) -> None:
    body = {
        "grant_type": "client_credentials",
        "client_id": "tiny-m2m",
        "client_secret": "tiny-secret",
        "audience": "https://tiny.example/api",
    }
    token = auth0_client.post("/oauth/token", data=body).json()["access_token"]
    assert jwt.decode(token, options={"verify_signature": False})["iss"] == "https://tiny.auth0.com/"


@pytest.mark.auth0_tenant(path="claimsengine/examples/northwind.yaml")
def test_marker_with_a_path_relative_to_the_root(auth0_tenant: Tenant) -> None:
    assert auth0_tenant.domain == "northwind.auth0.com"


class TestOverridingTheTenantFixture:
    @pytest.fixture
    def auth0_tenant(self) -> Tenant:
        base = load_tenant(EXAMPLE_TENANT).tenant
        fields = {name: getattr(base, name) for name in Tenant.model_fields}
        return Tenant.model_validate({**fields, "behaviour": base.behaviour.model_copy(update={"client_auth_error": "documented"})})

    def test_the_override_is_served(self, auth0_client: httpx.Client) -> None:
        response = auth0_client.post("/oauth/token", data={**CC, "client_secret": "wrong"})
        assert response.json() == {"error": "invalid_client", "error_description": "Client authentication failed"}


def test_live_server(auth0_server: LiveServer) -> None:
    with httpx.Client(base_url=auth0_server.url, timeout=10) as client:
        token = client.post("/oauth/token", data=CC).json()["access_token"]
        jwks = client.get("/.well-known/jwks.json").json()
    key = jwt.PyJWKSet.from_dict(jwks)[auth0_server.keys.current_kid]
    claims = jwt.decode(token, key.key, algorithms=["RS256"], audience=ORDERS, issuer=auth0_server.issuer)
    assert claims["azp"] == "nw-m2m-0001"
    assert auth0_server.domain == f"127.0.0.1:{auth0_server.port}"
    assert claims["iss"] == f"https://{auth0_server.domain}/"


def test_rotating_keys_through_the_app_state(auth0_app: Starlette, auth0_client: httpx.Client) -> None:
    state = auth0_app.state.auth0
    before = state.keys.current_kid
    state.rotate_keys()
    state.rotate_keys()
    token = auth0_client.post("/oauth/token", data=CC).json()["access_token"]
    assert jwt.get_unverified_header(token)["kid"] != before


@pytest.mark.anyio
async def test_async_client(auth0_async_client: httpx.AsyncClient) -> None:
    async with auth0_async_client as client:
        response = await client.post("/oauth/token", json=CC)
    assert response.status_code == 200

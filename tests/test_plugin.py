"""The pytest plugin: fixtures for testing code against a fake Auth0 tenant."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from starlette.applications import Starlette

from claimsengine import Tenant
from claimsengine.adapters.loader import load_tenant
from claimsengine.adapters.pytest_plugin import Auth0Clock, Auth0Devices, DeviceAnswerError
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


# ---------------------------------------------------------------------------------------
# Real projects: exports, keywords, credentials, TLS, the docs' example (issue 10, item 8)
# ---------------------------------------------------------------------------------------

DANCO = "../shared/corpus/tenants/Danco626__a0-deploy__tenant.yaml"
ROOT = Path(__file__).resolve().parent.parent
EXPLORER = {"client_id": "explorer-id", "client_secret": "explorer-secret"}


@pytest.fixture
def danco_credentials(tmp_path: Path) -> Path:
    overlay = tmp_path / "credentials.json"
    overlay.write_text(json.dumps({"API Explorer Application": EXPLORER}))
    return overlay


@pytest.mark.auth0_tenant(DANCO, domain="danco-hooks.auth0.com", keywords={"UNUSED": "x"})
def test_the_marker_loads_a_deploy_cli_export_with_domain_keywords_and_credentials(
    auth0_tenant: Tenant, auth0_client: httpx.Client
) -> None:
    assert auth0_tenant.domain == "danco-hooks.auth0.com"
    assert {c.name for c in auth0_tenant.clients} >= {"API Explorer Application", "CI/CD"}
    # Derived credentials (the export has none) are the documented stable values.
    explorer = next(c for c in auth0_tenant.clients if c.name == "API Explorer Application")
    assert explorer.client_id


def test_the_marker_takes_a_credentials_overlay(pytester: pytest.Pytester, danco_credentials: Path) -> None:
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.auth0_tenant({str(ROOT / DANCO)!r}, credentials={str(danco_credentials)!r})
        def test_token(auth0_client):
            body = {{"grant_type": "client_credentials", "client_id": "explorer-id", "client_secret": "explorer-secret",
                     "audience": "https://danco-hooks.auth0.com/api/v2/"}}
            response = auth0_client.post("/oauth/token", data=body)
            assert response.status_code == 200, response.text
            assert "read:users" in response.json()["scope"].split()
        """
    )
    result = pytester.runpytest_subprocess("-q")
    result.assert_outcomes(passed=1)


def test_unknown_marker_options_are_errors(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.auth0_tenant(defualt_user="auth0|alice")
        def test_typo(auth0_client):
            pass
        """
    )
    result = pytester.runpytest_subprocess("-q")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*@pytest.mark.auth0_tenant: unknown option(s) defualt_user (known: path, tenant, domain, *"])


def test_the_tls_server_fixture_gives_its_ca_to_requests_httpx_and_ssl(auth0_tls_server: LiveServer) -> None:
    import urllib.request

    import requests

    url = f"{auth0_tls_server.url}/.well-known/openid-configuration"
    assert url.startswith("https://127.0.0.1:")
    assert requests.get(url, timeout=10).json()["issuer"] == auth0_tls_server.issuer  # REQUESTS_CA_BUNDLE
    with httpx.Client(timeout=10) as client:  # SSL_CERT_FILE
        assert client.get(url).json()["jwks_uri"] == f"{auth0_tls_server.url}/.well-known/jwks.json"
    with urllib.request.urlopen(url, context=auth0_tls_server.ssl_context(), timeout=10) as response:
        assert json.loads(response.read())["issuer"] == auth0_tls_server.issuer
    with pytest.raises(httpx.ConnectError), httpx.Client(timeout=10, trust_env=False) as untrusting:
        untrusting.get(url)


def test_ssl_context_needs_tls(auth0_server: LiveServer) -> None:
    with pytest.raises(ValueError, match="does not use TLS"):
        auth0_server.ssl_context()


def _docs_blocks() -> dict[str, str]:
    text = (Path(__file__).resolve().parent.parent / "docs" / "testing.md").read_text()
    blocks = re.findall(r"```python\n(# (\S+\.py)\n.*?)```", text, re.S)
    return {name: code for code, name in blocks}


def test_every_fixture_is_in_the_docs_table() -> None:
    import claimsengine.adapters.pytest_plugin as plugin

    text = (Path(__file__).resolve().parent.parent / "docs" / "testing.md").read_text()
    table = re.findall(r"^\| `(auth0_\w+)` \|", text, re.M)
    fixtures = sorted(name for name in vars(plugin) if name.startswith("auth0_"))
    assert fixtures
    assert sorted(table) == fixtures


@pytest.mark.slow
def test_the_docs_example_runs_under_plain_pytest(tmp_path: Path) -> None:
    blocks = _docs_blocks()
    assert set(blocks) >= {"myapp/auth.py", "tests/test_auth.py"}
    for name in ("myapp/auth.py", "tests/test_auth.py"):
        target = tmp_path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(blocks[name])
    (tmp_path / "myapp" / "__init__.py").write_text("")
    # Plain pytest: the plugin comes from the installed entry point, nothing else is configured.
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_auth.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert re.search(r"\b5 passed\b", done.stdout), done.stdout[-2000:]


DEVICE_TENANT = Tenant.model_validate_json((Path(__file__).resolve().parent.parent / "specs" / "tenants" / "northwind.json").read_text())


@pytest.mark.auth0_tenant(tenant=DEVICE_TENANT, default_user="auth0|alice")
def test_auth0_devices_approves_and_denies_user_codes(
    auth0_client: httpx.Client, auth0_devices: Auth0Devices, auth0_clock: Auth0Clock
) -> None:
    def start() -> dict[str, str]:
        body: dict[str, str] = auth0_client.post("/oauth/device/code", data={"client_id": "nw-tv-0001", "scope": "openid"}).json()
        return body

    def poll(code: str) -> httpx.Response:
        return auth0_client.post(
            "/oauth/token",
            data={"grant_type": "urn:ietf:params:oauth:grant-type:device_code", "client_id": "nw-tv-0001", "device_code": code},
        )

    approved, denied = start(), start()
    auth0_devices.approve(approved["user_code"])
    auth0_devices.deny(denied["user_code"])
    with pytest.raises(DeviceAnswerError, match="answered"):
        auth0_devices.approve(denied["user_code"])
    with pytest.raises(DeviceAnswerError, match="refused: login_required"):
        auth0_devices.approve(start()["user_code"], user_id="auth0|nobody")
    issued = poll(approved["device_code"])
    assert issued.status_code == 200
    assert jwt.decode(issued.json()["id_token"], options={"verify_signature": False})["sub"] == "auth0|alice"
    assert poll(denied["device_code"]).json()["error"] == "access_denied"


@pytest.mark.auth0_tenant(
    path="specs/tenants/northwind.json", users="tests/fixtures/users/users.json", user_assignments="tests/fixtures/users/assignments.json"
)
def test_marker_with_users_in_auth0s_import_format(auth0_client: httpx.Client) -> None:
    body = {
        "grant_type": "password",
        "client_id": "nw-ropg-0001",
        "client_secret": "spec-ropg-secret-JJJJ",
        "username": "frank@northwind.com",
        "password": "fixture-password-frank",
    }
    answer = auth0_client.post("/oauth/token", data=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["expires_in"] == 86400  # an opaque /userinfo token: no audience asked for
    assert auth0_client.post("/oauth/token", data={**body, "password": "wrong"}).json()["error_description"] == "Wrong email or password."

"""Real Auth0 SDKs and JOSE libraries against the fake tenant, over loopback only.

* auth0-python requests tokens through its own HTTP path (https, trusting a trustme CA);
* PyJWT's PyJWKClient verifies our tokens with keys fetched from our JWKS;
* auth0-api-python verifies tokens through discovery and refuses another tenant's;
* Node's jose (createRemoteJWKSet + jwtVerify) verifies them, when node and npm are here.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import ssl
import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import jwt
import pytest

from claimsengine import Tenant
from claimsengine.adapters.loader import load_tenant
from claimsengine.adapters.server import EXAMPLE_TENANT, LiveServer, create_app, serve_in_thread
from claimsengine.adapters.signing import KeySet

pytestmark = pytest.mark.interop

ORDERS = "https://api.northwind.com/orders"
M2M_ID, M2M_SECRET = "nw-m2m-0001", "example-billing-secret-not-for-production"
CANONICAL = "northwind.auth0.com"
NODE_DIR = Path(__file__).resolve().parent / "interop_node"


@pytest.fixture(scope="module")
def tenant() -> Tenant:
    return load_tenant(EXAMPLE_TENANT).tenant


@pytest.fixture(scope="module")
def tls_server(tenant: Tenant) -> Iterator[LiveServer]:
    with serve_in_thread(create_app(tenant, keys=KeySet.generate()), tls=True) as server:
        yield server


@pytest.fixture(scope="module")
def other_server(tenant: Tenant) -> Iterator[LiveServer]:
    """Another tenant (another domain, other keys) that grants the same API identifier."""
    fields = {name: getattr(tenant, name) for name in Tenant.model_fields}
    other = Tenant.model_validate({**fields, "domain": "contoso.auth0.com", "custom_domains": ()})
    with serve_in_thread(create_app(other, keys=KeySet.generate()), tls=True) as server:
        yield server


def trust(server: LiveServer) -> ssl.SSLContext:
    assert server.ca_path is not None
    return ssl.create_default_context(cafile=str(server.ca_path))


def sdk_domain(server: LiveServer) -> str:
    # The SDKs build https://{domain}/...; localhost resolves to loopback and, not being a
    # tenant domain, is served as the tenant's default domain.
    return f"localhost:{server.port}"


def m2m_token(server: LiveServer, audience: str = ORDERS) -> str:
    with httpx.Client(verify=trust(server), timeout=10) as client:
        response = client.post(
            f"{server.url}/oauth/token",
            data={"grant_type": "client_credentials", "client_id": M2M_ID, "client_secret": M2M_SECRET, "audience": audience},
        )
    response.raise_for_status()
    token: str = response.json()["access_token"]
    return token


# ---------------------------------------------------------------------------------------
# auth0-python
# ---------------------------------------------------------------------------------------


def test_auth0_python_get_token(tls_server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from auth0.authentication import GetToken
    from auth0.authentication.exceptions import Auth0Error

    # requests (under the SDK) reads its CA bundle from the environment.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls_server.ca_path))
    sdk = GetToken(sdk_domain(tls_server), M2M_ID, client_secret=M2M_SECRET)
    issued = sdk.client_credentials(audience=ORDERS)
    assert issued["token_type"] == "Bearer"
    assert issued["scope"] == "read:orders write:orders"
    claims = jwt.decode(issued["access_token"], options={"verify_signature": False})
    assert claims["iss"] == f"https://{CANONICAL}/"
    assert claims["aud"] == ORDERS

    with pytest.raises(Auth0Error) as refused:
        sdk.client_credentials(audience="https://unknown.example/api")
    assert refused.value.status_code == 403
    assert refused.value.error_code == "access_denied"
    assert refused.value.message == "Service not enabled within domain: https://unknown.example/api"

    wrong = GetToken(sdk_domain(tls_server), M2M_ID, client_secret="not-the-secret")
    with pytest.raises(Auth0Error) as unauthorized:
        wrong.client_credentials(audience=ORDERS)
    assert (unauthorized.value.status_code, unauthorized.value.error_code, unauthorized.value.message) == (
        401,
        "access_denied",
        "Unauthorized",
    )


# ---------------------------------------------------------------------------------------
# PyJWT
# ---------------------------------------------------------------------------------------


def test_pyjwt_jwks_client_verifies_our_tokens(tls_server: LiveServer, other_server: LiveServer) -> None:
    token = m2m_token(tls_server)
    keys = jwt.PyJWKClient(f"{tls_server.url}/.well-known/jwks.json", ssl_context=trust(tls_server))
    signing_key = keys.get_signing_key_from_jwt(token)
    claims = jwt.decode(token, signing_key.key, algorithms=["RS256"], audience=ORDERS, issuer=tls_server.issuer)
    assert claims["sub"] == f"{M2M_ID}@clients"
    # Another tenant's token names a kid our JWKS does not publish.
    with pytest.raises(jwt.PyJWKClientError):
        keys.get_signing_key_from_jwt(m2m_token(other_server))


# ---------------------------------------------------------------------------------------
# auth0-api-python
# ---------------------------------------------------------------------------------------


def api_sdk() -> Any:
    # auth0-api-python imports authlib.jose, which announces its own deprecation with an
    # "always" filter of its own; record it here so it neither leaks nor fails the run.
    with warnings.catch_warnings(record=True):
        import auth0_api_python
    return auth0_api_python


def api_client(server: LiveServer, audience: str = ORDERS) -> Any:
    sdk = api_sdk()

    context = trust(server)

    async def fetch(url: str) -> httpx.Response:
        # The SDK's hook for fetching metadata and keys. Discovery names the tenant's own
        # domain (jwks_uri is https://northwind.auth0.com/...): like a hosts-file entry, send
        # every request to the loopback server, keeping the URL's host as the Host header.
        parts = urlsplit(url)
        local = urlunsplit(parts._replace(netloc=f"localhost:{server.port}"))
        async with httpx.AsyncClient(verify=context, timeout=10) as client:
            response = await client.get(local, headers={"Host": parts.netloc})
            response.raise_for_status()
            return response

    return sdk.ApiClient(sdk.ApiClientOptions(domain=sdk_domain(server), audience=audience, custom_fetch=fetch))


def test_auth0_api_python_accepts_our_token_and_refuses_another_tenants(tls_server: LiveServer, other_server: LiveServer) -> None:
    failure = api_sdk().errors.VerifyAccessTokenError
    claims = asyncio.run(api_client(tls_server).verify_access_token(m2m_token(tls_server)))
    assert claims["iss"] == f"https://{CANONICAL}/"
    assert claims["scope"] == "read:orders write:orders"

    foreign = m2m_token(other_server)
    assert jwt.decode(foreign, options={"verify_signature": False})["iss"] == "https://contoso.auth0.com/"
    with pytest.raises(failure):
        asyncio.run(api_client(tls_server).verify_access_token(foreign))
    with pytest.raises(failure):
        asyncio.run(api_client(tls_server, audience="https://reports.northwind.com").verify_access_token(m2m_token(tls_server)))


# ---------------------------------------------------------------------------------------
# Node jose
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def node_verifier() -> Path:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are needed for the jose interop test")
    if not (NODE_DIR / "node_modules" / "jose").is_dir():
        command = [npm, "ci" if (NODE_DIR / "package-lock.json").exists() else "install", "--no-audit", "--no-fund", "--ignore-scripts"]
        try:
            done = subprocess.run(command, cwd=NODE_DIR, capture_output=True, text=True, timeout=120, check=False)
        except subprocess.TimeoutExpired:
            pytest.skip("npm could not install jose in time (no network?)")
        if done.returncode != 0:
            pytest.skip(f"npm could not install jose (no network?): {done.stderr.strip()[-300:]}")
    return NODE_DIR / "verify.mjs"


def node_verify(script: Path, server: LiveServer, token: str, *, audience: str = ORDERS) -> tuple[int, dict[str, Any]]:
    assert server.ca_path is not None
    done = subprocess.run(
        ["node", str(script), f"{server.url}/.well-known/jwks.json", server.issuer, audience],
        input=token,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ.get("PATH", ""), "NODE_EXTRA_CA_CERTS": str(server.ca_path)},
        check=False,
    )
    return done.returncode, json.loads(done.stdout or "{}")


def test_node_jose_verifies_our_tokens(node_verifier: Path, tls_server: LiveServer, other_server: LiveServer) -> None:
    code, result = node_verify(node_verifier, tls_server, m2m_token(tls_server))
    assert code == 0, result
    assert result["payload"]["iss"] == f"https://{CANONICAL}/"
    assert result["kid"] == tls_server.keys.current_kid
    code, result = node_verify(node_verifier, tls_server, m2m_token(tls_server), audience="https://elsewhere.example")
    assert (code, result) == (1, {"error": "ERR_JWT_CLAIM_VALIDATION_FAILED"})
    code, result = node_verify(node_verifier, tls_server, m2m_token(other_server))
    assert (code, result) == (1, {"error": "ERR_JWKS_NO_MATCHING_KEY"})

"""Real Auth0 SDKs and JOSE libraries against the fake tenant, over loopback only.

Every SDK is pointed at the address the server printed (``LiveServer.domain``,
``127.0.0.1:PORT``), unmodified: no URL rewriting, no Host juggling. The server declared
that address as a domain of the tenant, so discovery, ``iss`` and the JWKS URL all name it.
The only thing a client is told is to trust the throwaway CA.

* auth0-python requests tokens through its own HTTP path;
* PyJWT's PyJWKClient verifies our tokens with the keys discovery points it to;
* auth0-api-python verifies tokens through discovery and refuses another tenant's;
* Authlib fetches a token from the discovered token endpoint and verifies it;
* Node's jose (createRemoteJWKSet + jwtVerify) and express-oauth2-jwt-bearer (an Express API
  configured with ``issuerBaseURL``) verify them, when node and npm are here.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import ssl
import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from claimsengine import Tenant
from claimsengine.adapters.loader import load_tenant
from claimsengine.adapters.server import EXAMPLE_TENANT, LiveServer, create_app, serve_in_thread
from claimsengine.adapters.signing import KeySet
from tests.node_packages import installed

pytestmark = pytest.mark.interop

ORDERS = "https://api.northwind.com/orders"
M2M_ID, M2M_SECRET = "nw-m2m-0001", "example-billing-secret-not-for-production"
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


def discovery(server: LiveServer) -> dict[str, Any]:
    with httpx.Client(verify=trust(server), timeout=10) as client:
        response = client.get(f"https://{server.domain}/.well-known/openid-configuration")
    response.raise_for_status()
    document: dict[str, Any] = response.json()
    return document


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
    sdk = GetToken(tls_server.domain, M2M_ID, client_secret=M2M_SECRET)
    issued = sdk.client_credentials(audience=ORDERS)
    assert issued["token_type"] == "Bearer"
    assert issued["scope"] == "read:orders write:orders"
    claims = jwt.decode(issued["access_token"], options={"verify_signature": False})
    assert claims["iss"] == f"https://{tls_server.domain}/" == tls_server.issuer
    assert claims["aud"] == ORDERS

    with pytest.raises(Auth0Error) as refused:
        sdk.client_credentials(audience="https://unknown.example/api")
    assert refused.value.status_code == 403
    assert refused.value.error_code == "access_denied"
    assert refused.value.message == "Service not enabled within domain: https://unknown.example/api"

    wrong = GetToken(tls_server.domain, M2M_ID, client_secret="not-the-secret")
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
    metadata = discovery(tls_server)
    assert metadata["jwks_uri"] == f"https://{tls_server.domain}/.well-known/jwks.json"
    keys = jwt.PyJWKClient(metadata["jwks_uri"], ssl_context=trust(tls_server))
    signing_key = keys.get_signing_key_from_jwt(token)
    claims = jwt.decode(token, signing_key.key, algorithms=["RS256"], audience=ORDERS, issuer=metadata["issuer"])
    assert claims["sub"] == f"{M2M_ID}@clients"
    assert claims["iss"] == tls_server.issuer
    # Another tenant's token names a kid our JWKS does not publish.
    with pytest.raises(jwt.PyJWKClientError):
        keys.get_signing_key_from_jwt(m2m_token(other_server))


# ---------------------------------------------------------------------------------------
# auth0-api-python
# ---------------------------------------------------------------------------------------


def api_sdk() -> Any:
    # auth0-api-python imports authlib.jose, which announces its own deprecation; record it
    # here so it neither leaks nor fails the run. (authlib.deprecate adds an "always" filter
    # when it is first imported, but only if no earlier test imported another part of Authlib.)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        import auth0_api_python
    return auth0_api_python


def api_client(server: LiveServer, audience: str = ORDERS) -> Any:
    # The SDK as its README shows it: the domain and the audience, nothing else. Its httpx
    # client trusts SSL_CERT_FILE (set by the test).
    sdk = api_sdk()
    return sdk.ApiClient(sdk.ApiClientOptions(domain=server.domain, audience=audience))


def test_auth0_api_python_accepts_our_token_and_refuses_another_tenants(
    tls_server: LiveServer, other_server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_server.ca_path))
    failure = api_sdk().errors.VerifyAccessTokenError
    claims = asyncio.run(api_client(tls_server).verify_access_token(m2m_token(tls_server)))
    assert claims["iss"] == f"https://{tls_server.domain}/"
    assert claims["scope"] == "read:orders write:orders"

    foreign = m2m_token(other_server)
    assert jwt.decode(foreign, options={"verify_signature": False})["iss"] == f"https://{other_server.domain}/"
    with pytest.raises(failure):
        asyncio.run(api_client(tls_server).verify_access_token(foreign))
    with pytest.raises(failure):
        asyncio.run(api_client(tls_server, audience="https://reports.northwind.com").verify_access_token(m2m_token(tls_server)))


# ---------------------------------------------------------------------------------------
# Authlib
# ---------------------------------------------------------------------------------------


def authlib_jose() -> Any:
    # authlib.jose warns about its own deprecation on import (see api_sdk).
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        from authlib import jose
    return jose


def test_authlib_fetches_and_verifies_a_token_through_discovery(tls_server: LiveServer, other_server: LiveServer) -> None:
    from authlib.integrations.requests_client import OAuth2Session

    jose = authlib_jose()
    metadata = discovery(tls_server)
    ca = str(tls_server.ca_path)
    # The client is registered with client_secret_post (Authlib defaults to Basic).
    with OAuth2Session(M2M_ID, M2M_SECRET, token_endpoint_auth_method="client_secret_post") as session:
        issued = session.fetch_token(metadata["token_endpoint"], grant_type="client_credentials", audience=ORDERS, verify=ca, timeout=10)
        jwks = session.get(metadata["jwks_uri"], verify=ca, timeout=10).json()
    assert issued["scope"] == "read:orders write:orders"
    options = {"iss": {"essential": True, "value": metadata["issuer"]}, "aud": {"essential": True, "value": ORDERS}}
    claims = jose.jwt.decode(issued["access_token"], jose.JsonWebKey.import_key_set(jwks), claims_options=options)
    claims.validate()
    assert claims["iss"] == tls_server.issuer
    assert claims["sub"] == f"{M2M_ID}@clients"
    # Another tenant's token names a kid this JWKS does not publish.
    with pytest.raises(ValueError, match="Key not found"):
        jose.jwt.decode(m2m_token(other_server), jose.JsonWebKey.import_key_set(jwks), claims_options=options).validate()


# ---------------------------------------------------------------------------------------
# Node jose
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def node_verifier() -> Path:
    installed(NODE_DIR, "jose", "express", "express-oauth2-jwt-bearer")
    return NODE_DIR / "verify.mjs"


def run_node(script: Path, server: LiveServer, token: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    """Run a Node script with the token on stdin, trusting only the fake's CA besides Node's own."""
    assert server.ca_path is not None
    return subprocess.run(
        ["node", str(script), *arguments],
        input=token,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ.get("PATH", ""), "NODE_EXTRA_CA_CERTS": str(server.ca_path)},
        check=False,
    )


def node_verify(script: Path, server: LiveServer, token: str, *, audience: str = ORDERS) -> tuple[int, dict[str, Any]]:
    done = run_node(script, server, token, f"{server.url}/.well-known/jwks.json", server.issuer, audience)
    return done.returncode, json.loads(done.stdout or "{}")


def test_node_jose_verifies_our_tokens(node_verifier: Path, tls_server: LiveServer, other_server: LiveServer) -> None:
    code, result = node_verify(node_verifier, tls_server, m2m_token(tls_server))
    assert code == 0, result
    assert result["payload"]["iss"] == tls_server.issuer
    assert result["kid"] == tls_server.keys.current_kid
    code, result = node_verify(node_verifier, tls_server, m2m_token(tls_server), audience="https://elsewhere.example")
    assert (code, result) == (1, {"error": "ERR_JWT_CLAIM_VALIDATION_FAILED"})
    code, result = node_verify(node_verifier, tls_server, m2m_token(other_server))
    assert (code, result) == (1, {"error": "ERR_JWKS_NO_MATCHING_KEY"})


def node_api(server: LiveServer, token: str, *, audience: str = ORDERS, scope: str = "read:orders") -> dict[str, Any]:
    """Call an Express API protected by express-oauth2-jwt-bearer configured with the printed address."""
    done = run_node(NODE_DIR / "bearer.mjs", server, token, server.url, audience, scope)
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_express_oauth2_jwt_bearer_protects_a_route_with_our_tokens(
    node_verifier: Path, tls_server: LiveServer, other_server: LiveServer
) -> None:
    accepted = node_api(tls_server, m2m_token(tls_server))
    assert accepted == {"status": 200, "body": {"sub": f"{M2M_ID}@clients", "iss": tls_server.issuer}}
    wrong_audience = node_api(tls_server, m2m_token(tls_server), audience="https://elsewhere.example")
    assert (wrong_audience["status"], wrong_audience["body"]["error"]) == (401, "invalid_token")
    foreign = node_api(tls_server, m2m_token(other_server))
    assert (foreign["status"], foreign["body"]["error"]) == (401, "invalid_token")
    no_scope = node_api(tls_server, m2m_token(tls_server), scope="delete:orders")
    assert (no_scope["status"], no_scope["body"]["error"]) == (403, "insufficient_scope")


def test_the_readmes_server_example_runs_unmodified(tls_server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's resource-server example, with the README's port replaced by this server's."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    example = re.search(r"```python\n(# SSL_CERT_FILE=.*?)```", readme, re.S)
    assert example is not None
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_server.ca_path))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls_server.ca_path))
    code = example.group(1).replace("127.0.0.1:8443", tls_server.domain)
    namespace: dict[str, Any] = {}
    with warnings.catch_warnings(record=True):  # auth0_api_python imports authlib.jose (see api_sdk)
        exec(compile(code, "README.md", "exec"), namespace)
    claims = namespace["claims"]
    assert claims["iss"] == tls_server.issuer
    assert claims["sub"] == f"{M2M_ID}@clients"
    assert claims["aud"] == ORDERS

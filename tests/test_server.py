"""The HTTP adapter: a fake Auth0 tenant, over a live loopback server and in process."""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import re
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr

from claimsengine import (
    Client,
    ClientGrant,
    Issued,
    PublicKey,
    Rejected,
    Rule,
    Tenant,
    TokenQuota,
    TokenRequest,
    User,
    decide,
    served_domain,
)
from claimsengine.adapters.loader import load_tenant
from claimsengine.adapters.server import (
    BANNER_LIMIT,
    EXAMPLE_TENANT,
    MAX_BODY_BYTES,
    LiveServer,
    add_arguments,
    asgi_client,
    banner,
    create_app,
    serve_in_thread,
    strict_host,
)
from claimsengine.adapters.signing import KeySet
from claimsengine.adapters.store import MemoryStore

ROOT = Path(__file__).resolve().parent.parent
ORDERS = "https://api.northwind.com/orders"
REPORTS = "https://reports.northwind.com"
CANONICAL = "northwind.auth0.com"
CUSTOM = "login.northwind.com"
M2M = {"client_id": "nw-m2m-0001", "client_secret": "example-billing-secret-not-for-production"}
PARTNER = ("nw-partner-0001", "example-partner-secret-not-for-production")
SPA = "nw-spa-0001"
CALLBACK = "https://shop.northwind.com/callback"
PKJWT_CLIENT = "nw-pkjwt-0001"


def cc(**extra: Any) -> dict[str, Any]:
    return {"grant_type": "client_credentials", **M2M, "audience": ORDERS, **extra}


# ---------------------------------------------------------------------------------------
# Fixtures: one tenant, one key set and one live server per module
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def tenant(client_key: rsa.RSAPrivateKey) -> Tenant:
    """The example tenant plus a private_key_jwt client with a grant to the Orders API."""
    base = load_tenant(EXAMPLE_TENANT).tenant
    pem = client_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    service = Client(
        client_id=PKJWT_CLIENT,
        name="Key-authenticated service",
        app_type="non_interactive",
        grant_types=("client_credentials",),
        public_keys=(PublicKey(kid="svc-1", alg="RS256", pem=pem),),
    )
    grant = ClientGrant(client_id=PKJWT_CLIENT, audience=ORDERS, scope=("read:orders",))
    fields = {name: getattr(base, name) for name in Tenant.model_fields}
    return Tenant.model_validate({**fields, "clients": (*base.clients, service), "client_grants": (*base.client_grants, grant)})


@pytest.fixture(scope="module")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "keys.json"
    KeySet.generate().save(path)
    return path


@pytest.fixture(scope="module")
def live(tenant: Tenant, key_file: Path) -> Iterator[LiveServer]:
    app = create_app(tenant, keys=KeySet.load(key_file), default_user="auth0|alice")
    with serve_in_thread(app) as server:
        yield server


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


@pytest.fixture
def local(tenant: Tenant, key_file: Path) -> Iterator[httpx.Client]:
    """An in-process client through the canonical domain, with alice logged in at /authorize."""
    app = create_app(tenant, keys=KeySet.load(key_file), default_user="auth0|alice")
    with asgi_client(app) as client:
        yield client


def verify(token: str, jwks: dict[str, Any], *, audience: str, issuer: str) -> dict[str, Any]:
    kid = jwt.get_unverified_header(token)["kid"]
    key = jwt.PyJWKSet.from_dict(jwks)[kid]
    claims: dict[str, Any] = jwt.decode(token, key=key.key, algorithms=["RS256"], audience=audience, issuer=issuer)
    return claims


def assert_no_store(response: httpx.Response) -> None:
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"


# ---------------------------------------------------------------------------------------
# /oauth/token over a live server
# ---------------------------------------------------------------------------------------


def test_client_credentials_over_http_verifies_against_jwks(live: LiveServer, http: httpx.Client) -> None:
    response = http.post(f"{live.url}/oauth/token", data=cc())
    assert response.status_code == 200, response.text
    assert_no_store(response)
    body = response.json()
    assert list(body) == ["access_token", "scope", "expires_in", "token_type"]
    jwks = http.get(f"{live.url}/.well-known/jwks.json").json()
    # The address the server listens on was declared as a tenant domain at start-up: it is iss.
    claims = verify(body["access_token"], jwks, audience=ORDERS, issuer=f"https://{live.domain}/")
    assert live.issuer == f"https://127.0.0.1:{live.port}/"
    assert claims["sub"] == "nw-m2m-0001@clients"
    assert body["scope"] == "read:orders write:orders"


def test_custom_domain_host_becomes_the_issuer(live: LiveServer, http: httpx.Client) -> None:
    response = http.post(f"{live.url}/oauth/token", data=cc(), headers={"Host": f"{CUSTOM}:443"})
    jwks = http.get(f"{live.url}/.well-known/jwks.json", headers={"Host": CUSTOM}).json()
    assert verify(response.json()["access_token"], jwks, audience=ORDERS, issuer=f"https://{CUSTOM}/")["iss"] == f"https://{CUSTOM}/"
    discovery = http.get(f"{live.url}/.well-known/openid-configuration", headers={"Host": CUSTOM.upper()}).json()
    assert discovery["issuer"] == f"https://{CUSTOM}/"
    assert discovery["token_endpoint"] == f"https://{CUSTOM}/oauth/token"
    assert discovery["jwks_uri"] == f"https://{CUSTOM}/.well-known/jwks.json"


def _lenient(tenant: Tenant) -> Tenant:
    """``tenant`` in the old lenient mode: unknown hosts are served as the canonical domain."""
    fields = {name: getattr(tenant, name) for name in Tenant.model_fields}
    return Tenant.model_validate({**fields, "behaviour": tenant.behaviour.model_copy(update={"unknown_host": "default"})})


def test_unknown_host_is_refused_by_default_and_never_reflected(live: LiveServer, http: httpx.Client) -> None:
    # Issue 8, item 5: real Auth0 never answers for a foreign host; the served address is declared.
    evil = "evil.attacker.example"
    refused = http.post(f"{live.url}/oauth/token", data=cc(), headers={"Host": evil})
    assert refused.status_code == 400
    assert refused.json() == {"error": "invalid_request", "error_description": "Unknown domain"}
    for path in ("/.well-known/openid-configuration", "/.well-known/jwks.json"):
        response = http.get(f"{live.url}{path}", headers={"Host": evil})
        assert response.status_code == 400
        assert evil not in response.text
    assert http.post(f"{live.url}/oauth/token", data=cc()).status_code == 200, "the listen address is a declared domain"


def test_unknown_host_is_served_as_the_default_domain_in_the_lenient_mode(tenant: Tenant, key_file: Path) -> None:
    evil = "evil.attacker.example"
    with asgi_client(create_app(_lenient(tenant), keys=KeySet.load(key_file)), base_url=f"https://{evil}") as client:
        token = client.post("/oauth/token", data=cc()).json()["access_token"]
        assert jwt.decode(token, options={"verify_signature": False})["iss"] == f"https://{CANONICAL}/"
        for path in ("/.well-known/openid-configuration", "/.well-known/jwks.json"):
            response = client.get(path)
            assert response.status_code == 200
            assert evil not in response.text
        assert client.get("/.well-known/openid-configuration").json()["issuer"] == f"https://{CANONICAL}/"


def test_strict_host_refuses_unknown_hosts(tenant: Tenant, key_file: Path) -> None:
    lenient = _lenient(tenant)
    app = create_app(strict_host(lenient), keys=KeySet.load(key_file))
    with asgi_client(app, base_url="https://evil.attacker.example") as client:
        refused = client.post("/oauth/token", data=cc())
        assert refused.status_code == 400
        assert refused.json() == {"error": "invalid_request", "error_description": "Unknown domain"}
        for path in ("/.well-known/openid-configuration", "/.well-known/jwks.json", "/userinfo"):
            response = client.get(path)
            assert response.status_code == 400, path
            assert "evil" not in response.text
        assert client.post("/oauth/token", data=cc(), headers={"Host": CUSTOM}).status_code == 200
    # The original tenant (and its actions) are untouched.
    assert lenient.behaviour.unknown_host == "default"


@pytest.mark.parametrize("host", [CANONICAL, "LOGIN.NORTHWIND.COM:8443", f"{CUSTOM}.", "127.0.0.1:4000", "[::1]:80", "x.example", None, ""])
@pytest.mark.parametrize("mode", ["default", "reject"])
def test_served_domain_agrees_with_the_core(tenant: Tenant, host: str | None, mode: str) -> None:
    """The helper used for discovery/JWKS/userinfo resolves a host exactly as decide() does."""
    patched = strict_host(tenant) if mode == "reject" else _lenient(tenant)
    decision = decide(TokenRequest(domain=host, **cc()), patched, now=1_800_000_000)
    served = served_domain(host, patched)
    if isinstance(decision, Rejected):
        assert decision.rejected_by is Rule.DOMAIN_UNKNOWN
        assert served is None
    else:
        assert isinstance(decision, Issued)
        assert decision.issuer == f"https://{served}/"


# ---------------------------------------------------------------------------------------
# Request encodings and client authentication
# ---------------------------------------------------------------------------------------


def test_json_body_with_nulls(local: httpx.Client) -> None:
    response = local.post("/oauth/token", json=cc(organization=None, scope=None, resource=None))
    assert response.status_code == 200, response.text
    assert_no_store(response)


def test_a_tenant_without_quotas_still_counts_its_tokens_so_a_quota_added_by_a_reload_sees_them(tenant: Tenant, key_file: Path) -> None:
    app = create_app(tenant, keys=KeySet.load(key_file), clock=lambda: 1_000_000)
    fake = app.state.auth0
    assert not fake.generation.quotas
    with asgi_client(app) as client:
        for _ in range(3):
            assert client.post("/oauth/token", data=cc()).status_code == 200
        usage = fake.quota_usage(M2M["client_id"], None, 1_000_000)
        assert (usage.client_hour, usage.client_day) == (3, 3)
        clients = tuple(
            c.model_copy(update={"token_quota": TokenQuota(per_hour=3)}) if c.client_id == M2M["client_id"] else c for c in tenant.clients
        )
        fields = {name: getattr(tenant, name) for name in Tenant.model_fields}
        fake.reload(Tenant.model_validate({**fields, "clients": clients}))
        assert fake.generation.quotas
        refused = client.post("/oauth/token", data=cc())
        assert refused.status_code == 429, refused.text


def test_json_number_is_a_core_rejection_not_a_crash(local: httpx.Client) -> None:
    response = local.post("/oauth/token", json=cc(audience=42))
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_request", "error_description": "Invalid parameter type: audience"}


def test_basic_authentication(local: httpx.Client) -> None:
    body = {"grant_type": "client_credentials", "audience": REPORTS, "organization": "acme"}
    response = local.post("/oauth/token", data=body, auth=PARTNER)
    assert response.status_code == 200, response.text
    claims = jwt.decode(response.json()["access_token"], PARTNER[1], algorithms=["HS256"], options={"verify_signature": False})
    assert claims["org_id"] == "org_acme0000000001"


def test_wrong_secret_is_401_and_never_echoed(local: httpx.Client) -> None:
    wrong = "this-secret-is-wrong-" + secrets.token_hex(8)
    response = local.post("/oauth/token", data=cc(client_secret=wrong))
    assert response.status_code == 401
    assert response.json() == {"error": "access_denied", "error_description": "Unauthorized"}
    assert_no_store(response)
    assert wrong not in response.text
    basic = local.post("/oauth/token", data={"grant_type": "client_credentials", "audience": REPORTS}, auth=(PARTNER[0], wrong))
    assert basic.status_code == 401
    assert wrong not in basic.text


def test_unknown_audience_error_shape(local: httpx.Client) -> None:
    response = local.post("/oauth/token", data=cc(audience="https://nope.example"))
    assert response.status_code == 403
    assert response.json() == {"error": "access_denied", "error_description": "Service not enabled within domain: https://nope.example"}
    assert_no_store(response)


HOSTILE: list[tuple[str, dict[str, str], bytes]] = [
    ("huge form", {"content-type": "application/x-www-form-urlencoded"}, b"a=" + b"x" * (MAX_BODY_BYTES + 10)),
    ("invalid json", {"content-type": "application/json"}, b'{"grant_type": '),
    ("json array", {"content-type": "application/json"}, b'["grant_type", "client_credentials"]'),
    ("json string", {"content-type": "application/json"}, b'"client_credentials"'),
    ("deep json", {"content-type": "application/json"}, b"[" * 60_000),
    ("wrong content type", {"content-type": "text/plain"}, b"grant_type=client_credentials"),
    ("no content type", {}, b"grant_type=client_credentials"),
    ("multipart", {"content-type": "multipart/form-data; boundary=x"}, b"--x--"),
    ("non-utf-8 form", {"content-type": "application/x-www-form-urlencoded"}, b"grant_type=client_credentials&audience=\xff\xfe"),
    ("percent non-utf-8", {"content-type": "application/x-www-form-urlencoded"}, b"grant_type=client_credentials&audience=%ff%fe"),
    ("non-utf-8 json", {"content-type": "application/json; charset=utf-8"}, b'{"grant_type": "\xff"}'),
    ("too many fields", {"content-type": "application/x-www-form-urlencoded"}, b"&".join(b"f%d=1" % i for i in range(500))),
    ("bad length", {"content-type": "application/json", "content-length": "-1"}, b"{}"),
]


@pytest.mark.parametrize(("content", "headers"), [(c, h) for _, h, c in HOSTILE], ids=[n for n, _, _ in HOSTILE])
def test_hostile_bodies_get_a_clean_400(live: LiveServer, http: httpx.Client, content: bytes, headers: dict[str, str]) -> None:
    if "content-length" in headers:
        # httpx would correct a bad Content-Length; send the raw header through the ASGI app.
        with asgi_client(live.app) as client:
            response = client.post("/oauth/token", content=content, headers=headers)
    else:
        response = http.post(f"{live.url}/oauth/token", content=content, headers=headers)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"
    assert_no_store(response)


def test_chunked_oversized_body_is_cut_off(live: LiveServer, http: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"grant_type=client_credentials&padding="
        for _ in range(40):
            yield b"x" * 4096

    response = http.post(f"{live.url}/oauth/token", content=chunks(), headers={"content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 400
    assert response.json()["error_description"] == "Request body too large"


# ---------------------------------------------------------------------------------------
# /authorize, code exchange with PKCE, refresh, /userinfo
# ---------------------------------------------------------------------------------------


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize(client: httpx.Client, **params: str) -> dict[str, str]:
    query = {"response_type": "code", "client_id": SPA, "redirect_uri": CALLBACK, "state": "st-1", **params}
    response = client.get("/authorize", params=query)
    assert response.status_code == 302, response.text
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == CALLBACK
    return {k: v[0] for k, v in parse_qs(location.query).items()}


def login(client: httpx.Client, scope: str, audience: str | None = ORDERS, **more: str) -> dict[str, Any]:
    verifier, challenge = pkce()
    extra = {"audience": audience, **more} if audience else more
    redirect = authorize(client, scope=scope, code_challenge=challenge, code_challenge_method="S256", **extra)
    assert redirect["state"] == "st-1"
    exchange = {
        "grant_type": "authorization_code",
        "client_id": SPA,
        "code": redirect["code"],
        "code_verifier": verifier,
        "redirect_uri": CALLBACK,
    }
    response = client.post("/oauth/token", data=exchange)
    assert response.status_code == 200, response.text
    assert_no_store(response)
    body: dict[str, Any] = response.json()
    body["_code"] = redirect["code"]
    body["_verifier"] = verifier
    return body


def test_authorize_code_pkce_and_refresh(local: httpx.Client) -> None:
    tokens = login(local, "openid profile offline_access read:orders")
    assert set(tokens) >= {"access_token", "refresh_token", "id_token", "expires_in", "token_type"}
    jwks = local.get("/.well-known/jwks.json").json()
    access = verify(tokens["access_token"], jwks, audience=ORDERS, issuer=f"https://{CANONICAL}/")
    assert access["sub"] == "auth0|alice"
    id_claims = verify(tokens["id_token"], jwks, audience=SPA, issuer=f"https://{CANONICAL}/")
    assert id_claims["name"] == "Alice Example"
    assert "email" not in id_claims
    # Codes are single use.
    again = {
        "grant_type": "authorization_code",
        "client_id": SPA,
        "code": tokens["_code"],
        "code_verifier": tokens["_verifier"],
        "redirect_uri": CALLBACK,
    }
    reused = local.post("/oauth/token", data=again)
    assert reused.json()["error"] == "invalid_grant"
    refreshed = local.post("/oauth/token", data={"grant_type": "refresh_token", "client_id": SPA, "refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 200, refreshed.text
    assert verify(refreshed.json()["access_token"], jwks, audience=ORDERS, issuer=f"https://{CANONICAL}/")["sub"] == "auth0|alice"
    bogus = local.post("/oauth/token", data={"grant_type": "refresh_token", "client_id": SPA, "refresh_token": "not-a-token"})
    assert bogus.json() == {"error": "invalid_grant", "error_description": "Unknown or invalid refresh token."}
    assert_no_store(bogus)


def test_wrong_pkce_verifier(local: httpx.Client) -> None:
    verifier, challenge = pkce()
    code = authorize(local, scope="openid", code_challenge=challenge, code_challenge_method="S256")["code"]
    body = {"grant_type": "authorization_code", "client_id": SPA, "code": code, "code_verifier": "wrong" * 10, "redirect_uri": CALLBACK}
    assert local.post("/oauth/token", data=body).json() == {"error": "invalid_grant", "error_description": "Failed to verify code verifier"}
    # Issue 8, item 9: the failed verification used the code up (behaviour.pkce_failure_consumes_code).
    retry = local.post("/oauth/token", data={**body, "code_verifier": verifier})
    assert retry.json() == {"error": "invalid_grant", "error_description": "Invalid authorization code"}


def test_authorize_errors(tenant: Tenant, key_file: Path) -> None:
    app = create_app(tenant, keys=KeySet.load(key_file))  # nobody logged in
    with asgi_client(app) as client:
        unknown = client.get("/authorize", params={"client_id": "nope", "response_type": "code"})
        assert unknown.status_code == 400
        assert unknown.json()["error"] == "invalid_request"
        mismatch = client.get("/authorize", params={"client_id": SPA, "redirect_uri": "https://evil.example/cb", "response_type": "code"})
        assert mismatch.status_code == 400
        assert "Callback URL mismatch" in mismatch.json()["error_description"]
        page = client.get("/authorize", params={"client_id": "nope"}, headers={"accept": "text/html"})
        assert page.headers["content-type"].startswith("text/html")
        # No session: the core answers login_required, sent back to the callback with the state.
        redirect = client.get("/authorize", params={"client_id": SPA, "redirect_uri": CALLBACK, "response_type": "code", "state": "s&1"})
        assert redirect.status_code == 302
        query = parse_qs(urlsplit(redirect.headers["location"]).query)
        assert query == {"error": ["login_required"], "error_description": ["Login required"], "state": ["s&1"]}
        # login_hint logs a user in.
        hinted = client.get(
            "/authorize",
            params={"client_id": SPA, "redirect_uri": CALLBACK, "response_type": "code", "login_hint": "auth0|bob", "scope": "openid"},
        )
        assert "code" in parse_qs(urlsplit(hinted.headers["location"]).query)


def test_userinfo_with_an_opaque_token(local: httpx.Client) -> None:
    tokens = login(local, "openid profile", audience=None)
    assert tokens["access_token"].count(".") == 4  # a compact JWE (R48)
    response = local.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert response.status_code == 200, response.text
    assert response.json() == {"sub": "auth0|alice", "name": "Alice Example"}
    assert_no_store(response)


def test_userinfo_with_a_jwt_carrying_the_userinfo_audience(local: httpx.Client) -> None:
    tokens = login(local, "openid email read:orders")
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert f"https://{CANONICAL}/userinfo" in claims["aud"]
    profile = local.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}).json()
    assert profile == {"sub": "auth0|alice", "email": "alice@example.com", "email_verified": True}


def test_userinfo_rejections(local: httpx.Client) -> None:
    missing = local.get("/userinfo")
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")
    garbage = local.get("/userinfo", headers={"Authorization": "Bearer abc.def.ghi"})
    assert garbage.status_code == 401
    assert 'error="invalid_token"' in garbage.headers["www-authenticate"]
    # An M2M token for the Orders API is not a /userinfo token: the core says invalid_token.
    m2m = local.post("/oauth/token", data=cc()).json()["access_token"]
    wrong_aud = local.get("/userinfo", headers={"Authorization": f"Bearer {m2m}"})
    assert wrong_aud.status_code == 401


def test_a_strict_third_party_app_gets_no_id_token_and_is_refused_at_userinfo(tenant: Tenant, key_file: Path) -> None:
    # Issue 8, item 7, over HTTP: Auth0's strict mode for third-party applications.
    partner = Client(
        client_id="tpc_partner",
        name="Partner (third party)",
        app_type="regular_web",
        is_first_party=False,
        client_secrets=(SecretStr("partner-secret-value"),),
        grant_types=("authorization_code",),
        callbacks=("https://partner.example/cb",),
    )
    fields = {name: getattr(tenant, name) for name in Tenant.model_fields}
    app = create_app(Tenant.model_validate({**fields, "clients": (*tenant.clients, partner)}), keys=KeySet.load(key_file))
    with asgi_client(app) as client:
        verifier, challenge = pkce()
        query = {
            "response_type": "code",
            "client_id": "tpc_partner",
            "redirect_uri": "https://partner.example/cb",
            "scope": "openid profile",
        }
        refused = client.get("/authorize", params={**query, "login_hint": "auth0|alice"})
        assert parse_qs(urlsplit(refused.headers["location"]).query)["error_description"] == ["Missing required parameter: code_challenge"]
        params = {**query, "login_hint": "auth0|alice", "code_challenge": challenge, "code_challenge_method": "S256"}
        code = parse_qs(urlsplit(client.get("/authorize", params=params).headers["location"]).query)["code"][0]
        exchange = {
            "grant_type": "authorization_code",
            "client_id": "tpc_partner",
            "client_secret": "partner-secret-value",
            "code": code,
            "code_verifier": verifier,
            "redirect_uri": "https://partner.example/cb",
        }
        tokens = client.post("/oauth/token", data=exchange).json()
        assert "id_token" not in tokens
        assert tokens["scope"] == ""
        userinfo = client.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"})
        assert userinfo.status_code == 401
        assert 'error="invalid_token"' in userinfo.headers["www-authenticate"]


def test_id_tokens_carry_sid_and_with_max_age_auth_time(local: httpx.Client) -> None:
    first = jwt.decode(login(local, "openid")["id_token"], options={"verify_signature": False})
    assert "auth_time" not in first
    again = jwt.decode(login(local, "openid", max_age="600")["id_token"], options={"verify_signature": False})
    assert again["sid"] == first["sid"]  # no browser session: one per user and domain
    assert isinstance(again["auth_time"], int)


# ---------------------------------------------------------------------------------------
# Discovery, JWKS and key rotation
# ---------------------------------------------------------------------------------------


def test_discovery_and_jwks(local: httpx.Client) -> None:
    discovery = local.get("/.well-known/openid-configuration").json()
    assert discovery["issuer"] == f"https://{CANONICAL}/"
    for name in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri"):
        assert discovery[name].startswith(f"https://{CANONICAL}/")
    assert "client_credentials" in discovery["grant_types_supported"]
    jwks = local.get("/.well-known/jwks.json").json()
    assert [k["kty"] for k in jwks["keys"]] == ["RSA"]
    assert all("d" not in k for k in jwks["keys"])


def test_admin_is_off_by_default(local: httpx.Client) -> None:
    assert local.post("/admin/rotate-keys").status_code == 404


def test_admin_rotation_publishes_the_next_key_before_it_signs(tenant: Tenant, key_file: Path) -> None:
    app = create_app(tenant, keys=KeySet.load(key_file), admin=True)
    admin = {"Authorization": f"Bearer {app.state.auth0.admin_token}"}
    with asgi_client(app) as client:

        def signing_kid() -> str:
            token = client.post("/oauth/token", data=cc()).json()["access_token"]
            return str(jwt.get_unverified_header(token)["kid"])

        first = signing_kid()
        published = client.post("/admin/rotate-keys", headers=admin).json()
        kids = [k["kid"] for k in published["jwks"]["keys"]]
        assert first in kids
        assert len(kids) == 2
        assert signing_kid() == first  # the next key is published, not yet used
        client.post("/admin/rotate-keys", headers=admin)
        second = signing_kid()
        assert second != first
        assert {first, second} <= {k["kid"] for k in client.get("/.well-known/jwks.json").json()["keys"]}


def test_admin_rotation_needs_the_admin_token_and_refuses_cross_site_requests(tenant: Tenant, key_file: Path) -> None:
    app = create_app(tenant, keys=KeySet.load(key_file), admin=True, admin_token="admin-token-for-tests")
    kid = app.state.auth0.keys.current_kid
    good = {"Authorization": "Bearer admin-token-for-tests"}
    with asgi_client(app) as client:
        attempts: list[list[tuple[bytes, bytes]]] = [[], [(b"authorization", b"Bearer wrong")], [(b"authorization", b"Bearer \xe9")]]
        attempts.append([(b"authorization", b"Basic admin-token-for-tests")])
        for headers in attempts:
            refused = client.post("/admin/rotate-keys", headers=headers)
            assert refused.status_code == 401
            assert "admin-token-for-tests" not in refused.text
        for cross in ({"Sec-Fetch-Site": "cross-site"}, {"Origin": "https://evil.example"}, {"Origin": "http://northwind.auth0.com"}):
            assert client.post("/admin/rotate-keys", headers={**good, **cross}).status_code == 403
        assert len(app.state.auth0.keys.jwks()["keys"]) == 1  # nothing refused rotated anything
        same_site = {**good, "Sec-Fetch-Site": "same-origin", "Origin": "https://northwind.auth0.com"}
        assert client.post("/admin/rotate-keys", headers=same_site).status_code == 200
    assert app.state.auth0.keys.current_kid == kid
    assert len(app.state.auth0.keys.jwks()["keys"]) == 2


# ---------------------------------------------------------------------------------------
# Several workers (or a restart) agree through a shared key file
# ---------------------------------------------------------------------------------------


def test_two_instances_sharing_a_key_file_read_each_others_tokens(tenant: Tenant, key_file: Path) -> None:
    # Refresh tokens belong to families the instances keep in their shared store (as
    # `serve --keys FILE` shares a SQLite file next to the key file).
    shared = MemoryStore()
    first = create_app(tenant, keys=KeySet.load(key_file), default_user="auth0|alice", store=shared)
    second = create_app(tenant, keys=KeySet.load(key_file), default_user="auth0|alice", store=shared)
    with asgi_client(first) as a, asgi_client(second) as b:
        verifier, challenge = pkce()
        code = authorize(a, scope="openid profile offline_access", code_challenge=challenge, code_challenge_method="S256")["code"]
        exchange = {"grant_type": "authorization_code", "client_id": SPA, "code": code, "code_verifier": verifier, "redirect_uri": CALLBACK}
        tokens = b.post("/oauth/token", data=exchange).json()
        assert "access_token" in tokens, tokens
        assert a.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}).json()["sub"] == "auth0|alice"
        refreshed = a.post("/oauth/token", data={"grant_type": "refresh_token", "client_id": SPA, "refresh_token": tokens["refresh_token"]})
        assert refreshed.status_code == 200
    other = create_app(tenant, keys=KeySet.generate())
    with asgi_client(other) as c:
        assert c.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}).status_code == 401


# ---------------------------------------------------------------------------------------
# private_key_jwt
# ---------------------------------------------------------------------------------------


def assertion(key: rsa.RSAPrivateKey, *, aud: str = f"https://{CANONICAL}/") -> str:
    now = int(time.time())
    claims = {"iss": PKJWT_CLIENT, "sub": PKJWT_CLIENT, "aud": aud, "iat": now, "exp": now + 60, "jti": uuid.uuid4().hex}
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "svc-1"})


def test_private_key_jwt_and_replay(local: httpx.Client, client_key: rsa.RSAPrivateKey) -> None:
    body = {
        "grant_type": "client_credentials",
        "audience": ORDERS,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion(client_key),
    }
    first = local.post("/oauth/token", data=body)
    assert first.status_code == 200, first.text
    assert first.json()["scope"] == "read:orders"
    replay = local.post("/oauth/token", data=body)
    assert replay.status_code == 401
    assert replay.json() == {"error": "access_denied", "error_description": "Unauthorized"}
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = local.post("/oauth/token", data={**body, "client_assertion": assertion(stranger)})
    assert forged.status_code == 401


# ---------------------------------------------------------------------------------------
# The spec and the routes agree
# ---------------------------------------------------------------------------------------


def test_openapi_paths_match_the_routes(tenant: Tenant, key_file: Path) -> None:
    from starlette.routing import Route

    app = create_app(tenant, keys=KeySet.load(key_file), admin=True)
    served = {(r.path, m.lower()) for r in app.routes if isinstance(r, Route) for m in (r.methods or ()) if m != "HEAD"}
    spec = yaml.safe_load((ROOT / "specs" / "openapi.yaml").read_text())
    methods = {"get", "post", "put", "patch", "delete", "head", "options"}
    documented = {(path, m) for path, item in spec["paths"].items() for m in item if m in methods}
    assert served == documented


# ---------------------------------------------------------------------------------------
# `claimsengine serve`: options, TLS, workers
# ---------------------------------------------------------------------------------------


SERVE = """
import argparse, sys
from claimsengine.adapters.server import add_arguments, run
parser = argparse.ArgumentParser()
for name in ("--tenant", "--auth0-domain", "--keyword-file", "--credentials"):
    parser.add_argument(name)
parser.add_argument("--keyword", action="append")
add_arguments(parser)
sys.exit(run(parser.parse_args(sys.argv[1:])))
"""


def test_add_arguments_defaults() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args([])
    assert (args.host, args.tls, args.strict_host, args.workers, args.admin) == ("127.0.0.1", False, False, 1, False)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_serving(*options: str, tmp_path: Path, port: int = 0, workers: int = 1) -> tuple[subprocess.Popen[str], str, Path | None]:
    log = tmp_path / "serve.log"
    with log.open("w") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-c", SERVE, "--port", str(port), "--workers", str(workers), *options],
            stdout=sink,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        text = log.read_text()
        found = re.search(r"claimsengine: serving \S+ at (https?://127\.0\.0\.1:\d+)", text)
        if found and text.count("Application startup complete") >= workers:
            ca = re.search(r"CA bundle: (\S+)", text)
            return proc, found.group(1), Path(ca.group(1)) if ca else None
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    raise AssertionError(f"server did not start:\n{log.read_text()}")


def stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_serve_with_tls_prints_a_ca_bundle_that_clients_can_trust(tmp_path: Path) -> None:
    proc, url, ca = start_serving("--tls", "--strict-host", tmp_path=tmp_path)
    try:
        assert url.startswith("https://")
        assert ca is not None
        assert ca.exists()
        with httpx.Client(verify=ssl.create_default_context(cafile=str(ca)), timeout=10) as client:
            discovery = client.get(f"{url}/.well-known/openid-configuration", headers={"Host": CANONICAL})
            assert discovery.json()["issuer"] == f"https://{CANONICAL}/"
            # The printed address is a declared domain: discovery through it names it everywhere.
            served = client.get(f"{url}/.well-known/openid-configuration").json()
            assert served["issuer"] == f"{url}/"
            assert served["jwks_uri"] == f"{url}/.well-known/jwks.json"
            assert client.get(served["jwks_uri"]).status_code == 200
            # --strict-host: a host that is no configured or declared domain is refused.
            assert client.get(f"{url}/.well-known/jwks.json", headers={"Host": "127.0.0.1:1"}).status_code == 400
        with pytest.raises(httpx.ConnectError), httpx.Client(timeout=10) as untrusting:
            untrusting.get(f"{url}/.well-known/jwks.json")
    finally:
        stop(proc)
    assert not ca.exists()  # the throwaway CA is cleaned up at exit


@pytest.mark.slow
def test_serve_with_two_workers_shares_keys_and_sealed_tokens(tmp_path: Path) -> None:
    proc, url, _ = start_serving("--default-user", "auth0|alice", tmp_path=tmp_path, port=free_port(), workers=2)
    try:
        kids = set()
        for _ in range(12):
            # A fresh connection each time, so both workers answer some requests.
            with httpx.Client(base_url=url, timeout=10) as client:
                kids.add(client.get("/.well-known/jwks.json").json()["keys"][0]["kid"])
                verifier, challenge = pkce()
                code = authorize(client, scope="openid profile", code_challenge=challenge, code_challenge_method="S256")["code"]
            with httpx.Client(base_url=url, timeout=10) as client:
                body = {
                    "grant_type": "authorization_code",
                    "client_id": SPA,
                    "code": code,
                    "code_verifier": verifier,
                    "redirect_uri": CALLBACK,
                }
                token = client.post("/oauth/token", data=body).json()["access_token"]
            with httpx.Client(base_url=url, timeout=10) as client:
                assert client.get("/userinfo", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert len(kids) == 1
    finally:
        stop(proc)


def test_a_stepped_clock_makes_token_times_reproducible(tenant: Tenant) -> None:
    from claimsengine.adapters.server import SteppedClock

    app = create_app(tenant, keys=KeySet.generate(seed=7), clock=SteppedClock(1_800_000_000, 30))
    with asgi_client(app) as client:
        first = client.post("/oauth/token", data=cc())
        second = client.post("/oauth/token", data=cc())
    times = [jwt.decode(r.json()["access_token"], options={"verify_signature": False})["iat"] for r in (first, second)]
    assert times == [1_800_000_000, 1_800_000_030]


def test_redact_query_masks_only_secret_parameters() -> None:
    from claimsengine.adapters.wire import redact_query

    masked = redact_query("/oauth/token?client_id=app&client_secret=hunter2&code=abc&state=x%20y")
    assert "hunter2" not in masked
    assert "abc" not in masked
    assert masked.startswith("/oauth/token?client_id=app&client_secret=[redacted]&code=[redacted]&state=")
    assert redact_query("/authorize?client_id=app&state=s") == "/authorize?client_id=app&state=s"
    assert redact_query("/.well-known/jwks.json") == "/.well-known/jwks.json"


def test_secrets_put_in_a_url_never_reach_the_access_log(tmp_path: Path) -> None:
    proc, url, _ = start_serving(tmp_path=tmp_path)
    try:
        with httpx.Client(timeout=10) as client:
            leaky = client.post(f"{url}/oauth/token?client_secret={M2M['client_secret']}&refresh_token=rt-leak-123", data=cc())
            assert leaky.status_code == 200
    finally:
        stop(proc)
    log = (tmp_path / "serve.log").read_text()
    assert "POST /oauth/token?client_secret=[redacted]&refresh_token=[redacted]" in log, log
    assert M2M["client_secret"] not in log
    assert "rt-leak-123" not in log


# ---------------------------------------------------------------------------------------
# Served addresses: declared domains, never reflected (issue 10, item 1)
# ---------------------------------------------------------------------------------------


def test_a_host_that_is_no_declared_address_never_reaches_iss(live: LiveServer, http: httpx.Client) -> None:
    # Same host, another port: not the declared address, so refused (issue 8, item 5), never reflected.
    for host in (f"127.0.0.1:{live.port + 1}", "127.0.0.1", f"evil.example:{live.port}"):
        refused = http.post(f"{live.url}/oauth/token", data=cc(), headers={"Host": host})
        assert refused.json() == {"error": "invalid_request", "error_description": "Unknown domain"}, host
        discovery = http.get(f"{live.url}/.well-known/openid-configuration", headers={"Host": host})
        assert discovery.status_code == 400, host
        assert host not in discovery.text
    # localhost:PORT is declared too on loopback: it serves itself.
    token = http.post(f"{live.url}/oauth/token", data=cc(), headers={"Host": f"localhost:{live.port}"}).json()["access_token"]
    assert jwt.decode(token, options={"verify_signature": False})["iss"] == f"https://localhost:{live.port}/"


def test_plain_http_discovery_advertises_reachable_urls(live: LiveServer, http: httpx.Client) -> None:
    discovery = http.get(f"{live.url}/.well-known/openid-configuration").json()
    assert discovery["issuer"] == f"https://{live.domain}/"  # iss is always https, as Auth0's
    assert discovery["jwks_uri"] == f"{live.url}/.well-known/jwks.json"
    assert discovery["token_endpoint"] == f"{live.url}/oauth/token"
    assert http.get(discovery["jwks_uri"]).json()["keys"]


def test_listen_addresses_of_wildcard_loopback_and_other_binds() -> None:
    from claimsengine.adapters.server import host_of, listen_addresses

    assert listen_addresses("127.0.0.1", 8443) == ["127.0.0.1:8443", "localhost:8443"]
    assert listen_addresses("::1", 8443) == ["[::1]:8443", "localhost:8443"]
    assert listen_addresses("0.0.0.0", 80) == ["127.0.0.1:80", "localhost:80"]
    assert listen_addresses("192.0.2.7", 80) == ["192.0.2.7:80"]
    assert [host_of(a) for a in ("Auth.Test:8443", "[::1]:80", "::1", "login.example.")] == ["auth.test", "::1", "::1", "login.example"]


def test_tls_certificate_names_served_hosts_without_their_ports(tenant: Tenant, key_file: Path) -> None:
    from cryptography import x509

    from claimsengine.adapters.server import with_served_domains

    # A tenant domain with a port used to break certificate creation.
    ported = with_served_domains(tenant, ["auth.test:8443"])
    app = create_app(ported, keys=KeySet.load(key_file))
    with serve_in_thread(app, tls=True, serve_as=["fake-auth0.test:9443"]) as server:
        assert server.ca_path is not None
        pem = ssl.get_server_certificate(("127.0.0.1", server.port))
        names = x509.load_pem_x509_certificate(pem.encode()).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = set(names.get_values_for_type(x509.DNSName))
        assert {"auth.test", "fake-auth0.test", "localhost", CANONICAL, CUSTOM} <= dns
        assert not any(":" in name for name in dns)
        with httpx.Client(verify=ssl.create_default_context(cafile=str(server.ca_path)), timeout=10) as client:
            for address in ("auth.test:8443", "fake-auth0.test:9443", server.domain):
                token = client.post(f"{server.url}/oauth/token", data=cc(), headers={"Host": address}).json()["access_token"]
                assert jwt.decode(token, options={"verify_signature": False})["iss"] == f"https://{address}/"


def test_serve_declares_its_address_and_serve_as_in_the_banner(tmp_path: Path) -> None:
    proc, url, ca = start_serving("--tls", "--serve-as", "fake-auth0.test:9443", tmp_path=tmp_path)
    try:
        assert not url.endswith(":0")
        banner = (tmp_path / "serve.log").read_text()
        domain = url.removeprefix("https://")
        assert f"Auth0 domain for SDKs: {domain}" in banner
        assert f"discovery: {url}/.well-known/openid-configuration" in banner
        assert "fake-auth0.test:9443" in banner
        assert "nw-m2m-0001" in banner
        assert M2M["client_secret"] not in banner
        with httpx.Client(verify=ssl.create_default_context(cafile=str(ca)), timeout=10) as client:
            served = client.get(f"{url}/.well-known/openid-configuration", headers={"Host": "fake-auth0.test:9443"}).json()
            assert served["token_endpoint"] == "https://fake-auth0.test:9443/oauth/token"
    finally:
        stop(proc)


def test_the_banner_of_a_large_tenant_names_the_first_applications_and_users_and_counts_the_rest(tenant: Tenant) -> None:
    base = tenant.clients[0]
    clients = tuple(base.model_copy(update={"client_id": f"app-{i:03}", "name": f"App {i}"}) for i in range(BANNER_LIMIT + 5))
    users = tuple(User(user_id=f"auth0|u{i:03}") for i in range(BANNER_LIMIT + 7))
    large = tenant.model_copy(update={"clients": clients, "users": users})
    text = banner(large, url="http://127.0.0.1:1", domain=CANONICAL, ca_path=None)
    listed = [line for line in text.splitlines() if line.startswith("    app-")]
    assert [line.split()[0] for line in listed] == [f"app-{i:03}" for i in range(BANNER_LIMIT)]
    assert "    ... and 5 more" in text.splitlines()
    assert f"auth0|u{BANNER_LIMIT - 1:03}, ... and 7 more" in text
    assert f"auth0|u{BANNER_LIMIT:03}" not in text
    small = banner(tenant, url="http://127.0.0.1:1", domain=CANONICAL, ca_path=None)
    assert "more" not in small
    assert all(client.client_id in small for client in tenant.clients)


# ---------------------------------------------------------------------------------------
# Start-up and shutdown (issue 10, item 6)
# ---------------------------------------------------------------------------------------


def run_serve(*options: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", SERVE, *options], capture_output=True, text=True, timeout=timeout, check=False, env={**os.environ}
    )


def test_a_busy_port_is_a_clear_error_with_exit_code_3_and_no_banner() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_serve("--port", str(port))
    assert done.returncode == 3
    assert done.stderr.strip() == f"claimsengine serve: cannot listen on 127.0.0.1:{port}: the port is already in use"
    assert "serving" not in done.stdout
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_remove_the_temporary_key_directory(tmp_path: Path, sig: signal.Signals) -> None:
    proc, _, ca = start_serving("--tls", tmp_path=tmp_path)
    try:
        assert ca is not None
        private = ca.parent
        assert (private / "server.pem").exists()  # the TLS private key
        proc.send_signal(sig)
        assert proc.wait(timeout=30) == 0
    finally:
        stop(proc)  # only if something above failed: never leave a server behind
    assert not private.exists()
    assert "Traceback" not in (tmp_path / "serve.log").read_text()


def test_a_key_file_readable_by_others_gets_a_warning(tmp_path: Path) -> None:
    keys = tmp_path / "keys.json"
    KeySet.generate(seed=1).save(keys)
    keys.chmod(0o644)
    proc, _, _ = start_serving("--keys", str(keys), tmp_path=tmp_path)
    stop(proc)
    log = (tmp_path / "serve.log").read_text()
    assert f"warning: {keys} is readable by others (mode 644); chmod 600 it" in log
    keys.chmod(0o600)
    proc, _, _ = start_serving("--keys", str(keys), tmp_path=tmp_path)
    stop(proc)
    assert "readable by others" not in (tmp_path / "serve.log").read_text()


def test_a_client_that_disconnects_mid_upload_logs_one_line_not_a_traceback(tmp_path: Path) -> None:
    proc, url, _ = start_serving(tmp_path=tmp_path)
    try:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            head = b"POST /oauth/token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            conn.sendall(head + b"Content-Length: 1000\r\n\r\ngrant_type=client")
        log = tmp_path / "serve.log"
        deadline = time.monotonic() + 10
        while "client disconnected" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        with httpx.Client(timeout=10) as client:  # and the server still answers
            assert client.post(f"{url}/oauth/token", data=cc()).status_code == 200
    finally:
        stop(proc)
    text = (tmp_path / "serve.log").read_text()
    lines = [line for line in text.splitlines() if "client disconnected" in line]
    assert lines == ["claimsengine: client disconnected before sending the whole body of POST /oauth/token"]
    assert "Traceback" not in text


def test_discovery_publishes_request_uri_parameter_supported_false(local: httpx.Client) -> None:
    # Issue 8, item 9: omitting it means true (OpenID Connect Discovery 1.0); Auth0 publishes false.
    discovery = local.get("/.well-known/openid-configuration").json()
    assert discovery["request_uri_parameter_supported"] is False
    assert discovery["request_parameter_supported"] is False

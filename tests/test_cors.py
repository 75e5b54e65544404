"""Browser applications (issue 10, item 4): the core's CORS decision, the client fields in every
tenant format, and real preflights over loopback HTTP.

The golden cases are in ``specs/cases/cors.json``; the choices in ``specs/choices.md`` ("CORS").
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from claimsengine import Client, CorsRequest, Rejected, RevokeRequest, Rule, Tenant, TokenRequest, decide, decide_cors
from claimsengine.adapters.loader import load_tenant
from claimsengine.adapters.server import LiveServer, create_app, serve_in_thread
from claimsengine.cors import CLIENT_ENDPOINTS, PUBLIC_ENDPOINTS
from tests.conftest import CORPUS

DOMAIN = "spa.auth0.com"
SPA = "spa-client"
APP = "https://app.example.com"
USER = "auth0|ada"
NOW = 1_767_226_500


def spa_tenant(**client: object) -> Tenant:
    fields: dict[str, object] = {
        "client_id": SPA,
        "app_type": "spa",
        "token_endpoint_auth_method": "none",
        "callbacks": ["http://localhost:3000/callback"],
        "web_origins": [APP],
        **client,
    }
    return Tenant.model_validate({"domain": DOMAIN, "clients": [fields], "users": [{"user_id": USER, "profile": {"name": "Ada"}}]})


# ---------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------

LABELS = st.sampled_from(["app", "shop", "a", "b", "kiosk"])
PARENTS = st.sampled_from(["example.com", "example.org", "preview.example.com"])
SCHEMES = st.sampled_from(["http", "https"])
PORTS = st.sampled_from(["", ":3000", ":8443"])


@st.composite
def hosts(draw: st.DrawFn) -> str:
    return f"{draw(LABELS)}.{draw(PARENTS)}" if draw(st.booleans()) else draw(PARENTS)


@st.composite
def entries(draw: st.DrawFn) -> str:
    host = draw(hosts())
    if draw(st.booleans()):
        host = "*." + host
    return f"{draw(SCHEMES)}://{host}{draw(PORTS)}{draw(st.sampled_from(['', '/', '/callback']))}"


@st.composite
def clients(draw: st.DrawFn, index: int) -> dict[str, object]:
    return {
        "client_id": f"c{index}",
        "app_type": "spa",
        "token_endpoint_auth_method": "none",
        "is_first_party": draw(st.booleans()),
        "callbacks": draw(st.lists(entries(), max_size=2)),
        "web_origins": draw(st.lists(entries(), max_size=2)),
        "allowed_origins": draw(st.lists(entries(), max_size=2)),
    }


@st.composite
def tenants(draw: st.DrawFn) -> Tenant:
    count = draw(st.integers(1, 3))
    behaviour = {
        "cors_origins": draw(st.sampled_from(["web_or_allowed", "web_origins", "allowed_origins"])),
        "cors_preflight": "configured",
    }
    return Tenant.model_validate({"domain": DOMAIN, "clients": [draw(clients(i)) for i in range(count)], "behaviour": behaviour})


def configured_hosts(tenant: Tenant) -> set[str]:
    """Every host any list of any client names, wildcards reduced to their parent."""
    found: set[str] = set()
    for client in tenant.clients:
        for entry in (*client.callbacks, *client.web_origins, *client.allowed_origins):
            host = entry.split("://", 1)[1].split("/", 1)[0].split(":", 1)[0]
            found.add(host.removeprefix("*."))
    return found


@given(tenant=tenants(), host=hosts(), scheme=SCHEMES, port=PORTS, path=st.sampled_from(sorted(CLIENT_ENDPOINTS)), data=st.data())
def test_an_origin_not_configured_never_gets_cors_headers(
    tenant: Tenant, host: str, scheme: str, port: str, path: str, data: st.DataObject
) -> None:
    # An origin whose host no list of any client names (not even under a wildcard's parent)
    # gets no CORS header at any client endpoint, preflight or not, for any client or none,
    # and a token or revocation request from it is refused.
    known = configured_hosts(tenant)
    parent = host.split(".", 1)[1] if host.count(".") > 1 else ""
    if host in known or parent in known:
        return
    origin = f"{scheme}://{host}{port}"
    client_id = data.draw(st.sampled_from([None, "unknown", *(c.client_id for c in tenant.clients)]))
    preflight = data.draw(st.booleans())
    decision = decide_cors(CorsRequest(domain=DOMAIN, path=path, origin=origin, client_id=client_id, preflight=preflight), tenant)
    assert not decision.allowed
    assert decision.headers == ()
    assert [r.rule for r in decision.trace] == [Rule.CORS_ORIGIN_NOT_ALLOWED]
    client = tenant.clients[0].client_id
    request = TokenRequest(domain=DOMAIN, grant_type="refresh_token", client_id=client, refresh_token=SecretStr("x"), origin=origin)
    token = decide(request, tenant, now=NOW)
    revoke = decide(RevokeRequest(domain=DOMAIN, client_id=client, token=SecretStr("x"), origin=origin), tenant, now=NOW)
    for refused in (token, revoke):
        assert isinstance(refused, Rejected)
        assert (refused.rejected_by, refused.error, refused.error_description, refused.status) == (
            Rule.CORS_ORIGIN_NOT_ALLOWED,
            "access_denied",
            "Unauthorized",
            401,
        )


@given(tenant=tenants(), entry_index=st.integers(0, 20), path=st.sampled_from(sorted(CLIENT_ENDPOINTS)), preflight=st.booleans())
def test_an_allowed_origin_is_echoed_exactly_with_vary_and_never_as_a_wildcard(
    tenant: Tenant, entry_index: int, path: str, preflight: bool
) -> None:
    # Take an origin a client really lists (exact entries only): it is allowed for that client
    # exactly when the core says so, and then echoed as sent, never "*", with Vary: Origin.
    client = tenant.clients[0]
    listed = [e.rstrip("/") for e in (*client.web_origins, *client.allowed_origins, *client.callbacks) if "*" not in e]
    if not listed:
        return
    origin = "/".join(listed[entry_index % len(listed)].split("/")[:3])
    decision = decide_cors(CorsRequest(domain=DOMAIN, path=path, origin=origin, client_id=client.client_id, preflight=preflight), tenant)
    headers = dict(decision.headers)
    if decision.allowed:
        assert headers["Access-Control-Allow-Origin"] == origin
        assert headers["Vary"] == "Origin"
        assert ("Access-Control-Allow-Methods" in headers) is preflight
        assert decision.trace[-1].rule in {Rule.CORS_WEB_ORIGIN, Rule.CORS_ALLOWED_ORIGIN, Rule.CORS_CALLBACK_ORIGIN}
    else:
        assert headers == {}


@given(
    origin=st.text(max_size=40), path=st.text(max_size=20), client_id=st.none() | st.text(max_size=8), names=st.lists(st.text(max_size=10))
)
def test_cors_decisions_are_total_and_only_echo_a_bare_ascii_origin(
    origin: str, path: str, client_id: str | None, names: list[str]
) -> None:
    tenant = spa_tenant(web_origins=[APP, "https://*.example.com"], allowed_origins=["http://localhost:3000"])
    for p in (path, *CLIENT_ENDPOINTS, *PUBLIC_ENDPOINTS):
        decision = decide_cors(
            CorsRequest(domain=DOMAIN, path=p, origin=origin, client_id=client_id, preflight=True, request_headers=tuple(names)), tenant
        )
        for name, value in decision.headers:
            assert value.isascii(), (name, value)
            assert value.isprintable(), (name, value)
        echoed = dict(decision.headers).get("Access-Control-Allow-Origin")
        assert echoed in (None, "*", origin.strip())


def test_public_endpoints_answer_any_origin_with_a_star() -> None:
    tenant = spa_tenant()
    for path in PUBLIC_ENDPOINTS:
        decision = decide_cors(CorsRequest(domain=DOMAIN, path=path, origin="https://anyone.example.net"), tenant)
        assert decision.allowed
        assert dict(decision.headers) == {"Access-Control-Allow-Origin": "*"}


def test_a_port_in_the_tenant_domain_makes_the_same_origin() -> None:
    # A served address (127.0.0.1:4000, R50) is its own origin, on http or https.
    tenant = Tenant.model_validate({"domain": "127.0.0.1:4000", "clients": [{"client_id": SPA}]})
    for origin in ("http://127.0.0.1:4000", "https://127.0.0.1:4000"):
        decision = decide_cors(CorsRequest(domain="127.0.0.1:4000", path="/oauth/token", origin=origin), tenant)
        assert [r.rule for r in decision.trace] == [Rule.CORS_SAME_ORIGIN]
    other = decide_cors(CorsRequest(domain="127.0.0.1:4000", path="/oauth/token", origin="http://127.0.0.1:4001"), tenant)
    assert [r.rule for r in other.trace] == [Rule.CORS_ORIGIN_NOT_ALLOWED]


# ---------------------------------------------------------------------------------------
# The tenant fields in every format
# ---------------------------------------------------------------------------------------

BROWSER_FIELDS = {
    "web_origins": ["https://app.example.com"],
    "allowed_origins": ["https://kiosk.example.com"],
    "allowed_logout_urls": ["https://app.example.com/logged-out"],
}


def browser_fields(client: Client) -> dict[str, list[str]]:
    return {name: list(getattr(client, name)) for name in BROWSER_FIELDS}


def test_the_projects_own_format_accepts_auth0s_browser_fields(tmp_path: Path) -> None:
    data = {"domain": DOMAIN, "clients": [{"client_id": SPA, "app_type": "spa", **BROWSER_FIELDS}]}
    assert browser_fields(Tenant.model_validate(data).clients[0]) == BROWSER_FIELDS
    path = tmp_path / "tenant.yaml"
    path.write_text(yaml.safe_dump(data))
    loaded = load_tenant(path)
    assert browser_fields(loaded.tenant.clients[0]) == BROWSER_FIELDS
    assert loaded.warnings == ()


def test_a_deploy_cli_yaml_export_keeps_the_browser_fields(tmp_path: Path) -> None:
    export = {"clients": [{"name": "Storefront", "app_type": "spa", "callbacks": ["https://app.example.com/cb"], **BROWSER_FIELDS}]}
    path = tmp_path / "tenant.yaml"
    path.write_text(yaml.safe_dump(export))
    loaded = load_tenant(path, domain=DOMAIN)
    assert browser_fields(loaded.tenant.clients[0]) == BROWSER_FIELDS
    assert loaded.warnings == ()


@pytest.mark.skipif(not CORPUS.is_dir(), reason="tenant corpus not found")
def test_the_deploy_cli_directory_example_keeps_the_browser_fields_after_keyword_replacement(tmp_path: Path) -> None:
    copy = tmp_path / "directory"
    shutil.copytree(CORPUS / "auth0__auth0-deploy-cli__examples_directory", copy)
    (copy / "clients" / "My M2M.json").write_text(json.dumps({"name": "My M2M", "app_type": "non_interactive"}))
    keywords = {"ENV": "dev", "AUTH0_TENANT_NAME": "example", "AUTH0_DOMAIN": "example.auth0.com"}
    loaded = load_tenant(copy, keywords=keywords)
    [spa] = [c for c in loaded.tenant.clients if c.name == "My SPA"]
    assert browser_fields(spa) == {
        "web_origins": ["https://dev.myapp.com"],
        "allowed_origins": ["https://dev.myapp.com/"],
        "allowed_logout_urls": ["https://dev.myapp.com/logout"],
    }
    # And the loaded client decides CORS: its web origin may call the token endpoint.
    decision = decide_cors(
        CorsRequest(domain="example.auth0.com", path="/oauth/token", origin="https://dev.myapp.com", client_id=spa.client_id), loaded.tenant
    )
    assert decision.allowed
    assert [r.rule for r in decision.trace] == [Rule.CORS_WEB_ORIGIN]


# ---------------------------------------------------------------------------------------
# Over real loopback HTTP: preflights from httpx as a browser sends them
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def live() -> Iterator[LiveServer]:
    app = create_app(spa_tenant(allowed_origins=["https://kiosk.example.com"]), seed=7, default_user=USER)
    with serve_in_thread(app) as server:
        yield server


def preflight(
    live: LiveServer, path: str, origin: str, method: str = "POST", headers: str = "content-type, auth0-client"
) -> httpx.Response:
    request_headers = {"Origin": origin, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": headers}
    return httpx.request("OPTIONS", f"{live.url}{path}", headers=request_headers, timeout=10)


def test_a_preflight_from_a_web_origin_is_answered_with_the_echoed_origin(live: LiveServer) -> None:
    response = preflight(live, "/oauth/token", APP)
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == APP
    assert response.headers["access-control-allow-methods"] == "POST"
    assert response.headers["access-control-allow-headers"] == "auth0-client, content-type"
    assert response.headers["vary"] == "Origin"
    assert response.headers["x-claimsengine-rules"] == "cors.configured_for_a_client"
    # The preflight is captured and its decision kept, like any other request.
    assert live.fake.requests("/oauth/token")[-1]["method"] == "OPTIONS"
    assert live.fake.decisions()[-1]["endpoint"] == "OPTIONS /oauth/token"


def test_a_preflight_from_an_unknown_origin_gets_no_cors_headers(live: LiveServer) -> None:
    response = preflight(live, "/oauth/token", "https://evil.example.net")
    assert response.status_code == 204
    assert not [name for name in response.headers if name.startswith("access-control-")]
    assert response.headers["x-claimsengine-rules"] == "cors.origin_not_allowed"


def test_a_token_request_from_an_allowed_origin_can_read_its_error(live: LiveServer) -> None:
    body = {"grant_type": "refresh_token", "client_id": SPA, "refresh_token": "not-one"}
    response = httpx.post(f"{live.url}/oauth/token", data=body, headers={"Origin": "https://kiosk.example.com"}, timeout=10)
    assert response.status_code == 403
    assert response.json()["error"] == "invalid_grant"
    assert response.headers["access-control-allow-origin"] == "https://kiosk.example.com"
    assert response.headers["x-claimsengine-cors"] == "cors.allowed_origin"
    assert "cors.allowed_origin" in response.headers["x-claimsengine-rules"].split()


def test_a_token_request_from_an_origin_the_client_does_not_allow_is_refused_as_auth0_does(live: LiveServer) -> None:
    body = {"grant_type": "refresh_token", "client_id": SPA, "refresh_token": "not-one"}
    response = httpx.post(f"{live.url}/oauth/token", data=body, headers={"Origin": "https://evil.example.net"}, timeout=10)
    assert (response.status_code, response.json()) == (401, {"error": "access_denied", "error_description": "Unauthorized"})
    assert "access-control-allow-origin" not in response.headers
    assert response.headers["x-claimsengine-rules"].split()[-1] == "cors.origin_not_allowed"


def test_a_server_without_an_origin_is_no_cors_request(live: LiveServer) -> None:
    body = {"grant_type": "refresh_token", "client_id": SPA, "refresh_token": "not-one"}
    response = httpx.post(f"{live.url}/oauth/token", data=body, timeout=10)
    assert response.status_code == 403
    assert "access-control-allow-origin" not in response.headers
    assert "x-claimsengine-cors" not in response.headers


def test_discovery_and_jwks_are_readable_from_any_origin(live: LiveServer) -> None:
    for path in PUBLIC_ENDPOINTS:
        assert preflight(live, path, "https://anyone.example.net", "GET", "").headers["access-control-allow-origin"] == "*"
        response = httpx.get(f"{live.url}{path}", headers={"Origin": "https://anyone.example.net"}, timeout=10)
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == "*"


def test_authorize_never_carries_cors_headers(live: LiveServer) -> None:
    params = {"client_id": SPA, "response_type": "code", "redirect_uri": "http://localhost:3000/callback"}
    response = httpx.get(f"{live.url}/authorize", params=params, headers={"Origin": APP}, timeout=10)
    assert "access-control-allow-origin" not in response.headers
    assert response.headers["x-claimsengine-cors"] == "cors.not_a_cors_endpoint"


def test_userinfo_is_decided_for_the_tokens_client(live: LiveServer) -> None:
    # Without a valid token the request names no client: an origin some client allows can read the 401.
    response = httpx.get(f"{live.url}/userinfo", headers={"Origin": APP, "Authorization": "Bearer nope"}, timeout=10)
    assert response.status_code == 401
    assert response.headers["access-control-allow-origin"] == APP
    assert response.headers["x-claimsengine-cors"] == "cors.configured_for_a_client"


def test_a_test_override_still_carries_cors_headers(live: LiveServer) -> None:
    live.fake.override("/oauth/token", status=429, body={"error": "too_many_requests"})
    body = {"grant_type": "refresh_token", "client_id": SPA, "refresh_token": "not-one"}
    response = httpx.post(f"{live.url}/oauth/token", data=body, headers={"Origin": APP}, timeout=10)
    assert response.status_code == 429
    # The override answered before the endpoint named a client: decided as naming none.
    assert response.headers["access-control-allow-origin"] == APP


def test_userinfo_is_decided_for_the_client_its_token_was_issued_to(live: LiveServer) -> None:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    callback = "http://localhost:3000/callback"
    query = {"response_type": "code", "client_id": SPA, "redirect_uri": callback, "scope": "openid profile"}
    query |= {"code_challenge": challenge, "code_challenge_method": "S256"}
    redirect = httpx.get(f"{live.url}/authorize", params=query, timeout=10)
    code = parse_qs(urlsplit(redirect.headers["location"]).query)["code"][0]
    exchange = {"grant_type": "authorization_code", "client_id": SPA, "code": code, "code_verifier": verifier, "redirect_uri": callback}
    issued = httpx.post(f"{live.url}/oauth/token", data=exchange, headers={"Origin": "http://localhost:3000"}, timeout=10)
    assert issued.status_code == 200, issued.text
    assert issued.headers["x-claimsengine-cors"] == "cors.callback_origin"
    bearer = {"Authorization": f"Bearer {issued.json()['access_token']}"}
    allowed = httpx.get(f"{live.url}/userinfo", headers={**bearer, "Origin": APP}, timeout=10)
    assert (allowed.status_code, allowed.json()["sub"]) == (200, USER)
    assert allowed.headers["access-control-allow-origin"] == APP
    assert allowed.headers["x-claimsengine-cors"] == "cors.web_origin"
    # Another origin gets the same answer without CORS headers: the browser withholds it.
    other = httpx.get(f"{live.url}/userinfo", headers={**bearer, "Origin": "https://other.example.net"}, timeout=10)
    assert other.status_code == 200
    assert "access-control-allow-origin" not in other.headers
    assert other.headers["x-claimsengine-cors"] == "cors.origin_not_allowed"

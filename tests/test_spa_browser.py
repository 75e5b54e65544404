"""Browser applications end to end (issue 10, item 4): Auth0's own SPA SDK in a real browser.

A tiny page (``tests/spa_node/index.html``) uses ``@auth0/auth0-spa-js``, installed from the npm
registry by ``tests/spa_node/package-lock.json`` (no CDN). It runs in Debian's headless
``chromium``, driven by Playwright pointed at that executable (no browser is downloaded), on
its own origin: a loopback server on one port serves the page and a protected route, the fake
serves the tenant over TLS on another. The page logs in, comes back to its callback
(``handleRedirectCallback``, a cross-origin code exchange with PKCE: a real CORS preflight),
gets a token silently (``getTokenSilently``: with ``useRefreshTokens`` a refresh-token grant,
again cross-origin; without, ``/authorize?prompt=none&response_mode=web_message`` in a hidden
iframe that the fake's session cookie logs in), and calls the protected route, which validates the JWT against the fake's
JWKS with PyJWT's ``PyJWKClient``.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest

from claimsengine import Tenant
from claimsengine.adapters.server import LiveServer, create_app, serve_in_thread
from tests.node_packages import installed

pytestmark = [pytest.mark.slow, pytest.mark.interop]

SPA_NODE = Path(__file__).parent / "spa_node"
API = "https://api.spa-e2e.test"
USER = "auth0|frank0001"
# tests/fixtures/users/users.json: Frank's bcrypt hash and password (test fixtures, not secrets).
EMAIL, PASSWORD = "frank@northwind.com", "fixture-password-frank"
PASSWORD_HASH = "$2b$04$yp1WaFlHx2JSZ8ovJpFJseftP0Bk6Yy/G2Wit/xAtc8DTyIlq6qJi"
CLIENT = "spa-e2e-client"
TIMEOUT_MS = 20_000


def chromium() -> str:
    binary = shutil.which("chromium")
    if binary is None:
        pytest.fail("chromium is not installed (.ci/run installs Debian's chromium package)")
    return binary


@dataclass
class App:
    """The single-page app's own origin: the page, the SDK, its configuration, a protected route."""

    server: ThreadingHTTPServer
    config: dict[str, Any]

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"


def _handler(sdk: Path, app: list[App], verifier: list[tuple[jwt.PyJWKClient, str]]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/":
                self._send(200, (SPA_NODE / "index.html").read_bytes(), "text/html; charset=utf-8")
            elif path == "/auth0-spa-js.production.js":
                self._send(200, sdk.read_bytes(), "text/javascript")
            elif path == "/config.js":
                self._send(200, f"window.CONFIG = {json.dumps(app[0].config)};".encode(), "text/javascript")
            elif path == "/api/private":
                self._private()
            else:
                self._send(404, b"not found", "text/plain")

        def _private(self) -> None:
            # The resource server: an unmodified PyJWT validating against the fake's JWKS.
            client, issuer = verifier[0]
            scheme, _, token = self.headers.get("Authorization", "").partition(" ")
            try:
                if scheme != "Bearer":
                    raise jwt.InvalidTokenError("no bearer token")
                key = client.get_signing_key_from_jwt(token)
                claims = jwt.decode(token, key.key, algorithms=["RS256"], audience=API, issuer=issuer)
            except jwt.PyJWTError as exc:
                self._send(401, json.dumps({"error": type(exc).__name__}).encode(), "application/json")
                return
            body = {"sub": claims["sub"], "scope": claims.get("scope"), "azp": claims.get("azp")}
            self._send(200, json.dumps(body).encode(), "application/json")

    return Handler


def spa_tenant(origin: str, **client: Any) -> Tenant:
    """A tenant with one single-page application at ``origin`` (its callback is the page itself)."""
    behaviour = client.pop("behaviour", {})
    others = client.pop("others", [])
    return Tenant.model_validate(
        {
            "domain": "spa-e2e.auth0.com",
            "apis": [{"identifier": API, "name": "Messages", "scopes": ["read:messages"], "allow_offline_access": True}],
            "clients": [
                {
                    "client_id": CLIENT,
                    "name": "E2E SPA",
                    "app_type": "spa",
                    "token_endpoint_auth_method": "none",
                    "grant_types": ["authorization_code", "refresh_token"],
                    "callbacks": [f"{origin}/"],
                    "allowed_logout_urls": [f"{origin}/"],
                    **client,
                },
                *others,
            ],
            "users": [
                {
                    "user_id": USER,
                    "profile": {"email": EMAIL, "name": "Frank Osei"},
                    "connection": "Username-Password-Authentication",
                    "password_hash": PASSWORD_HASH,
                }
            ],
            "behaviour": behaviour,
        }
    )


@contextlib.contextmanager
def spa_world(*, refresh_tokens: bool = True, **client: Any) -> Iterator[tuple[App, LiveServer]]:
    """The app's origin (page, SDK, protected route) and the fake over TLS, on two loopback ports."""
    modules = installed(SPA_NODE, "@auth0/auth0-spa-js")
    sdk = modules / "@auth0" / "auth0-spa-js" / "dist" / "auth0-spa-js.production.js"
    holder: list[App] = []
    verifier: list[tuple[jwt.PyJWKClient, str]] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(sdk, holder, verifier))
    thread = threading.Thread(target=server.serve_forever, name="spa-app", daemon=True)
    thread.start()
    try:
        origin = f"http://127.0.0.1:{server.server_address[1]}"
        tenant = spa_tenant(origin, **{key: value(origin) if callable(value) else value for key, value in client.items()})
        # The interactive login and consent pages (issue 10, item 3), not a default user.
        with serve_in_thread(create_app(tenant, seed=11, login_page=True), tls=True) as fake:
            verifier.append((jwt.PyJWKClient(f"{fake.url}/.well-known/jwks.json", ssl_context=fake.ssl_context()), fake.issuer))
            config = {
                # The served address, as the banner prints it: iss is https://{domain}/ (issue 10, item 1).
                "domain": fake.domain,
                "clientId": CLIENT,
                "useRefreshTokens": refresh_tokens,
                "cacheLocation": "memory",
                "authorizationParams": {"redirect_uri": f"{origin}/", "audience": API, "scope": "openid profile email read:messages"},
            }
            holder.append(App(server, config))
            yield holder[0], fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def run_page(app: App, fake: LiveServer) -> dict[str, Any]:
    """Open the page in headless chromium, log in through the fake's pages, and return what the page recorded."""
    fake_url = fake.url
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p, tempfile.TemporaryDirectory(prefix="spa-profile-") as profile:
        # A persistent profile that allows third-party cookies (Chromium's cookie_controls_mode 0;
        # it blocks them in incognito-like contexts and by default here): silent authentication in
        # an iframe needs the fake's session cookie (SameSite=None; Secure) under the app's site.
        # The fake's certificate comes from a throwaway CA this browser does not know.
        preferences = Path(profile, "Default", "Preferences")
        preferences.parent.mkdir(parents=True)
        preferences.write_text(json.dumps({"profile": {"cookie_controls_mode": 0}}))
        context = p.chromium.launch_persistent_context(
            profile, executable_path=chromium(), args=["--no-sandbox", "--disable-gpu"], ignore_https_errors=True
        )
        try:
            page = context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(f"{app.origin}/")
            page.wait_for_function("() => window.results && (window.results.ready || window.results.failed)")
            if page.evaluate("() => window.results.failed"):
                failed: dict[str, Any] = page.evaluate("() => window.results")
                return failed
            page.click("#login")
            # The fake's login page, on the fake's origin: Frank types his e-mail and password.
            page.wait_for_selector("#login-form")
            assert page.url.startswith(fake_url), page.url
            page.fill("#username", EMAIL)
            page.fill("#password", PASSWORD)
            page.click("#login-form button[type=submit]")
            # The consent page: a callback on 127.0.0.1 cannot be verified, so Auth0 asks (R70).
            page.wait_for_selector("#consent-form, #results")
            if page.url.startswith(fake_url):
                page.click("#consent-form button[value=accept]")
            page.wait_for_function("() => window.results && (window.results.done || window.results.failed)")
            assert page.url.startswith(app.origin), page.url
            results: dict[str, Any] = page.evaluate("() => window.results")
            return results
        finally:
            context.close()


def token_requests(fake: LiveServer) -> list[dict[str, Any]]:
    return fake.fake.requests("/oauth/token")


@pytest.mark.parametrize("silently", ["refresh_token", "web_message"])
def test_auth0_spa_js_logs_in_gets_a_token_silently_and_calls_a_protected_route_across_origins(silently: str) -> None:
    # "refresh_token": useRefreshTokens, getTokenSilently posts a refresh-token grant from the page.
    # "web_message": no refresh tokens, getTokenSilently loads /authorize?prompt=none&response_mode=
    # web_message in a hidden iframe on the fake's origin; the session cookie (SameSite=None; Secure)
    # logs the user in silently and the code is posted back to the page's origin, a web origin.
    with spa_world(refresh_tokens=silently == "refresh_token", web_origins=lambda origin: [origin]) as (app, fake):
        results = run_page(app, fake)
        assert "failed" not in results, results
        assert results["user"] == USER
        assert results["silent_token_parts"] == 3
        offline = " offline_access" if silently == "refresh_token" else ""
        assert results["api"] == {
            "status": 200,
            "body": {"sub": USER, "scope": f"openid profile email{offline} read:messages", "azp": CLIENT},
        }
        sent = token_requests(fake)
        # Both token requests come from the app's origin, each allowed by the client's Allowed Web
        # Origins; the browser asked first (a preflight: the SDK sends Auth0-Client).
        posts = [r for r in sent if r["method"] == "POST"]
        second = "refresh_token" if silently == "refresh_token" else "authorization_code"
        assert [r["params"]["grant_type"] for r in posts] == ["authorization_code", second]
        assert {r["headers"]["origin"] for r in posts} == {app.origin}
        assert [r["headers"]["origin"] for r in sent if r["method"] == "OPTIONS"][:1] == [app.origin]
        kept = [d for d in fake.fake.decisions() if d["endpoint"] == "/oauth/token"]
        assert [d["outcome"] for d in kept] == ["issued", "issued"]
        assert all("cors.web_origin" in d["rules"] for d in kept)
        if silently == "web_message":
            silent = [r for r in fake.fake.requests("/authorize") if r["query"].get("prompt") == "none"]
            assert [r["query"]["response_mode"] for r in silent] == ["web_message"]
            authorized = [d for d in fake.fake.decisions() if d["endpoint"] == "/authorize" and "cors.web_message_origin" in d["rules"]]
            assert [d["outcome"] for d in authorized] == ["authorized"]


@pytest.mark.parametrize(
    ("others", "refused_at"),
    [
        pytest.param([], "OPTIONS /oauth/token", id="no-client-allows-the-origin"),
        pytest.param(
            lambda origin: [{"client_id": "other-spa", "app_type": "spa", "web_origins": [origin]}],
            "/oauth/token",
            id="another-client-does",
        ),
    ],
)
def test_an_app_origin_the_client_does_not_allow_gets_no_token_in_the_browser(others: Any, refused_at: str) -> None:
    # Only Allowed Web Origins count (the switch), and the app's origin is not in this client's.
    # When no client allows it, the preflight gets no CORS header and the browser sends nothing;
    # when another client does, the preflight passes and the exchange itself is refused as Auth0
    # refuses it (401 access_denied, no CORS header). Either way the SDK fails at the callback.
    with spa_world(web_origins=[], behaviour={"cors_origins": "web_origins"}, others=others) as (app, fake):
        results = run_page(app, fake)
        assert results["failed"]["step"] == "handleRedirectCallback", results
        assert "done" not in results
        kept = [d for d in fake.fake.decisions() if d["endpoint"].endswith("/oauth/token")]
        assert kept[-1]["endpoint"] == refused_at
        assert kept[-1]["rules"][-1] == "cors.origin_not_allowed"
        assert all(d["outcome"] != "issued" for d in kept)

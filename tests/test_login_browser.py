"""The login page, the consent page, the session and logout in a real headless browser.

Debian's ``chromium``, driven by Playwright pointed at that executable (no browser is ever
downloaded), against the fake served over TLS on a loopback port (``serve --login-page``). The
application is a second loopback server (plain http, another site): its callback and its
logged-out page answer with a one-line page, so the browser lands there as on a real site.

At each step the test takes a screenshot and checks, at that moment, the page's accessibility
tree (``Locator.aria_snapshot``) for the key elements, and that the PNG is a real image (its
chunks' checksums hold and its pixel data inflates to the declared size). Screenshots stay in
the test's temporary directory.
"""

from __future__ import annotations

import contextlib
import struct
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from claimsengine import Tenant
from claimsengine.adapters import login
from claimsengine.adapters.server import LiveServer, create_app, serve_in_thread
from claimsengine.adapters.users import with_users
from tests.test_password_server import ASSIGNMENTS, FRANK, FRANK_PASSWORD, SPEC_TENANT, USERS
from tests.test_table_html import chromium

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Page

pytestmark = [pytest.mark.slow]

THIRD_PARTY = "nw-thirdweb-0001"
ORDERS = "https://api.northwind.com/orders"
TIMEOUT_MS = 15_000


class _Application(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # quiet
        return

    def do_GET(self) -> None:
        body = b"<!doctype html><title>app</title><h1>The application</h1>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the browser moved on (a favicon, say)
            self.wfile.write(body)


@pytest.fixture(scope="module")
def application() -> Iterator[str]:
    """The application's origin: a loopback server answering every path with its page."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Application)
    thread = threading.Thread(target=server.serve_forever, name="login-app", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def fake(application: str) -> Iterator[LiveServer]:
    """The spec tenant with users, its third-party application's callback at ``application``
    and the application's logged-out page among the tenant's Allowed Logout URLs."""
    spec = with_users(Tenant.model_validate_json(SPEC_TENANT.read_text()), USERS, ASSIGNMENTS)
    clients = tuple(
        # Permissive (legacy) mode: a strict third-party app gets no ID token for the logout's
        # id_token_hint, and these tests are about the login pages (issue 8, item 7).
        c.model_copy(update={"callbacks": (f"{application}/callback",), "third_party_security_mode": "permissive"})
        if c.client_id == THIRD_PARTY
        else c
        for c in spec.clients
    )
    fields = {name: getattr(spec, name) for name in Tenant.model_fields}
    tenant = Tenant.model_validate({**fields, "clients": clients, "allowed_logout_urls": (f"{application}/logged-out",)})
    with serve_in_thread(create_app(tenant, login_page=True), tls=True) as live:
        yield live


@pytest.fixture
def context(fake: LiveServer) -> Iterator[BrowserContext]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox", "--disable-gpu"])
        try:
            # The fake's certificate comes from a throwaway CA the browser does not know.
            context = browser.new_context(ignore_https_errors=True, viewport={"width": 900, "height": 700})
            context.set_default_timeout(TIMEOUT_MS)
            yield context
        finally:
            browser.close()


def callback(fake: LiveServer) -> str:
    return fake.tenant.index.clients[THIRD_PARTY].callbacks[0]


def authorize(fake: LiveServer, **extra: str) -> str:
    params = {
        "response_type": "code",
        "client_id": THIRD_PARTY,
        "redirect_uri": callback(fake),
        "audience": ORDERS,
        "scope": "openid read:orders",
        "state": "st-browser",
    }
    return f"{fake.url}/authorize?{urlencode({**params, **extra})}"


def png_facts(data: bytes) -> tuple[int, int, int]:
    """Width, height and the number of distinct bytes of the inflated pixel rows of a PNG, after
    checking every chunk's CRC and that the rows inflate to exactly the declared size."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    offset, idat, header = 8, b"", b""
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind, body = data[offset + 4 : offset + 8], data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"bad CRC in {kind!r}"
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        offset += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", header[:10])
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour]
    rows = zlib.decompress(idat)
    assert len(rows) == height * (1 + width * channels * depth // 8)
    return width, height, len(set(rows))


def shot(page: Page, tmp_path: Path, name: str, region: str = "body") -> str:
    """A screenshot checked to be a real, non-blank image, and the accessibility tree of
    ``region`` at that moment."""
    path = tmp_path / f"{name}.png"
    tree = page.locator(region).aria_snapshot()
    page.screenshot(path=str(path), full_page=True)
    width, height, distinct = png_facts(path.read_bytes())
    assert width >= 900  # the viewport's width, or the page's when it is wider
    assert height >= 700
    assert distinct > 2, f"{name}: a blank screenshot"
    return tree


def landed(page: Page, fake: LiveServer) -> dict[str, str]:
    """The query the browser came back to the callback with."""
    page.wait_for_url(f"{callback(fake)}*")
    return {k: v[0] for k, v in parse_qs(urlsplit(page.url).query).items()}


def test_in_chromium_log_in_consent_come_back_with_a_code_then_silent_login_then_logout(
    fake: LiveServer, context: BrowserContext, tmp_path: Path
) -> None:
    page = context.new_page()
    page.goto(authorize(fake))
    tree = shot(page, tmp_path, "login", "main")
    assert 'heading "Log in"' in tree
    assert 'textbox "Email address"' in tree
    assert 'textbox "Password"' in tree  # a password field is a textbox in the accessibility tree
    assert 'button "Continue"' in tree
    assert f"strong: {fake.tenant.index.clients[THIRD_PARTY].name}" in tree  # the application's name
    page.get_by_label("Email address").fill(FRANK)
    page.get_by_label("Password").fill(FRANK_PASSWORD)
    page.get_by_role("button", name="Continue").click()

    page.wait_for_selector("#consent-form")
    tree = shot(page, tmp_path, "consent", "main")
    assert 'heading "Authorize' in tree
    assert "read:orders" in tree
    assert 'button "Accept"' in tree
    assert 'button "Decline"' in tree
    page.get_by_role("button", name="Accept").click()
    back = landed(page, fake)
    assert back["state"] == "st-browser"
    assert back["code"]
    assert "The application" in shot(page, tmp_path, "callback")

    cookies = {c["name"]: c for c in context.cookies(fake.url)}
    session = cookies[login.SESSION_COOKIE]
    assert session["httpOnly"]
    assert session["secure"]
    assert session["sameSite"] == "None"
    assert session["path"] == "/"

    # Silent authentication: no form, no consent prompt (the consent is remembered).
    page.goto(authorize(fake, prompt="none", state="st-silent"))
    silent = landed(page, fake)
    assert silent["state"] == "st-silent"
    assert silent["code"]
    assert "error" not in silent

    # Logout ends the session: prompt=none then answers login_required.
    logged_out = fake.tenant.allowed_logout_urls[0]
    page.goto(f"{fake.url}{login.V2_LOGOUT_PATH}?{urlencode({'returnTo': logged_out})}")
    page.wait_for_url(logged_out)
    assert login.SESSION_COOKIE not in {c["name"] for c in context.cookies(fake.url)}
    page.goto(authorize(fake, prompt="none", state="st-after"))
    after = landed(page, fake)
    assert after["error"] == "login_required"
    assert after["state"] == "st-after"
    assert "code" not in after


def test_in_chromium_a_wrong_password_shows_auth0s_text_on_the_login_page(
    fake: LiveServer, context: BrowserContext, tmp_path: Path
) -> None:
    page = context.new_page()
    page.goto(authorize(fake))
    page.get_by_label("Email address").fill(FRANK)
    page.get_by_label("Password").fill("certainly-not-the-password")
    page.get_by_role("button", name="Continue").click()
    page.wait_for_selector("#error-message")
    tree = shot(page, tmp_path, "wrong-password", "main")
    assert "- alert: Wrong email or password." in tree
    assert page.get_by_role("alert").inner_text() == "Wrong email or password."
    assert f'textbox "Email address": {FRANK}' in tree  # the name typed is kept
    assert login.SESSION_COOKIE not in {c["name"] for c in context.cookies(fake.url)}
    assert page.url.startswith(fake.url)  # still on the fake: nothing went back to the application


def test_in_chromium_the_home_page_shows_the_tenant_and_the_decisions_just_made(
    fake: LiveServer, context: BrowserContext, tmp_path: Path
) -> None:
    page = context.new_page()
    page.goto(authorize(fake, prompt="none", state="st-home"))  # a decision to show: login_required
    landed(page, fake)
    page.goto(f"{fake.url}/")
    tree = shot(page, tmp_path, "home")
    for heading in ("Domains", "Applications", "APIs", "Users", "Organizations"):
        assert f'heading "{heading}" [level=2]' in tree
    assert "northwind.auth0.com" in tree
    assert THIRD_PARTY in tree
    assert "spec-billing-secret-AAAA" in tree  # a test double shows the effective secrets
    assert ORDERS in tree
    assert FRANK in tree
    decisions = page.locator("#decisions tbody tr").first.inner_text()
    assert "/authorize" in decisions
    assert "authorize.login_required" in decisions

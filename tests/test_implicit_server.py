"""Implicit and hybrid over HTTP: the response modes as a client sees them, on a real loopback
server, parsed by real parsers (issue 9, item 6).

- ``fragment``: Authlib 1.9 (``authlib.oauth2.rfc6749.parameters.parse_implicit_response``)
  reads the redirect, and its ``ImplicitIDToken`` / ``HybridIDToken`` claims classes check
  the nonce, ``at_hash`` and ``c_hash`` of the ID token against the JWKS;
- ``form_post``: the page is read with the standard library's HTML parser (no browser), and
  the form it would submit is posted to a real callback server;
- ``web_message``: the message the page posts, read back from its script.
"""

from __future__ import annotations

import json
import re
import threading
import warnings
from collections.abc import Iterator
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit

import httpx
import pytest

from claimsengine import Tenant
from claimsengine.adapters.loader import load_tenant
from claimsengine.adapters.server import (
    EXAMPLE_TENANT,
    LiveServer,
    create_app,
    form_post_page,
    origin_of,
    serve_in_thread,
    web_message_page,
)
from claimsengine.adapters.signing import KeySet, token_hash

ORDERS = "https://api.northwind.com/orders"
SPA = "nw-spa-0001"
CALLBACK = "https://shop.northwind.com/callback"


@pytest.fixture(scope="module")
def tenant() -> Tenant:
    return load_tenant(EXAMPLE_TENANT).tenant


@pytest.fixture(scope="module")
def live(tenant: Tenant, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    path = tmp_path_factory.mktemp("keys") / "keys.json"
    KeySet.generate().save(path)
    app = create_app(tenant, keys=KeySet.load(path), default_user="auth0|alice")
    with serve_in_thread(app) as server:
        yield server


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


def get_authorize(live: LiveServer, http: httpx.Client, **params: str) -> httpx.Response:
    query = {"client_id": SPA, "redirect_uri": CALLBACK, "state": "st-1", **params}
    return http.get(f"{live.url}/authorize", params=query)


def authlib_jose() -> Any:
    # authlib.jose warns about its own deprecation on import (as in test_interop).
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        from authlib import jose
    return jose


def id_token_claims(live: LiveServer, http: httpx.Client, token: str, claims_cls: Any, params: dict[str, str]) -> Any:
    jose = authlib_jose()
    jwks = http.get(f"{live.url}/.well-known/jwks.json").json()
    options = {"iss": {"essential": True, "value": live.issuer}, "aud": {"essential": True, "value": SPA}}
    claims = jose.jwt.decode(
        token, jose.JsonWebKey.import_key_set(jwks), claims_cls=claims_cls, claims_options=options, claims_params=params
    )
    claims.validate(now=claims["iat"])
    return claims


# ---------------------------------------------------------------------------------------
# fragment: Authlib 1.9 parses it, its OIDC claims classes check nonce, at_hash and c_hash
# ---------------------------------------------------------------------------------------


def test_authlib_parses_an_implicit_fragment_and_checks_at_hash(live: LiveServer, http: httpx.Client) -> None:
    from authlib.oauth2.rfc6749.parameters import parse_implicit_response
    from authlib.oidc.core import ImplicitIDToken

    response = get_authorize(live, http, response_type="id_token token", nonce="n-0S6_WzA2Mj", scope="openid email", audience=ORDERS)
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(CALLBACK + "#")
    assert urlsplit(location).query == ""  # a token never travels in a query string
    parsed = parse_implicit_response(location, state="st-1")
    assert parsed["token_type"] == "Bearer"
    assert parsed["expires_in"] == "7200"  # the API's token_lifetime_for_web, not its 86400
    assert parsed["scope"] == "openid email"
    params = {"nonce": "n-0S6_WzA2Mj", "access_token": parsed["access_token"]}
    claims = id_token_claims(live, http, parsed["id_token"], ImplicitIDToken, params)
    assert claims["at_hash"] == token_hash(parsed["access_token"])
    assert "c_hash" not in claims
    # The access token works at /userinfo (its audience includes it: openid was asked for).
    profile = http.get(f"{live.url}/userinfo", headers={"Authorization": f"Bearer {parsed['access_token']}"})
    assert profile.status_code == 200, profile.text
    assert profile.json()["sub"] == "auth0|alice"


def test_authlib_checks_c_hash_and_at_hash_of_a_hybrid_response_and_the_code_exchanges(live: LiveServer, http: httpx.Client) -> None:
    from authlib.oidc.core import HybridIDToken

    response = get_authorize(live, http, response_type="code id_token token", nonce="n-2", scope="openid", audience=ORDERS)
    assert response.status_code == 302, response.text
    fragment = dict(parse_qsl(urlsplit(response.headers["location"]).fragment))
    assert set(fragment) == {"code", "access_token", "scope", "expires_in", "token_type", "id_token", "state"}
    params = {"nonce": "n-2", "code": fragment["code"], "access_token": fragment["access_token"]}
    claims = id_token_claims(live, http, fragment["id_token"], HybridIDToken, params)
    assert claims["c_hash"] == token_hash(fragment["code"])
    # A tampered code does not match c_hash: Authlib refuses the ID token.
    tampered = {**params, "code": fragment["code"][:-2] + "xx"}
    with pytest.raises(Exception, match="c_hash"):
        id_token_claims(live, http, fragment["id_token"], HybridIDToken, tampered)
    # The code of a hybrid response is an ordinary code: exchanged once, for tokens.
    exchange = {"grant_type": "authorization_code", "client_id": SPA, "code": fragment["code"], "redirect_uri": CALLBACK}
    # The SPA is public and the code has no PKCE challenge: the exchange needs a verifier.
    refused = http.post(f"{live.url}/oauth/token", data=exchange)
    assert refused.status_code == 400
    assert refused.json()["error_description"] == "Missing required parameter: code_verifier"


def test_a_token_response_in_query_mode_is_refused_on_the_error_page(live: LiveServer, http: httpx.Client) -> None:
    response = get_authorize(live, http, response_type="token", response_mode="query", scope="openid")
    assert response.status_code == 400
    assert "location" not in response.headers
    assert response.json()["error"] == "unsupported_response_mode"


# ---------------------------------------------------------------------------------------
# form_post: parsed with an HTML parser, then posted to a real callback server
# ---------------------------------------------------------------------------------------


class FormReader(HTMLParser):
    """The first form of a page: its method, action and hidden inputs; and its scripts."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.method = ""
        self.action = ""
        self.inputs: list[tuple[str, str]] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form" and not self.action:
            self.method, self.action = values.get("method", ""), values.get("action", "")
        elif tag == "input" and values.get("type") == "hidden":
            self.inputs.append((values["name"], values["value"]))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)


def read_page(html: str) -> FormReader:
    reader = FormReader()
    reader.feed(html)
    reader.close()
    return reader


RECEIVED: list[dict[str, list[str]]] = []


class Callback(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", "0"))
        RECEIVED.append(parse_qs(self.rfile.read(length).decode("ascii")))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def callback_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Callback)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/callback"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_a_form_post_page_posts_the_code_to_the_callback(tenant: Tenant, tmp_path: Path, http: httpx.Client, callback_server: str) -> None:
    # The SPA's callbacks here are the callback server's address (a real loopback server).
    clients = tuple(c.model_copy(update={"callbacks": (callback_server,)}) if c.client_id == SPA else c for c in tenant.clients)
    patched = tenant.model_copy(update={"clients": clients})
    patched = Tenant.model_validate(patched.model_dump())
    KeySet.generate().save(tmp_path / "keys.json")
    app = create_app(patched, keys=KeySet.load(tmp_path / "keys.json"), default_user="auth0|alice")
    RECEIVED.clear()
    with serve_in_thread(app) as live:
        query = {"client_id": SPA, "redirect_uri": callback_server, "response_type": "code", "response_mode": "form_post"}
        page = http.get(f"{live.url}/authorize", params={**query, "state": 'a"<b>&c', "scope": "openid"})
        assert page.status_code == 200, page.text
        assert page.headers["content-type"].startswith("text/html")
        assert page.headers["cache-control"] == "no-store"
        form = read_page(page.text)
        assert form.method == "post"
        assert form.action == callback_server
        assert [name for name, _ in form.inputs] == ["code", "state"]
        assert dict(form.inputs)["state"] == 'a"<b>&c'  # escaped in the page, exact once parsed
        assert "<b>" not in page.text
        assert any("submit()" in script for script in form.scripts)
        # What the browser would do: post the form to its action.
        posted = http.post(form.action, content=urlencode(form.inputs), headers={"content-type": "application/x-www-form-urlencoded"})
        assert posted.status_code == 200
        assert RECEIVED[-1]["state"] == ['a"<b>&c']
        code = RECEIVED[-1]["code"][0]
        # A real code: the exchange gets as far as PKCE (a public client without a challenge needs a verifier).
        exchange = {"grant_type": "authorization_code", "client_id": SPA, "code": code, "redirect_uri": callback_server}
        refused = http.post(f"{live.url}/oauth/token", data=exchange).json()
        assert refused["error_description"] == "Missing required parameter: code_verifier"


def test_a_form_post_page_escapes_every_value() -> None:
    page = form_post_page('https://app.example/cb?x="1"', [("state", "</form><script>alert(1)</script>"), ("code", "&amp;")])
    form = read_page(page)
    assert form.action == 'https://app.example/cb?x="1"'
    assert form.inputs == [("state", "</form><script>alert(1)</script>"), ("code", "&amp;")]
    assert form.scripts == ["document.forms[0].submit();"]


# ---------------------------------------------------------------------------------------
# web_message: what auth0-spa-js waits for
# ---------------------------------------------------------------------------------------

MESSAGE = re.compile(r"var targetOrigin = (?P<origin>.*?);var authorizationResponse = (?P<message>.*?);var mainWin")


def posted_message(html: str) -> tuple[str, dict[str, Any]]:
    (script,) = read_page(html).scripts
    found = MESSAGE.search(script)
    assert found is not None, script
    origin: str = json.loads(found["origin"])
    message: dict[str, Any] = json.loads(found["message"])
    return origin, message


def test_silent_authentication_posts_the_code_to_the_callback_origin(live: LiveServer, http: httpx.Client) -> None:
    response = get_authorize(live, http, response_type="code", response_mode="web_message", prompt="none", scope="openid")
    assert response.status_code == 200, response.text
    origin, message = posted_message(response.text)
    assert origin == "https://shop.northwind.com"
    assert message["type"] == "authorization_response"
    assert set(message["response"]) == {"code", "state"}
    assert message["response"]["state"] == "st-1"
    assert "window.opener ? window.opener : window.parent" in response.text


def test_silent_authentication_without_a_session_posts_login_required(tenant: Tenant, tmp_path: Path, http: httpx.Client) -> None:
    KeySet.generate().save(tmp_path / "keys.json")
    app = create_app(tenant, keys=KeySet.load(tmp_path / "keys.json"))  # nobody logged in
    with serve_in_thread(app) as live:
        response = get_authorize(live, http, response_type="code", response_mode="web_message", prompt="none", scope="openid")
    assert response.status_code == 200
    _, message = posted_message(response.text)
    assert message == {
        "type": "authorization_response",
        "response": {"error": "login_required", "error_description": "Login required", "state": "st-1"},
    }


def test_a_web_message_page_cannot_be_broken_out_of() -> None:
    page = web_message_page("http://localhost:3000/cb", [("state", "</script><script>alert(1)</script>\u2028")])
    assert "</script><script>" not in page
    origin, message = posted_message(page)
    assert origin == "http://localhost:3000"
    assert message["response"]["state"] == "</script><script>alert(1)</script>\u2028"


def test_origin_of_a_callback() -> None:
    assert origin_of("HTTPS://Shop.Northwind.com/callback?x=1") == "https://shop.northwind.com"
    assert origin_of("http://[::1]:8080/cb") == "http://[::1]:8080"


def test_discovery_lists_the_response_types_and_modes(live: LiveServer, http: httpx.Client) -> None:
    metadata = http.get(f"{live.url}/.well-known/openid-configuration").json()
    assert metadata["response_types_supported"] == [
        "code",
        "token",
        "id_token",
        "code token",
        "code id_token",
        "token id_token",
        "code token id_token",
    ]
    assert metadata["response_modes_supported"] == ["query", "fragment", "form_post"]

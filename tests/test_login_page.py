"""The login page, the consent page, the session cookie, logout and the home page, in process
(httpx with a cookie jar against the ASGI app; the browser tests are in test_browser.py).

Issue 10 item 3 and issue 9 item 7: a login starts a sealed session; ``prompt=none`` then
succeeds without a form while the session lasts and does not ask for a consent given before;
logout ends it; the forms are protected by a sealed anti-forgery token.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from starlette.applications import Starlette

from claimsengine import Tenant
from claimsengine.adapters import login
from claimsengine.adapters.server import asgi_client, create_app
from claimsengine.adapters.signing import KeySet
from claimsengine.adapters.users import with_users
from tests.test_password_server import ASSIGNMENTS, FRANK, FRANK_PASSWORD, SPEC_TENANT, USERS, Clock

SPA, SPA_CALLBACK = "nw-spa-0001", "https://shop.northwind.com/callback"
THIRD_PARTY, THIRD_PARTY_CALLBACK = "nw-thirdweb-0001", "https://dashboard.partner.example/callback"
# A strict third-party application must use PKCE (issue 8, item 7).
PKCE = {"code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "code_challenge_method": "S256"}
ORDERS = "https://api.northwind.com/orders"


@pytest.fixture(scope="module")
def tenant() -> Tenant:
    return with_users(Tenant.model_validate_json(SPEC_TENANT.read_text()), USERS, ASSIGNMENTS)


@pytest.fixture(scope="module")
def keys() -> KeySet:
    return KeySet.generate(seed=10)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(tenant: Tenant, keys: KeySet, clock: Clock) -> Starlette:
    return create_app(tenant, keys=keys, clock=clock, login_page=True)


@pytest.fixture
def browser(app: Starlette) -> Iterator[httpx.Client]:
    with asgi_client(app) as client:
        yield client


def authorize_url(client_id: str = SPA, redirect_uri: str = SPA_CALLBACK, **extra: str) -> str:
    params = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri, "state": "st-1", "scope": "openid profile"}
    params.update(extra)
    return "/authorize?" + urlencode(params)


def form_token(page: httpx.Response) -> str:
    found = re.search(r"name=tx value='([^']+)'", page.text)
    assert found is not None, page.text
    return found.group(1)


def redirect_params(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def log_in(browser: httpx.Client, url: str, username: str = FRANK, password: str = FRANK_PASSWORD) -> httpx.Response:
    page = browser.get(url)
    assert page.status_code == 200
    assert "id=login-form" in page.text
    return browser.post(login.LOGIN_PATH, data={"tx": form_token(page), "username": username, "password": password})


def test_a_login_through_the_form_ends_on_the_callback_with_a_code_and_starts_a_session(browser: httpx.Client) -> None:
    done = log_in(browser, authorize_url())
    params = redirect_params(done)
    assert done.headers["location"].startswith(SPA_CALLBACK + "?")
    assert params["state"] == "st-1"
    assert params["code"]
    cookie = next(h for h in done.headers.get_list("set-cookie") if h.startswith(f"{login.SESSION_COOKIE}="))
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "secure", "samesite", "path"} <= attributes
    assert "samesite=none" in cookie.lower()
    assert "path=/" in cookie.lower()
    assert "login.succeeded" in done.headers["x-claimsengine-rules"]


def test_prompt_none_succeeds_silently_while_the_session_lasts_then_answers_login_required(browser: httpx.Client, clock: Clock) -> None:
    log_in(browser, authorize_url())
    clock.now += 3600
    silent = browser.get(authorize_url(prompt="none"))
    assert redirect_params(silent)["code"]
    assert "session.valid" in silent.headers["x-claimsengine-rules"]
    clock.now += 72 * 3600  # idle_session_lifetime's default, counted from the last use
    expired = redirect_params(browser.get(authorize_url(prompt="none")))
    assert expired["error"] == "login_required"
    assert expired["error_description"] == "Login required"


def test_without_prompt_none_an_expired_session_shows_the_login_page_again(browser: httpx.Client, clock: Clock) -> None:
    log_in(browser, authorize_url())
    clock.now += 168 * 3600
    page = browser.get(authorize_url())
    assert page.status_code == 200
    assert "id=login-form" in page.text
    assert "session.expired" in page.headers["x-claimsengine-rules"]


def test_a_wrong_password_shows_auth0s_text_on_the_login_page_and_starts_no_session(browser: httpx.Client) -> None:
    page = log_in(browser, authorize_url(), password="not-the-password")
    assert page.status_code == 401
    assert "Wrong email or password." in page.text
    assert "id=login-form" in page.text
    assert FRANK in page.text
    assert not any(h.startswith(f"{login.SESSION_COOKIE}=") for h in page.headers.get_list("set-cookie"))
    assert "not-the-password" not in page.text


def test_picking_a_user_from_the_list_logs_that_user_in(browser: httpx.Client) -> None:
    page = browser.get(authorize_url())
    assert "name=pick value='auth0|alice'" in page.text
    done = browser.post(login.LOGIN_PATH, data={"tx": form_token(page), "pick": "auth0|alice"})
    assert redirect_params(done)["code"]


def test_a_form_from_another_browser_or_a_tampered_one_is_refused(app: Starlette, browser: httpx.Client, clock: Clock) -> None:
    page = browser.get(authorize_url())
    token = form_token(page)
    with asgi_client(app) as other:  # no anti-forgery cookie: the form was not rendered for it
        forged = other.post(login.LOGIN_PATH, data={"tx": token, "username": FRANK, "password": FRANK_PASSWORD})
    assert forged.status_code == 403
    assert "Invalid form" in forged.text
    tampered = browser.post(login.LOGIN_PATH, data={"tx": token[:-4] + "AAAA", "username": FRANK, "password": FRANK_PASSWORD})
    assert tampered.status_code == 403
    consent = browser.post(login.CONSENT_PATH, data={"tx": token, "decision": "accept"})  # a login form's token
    assert consent.status_code == 403
    clock.now += login.FORM_LIFETIME + 1
    stale = browser.post(login.LOGIN_PATH, data={"tx": token, "username": FRANK, "password": FRANK_PASSWORD})
    assert stale.status_code == 403


def test_consent_is_asked_after_the_login_then_remembered_for_prompt_none(browser: httpx.Client) -> None:
    url = authorize_url(THIRD_PARTY, THIRD_PARTY_CALLBACK, audience=ORDERS, scope="read:orders", **PKCE)
    consent = log_in(browser, url)
    assert consent.status_code == 200
    assert "id=consent-form" in consent.text
    assert "read:orders" in consent.text
    assert any(h.startswith(f"{login.SESSION_COOKIE}=") for h in consent.headers.get_list("set-cookie"))
    accepted = browser.post(login.CONSENT_PATH, data={"tx": form_token(consent), "decision": "accept"})
    assert redirect_params(accepted)["code"]
    assert "consent.given" in accepted.headers["x-claimsengine-rules"]
    silent = browser.get(authorize_url(THIRD_PARTY, THIRD_PARTY_CALLBACK, audience=ORDERS, scope="read:orders", prompt="none", **PKCE))
    assert redirect_params(silent)["code"]
    assert "consent.stored" in silent.headers["x-claimsengine-rules"]


def test_a_declined_consent_goes_back_as_access_denied(browser: httpx.Client) -> None:
    consent = log_in(browser, authorize_url(THIRD_PARTY, THIRD_PARTY_CALLBACK, audience=ORDERS, scope="read:orders", **PKCE))
    declined = redirect_params(browser.post(login.CONSENT_PATH, data={"tx": form_token(consent), "decision": "deny"}))
    assert declined["error"] == "access_denied"
    assert declined["error_description"] == "User did not authorize the request"


def test_every_worker_reads_the_session_another_sealed(tenant: Tenant, keys: KeySet, clock: Clock, browser: httpx.Client) -> None:
    done = log_in(browser, authorize_url())
    cookie = done.cookies[login.SESSION_COOKIE]
    other = create_app(tenant, keys=keys, clock=clock, login_page=True)  # another process with the same key set
    with asgi_client(other) as worker:
        worker.cookies.set(login.SESSION_COOKIE, cookie, domain=tenant.domain)
        assert redirect_params(worker.get(authorize_url(prompt="none")))["code"]
    stranger = create_app(tenant, keys=KeySet.generate(seed=11), clock=clock, login_page=True)
    with asgi_client(stranger) as worker:
        worker.cookies.set(login.SESSION_COOKIE, cookie, domain=tenant.domain)
        assert redirect_params(worker.get(authorize_url(prompt="none")))["error"] == "login_required"


def test_v2_logout_ends_the_session_and_returns_to_an_allowed_url(browser: httpx.Client) -> None:
    log_in(browser, authorize_url())
    out = browser.get("/v2/logout?" + urlencode({"client_id": SPA, "returnTo": "https://shop.northwind.com/?from=logout"}))
    assert out.status_code == 302
    assert out.headers["location"] == "https://shop.northwind.com/?from=logout"
    cleared = next(h for h in out.headers.get_list("set-cookie") if h.startswith(f"{login.SESSION_COOKIE}="))
    assert "max-age=0" in cleared.lower()
    assert redirect_params(browser.get(authorize_url(prompt="none")))["error"] == "login_required"


def test_v2_logout_refuses_a_return_url_that_is_not_allowed_with_auth0s_text(browser: httpx.Client) -> None:
    log_in(browser, authorize_url())
    refused = browser.get(
        "/v2/logout?" + urlencode({"client_id": SPA, "returnTo": "https://evil.example/"}), headers={"accept": "text/html"}
    )
    assert refused.status_code == 400
    assert "is not defined as a valid URL in &quot;Allowed Logout URLs&quot;" in refused.text
    assert redirect_params(browser.get(authorize_url(prompt="none")))["code"]  # the session goes on


def test_oidc_logout_with_an_id_token_hint_redirects_with_state(app: Starlette, browser: httpx.Client) -> None:
    done = log_in(browser, authorize_url())
    assert done.status_code == 302
    hint = app.state.auth0.minter.id_token(
        {"iss": "https://northwind.auth0.com/", "aud": "nw-web-0001", "sub": "auth0|frank0001", "sid": "s"}
    )
    query = {"id_token_hint": hint, "post_logout_redirect_uri": "https://portal.northwind.com/logged-out?from=auth0", "state": "bye"}
    out = browser.get("/oidc/logout?" + urlencode(query))
    assert out.status_code == 302
    assert out.headers["location"] == "https://portal.northwind.com/logged-out?from=auth0&state=bye"
    assert redirect_params(browser.get(authorize_url(prompt="none")))["error"] == "login_required"
    captured = app.state.auth0.requests("/oidc/logout")[-1]
    assert captured["query"]["id_token_hint"] == "[redacted]"  # an ID token is not kept in the request log
    forged = browser.get("/oidc/logout?" + urlencode({**query, "id_token_hint": hint[:-6] + "AAAAAA"}))
    assert forged.status_code == 400
    assert forged.json()["error_description"] == "Invalid id_token_hint"


def test_oidc_logout_by_post_and_without_a_return_url_shows_the_logged_out_page(browser: httpx.Client) -> None:
    out = browser.post("/oidc/logout", data={"federated": "false"})
    assert out.status_code == 200
    assert "You have been logged out" in out.text


def test_discovery_names_the_end_session_endpoint(browser: httpx.Client) -> None:
    assert browser.get("/.well-known/openid-configuration").json()["end_session_endpoint"] == "https://northwind.auth0.com/oidc/logout"


def test_without_the_login_page_authorize_logs_in_without_a_form_as_before(tenant: Tenant, keys: KeySet, clock: Clock) -> None:
    app = create_app(tenant, keys=keys, clock=clock, default_user="auth0|alice")
    with asgi_client(app) as client:
        done = client.get(authorize_url())
        assert redirect_params(done)["code"]
        assert not done.headers.get_list("set-cookie")


def test_the_home_page_shows_the_tenant_and_recent_decisions_escaped(tenant: Tenant, keys: KeySet, clock: Clock) -> None:
    hostile = tenant.model_copy(
        update={
            "clients": (*tenant.clients, tenant.clients[0].model_copy(update={"client_id": "x<1>", "name": "<script>alert(1)</script>"}))
        }
    )
    app = create_app(Tenant.model_validate(hostile.model_dump()), keys=keys, clock=clock, login_page=True)
    with asgi_client(app) as client:
        client.get(authorize_url(prompt="none"))
        page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    text = page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "<script>alert" not in text
    assert "x&lt;1&gt;" in text
    assert "spec-billing-secret-AAAA" in text  # a test double shows the effective secrets
    assert "https://api.northwind.com/orders" in text
    assert FRANK in text
    assert "org_" in text
    assert "authorize.login_required" in text  # the decision just made, with its trace
    assert "login.northwind.com" in text


# --- the tenant accepts logout URLs and session lifetimes in every format ----------------

DEPLOY_YAML = """\
tenant:
  allowed_logout_urls: [https://example.test/bye]
  session_lifetime: 24
  idle_session_lifetime_in_minutes: 90
clients:
  - name: web
    client_id: web-1
    app_type: regular_web
    callbacks: [https://app.example.test/cb]
    allowed_logout_urls: [https://app.example.test/, https://*.app.example.test/]
"""


def _logout_tenant_problems(tenant: Tenant) -> list[str]:
    problems = []
    if tenant.allowed_logout_urls != ("https://example.test/bye",):
        problems.append(f"tenant urls {tenant.allowed_logout_urls}")
    if tenant.clients[0].allowed_logout_urls != ("https://app.example.test/", "https://*.app.example.test/"):
        problems.append(f"client urls {tenant.clients[0].allowed_logout_urls}")
    if (tenant.session_lifetime, tenant.idle_session_lifetime) != (24, 1.5):
        problems.append(f"lifetimes {tenant.session_lifetime}, {tenant.idle_session_lifetime}")
    return problems


def test_logout_urls_and_session_lifetimes_load_from_every_format(tmp_path: Path) -> None:
    import json

    import yaml

    from claimsengine.adapters.loader import load_tenant

    deploy = tmp_path / "tenant.yaml"
    deploy.write_text(DEPLOY_YAML, encoding="utf-8")
    assert _logout_tenant_problems(load_tenant(deploy, domain="x.auth0.com").tenant) == []

    data = yaml.safe_load(DEPLOY_YAML)
    directory = tmp_path / "export"
    (directory / "clients").mkdir(parents=True)
    (directory / "tenant.json").write_text(json.dumps(data["tenant"]), encoding="utf-8")
    (directory / "clients" / "web.json").write_text(json.dumps(data["clients"][0]), encoding="utf-8")
    assert _logout_tenant_problems(load_tenant(directory, domain="x.auth0.com").tenant) == []

    own = tmp_path / "own.yaml"
    own_data = {
        "domain": "x.auth0.com",
        "allowed_logout_urls": ["https://example.test/bye"],
        "session_lifetime": 24,
        "idle_session_lifetime": 1.5,
        "clients": [data["clients"][0]],
    }
    own.write_text(yaml.safe_dump(own_data), encoding="utf-8")
    assert _logout_tenant_problems(load_tenant(own).tenant) == []


def test_login_hint_prefills_the_login_form(browser: httpx.Client) -> None:
    page = browser.get(authorize_url(login_hint="frank@northwind.com"))
    assert "id=username autocomplete=username required value='frank@northwind.com'" in page.text


@pytest.mark.auth0_tenant(login_page=True)
def test_the_pytest_marker_turns_the_login_page_on(auth0_client: httpx.Client) -> None:
    page = auth0_client.get(authorize_url())
    assert page.status_code == 200
    assert "id=login-form" in page.text


def test_serve_takes_the_login_page_from_the_command_line_or_the_environment() -> None:
    import argparse

    from claimsengine.adapters.server import add_arguments, environment_defaults

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert parser.parse_args([]).login_page is False
    assert parser.parse_args(["--login-page"]).login_page is True
    environment_defaults(parser, {"CLAIMSENGINE_LOGIN_PAGE": "1"})
    assert parser.parse_args([]).login_page is True

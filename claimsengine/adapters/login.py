"""The fake's pages: the interactive login and consent pages, the session cookie, logout.

Only bytes move here. The core decides who is logged in (``AuthorizeRequest.session``,
``username``/``password_valid_for``), whether consent is needed, and where a logout goes
(``LogoutRequest``); this module renders its answers and keeps the session the core hands
back, sealed with the tenant's sealing secret (so every worker reads every other's cookie).

Names other code and tests build on (documented in ``docs/server.md``):

* ``SESSION_COOKIE`` (``auth0``): the sealed login session, ``HttpOnly; Secure; SameSite=None;
  Path=/`` (silent authentication runs in a third-party iframe).
* ``CSRF_COOKIE`` (``claimsengine_csrf``): the anti-forgery value the forms' sealed ``tx``
  token must carry, ``HttpOnly; Secure; SameSite=Lax; Path=/``.
* ``LOGIN_PATH`` (``POST /u/login``) and ``CONSENT_PATH`` (``POST /u/consent``): the forms.
* ``/v2/logout`` and ``/oidc/logout`` (``GET``, and ``POST`` for the latter).
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from html import escape
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qsl

import anyio.to_thread
from pydantic import BaseModel, ConfigDict
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from claimsengine import Authorized, LoggedOut, LogoutRequest, Rejected, Rule, Session, decide
from claimsengine.adapters import users, wire

if TYPE_CHECKING:
    from claimsengine.adapters.server import FakeTenant, Generation

__all__ = [
    "CONSENT_PATH",
    "CSRF_COOKIE",
    "LOGIN_PATH",
    "OIDC_LOGOUT_PATH",
    "SESSION_COOKIE",
    "V2_LOGOUT_PATH",
    "FormToken",
    "consent_submit",
    "interactive_authorize",
    "login_submit",
    "logout",
    "read_session",
]

SESSION_COOKIE = "auth0"
CSRF_COOKIE = "claimsengine_csrf"
LOGIN_PATH = "/u/login"
CONSENT_PATH = "/u/consent"
V2_LOGOUT_PATH = "/v2/logout"
OIDC_LOGOUT_PATH = "/oidc/logout"
SESSION_TYP = "claimsengine.session"
FORM_TYP = "claimsengine.form"
# How long a rendered form may be submitted (Auth0's login transaction lasts about as long).
FORM_LIFETIME = 15 * 60
# The rules after which the login page is shown (when the request may prompt).
_LOGIN_RULES = frozenset(
    {
        Rule.AUTHORIZE_LOGIN_REQUIRED,
        Rule.SESSION_EXPIRED,
        Rule.SESSION_IDLE_EXPIRED,
        Rule.SESSION_PROMPT_LOGIN,
        Rule.SESSION_USER_GONE,
        Rule.LOGIN_CREDENTIALS_INVALID,
        Rule.LOGIN_USER_BLOCKED,
    }
)
# Refusals shown on the login page itself rather than sent back to the application.
_SHOWN_ON_PAGE = frozenset({Rule.LOGIN_CREDENTIALS_INVALID, Rule.LOGIN_USER_BLOCKED})


class FormToken(BaseModel):
    """What a rendered form's hidden ``tx`` field carries, sealed: the ``/authorize`` query it
    continues, the browser's anti-forgery value and when the form was rendered."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    purpose: Literal["login", "consent"]
    query: tuple[tuple[str, str], ...]
    csrf: str
    issued_at: int


def _server() -> Any:
    from claimsengine.adapters import server

    return server


# ---------------------------------------------------------------------------------------
# The session cookie
# ---------------------------------------------------------------------------------------


def read_session(request: Request, generation: Generation) -> Session | None:
    """The browser's session from its cookie (``None``: none, or not sealed by this tenant)."""
    value = request.cookies.get(SESSION_COOKIE)
    return generation.minter.unseal(value, SESSION_TYP, Session) if value else None


def _keep_session(response: Response, generation: Generation, session: Session | None) -> None:
    if session is None:
        return
    # The cookie lasts as long as the session may (the core still checks both lifetimes).
    lifetime = round(generation.tenant.session_lifetime * 3600) - (session.last_seen - session.auth_time)
    response.set_cookie(
        SESSION_COOKIE,
        generation.minter.seal(SESSION_TYP, session),
        max_age=max(lifetime, 0),
        path="/",
        secure=True,
        httponly=True,
        samesite="none",
    )


def _end_session(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="none")


# ---------------------------------------------------------------------------------------
# /authorize with the login page
# ---------------------------------------------------------------------------------------


def _prompts(params: Mapping[str, Any]) -> bool:
    prompt = params.get("prompt")
    return "none" not in (prompt.split() if isinstance(prompt, str) else ())


async def interactive_authorize(request: Request, fake: FakeTenant, params: wire.Parameters) -> Response:
    """``GET /authorize`` with ``--login-page``: the session decides, or the login page asks."""
    generation = fake.generation
    session = read_session(request, generation)
    req = wire.authorize_request(params, domain=request.headers.get("host"), login={"session": session})
    decision = decide(req, generation.tenant, now=fake.now())
    hint = params.get("login_hint")  # prefills the form, as Universal Login does
    query = tuple(request.query_params.multi_items())
    return _answer(request, fake, generation, params, decision, query=query, username=hint if isinstance(hint, str) else "")


def _answer(
    request: Request,
    fake: FakeTenant,
    generation: Generation,
    params: wire.Parameters,
    decision: Authorized | Rejected,
    *,
    query: tuple[tuple[str, str], ...],
    username: str = "",
) -> Response:
    """The response to an interactive ``/authorize`` decision: the login page, the consent page,
    or the server's usual answer; the session the core hands back goes into the cookie."""
    if isinstance(decision, Rejected) and _prompts(params):
        if decision.rejected_by in _LOGIN_RULES:
            error = decision.error_description if decision.rejected_by in _SHOWN_ON_PAGE else None
            page = _login_page(request, fake, generation, params, query, error=error, username=username)
            page.headers.update(fake.observe("/authorize", _client_id(params), decision, page.status_code))
            return page
        if decision.rejected_by is Rule.CONSENT_REQUIRED:
            page = _consent_page(request, fake, generation, params, query)
            page.headers.update(fake.observe("/authorize", _client_id(params), decision, page.status_code))
            _keep_session(page, generation, decision.session)
            return page
    response: Response = _server().authorize_response(request, fake, generation, decision, _client_id(params))
    _keep_session(response, generation, decision.session)
    return response


def _client_id(params: Mapping[str, Any]) -> str | None:
    value = params.get("client_id")
    return value if isinstance(value, str) and value else None


def _csrf(request: Request) -> tuple[str, bool]:
    """The browser's anti-forgery value, and whether it is new (to be set as a cookie)."""
    existing = request.cookies.get(CSRF_COOKIE)
    if existing and len(existing) <= 64:
        return existing, False
    return secrets.token_urlsafe(24), True


def _form(
    request: Request, fake: FakeTenant, generation: Generation, query: tuple[tuple[str, str], ...], purpose: Literal["login", "consent"]
) -> tuple[str, str, bool]:
    csrf, new = _csrf(request)
    token = FormToken(purpose=purpose, query=query, csrf=csrf, issued_at=fake.now())
    return generation.minter.seal(FORM_TYP, token), csrf, new


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    html = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<meta name=viewport content='width=device-width'><title>{escape(title)}</title>"
        "<style>body{font-family:sans-serif;max-width:40em;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left;vertical-align:top}"
        "label{display:block;margin:.5em 0}#error-message{color:#b00020}</style></head>"
        f"<body>{body}</body></html>"
    )
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY"})


def _with_csrf_cookie(response: Response, csrf: str, new: bool) -> Response:
    if new:
        response.set_cookie(CSRF_COOKIE, csrf, path="/", secure=True, httponly=True, samesite="lax")
    return response


def _login_page(
    request: Request,
    fake: FakeTenant,
    generation: Generation,
    params: wire.Parameters,
    query: tuple[tuple[str, str], ...],
    *,
    error: str | None = None,
    username: str = "",
) -> Response:
    tx, csrf, new = _form(request, fake, generation, query, "login")
    tenant = generation.tenant
    client = tenant.index.clients.get(_client_id(params) or "")
    app = client.name or client.client_id if client is not None else ""
    alert = f"<p id=error-message role=alert>{escape(error)}</p>" if error else ""
    picks = "".join(
        f"<li><button type=submit name=pick value='{escape(u.user_id, quote=True)}'>{escape(u.email or u.user_id)}</button></li>"
        for u in tenant.users
        if not u.blocked
    )
    chooser = f"<h2>Or pick a user</h2><form method=post action='{LOGIN_PATH}'>{_hidden(tx)}<ul>{picks}</ul></form>" if picks else ""
    body = (
        f"<main><h1>Log in</h1><p>to continue to <strong id=application>{escape(app)}</strong> ({escape(tenant.domain)})</p>{alert}"
        f"<form method=post action='{LOGIN_PATH}' id=login-form>{_hidden(tx)}"
        "<label>Email address <input name=username id=username autocomplete=username required "
        f"value='{escape(username, quote=True)}'></label>"
        "<label>Password <input name=password id=password type=password autocomplete=current-password required></label>"
        "<button type=submit name=action value=default>Continue</button></form>"
        f"{chooser}</main>"
    )
    return _with_csrf_cookie(_page("Log in", body, status=401 if error else 200), csrf, new)


def _hidden(tx: str) -> str:
    return f"<input type=hidden name=tx value='{escape(tx, quote=True)}'>"


def _consent_page(
    request: Request, fake: FakeTenant, generation: Generation, params: wire.Parameters, query: tuple[tuple[str, str], ...]
) -> Response:
    tx, csrf, new = _form(request, fake, generation, query, "consent")
    tenant = generation.tenant
    client = tenant.index.clients.get(_client_id(params) or "")
    app = (client.name or client.client_id) if client is not None else ""
    scope = params.get("scope")
    scopes = "".join(f"<li>{escape(s)}</li>" for s in (scope.split() if isinstance(scope, str) else ()))
    audience = params.get("audience")
    api = f"<p>for <strong id=audience>{escape(audience)}</strong></p>" if isinstance(audience, str) and audience else ""
    body = (
        f"<main><h1>Authorize {escape(app)}</h1><p><strong id=application>{escape(app)}</strong> is requesting access to your account.</p>"
        f"{api}<ul id=scopes>{scopes}</ul>"
        f"<form method=post action='{CONSENT_PATH}' id=consent-form>{_hidden(tx)}"
        "<button type=submit name=decision value=accept>Accept</button> "
        "<button type=submit name=decision value=deny>Decline</button></form></main>"
    )
    return _with_csrf_cookie(_page("Authorize application", body), csrf, new)


async def _submitted(request: Request, fake: FakeTenant, purpose: str) -> tuple[dict[str, str], FormToken] | Response:
    """A form's fields and its checked ``tx`` token; an error page for a forged or stale form."""
    server = _server()
    try:
        pairs = parse_qsl((await server._read_body(request)).decode("utf-8"), keep_blank_values=True, max_num_fields=16)
    except (server.BodyError, UnicodeDecodeError, ValueError):
        return _page("Bad request", "<h1>Bad request</h1><p>The form could not be read.</p>", status=400)
    fields = dict(pairs)
    token = fake.generation.minter.unseal(fields.get("tx", ""), FORM_TYP, FormToken)
    csrf = request.cookies.get(CSRF_COOKIE, "")
    fresh = token is not None and 0 <= fake.now() - token.issued_at <= FORM_LIFETIME
    if token is None or token.purpose != purpose or not csrf or not secrets.compare_digest(token.csrf, csrf) or not fresh:
        # Never a decision: without a form this server rendered for this browser there is nothing to decide.
        body = (
            "<h1>Invalid form</h1><p id=error-message role=alert>"
            "The form has expired or was not sent from this page. Please start again.</p>"
        )
        return _page("Invalid form", body, status=403)
    return fields, token


async def login_submit(request: Request) -> Response:
    """``POST /u/login``: the login form (``username`` and ``password``, or ``pick``)."""
    return await _continue(request, "login", _login_facts)


async def consent_submit(request: Request) -> Response:
    """``POST /u/consent``: the consent page's answer (``decision=accept`` or ``deny``)."""
    return await _continue(request, "consent", _consent_facts)


Facts = Callable[[Mapping[str, str], "Generation", Session | None], Awaitable[dict[str, Any]]]


async def _continue(request: Request, purpose: Literal["login", "consent"], facts: Facts) -> Response:
    """A submitted form continues its ``/authorize`` request with what the user answered."""
    fake: FakeTenant = request.app.state.auth0
    submitted = await _submitted(request, fake, purpose)
    if isinstance(submitted, Response):
        return submitted
    fields, token = submitted
    generation = fake.generation
    params = wire.Parameters(token.query)
    fake.capture(request, {k: v for k, v in fields.items() if k != "tx"})  # the password is masked
    options = await facts(fields, generation, read_session(request, generation))
    req = wire.authorize_request(params, domain=request.headers.get("host"), **options)
    decision = decide(req, generation.tenant, now=fake.now())
    return _answer(request, fake, generation, params, decision, query=token.query, username=fields.get("username", ""))


async def _login_facts(fields: Mapping[str, str], generation: Generation, session: Session | None) -> dict[str, Any]:
    """The login's facts: the user picked, or the users whose bcrypt hash the password matches
    (checked in a worker thread: bcrypt is slow on purpose); a new session's id."""
    login: dict[str, Any] = {"session": session, "new_session_id": secrets.token_urlsafe(16)}
    picked = fields.get("pick") or None
    if picked is None:
        username = fields.get("username", "")
        matched = await anyio.to_thread.run_sync(users.password_matches, generation.tenant, username, fields.get("password", ""))
        login.update(username=username, password_valid_for=matched)
    return {"user_id": picked, "login": login}


async def _consent_facts(fields: Mapping[str, str], generation: Generation, session: Session | None) -> dict[str, Any]:
    return {"consent": fields.get("decision") == "accept", "login": {"session": session}}


# ---------------------------------------------------------------------------------------
# Logout
# ---------------------------------------------------------------------------------------

_V2_PARAMETERS = ("returnTo", "client_id")
_OIDC_PARAMETERS = ("post_logout_redirect_uri", "client_id", "id_token_hint", "logout_hint", "state", "federated", "ui_locales")


async def logout(request: Request) -> Response:
    """``GET /v2/logout`` and ``GET``/``POST /oidc/logout``: end the session, then go back."""
    fake: FakeTenant = request.app.state.auth0
    generation = fake.generation
    oidc = request.url.path == OIDC_LOGOUT_PATH
    pairs: Sequence[tuple[str, str]] = request.query_params.multi_items()
    if request.method == "POST":
        server = _server()
        try:
            pairs = parse_qsl((await server._read_body(request)).decode("utf-8"), keep_blank_values=True, max_num_fields=16)
        except (server.BodyError, UnicodeDecodeError, ValueError):
            return _page("Bad request", "<h1>Bad request</h1>", status=400)
    params = wire.Parameters(pairs)
    fake.capture(request, params)
    names = _OIDC_PARAMETERS if oidc else _V2_PARAMETERS
    values = {name: value for name in names if isinstance(value := params.get(name), str)}
    repeated = tuple(name for name in params.repeated if name in names)
    hint = values.get("id_token_hint")
    claims = None
    if oidc and hint:
        verified = generation.minter.verify_jwt(hint, audience="")
        claims = verified.claims if verified is not None else None
    # federated needs no value (a POST to /oidc/logout may send true or false).
    federated = "federated" in params and str(params.get("federated")).strip().lower() != "false"
    req = LogoutRequest(
        domain=request.headers.get("host"),
        endpoint="oidc" if oidc else "v2",
        client_id=values.get("client_id"),
        return_to=values.get("post_logout_redirect_uri" if oidc else "returnTo"),
        federated=federated,
        id_token_hint=bool(hint),
        hint_claims=claims,
        logout_hint=values.get("logout_hint"),
        state=values.get("state"),
        session=read_session(request, generation),
        repeated=repeated,
    )
    decision = decide(req, generation.tenant, now=fake.now())
    endpoint = OIDC_LOGOUT_PATH if oidc else V2_LOGOUT_PATH
    if isinstance(decision, Rejected):
        page: Response = _server()._error_page(decision, request)
        page.headers.update(fake.observe(endpoint, req.client_id, decision, decision.status))
        return page
    assert isinstance(decision, LoggedOut)
    if decision.redirect_uri is not None:
        location = decision.redirect_uri
        if decision.state is not None:
            location = _server()._with_query(location, {"state": decision.state})
        response: Response = RedirectResponse(location, status_code=302, headers={"Cache-Control": "no-store"})
    else:
        response = _page("Logged out", "<main><h1>You have been logged out</h1><p id=logged-out>Your session has ended.</p></main>")
    response.headers.update(fake.observe(endpoint, req.client_id, decision, response.status_code))
    _end_session(response)
    return response

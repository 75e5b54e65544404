"""Login sessions and logout (issue 10 item 3, issue 9 item 7).

Who is logged in at ``/authorize``: a user who just logged in (the login form's credentials,
or a user the adapter logged in without a form), else the browser's session while it lasts.
A session is a value: the adapter keeps it sealed in a cookie and gives it back as a fact;
the core decides whether it still logs the user in (``session_lifetime``, the absolute
lifetime from the login, and ``idle_session_lifetime``, from the last use, both tenant
settings in hours), and what the browser keeps afterwards (the session, used now, with the
consents given during it: Auth0 remembers a user's grants, so a consent is not asked twice).

Logout (``/v2/logout`` and ``/oidc/logout``) ends the session and picks where the user goes
next from the Allowed Logout URLs of the application or of the tenant.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from claimsengine.model import AuthorizeRequest, Client, Consent, LoggedOut, LogoutRequest, Rejected, Session, User
from claimsengine.rules import ErrorCode, Rule
from claimsengine.steps import Trace, clean, repeated_parameters, resolve_domain, split_scope

__all__ = [
    "LOGIN_BLOCKED",
    "WRONG_CREDENTIALS",
    "authenticated",
    "logout",
    "logout_url_allowed",
    "remember_consent",
]

WRONG_CREDENTIALS = "Wrong email or password."
LOGIN_BLOCKED = "user is blocked"
_HOUR = 3600


def authenticated(req: AuthorizeRequest, t: Trace) -> tuple[User, Session | None] | Rejected:
    """The user ``/authorize`` goes on with, and the session the browser keeps (``None``: none)."""
    username = clean(req.username)
    if username is not None:
        return _form_login(req, username, t)
    if req.user_id is not None:
        user = t.index.users.get(req.user_id)
        if user is None:
            return t.reject(Rule.AUTHORIZE_LOGIN_REQUIRED, ErrorCode.LOGIN_REQUIRED, "Login required", detail="no authenticated user")
        return user, _started(user, req, t, "logged in")  # without a session: as before, no step of its own
    session = req.session
    if session is None:
        return t.reject(Rule.AUTHORIZE_LOGIN_REQUIRED, ErrorCode.LOGIN_REQUIRED, "Login required", detail="no authenticated user")
    return _resumed(session, req, t)


def _form_login(req: AuthorizeRequest, username: str, t: Trace) -> tuple[User, Session | None] | Rejected:
    # login.credentials_invalid: one answer for an unknown user and a wrong password, as the
    # password grant's (facts-issue9 P4); the password itself never reaches the core.
    lowered = username.lower()
    connection = clean(t.tenant.default_directory)
    user = next(
        (
            u
            for u in t.tenant.users
            if (connection is None or u.connection == connection) and ((u.email or "").lower() == lowered or u.username == username)
        ),
        None,
    )
    if user is None:
        return t.reject(Rule.LOGIN_CREDENTIALS_INVALID, ErrorCode.ACCESS_DENIED, WRONG_CREDENTIALS, detail="no such user")
    ref = t.index.ref(user)
    if user.user_id not in req.password_valid_for:
        return t.reject(
            Rule.LOGIN_CREDENTIALS_INVALID, ErrorCode.ACCESS_DENIED, WRONG_CREDENTIALS, detail="the password does not match", ref=ref
        )
    if user.blocked:
        return t.reject(Rule.LOGIN_USER_BLOCKED, ErrorCode.ACCESS_DENIED, LOGIN_BLOCKED, ref=ref)
    return user, _started(user, req, t, "the password matches")


def _started(user: User, req: AuthorizeRequest, t: Trace, how: str) -> Session | None:
    """login.succeeded: a login starts a session when the adapter gave it an id; consents given
    in the browser's earlier session by the same user are kept."""
    ref = t.index.ref(user)
    new_id = clean(req.new_session_id)
    if new_id is None:
        if req.user_id is None:  # a form login is a step of the trace; a given user_id is not
            t.note(Rule.LOGIN_SUCCEEDED, f"{user.user_id}: {how}", ref)
        return None
    kept = req.session.consents if req.session is not None and req.session.user_id == user.user_id else ()
    t.note(Rule.LOGIN_SUCCEEDED, f"{user.user_id}: {how}; a session starts", ref)
    return Session(session_id=new_id, user_id=user.user_id, auth_time=t.now, last_seen=t.now, consents=kept)


def _resumed(session: Session, req: AuthorizeRequest, t: Trace) -> tuple[User, Session | None] | Rejected:
    if "login" in split_scope(req.prompt):
        # session.prompt_login: prompt=login asks for a login whatever the session.
        return t.reject(Rule.SESSION_PROMPT_LOGIN, ErrorCode.LOGIN_REQUIRED, "Login required", detail="prompt=login")
    limits = (
        (session.auth_time, t.tenant.session_lifetime, Rule.SESSION_EXPIRED, "the session outlived session_lifetime", "session_lifetime"),
        (
            session.last_seen,
            t.tenant.idle_session_lifetime,
            Rule.SESSION_IDLE_EXPIRED,
            "the session was idle longer than idle_session_lifetime",
            "idle_session_lifetime",
        ),
    )
    for since, hours, rule, detail, setting in limits:
        if t.now >= since + round(hours * _HOUR):
            return t.reject(rule, ErrorCode.LOGIN_REQUIRED, "Login required", detail=detail, ref=setting)
    user = t.index.users.get(session.user_id)
    if user is None or user.blocked:
        return t.reject(Rule.SESSION_USER_GONE, ErrorCode.LOGIN_REQUIRED, "Login required", detail="the session's user cannot log in")
    t.note(Rule.SESSION_VALID, f"{user.user_id}, logged in at {session.auth_time}", t.index.ref(user))
    return user, session.model_copy(update={"last_seen": t.now})


def remember_consent(session: Session | None, consent: Consent | None) -> Session | None:
    """The session with a consent just given added (Auth0 keeps a user's grants)."""
    if session is None or consent is None:
        return session
    return session.model_copy(update={"consents": (*session.consents, consent)})


# ---------------------------------------------------------------------------------------
# Logout
# ---------------------------------------------------------------------------------------


def logout(req: LogoutRequest, t: Trace) -> LoggedOut | Rejected:
    """``/v2/logout`` or ``/oidc/logout``: where to send the user, and the session to end."""
    served = resolve_domain(req.domain, t)
    refused = served if isinstance(served, Rejected) else repeated_parameters(req.repeated, t)
    if refused is not None:
        return refused
    client_id = clean(req.client_id)
    oidc = req.endpoint == "oidc"
    if oidc and req.id_token_hint:
        hinted = _hint(req, client_id, t)
        if isinstance(hinted, Rejected):
            return hinted
        client_id = hinted
    client: Client | None = None
    if client_id is not None:
        client = t.index.clients.get(client_id)
        if client is None:
            return t.reject(Rule.LOGOUT_CLIENT_UNKNOWN, ErrorCode.INVALID_REQUEST, f"Unknown client: {client_id}", ref="clients")
        t.client_id = client_id
    allowed, where = (
        (client.allowed_logout_urls, t.index.ref(client)) if client is not None else (t.tenant.allowed_logout_urls, "allowed_logout_urls")
    )
    if req.federated:
        t.note(Rule.LOGOUT_FEDERATED, "no upstream identity provider to log out of")
    target = clean(req.return_to)
    name = "post_logout_redirect_uri" if oidc else "returnTo"
    if target is None:
        if client is not None and allowed:
            t.note(Rule.LOGOUT_RETURN_TO_DEFAULT, allowed[0], where)
            return _ended(req, allowed[0], t)
        t.note(Rule.LOGOUT_NO_RETURN_TO, f"no {name}: the logged-out page")
        return _ended(req, None, t)
    if not logout_url_allowed(target, allowed, query_counts=oidc):
        return t.reject(
            Rule.LOGOUT_RETURN_TO_NOT_ALLOWED,
            ErrorCode.INVALID_REQUEST,
            f'The "{name}" querystring parameter "{target}" is not defined as a valid URL in "Allowed Logout URLs".',
            ref=where,
        )
    t.note(Rule.LOGOUT_RETURN_TO_ALLOWED, target, where)
    return _ended(req, target, t)


def _hint(req: LogoutRequest, client_id: str | None, t: Trace) -> str | Rejected:
    """The application an ``id_token_hint`` names (its ``aud``), checked against ``client_id``
    and ``logout_hint``."""
    claims = req.hint_claims or {}
    aud, sid = claims.get("aud"), claims.get("sid")
    audience = aud if isinstance(aud, str) else None
    if audience is None or audience not in t.index.clients:
        return t.reject(
            Rule.LOGOUT_HINT_INVALID, ErrorCode.INVALID_REQUEST, "Invalid id_token_hint", detail="not an ID token of this tenant"
        )
    if client_id is not None and client_id != audience:
        return t.reject(
            Rule.LOGOUT_HINT_MISMATCH, ErrorCode.INVALID_REQUEST, "The client_id does not match the aud claim of the id_token_hint"
        )
    hint = clean(req.logout_hint)
    if hint is not None and hint != sid:
        return t.reject(
            Rule.LOGOUT_HINT_MISMATCH, ErrorCode.INVALID_REQUEST, "The logout_hint does not match the sid claim of the id_token_hint"
        )
    t.note(Rule.LOGOUT_HINT_VALID, f"ID token for {audience}", t.index.ref(t.index.clients[audience]))
    return audience


def _ended(req: LogoutRequest, redirect_uri: str | None, t: Trace) -> LoggedOut:
    session = req.session
    t.note(Rule.LOGOUT_SESSION_ENDED, f"session {session.session_id} ends" if session is not None else "no session to end")
    state = clean(req.state) if req.endpoint == "oidc" and redirect_uri is not None else None
    return LoggedOut(
        redirect_uri=redirect_uri, state=state, session_id=session.session_id if session is not None else None, trace=tuple(t.reasons)
    )


def logout_url_allowed(url: str, allowed: tuple[str, ...], *, query_counts: bool) -> bool:
    """Whether ``url`` is one of ``allowed``. Scheme, host, port and path must match; ``*`` in
    an allowed host stands for one subdomain label (``https://*.example.com``). For
    ``/v2/logout`` a URL's query and fragment are not taken into account; for ``/oidc/logout``
    the query must match too (Auth0's docs)."""
    try:
        given = urlsplit(url)
        given_port = given.port
    except ValueError:
        return False
    if not given.scheme or not given.hostname:
        return False
    for entry in allowed:
        try:
            pattern = urlsplit(entry.strip())
            pattern_port = pattern.port
        except ValueError:
            continue
        same = (
            pattern.scheme.lower() == given.scheme.lower()
            and _host_matches(pattern.hostname or "", given.hostname)
            and pattern_port == given_port
            and (pattern.path or "/") == (given.path or "/")
        )
        if same and (not query_counts or pattern.query == given.query):
            return True
    return False


def _host_matches(pattern: str, host: str) -> bool:
    if pattern.startswith("*."):
        label, dot, rest = host.partition(".")
        return bool(label) and bool(dot) and rest == pattern[2:]
    return pattern == host

"""Login sessions and logout in the core: invariants as Hypothesis properties (each name is the
sentence it proves), and the edges the golden cases in specs/cases/sessions.json do not pin."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from claimsengine import (
    Authorized,
    AuthorizeRequest,
    LoggedOut,
    LogoutRequest,
    Rejected,
    Rule,
    Session,
    Tenant,
    decide,
)
from claimsengine.sessions import logout_url_allowed
from claimsengine.testing import authorize_requests, tenants

NOW = 1_700_000_000
HOUR = 3600
LOGIN_RULES = {Rule.SESSION_EXPIRED, Rule.SESSION_IDLE_EXPIRED, Rule.SESSION_PROMPT_LOGIN, Rule.SESSION_USER_GONE}


@st.composite
def session_requests(draw: st.DrawFn) -> tuple[Tenant, AuthorizeRequest, Session]:
    """A tenant, an /authorize request with no login of its own, and a session of a drawn age."""
    tenant = draw(tenants())
    request = draw(authorize_requests(tenant))
    user_ids = [u.user_id for u in tenant.users] or ["auth0|nobody"]
    age = draw(st.integers(min_value=0, max_value=400 * HOUR))
    idle = draw(st.integers(min_value=0, max_value=age))
    session = Session(session_id="sid", user_id=draw(st.sampled_from(user_ids)), auth_time=NOW - age, last_seen=NOW - idle)
    return tenant, request.model_copy(update={"user_id": None, "session": session}), session


@given(session_requests())
def test_a_session_never_logs_in_after_its_absolute_or_idle_lifetime(drawn: tuple[Tenant, AuthorizeRequest, Session]) -> None:
    tenant, request, session = drawn
    decision = decide(request, tenant, now=NOW)
    over = session.auth_time + tenant.session_lifetime * HOUR <= NOW or session.last_seen + tenant.idle_session_lifetime * HOUR <= NOW
    if over:
        assert not isinstance(decision, Authorized)
    if isinstance(decision, Authorized):
        assert decision.grant.user_id == session.user_id
        assert decision.grant.auth_time == session.auth_time
        assert decision.session is not None
        assert decision.session.last_seen == NOW  # using a session restarts its idle timer


@given(session_requests())
def test_a_session_that_logged_in_hands_itself_back_used_now(drawn: tuple[Tenant, AuthorizeRequest, Session]) -> None:
    tenant, request, session = drawn
    decision = decide(request, tenant, now=NOW)
    rules = {r.rule for r in decision.trace}
    if Rule.SESSION_VALID in rules:
        assert decision.session is not None
        assert decision.session.session_id == session.session_id
        assert decision.session.last_seen == NOW
    elif isinstance(decision, Rejected) and decision.rejected_by in LOGIN_RULES:
        assert decision.session is None


@st.composite
def form_logins(draw: st.DrawFn) -> tuple[Tenant, AuthorizeRequest]:
    """A login form's submission: a user's e-mail (or nobody's) and the users the password matched."""
    tenant = draw(tenants())
    request = draw(authorize_requests(tenant))
    emails = [u.email for u in tenant.users if u.email] or ["nobody@example.test"]
    matched = draw(st.lists(st.sampled_from([u.user_id for u in tenant.users] or ["auth0|nobody"]), max_size=2, unique=True))
    login = {"user_id": None, "username": draw(st.sampled_from(emails)), "password_valid_for": tuple(matched), "new_session_id": "new"}
    return tenant, request.model_copy(update=login)


@given(form_logins())
def test_a_login_form_never_logs_in_a_user_whose_password_did_not_match(drawn: tuple[Tenant, AuthorizeRequest]) -> None:
    tenant, request = drawn
    decision = decide(request, tenant, now=NOW)
    if isinstance(decision, Authorized):
        assert decision.grant.user_id in request.password_valid_for
        assert decision.session is not None
        assert decision.session.auth_time == NOW
        assert decision.grant.session_id == "new"


URLS = st.sampled_from(
    [
        "https://app.example.test/",
        "https://app.example.test/?next=1",
        "https://a.app.example.test/",
        "https://a.b.app.example.test/",
        "http://app.example.test/",
        "https://app.example.test:8443/",
        "https://evil.example/",
        "not a url",
        "https://app.example.test:99999/",
        "//app.example.test/",
    ]
)


@given(
    endpoint=st.sampled_from(["v2", "oidc"]),
    client_id=st.sampled_from([None, "web-1", "nope"]),
    return_to=URLS | st.none(),
    client_urls=st.lists(URLS, max_size=3),
    tenant_urls=st.lists(URLS, max_size=2),
)
def test_logout_only_ever_redirects_to_an_allowed_logout_url(
    endpoint: str, client_id: str | None, return_to: str | None, client_urls: list[str], tenant_urls: list[str]
) -> None:
    tenant = Tenant.model_validate(
        {
            "domain": "x.auth0.com",
            "allowed_logout_urls": tenant_urls,
            "clients": [{"client_id": "web-1", "allowed_logout_urls": client_urls}],
        }
    )
    request = LogoutRequest.model_validate({"domain": "x.auth0.com", "endpoint": endpoint, "client_id": client_id, "return_to": return_to})
    decision = decide(request, tenant, now=NOW)
    allowed = tuple(client_urls) if client_id == "web-1" else tuple(tenant_urls)
    if isinstance(decision, LoggedOut) and decision.redirect_uri is not None:
        if return_to is None:
            assert decision.redirect_uri == allowed[0]
        else:
            assert decision.redirect_uri == return_to
            assert logout_url_allowed(return_to, allowed, query_counts=endpoint == "oidc")
    if client_id == "nope":
        assert isinstance(decision, Rejected)


def test_logout_urls_match_scheme_host_port_and_path() -> None:
    allowed = ("https://*.app.example.test/bye", "https://app.example.test:8443/", "https://bad:port/", "https://app.example.test/?q")
    assert logout_url_allowed("https://a.app.example.test/bye?x=1", allowed, query_counts=False)
    assert not logout_url_allowed("https://a.app.example.test/bye?x=1", allowed, query_counts=True)
    assert not logout_url_allowed("https://a.b.app.example.test/bye", allowed, query_counts=False)  # one label
    assert not logout_url_allowed("https://app.example.test/bye", allowed, query_counts=False)
    assert logout_url_allowed("https://app.example.test:8443", allowed, query_counts=False)
    assert logout_url_allowed("https://app.example.test/?q", allowed, query_counts=True)
    assert not logout_url_allowed("https://app.example.test:bad/", allowed, query_counts=False)
    assert not logout_url_allowed("app.example.test/bye", allowed, query_counts=False)


def test_a_logout_through_an_unknown_host_or_with_repeated_parameters_is_refused() -> None:
    tenant = Tenant.model_validate({"domain": "x.auth0.com", "behaviour": {"unknown_host": "reject", "repeated_parameters": "reject"}})
    unknown = decide(LogoutRequest(domain="evil.example"), tenant, now=NOW)
    assert isinstance(unknown, Rejected)
    assert unknown.rejected_by is Rule.DOMAIN_UNKNOWN
    repeated = decide(LogoutRequest(domain="x.auth0.com", repeated=("returnTo",)), tenant, now=NOW)
    assert isinstance(repeated, Rejected)
    assert repeated.rejected_by is Rule.PARAMETER_REPEATED

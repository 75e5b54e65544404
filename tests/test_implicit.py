"""Implicit and hybrid response types, response modes and prompt=none (issue 9, item 6).

The core decides the response type, the mode and the parameters; these properties hold for
every request Hypothesis builds from the words and modes below, over the spec tenant.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from claimsengine import Authorized, AuthorizeRequest, Rejected, Tenant, decide
from claimsengine.responses import RESPONSE_TYPES, ResponseMode, parse_response_type, wire_response_type
from claimsengine.rules import Rule

ROOT = Path(__file__).resolve().parent.parent
NOW = 1767226500
ORDERS = "https://api.northwind.com/orders"
SPA = "nw-spa-0001"  # authorization_code, refresh_token and implicit
IMPLICIT = "nw-implicit-0001"  # implicit only
WEB = "nw-web-0001"  # no implicit
BASE: dict[str, Any] = json.loads((ROOT / "specs" / "tenants" / "northwind.json").read_text(encoding="utf-8"))
TENANT = Tenant.model_validate(BASE)

WORDS = ("code", "token", "id_token")
response_types = st.lists(st.sampled_from((*WORDS, "device", "none")), min_size=0, max_size=4).map(" ".join)
response_modes = st.sampled_from((None, *(m.value for m in ResponseMode), "jwt", ""))
clients = st.sampled_from((SPA, IMPLICIT, WEB, "nw-thirdweb-0001"))
scopes = st.sampled_from(("openid", "openid profile email", "openid read:orders offline_access", "profile", ""))
audiences = st.sampled_from((None, ORDERS, "https://reports.northwind.com"))
nonces = st.sampled_from((None, "n-0S6_WzA2Mj", " "))


@st.composite
def authorize_requests(draw: st.DrawFn) -> AuthorizeRequest:
    return AuthorizeRequest(
        domain="northwind.auth0.com",
        response_type=draw(response_types),
        response_mode=draw(response_modes),
        client_id=draw(clients),
        scope=draw(scopes),
        audience=draw(audiences),
        nonce=draw(nonces),
        state=draw(st.sampled_from((None, "st-1"))),
        prompt=draw(st.sampled_from((None, "none", "consent"))),
        user_id=draw(st.sampled_from(("auth0|alice", "auth0|bob", None))),
        consent=True,
    )


def tokens_in(decision: Authorized) -> bool:
    return decision.access is not None or decision.id_token is not None


@given(authorize_requests())
def test_a_token_never_travels_in_a_query_string(req: AuthorizeRequest) -> None:
    decision = decide(req, TENANT, now=NOW)
    if isinstance(decision, Authorized) and tokens_in(decision):
        assert decision.response_mode is not ResponseMode.QUERY
    if req.response_mode == "query" and isinstance(decision, Rejected) and decision.redirect_uri is not None:
        # An error may go to the query; a request for a token there never got that far.
        kind = parse_response_type(req.response_type or "")
        assert kind is None or kind == frozenset({"code"})


@given(authorize_requests())
def test_an_authorize_answer_always_names_its_response_mode(req: AuthorizeRequest) -> None:
    decision = decide(req, TENANT, now=NOW)
    if isinstance(decision, Rejected):
        # Sent to the callback: in a mode; shown on Auth0's page: in none.
        assert (decision.response_mode is None) == (decision.redirect_uri is None)


@given(authorize_requests())
def test_authorize_issues_exactly_what_the_response_type_names(req: AuthorizeRequest) -> None:
    decision = decide(req, TENANT, now=NOW)
    if not isinstance(decision, Authorized):
        return
    kind = parse_response_type(req.response_type or "")
    assert kind is not None
    assert decision.response_type == wire_response_type(kind)
    assert decision.code == ("code" in kind)
    assert (decision.access is not None) == ("token" in kind)
    assert (decision.id_token is not None) == ("id_token" in kind)
    if "token" in kind or "id_token" in kind:
        assert "implicit" in TENANT.index.clients[decision.grant.client_id].effective_grant_types
    if "code" in kind:
        assert "authorization_code" in TENANT.index.clients[decision.grant.client_id].effective_grant_types


@given(authorize_requests())
def test_an_id_token_from_authorize_carries_the_nonce_and_the_hashes_it_needs(req: AuthorizeRequest) -> None:
    decision = decide(req, TENANT, now=NOW)
    kind = parse_response_type(req.response_type or "") or frozenset()
    if isinstance(decision, Authorized) and decision.id_token is not None:
        assert decision.id_token["nonce"] == (req.nonce or "").strip()
        assert ("at_hash" in decision.id_token_hashes) == ("token" in kind)
        assert ("c_hash" in decision.id_token_hashes) == ("code" in kind)
    if "id_token" in kind and not (req.nonce or "").strip():
        assert not isinstance(decision, Authorized)


@given(authorize_requests())
def test_authorize_never_returns_a_refresh_token(req: AuthorizeRequest) -> None:
    decision = decide(req, TENANT, now=NOW)
    if isinstance(decision, Authorized) and decision.access is not None:
        assert decision.access.refresh is None
        assert decision.access.id_token is None


@given(
    st.integers(min_value=1, max_value=86400),
    st.sampled_from(("token", "code token", "id_token token", "code id_token token")),
    st.sampled_from((ResponseMode.FRAGMENT, ResponseMode.FORM_POST, ResponseMode.WEB_MESSAGE)),
)
def test_an_implicit_access_token_lives_token_lifetime_for_web(for_web: int, response_type: str, mode: ResponseMode) -> None:
    apis = [{**api, "token_lifetime_for_web": for_web} if api["identifier"] == ORDERS else api for api in BASE["apis"]]
    tenant = Tenant.model_validate({**BASE, "apis": apis})
    req = AuthorizeRequest(
        domain="northwind.auth0.com",
        response_type=response_type,
        response_mode=mode.value,
        client_id=SPA,
        audience=ORDERS,
        scope="openid read:orders",
        nonce="n",
        user_id="auth0|alice",
    )
    decision = decide(req, tenant, now=NOW)
    assert isinstance(decision, Authorized)
    assert decision.access is not None
    # token_lifetime is 86400 for the orders API: token_lifetime_for_web never exceeds it here.
    assert decision.access.expires_in == for_web
    assert decision.access.claims["exp"] - decision.access.claims["iat"] == for_web
    assert Rule.LIFETIME_API_WEB in {reason.rule for reason in decision.trace}


def test_token_lifetime_for_web_never_exceeds_token_lifetime() -> None:
    apis = [{**api, "token_lifetime": 600, "token_lifetime_for_web": 7200} if api["identifier"] == ORDERS else api for api in BASE["apis"]]
    tenant = Tenant.model_validate({**BASE, "apis": apis})
    req = AuthorizeRequest(domain="northwind.auth0.com", response_type="token", client_id=SPA, audience=ORDERS, user_id="auth0|alice")
    decision = decide(req, tenant, now=NOW)
    assert isinstance(decision, Authorized)
    assert decision.access is not None
    assert decision.access.expires_in == 600


@given(st.sampled_from(RESPONSE_TYPES), st.sampled_from((SPA, IMPLICIT)))
def test_the_order_of_response_type_words_does_not_change_the_decision(kind: frozenset[str], client_id: str) -> None:
    decisions = [
        decide(
            AuthorizeRequest(
                domain="northwind.auth0.com",
                response_type=" ".join(order),
                client_id=client_id,
                scope="openid profile",
                nonce="n",
                state="s",
                user_id="auth0|alice",
            ),
            TENANT,
            now=NOW,
        ).model_dump(mode="json")
        for order in itertools.permutations(sorted(kind))
    ]
    assert all(d == decisions[0] for d in decisions)


def test_a_repeated_response_type_word_is_not_a_response_type() -> None:
    assert parse_response_type("code code") is None
    assert parse_response_type("") is None
    assert parse_response_type("token  id_token") == frozenset({"token", "id_token"})

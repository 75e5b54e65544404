"""Totality: no input makes the core, the wire parsers or the server raise (no 500s).

Strings here are any text: lone surrogates (a JSON body may carry ``"\\ud800"``), non-ASCII and
control characters. Values are any JSON type, headers any bytes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from claimsengine import AuthorizeRequest, PresentedToken, Rejected, Tenant, TokenRequest, decide, validate_access_token
from claimsengine.adapters import wire
from claimsengine.adapters.loader import load_tenant
from claimsengine.adapters.server import EXAMPLE_TENANT, asgi_client, create_app
from claimsengine.adapters.signing import KeySet
from claimsengine.testing import requests_for, tenants

NOW = 1_800_000_000
EXAMPLE = load_tenant(EXAMPLE_TENANT).tenant
M2M = {"client_id": "nw-m2m-0001", "client_secret": "example-billing-secret-not-for-production"}

# Any character, with lone surrogates and control characters drawn often.
hostile_chars = st.one_of(st.characters(), st.integers(0xD800, 0xDFFF).map(chr), st.integers(0, 0x1F).map(chr))
hostile_text = st.text(hostile_chars, max_size=40)
json_values: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | hostile_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(hostile_text, inner, max_size=3),
    max_leaves=8,
)

TOKEN_TEXT_FIELDS = (
    *("domain", "grant_type", "client_id", "basic_client_id", "client_assertion_type", "audience", "resource"),
    *("scope", "organization", "code_verifier", "redirect_uri"),
)
TOKEN_SECRET_FIELDS = ("client_secret", "basic_client_secret", "code", "refresh_token")
# Every field that carries text from the query (the others are facts of other types, e.g. the session).
AUTHORIZE_TEXT_FIELDS = tuple(name for name, field in AuthorizeRequest.model_fields.items() if field.annotation == str | None)


def _assert_renderable(decision: object) -> None:
    """A rejection's texts, as the server sends them and as the trace explains them, encode as UTF-8."""
    if isinstance(decision, Rejected):
        json.dumps(wire.error_body(decision), ensure_ascii=False).encode("utf-8")
        "".join(r.detail for r in decision.trace).encode("utf-8")


@st.composite
def hostile_token_requests(draw: st.DrawFn, tenant: Tenant) -> TokenRequest:
    """A drawn request with any of its text fields replaced by hostile text."""
    base = draw(requests_for(tenant).filter(lambda r: isinstance(r, TokenRequest)))
    changes: dict[str, Any] = {}
    for name in draw(st.sets(st.sampled_from(TOKEN_TEXT_FIELDS + TOKEN_SECRET_FIELDS), min_size=1)):
        text = draw(hostile_text)
        changes[name] = SecretStr(text) if name in TOKEN_SECRET_FIELDS else text
    return TokenRequest.model_validate({**dict(base), **changes})


@settings(max_examples=100)
@given(st.data())
def test_decide_never_raises_on_any_string_in_a_token_request(data: st.DataObject) -> None:
    tenant = data.draw(st.just(EXAMPLE) | tenants())
    request = data.draw(hostile_token_requests(tenant))
    _assert_renderable(decide(request, tenant, now=NOW))


@given(st.dictionaries(st.sampled_from(AUTHORIZE_TEXT_FIELDS), hostile_text), st.sampled_from([None, True, False]))
def test_decide_never_raises_on_any_string_in_an_authorize_request(fields: dict[str, str], consent: bool | None) -> None:
    base = {"client_id": "nw-spa-0001", "redirect_uri": "https://shop.northwind.com/callback", "user_id": "auth0|alice"}
    # Values the core echoes unchanged (state, nonce) are the caller's to render.
    _assert_renderable(decide(AuthorizeRequest.model_validate({**base, **fields, "consent": consent}), EXAMPLE, now=NOW))


def test_a_lone_surrogate_in_a_secret_or_a_plain_verifier_is_a_rejection() -> None:
    secret = TokenRequest(grant_type="client_credentials", client_id=M2M["client_id"], client_secret=SecretStr("\ud800"), audience="x")
    assert isinstance(decide(secret, EXAMPLE, now=NOW), Rejected)
    echoed = TokenRequest(grant_type="client_credentials", **M2M, audience="https://api\ud800")  # type: ignore[arg-type]
    rejected = decide(echoed, EXAMPLE, now=NOW)
    assert isinstance(rejected, Rejected)
    assert "\ud800" not in rejected.error_description
    assert "\ufffd" in rejected.error_description  # shown as U+FFFD, the rest as sent
    assert all("\ud800" not in r.detail for r in rejected.trace)


@settings(max_examples=100)
@given(st.dictionaries(hostile_text, json_values, max_size=6), st.dictionaries(hostile_text, json_values, max_size=12), hostile_text)
def test_validate_access_token_never_raises_on_any_json_header_or_claims(header: dict[str, Any], claims: dict[str, Any], aud: str) -> None:
    for name in ("iss", "aud", "exp", "iat", "nbf", "sub", "scope", "azp", "org_id", "gty"):
        claims.setdefault(name, None)
    domain = EXAMPLE.domain
    claims["iss"] = claims["iss"] if isinstance(claims["iss"], str) and claims["iss"] else f"https://{domain}/"
    for audience in (aud, "https://api.northwind.com/orders", EXAMPLE.userinfo_audience):
        token = PresentedToken(header=header, claims=claims)
        _assert_renderable(validate_access_token(token, audience=audience, domain=domain, tenant=EXAMPLE, now=NOW))


@given(st.dictionaries(st.sampled_from((*wire.TOKEN_PARAMETERS, "client_assertion")) | hostile_text, json_values), hostile_text)
def test_the_wire_parsers_never_raise_on_any_json_parameters_or_header(params: dict[str, Any], header: str) -> None:
    request = wire.token_request(params, domain=header, authorization=header)
    decide(request, EXAMPLE, now=NOW)
    wire.authorize_request(params, domain=header)
    wire.redact_query("/x?" + "&".join(f"{k}={v}" for k, v in params.items()))


@given(st.binary(max_size=64), st.sampled_from(["Basic ", "basic  ", "Bearer ", ""]))
def test_basic_credentials_never_raise_on_any_header_bytes(raw: bytes, scheme: str) -> None:
    # HTTP servers hand header values over as latin-1 text: every byte is one character.
    client_id, secret = wire.basic_credentials(scheme + raw.decode("latin-1"))
    assert client_id is None or isinstance(client_id, str)
    assert secret is None or isinstance(secret.get_secret_value(), str)


def test_a_non_ascii_basic_header_is_an_authentication_failure_not_an_error() -> None:
    assert wire.basic_credentials("Basic é") == ("", None)
    assert wire.basic_credentials("Basic \x00\xff") == ("", None)


@pytest.fixture(scope="module")
def server() -> Iterator[httpx.Client]:
    with asgi_client(create_app(EXAMPLE, keys=KeySet.generate(seed=3), default_user="auth0|alice")) as client:
        yield client


@settings(max_examples=40)
@given(st.dictionaries(st.sampled_from((*wire.TOKEN_PARAMETERS, "client_assertion")), json_values), st.binary(max_size=48))
def test_the_token_endpoint_never_answers_500_to_any_json_body_or_authorization_bytes(
    server: httpx.Client, params: dict[str, Any], authorization: bytes
) -> None:
    body = json.dumps({**M2M, **params}).encode()  # ensure_ascii: surrogates travel as \\ud800
    headers = [(b"content-type", b"application/json"), (b"authorization", authorization.replace(b"\r", b"").replace(b"\n", b""))]
    response = server.post("/oauth/token", content=body, headers=headers)
    assert response.status_code < 500, response.text
    response.json()

"""Secrets never appear in logs, reprs, traces or error texts; redaction is case-insensitive
and covers every secret-bearing parameter and header."""

from __future__ import annotations

import base64
import contextlib
import json
import logging
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from claimsengine import decide
from claimsengine.adapters import wire
from claimsengine.adapters.loader import load_tenant
from claimsengine.adapters.server import EXAMPLE_TENANT, RedactSecrets, asgi_client, create_app
from claimsengine.adapters.signing import KeySet

EXAMPLE = load_tenant(EXAMPLE_TENANT).tenant
NOW = 1_800_000_000
# Parameters that carry secrets in the requests the fake serves (and in flows it may serve).
SECRET_NAMES = sorted(wire.SECRET_PARAMETERS)
GRANTS = ["client_credentials", "authorization_code", "refresh_token", "password", None]


def spellings(name: str) -> st.SearchStrategy[str]:
    """``name`` in any letter case, with ``_`` or ``-``."""
    return st.lists(st.booleans(), min_size=len(name), max_size=len(name)).flatmap(
        lambda upper: st.sampled_from(["_", "-"]).map(
            lambda sep: "".join(c.upper() if u else c for c, u in zip(name, upper, strict=True)).replace("_", sep)
        )
    )


@given(st.sampled_from(SECRET_NAMES).flatmap(spellings))
def test_every_secret_parameter_is_a_secret_in_any_spelling(name: str) -> None:
    assert wire.is_secret(name)
    assert wire.redact_mapping({name: "hunter2", "state": "s"}) == {name: wire.REDACTED, "state": "s"}


@given(st.sampled_from(sorted(wire.SECRET_HEADERS)).flatmap(lambda h: st.sampled_from([h, h.upper(), h.title()])))
def test_every_secret_header_is_a_secret_in_any_case(name: str) -> None:
    assert wire.is_secret(name)


@pytest.mark.parametrize("name", ["client_id", "audience", "scope", "state", "grant_type", "redirect_uri", "code_challenge", "nonce"])
def test_public_parameters_are_not_masked(name: str) -> None:
    assert not wire.is_secret(name)


@given(st.sampled_from(SECRET_NAMES).flatmap(spellings), st.text(st.characters(categories=["L", "N"]), min_size=8, max_size=20))
def test_a_secret_in_a_url_never_reaches_the_access_log(name: str, secret: str) -> None:
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d', (), None)
    record.args = ("127.0.0.1:1", "GET", f"/authorize?client_id=app&{name}={secret}&state=s", "1.1", 200)
    RedactSecrets().filter(record)
    line = record.getMessage()
    assert secret not in line
    assert "client_id=app" in line


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with asgi_client(create_app(EXAMPLE, keys=KeySet.generate(seed=5), default_user="auth0|alice")) as c:
        yield c


MARK = "Zq9secretmarker"


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def captured_logs() -> Iterator[list[logging.LogRecord]]:
    """Every record any logger emits (root at DEBUG) while the block runs."""
    root = logging.getLogger()
    handler, level = _Records(), root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler.records
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


@settings(max_examples=60)
@given(
    grant=st.sampled_from(GRANTS),
    names=st.sets(st.sampled_from(["client_secret", "client_assertion", "code", "code_verifier", "refresh_token", "password"]), min_size=1),
    basic=st.booleans(),
    json_body=st.booleans(),
)
def test_no_secret_appears_in_a_repr_a_trace_an_error_text_a_response_or_a_log(
    client: httpx.Client, grant: str | None, names: set[str], basic: bool, json_body: bool
) -> None:
    params: dict[str, str] = {"client_id": "nw-m2m-0001", "audience": "https://api.northwind.com/orders"}
    if grant is not None:
        params["grant_type"] = grant
    for name in names:
        params[name] = f"{MARK}-{name}"
    if "client_assertion" in names:
        params["client_assertion_type"] = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    authorization = "Basic " + base64.b64encode(f"nw-m2m-0001:{MARK}-basic".encode()).decode() if basic else None
    request = wire.token_request(params, domain=EXAMPLE.domain, authorization=authorization)
    decision = decide(request, EXAMPLE, now=NOW)
    # (A request's model_dump is data, not a text: golden cases store code_verifier as sent.)
    texts = [repr(request), str(request), repr(decision), str(decision), json.dumps(decision.model_dump(mode="json"))]
    texts += [r.detail for r in decision.trace]
    if hasattr(decision, "error_description"):
        texts.append(json.dumps(wire.error_body(decision)))  # type: ignore[arg-type]
    headers = {"Authorization": authorization} if authorization else {}
    with captured_logs() as records:
        if json_body:
            response = client.post("/oauth/token", json=params, headers=headers)
        else:
            response = client.post("/oauth/token", data=params, headers=headers)
    texts += [response.text, *response.headers.values(), *(r.getMessage() for r in records)]
    for text in texts:
        assert MARK not in text, text

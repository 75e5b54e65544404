"""The wire adapter reports what was sent (repeated and malformed parameters) and decides
nothing; form and JSON bodies reach the core as the same request."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from claimsengine import Behaviour, Issued, Rejected, Rule, TokenRequest, decide
from claimsengine.adapters import wire
from claimsengine.adapters.loader import load_tenant
from claimsengine.adapters.server import EXAMPLE_TENANT, asgi_client, create_app
from claimsengine.adapters.signing import KeySet

NOW = 1_700_000_000
EXAMPLE = load_tenant(EXAMPLE_TENANT).tenant
ORDERS = "https://api.northwind.com/orders"
M2M = {"grant_type": "client_credentials", "client_id": "nw-m2m-0001", "client_secret": "example-billing-secret-not-for-production"}
# audience twice: the first names the API, the second an unknown one.
PAIRS = [*M2M.items(), ("audience", ORDERS), ("audience", "https://unknown.example/"), ("scope", "read:orders")]
JSON_BODY = "{" + ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in PAIRS) + "}"


def test_a_form_and_a_json_body_with_a_repeated_parameter_make_the_same_request() -> None:
    from_form = wire.token_request(wire.Parameters(PAIRS), domain="northwind.auth0.com")
    from_json = wire.token_request(wire.json_parameters(JSON_BODY), domain="northwind.auth0.com")
    assert from_form == from_json
    assert from_form.audience == ORDERS, "the first value is passed on"
    assert from_form.repeated == ("audience",)


def test_only_parameters_the_core_reads_are_reported_as_repeated() -> None:
    params = wire.Parameters([*M2M.items(), ("unrelated", "1"), ("unrelated", "2"), ("client_secret", "again")])
    assert params.repeated == ("unrelated", "client_secret")
    assert wire.token_request(params).repeated == ("client_secret",)
    query = wire.Parameters([("client_id", "a"), ("scope", "openid"), ("scope", "email"), ("utm", "x"), ("utm", "y")])
    assert wire.authorize_request(query).repeated == ("scope",)
    assert wire.authorize_request(query).scope == "openid"


def test_a_nested_json_object_is_reported_as_malformed_not_decided_here() -> None:
    request = wire.token_request(wire.json_parameters('{"grant_type": "client_credentials", "audience": {"a": 1}, "scope": {"b": 2}}'))
    assert request.malformed == ("audience", "scope")
    assert request.audience is None


@pytest.mark.parametrize("text", ["[1, 2]", '"text"', "3"])
def test_a_json_body_that_is_not_an_object_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a JSON object"):
        wire.json_parameters(text)


@pytest.mark.parametrize("repeated_parameters", ["first", "reject"])
def test_the_server_answers_a_form_and_a_json_body_alike(repeated_parameters: str) -> None:
    tenant = EXAMPLE.model_copy(update={"behaviour": Behaviour.model_validate({"repeated_parameters": repeated_parameters})})
    app = create_app(tenant, keys=KeySet.generate(seed=7), clock=lambda: NOW)
    with asgi_client(app) as client:
        form = client.post("/oauth/token", content=urlencode(PAIRS), headers={"content-type": "application/x-www-form-urlencoded"})
        body = client.post("/oauth/token", content=JSON_BODY, headers={"content-type": "application/json"})
    assert form.status_code == body.status_code
    if repeated_parameters == "first":
        assert form.status_code == 200
        assert form.json()["scope"] == body.json()["scope"] == "read:orders write:orders", "both used the first audience"
    else:
        assert form.status_code == 400
        assert form.json() == body.json() == {"error": "invalid_request", "error_description": "Parameter sent more than once: audience"}


def test_the_core_notes_the_repetition_it_resolved() -> None:
    decision = decide(wire.token_request(wire.Parameters(PAIRS), domain="northwind.auth0.com"), EXAMPLE, now=NOW)
    assert isinstance(decision, Issued)
    assert next(r for r in decision.trace if r.rule is Rule.PARAMETER_REPEATED).detail == "audience: the first value counts"
    strict = EXAMPLE.model_copy(update={"behaviour": Behaviour(repeated_parameters="reject")})
    refused = decide(wire.token_request(wire.Parameters(PAIRS)), strict, now=NOW)
    assert isinstance(refused, Rejected)
    assert refused.rejected_by is Rule.PARAMETER_REPEATED


@settings(max_examples=50, deadline=None)
@given(
    params=st.dictionaries(
        st.sampled_from([*wire.TOKEN_PARAMETERS, "client_assertion", "extra"]),
        st.one_of(st.text(max_size=8), st.integers(), st.none(), st.lists(st.text(max_size=4), max_size=2)),
    ),
    authorization=st.one_of(st.none(), st.just("Basic bTJtOnNlY3JldA=="), st.text(max_size=12)),
)
def test_a_wire_token_request_is_the_one_the_validating_constructor_builds(params: dict[str, Any], authorization: str | None) -> None:
    built = wire.token_request(params, domain="acme.auth0.com", authorization=authorization, password_valid_for=("auth0|u",))
    validated = TokenRequest(**{name: getattr(built, name) for name in built.model_fields_set})
    assert built == validated, "every field already has the type the validating constructor gives it"
    assert built.model_fields_set == validated.model_fields_set
    assert list(built.__dict__) == list(validated.__dict__) == list(TokenRequest.model_fields)


_FORM_TEXT = st.text(alphabet=st.sampled_from(list("ab=&+%2fFe9x ;é\u00ff\U0001f600")), max_size=40)


@settings(max_examples=600, deadline=None)
@given(_FORM_TEXT, st.integers(min_value=0, max_value=8))
def test_form_pairs_are_parse_qsl_s_pairs_and_errors(text: str, max_fields: int) -> None:
    expected: list[tuple[str, str]] | type[Exception]
    try:
        expected = parse_qsl(text, keep_blank_values=True, max_num_fields=max_fields, encoding="utf-8", errors="strict")
    except (ValueError, UnicodeDecodeError) as exc:  # UnicodeDecodeError is a ValueError: the narrower first
        expected = type(exc)
    try:
        got: list[tuple[str, str]] | type[Exception] = wire.form_pairs(text, max_fields)
    except (ValueError, UnicodeDecodeError) as exc:
        got = type(exc)
    assert got == expected


def test_form_pairs_decode_plus_and_percent_and_keep_blank_values() -> None:
    assert wire.form_pairs("scope=read%3Aa+b&audience=https%3A%2F%2Fx&&flag&e=", 64) == [
        ("scope", "read:a b"),
        ("audience", "https://x"),
        ("flag", ""),
        ("e", ""),
    ]
    with pytest.raises(UnicodeDecodeError):
        wire.form_pairs("a=%ff", 64)
    with pytest.raises(ValueError, match="Max number of fields"):
        wire.form_pairs("a=1&b=2", 1)

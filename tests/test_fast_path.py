"""The client credentials fast path decides exactly as the general path does, or declines.

``decide`` tries a grant's fast path first (``grants.FAST_PATHS``); the general path is the
common steps and the grant's handler (``engine._token``). Every test here decides each request
both ways and compares the decisions field by field: values, JSON, field order, which fields
count as set, and every trace entry with its ``ref``.
"""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from claimsengine import Issued, Rejected, Rule, Tenant, TokenRequest, decide
from claimsengine.engine import _token
from claimsengine.grants import BY_WIRE, FAST_PATHS, GrantType
from claimsengine.grants.client_credentials import client_credentials_fast
from claimsengine.model import BUILT_IN_MANAGEMENT_API
from claimsengine.steps import Trace
from claimsengine.testing import mixed_token_requests, tenants, valid_token_requests

NOW = 1_700_000_000
API = "https://api.example.com"
MANAGEMENT = "https://acme.auth0.com/api/v2/"

BASE: dict[str, Any] = {
    "domain": "acme.auth0.com",
    "custom_domains": [{"domain": "login.acme.com"}],
    "apis": [
        {"identifier": API, "scopes": ["read", "write", "delete"]},
        {"identifier": "https://rfc.example.com", "scopes": ["read"], "token_dialect": "rfc9068_profile"},
    ],
    "clients": [
        {"client_id": "m2m", "client_secrets": ["old-secret", "m2m-secret"], "app_type": "non_interactive"},
        {"client_id": "other", "client_secrets": ["other-secret"], "app_type": "non_interactive"},
    ],
    "client_grants": [
        {"client_id": "m2m", "audience": API, "scope": ["read", "write", "delete"]},
        {"client_id": "m2m", "audience": "https://rfc.example.com", "scope": ["read"]},
        {"client_id": "m2m", "audience": MANAGEMENT, "scope": ["read:users"]},
        {"client_id": "other", "audience": API, "scope": ["read"]},
    ],
    "organizations": [{"id": "org_1", "name": "one"}],
}


def _tenant(**changes: Any) -> Tenant:
    return Tenant.model_validate({**BASE, **changes})


def _clients(**changes: Any) -> list[dict[str, Any]]:
    """The clients, ``m2m`` changed."""
    return [{**BASE["clients"][0], **changes}, BASE["clients"][1]]


def _grants(**changes: Any) -> list[dict[str, Any]]:
    """The client grants, m2m's grant for ``API`` changed."""
    return [{**BASE["client_grants"][0], **changes}, *BASE["client_grants"][1:]]


def _request(**fields: Any) -> TokenRequest:
    values: dict[str, Any] = {
        "domain": "acme.auth0.com",
        "grant_type": "client_credentials",
        "client_id": "m2m",
        "client_secret": SecretStr("m2m-secret"),
        "audience": API,
        **fields,
    }
    return TokenRequest(**values)


def _same(fast: Issued, general: Issued | Rejected) -> None:
    assert isinstance(general, Issued)
    assert fast == general
    assert fast.model_dump(mode="json") == general.model_dump(mode="json")
    assert list(fast.__dict__) == list(general.__dict__) == list(Issued.model_fields)
    assert fast.model_fields_set == general.model_fields_set
    assert [(r.rule, r.detail, r.ref) for r in fast.trace] == [(r.rule, r.detail, r.ref) for r in general.trace]
    assert list(fast.claims) == list(general.claims)


def _both_ways(request: TokenRequest, tenant: Tenant) -> Issued | None:
    """Decide ``request`` by the general path (which fills the compiled caches), then by the
    fast path and by ``decide``; the fast path's decision, if it took the request."""
    general = _token(request, Trace(tenant, NOW))
    fast = client_credentials_fast(request, tenant, NOW)
    if fast is not None:
        _same(fast, general)
    decided = decide(request, tenant, now=NOW)
    assert decided == general
    assert decided.model_dump(mode="json") == general.model_dump(mode="json")
    return fast


def test_decide_tries_the_fast_path_the_grant_table_declares() -> None:
    assert {GrantType.CLIENT_CREDENTIALS.value: client_credentials_fast} == FAST_PATHS
    assert BY_WIRE[GrantType.CLIENT_CREDENTIALS.value].fast is client_credentials_fast


TAKEN: list[tuple[str, dict[str, Any], dict[str, Any], list[Rule]]] = [
    ("all granted scopes, none asked", {}, {}, []),
    ("a subset asked, every granted scope returned", {}, {"scope": "read"}, [Rule.SCOPE_REQUESTED_SUBSET_IGNORED]),
    ("every granted scope asked, repeated", {}, {"scope": "delete read write read"}, []),
    (
        "a subset asked and honoured",
        {"behaviour": {"client_credentials_scopes": "requested"}},
        {"scope": "write read"},
        [Rule.SCOPE_REQUESTED_SUBSET_HONOURED],
    ),
    ("the second registered secret", {}, {"client_secret": SecretStr("m2m-secret")}, []),
    ("through a custom domain", {}, {"domain": "login.acme.com"}, []),
    ("the RFC 9068 profile", {}, {"audience": "https://rfc.example.com"}, [Rule.CLAIMS_RFC9068]),
    ("the Management API (not counted toward quotas)", {}, {"audience": MANAGEMENT}, [Rule.QUOTA_NOT_COUNTED]),
    (
        "client_secret_basic registered, the secret in the body, not strict",
        {
            "clients": _clients(token_endpoint_auth_method="client_secret_basic"),
            "behaviour": {"strict_auth_method": False},
        },
        {},
        [],
    ),
]


@pytest.mark.parametrize(("changes", "fields", "rules"), [case[1:] for case in TAKEN], ids=[case[0] for case in TAKEN])
def test_the_fast_path_issues_the_general_paths_token(changes: dict[str, Any], fields: dict[str, Any], rules: list[Rule]) -> None:
    tenant = _tenant(**changes)
    for _ in range(2):  # compiled on the first request, reused on the second
        fast = _both_ways(_request(**fields), tenant)
        assert fast is not None
        assert {r.rule for r in fast.trace} >= set(rules)


def test_the_fast_path_issues_the_rfc9068_claims_without_gty() -> None:
    fast = _both_ways(_request(audience="https://rfc.example.com"), _tenant())
    assert fast is not None
    assert fast.claims["client_id"] == "m2m"
    assert "gty" not in fast.claims
    assert "azp" not in fast.claims


_QUOTA = {"per_hour": 10, "enforce": True}

DECLINED: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("a repeated parameter", {}, {"repeated": ("scope",)}),
    ("a malformed parameter", {}, {"malformed": ("scope",)}),
    ("HTTP Basic credentials", {}, {"basic_client_id": "m2m", "basic_client_secret": SecretStr("m2m-secret")}),
    ("a client assertion type", {}, {"client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}),
    ("an Origin", {}, {"origin": "https://app.example.com"}),
    ("an organization, even empty", {}, {"organization": ""}),
    ("an unknown host refused", {"behaviour": {"unknown_host": "reject"}}, {"domain": "evil.example.net"}),
    ("no secret", {}, {"client_secret": None}),
    ("an empty secret", {}, {"client_secret": SecretStr("")}),
    ("a wrong secret", {}, {"client_secret": SecretStr("wrong")}),
    ("a secret with a lone surrogate", {}, {"client_secret": SecretStr("m2m-secret\ud800")}),
    ("no client_id", {}, {"client_id": None}),
    ("an unknown client", {}, {"client_id": "ghost"}),
    ("a client_id with blanks", {}, {"client_id": " m2m"}),
    (
        "a client registered with blanks in its id",
        {"clients": _clients(client_id=" m2m"), "client_grants": [{**BASE["client_grants"][0], "client_id": " m2m"}]},
        {"client_id": " m2m"},
    ),
    (
        "client_secret_basic registered, strict",
        {"clients": _clients(token_endpoint_auth_method="client_secret_basic")},
        {},
    ),
    ("private_key_jwt registered", {"clients": _clients(token_endpoint_auth_method="private_key_jwt")}, {}),
    ("the grant type not enabled", {"clients": _clients(grant_types=["authorization_code"])}, {}),
    ("no audience", {"default_audience": API}, {"audience": None}),
    ("an unknown audience", {}, {"audience": "https://unknown.example.com"}),
    ("an audience with blanks", {}, {"audience": f" {API}"}),
    (
        "an API identifier with blanks",
        {"apis": [{**BASE["apis"][0], "identifier": f" {API}"}, BASE["apis"][1]], "client_grants": _grants(audience=f" {API}")},
        {"audience": f" {API}"},
    ),
    ("an API that denies all clients", {"apis": [{**BASE["apis"][0], "client_policy": "deny_all"}, BASE["apis"][1]]}, {}),
    (
        "a third-party client and the Management API",
        {"clients": _clients(is_first_party=False)},
        {"audience": MANAGEMENT},
    ),
    ("no client grant", {"client_grants": [BASE["client_grants"][3]]}, {}),
    ("an organization required", {"client_grants": _grants(organization_usage="require")}, {}),
    ("no granted scope", {"client_grants": _grants(scope=[])}, {}),
    ("a client quota", {"clients": _clients(token_quota=_QUOTA)}, {}),
    ("a tenant quota", {"default_token_quota": _QUOTA}, {}),
    ("a permissions dialect", {"apis": [{**BASE["apis"][0], "token_dialect": "access_token_authz"}]}, {}),
    ("a credentials-exchange Action", {"credentials_exchange_actions": [lambda event, api: None]}, {}),
    ("a scope not granted", {}, {"scope": "read admin"}),
]


@pytest.mark.parametrize(("changes", "fields"), [case[1:] for case in DECLINED], ids=[case[0] for case in DECLINED])
def test_the_fast_path_declines_what_the_general_path_must_decide(changes: dict[str, Any], fields: dict[str, Any]) -> None:
    tenant = _tenant(**changes)
    # The tenant's host and issuer compiled, as on a running server: by the plain request, or (when
    # the change refuses it before any token is issued) by a token for the other API.
    decide(_request(), tenant, now=NOW)
    decide(_request(audience="https://rfc.example.com"), tenant, now=NOW)
    for _ in range(2):  # declined on the first request and again once the refusals are remembered
        assert _both_ways(_request(**fields), tenant) is None
    # The tenant's plain request still takes it where the change concerns the request only.
    if not changes:
        assert _both_ways(_request(), tenant) is not None


def test_the_fast_path_declines_a_host_or_issuer_the_general_path_has_not_resolved_yet() -> None:
    tenant = _tenant()
    assert client_credentials_fast(_request(), tenant, NOW) is None
    refused = decide(_request(client_secret=SecretStr("wrong")), tenant, now=NOW)
    assert isinstance(refused, Rejected)
    # The host is resolved now, but no token was issued through it yet: no iss compiled.
    assert client_credentials_fast(_request(), tenant, NOW) is None
    assert _both_ways(_request(), tenant) is not None


def test_honoured_subsets_are_remembered_per_route_up_to_a_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    tenant = _tenant(behaviour={"client_credentials_scopes": "requested"})
    # (the package's name client_credentials is the handler; the module is reached by its path)
    monkeypatch.setattr(importlib.import_module("claimsengine.grants.client_credentials"), "HONOURED_CACHE_LIMIT", 1)
    for scope in ("read", "write", "read", "write"):
        assert _both_ways(_request(scope=scope), tenant) is not None
    plan = tenant.index.cc_plans["m2m"]
    assert plan is not None
    route = plan.routes[API]
    assert route is not None
    assert list(route.honoured) == ["read"]


def test_issuances_are_remembered_per_host_scope_entry_and_scope_up_to_a_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    # What a route's tokens share is compiled per Host header, scope entry and scope: requests
    # that alternate between them (and beyond the limit, compiled afresh each time) must each
    # get the general path's decision, at their own time, with claims of their own.
    monkeypatch.setattr(importlib.import_module("claimsengine.grants.client_credentials"), "ISSUE_CACHE_LIMIT", 2)
    for behaviour in ("requested", "grant"):
        tenant = _tenant(behaviour={"client_credentials_scopes": behaviour})
        issued: list[Issued] = []
        for domain in ("acme.auth0.com", "login.acme.com", "acme.auth0.com"):
            for scope in ("read", None, "write read", "read"):
                fast = _both_ways(_request(domain=domain, scope=scope), tenant)
                assert fast is not None
                issued.append(fast)
        plan = tenant.index.cc_plans["m2m"]
        assert plan is not None
        route = plan.routes[API]
        assert route is not None
        assert len(route.issues) == 2
        assert len({id(i.claims) for i in issued}) == len(issued)
        later = client_credentials_fast(_request(scope="read"), tenant, NOW + 60)
        assert later is not None
        assert (later.claims["iat"], later.claims["exp"]) == (NOW + 60, NOW + 60 + 86400)
        assert later.trace == issued[0].trace


def test_the_compiled_plans_hold_no_secret_text() -> None:
    tenant = _tenant()
    assert _both_ways(_request(), tenant) is not None
    assert "m2m-secret" not in repr(tenant.index.cc_plans)


def test_the_fast_path_is_built_on_the_management_apis_built_in_entry() -> None:
    tenant = _tenant()
    fast = _both_ways(_request(audience=MANAGEMENT), tenant)
    assert fast is not None
    assert any(r.ref == BUILT_IN_MANAGEMENT_API for r in fast.trace)


@given(st.data())
def test_the_client_credentials_fast_path_decides_every_request_as_the_general_path_does(data: st.DataObject) -> None:
    tenant = data.draw(tenants())
    for _ in range(3):
        request = data.draw(st.one_of(valid_token_requests(tenant), mixed_token_requests(tenant)))
        _both_ways(request, tenant)

"""What a test sees of the fake tenant and what it can make it do (issue 10, items 2 and 5):
rule ids in a response header, one structured log line per decision, the recent decisions
with their traces, captured requests, and per-test overrides. All over a real loopback
server; the expected rule ids come from the core itself."""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from claimsengine import Tenant, TokenRequest, decide
from claimsengine.adapters.control import RULES_HEADER, override_from_json
from claimsengine.adapters.loader import load_tenant
from claimsengine.adapters.server import EXAMPLE_TENANT, LiveServer, add_arguments, create_app, serve_in_thread
from claimsengine.adapters.signing import KeySet
from tests.services import serving

ORDERS = "https://api.northwind.com/orders"
SECRET = "example-billing-secret-not-for-production"
M2M = {"grant_type": "client_credentials", "client_id": "nw-m2m-0001", "client_secret": SECRET, "audience": ORDERS}
SPA = "nw-spa-0001"
CALLBACK = "https://shop.northwind.com/callback"


@pytest.fixture(scope="module")
def tenant() -> Tenant:
    return load_tenant(EXAMPLE_TENANT).tenant


@pytest.fixture(scope="module")
def keys() -> KeySet:
    return KeySet.generate()


@pytest.fixture
def live(tenant: Tenant, keys: KeySet) -> Iterator[LiveServer]:
    app = create_app(tenant, keys=keys, default_user="auth0|alice", admin=True, admin_token="test-admin-token")
    with serve_in_thread(app) as server:
        yield server


@pytest.fixture
def http(live: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.url, timeout=10) as client:
        yield client


def core_rules(tenant: Tenant, host: str, **params: Any) -> list[str]:
    decision = decide(TokenRequest(domain=host, **params), tenant, now=1_800_000_000)
    return [reason.rule.value for reason in decision.trace]


# ---------------------------------------------------------------------------------------
# Reasons you can see
# ---------------------------------------------------------------------------------------


def test_every_token_response_carries_the_decisions_rule_ids(live: LiveServer, http: httpx.Client) -> None:
    issued = http.post("/oauth/token", data=M2M)
    assert issued.status_code == 200
    assert issued.headers[RULES_HEADER].split() == core_rules(live.tenant, live.domain, **M2M)
    refused = http.post("/oauth/token", data={**M2M, "client_secret": "wrong"})
    assert refused.status_code == 401
    assert refused.json() == {"error": "access_denied", "error_description": "Unauthorized"}  # as opaque as Auth0...
    rules = refused.headers[RULES_HEADER].split()
    assert rules == core_rules(live.tenant, live.domain, **{**M2M, "client_secret": "wrong"})
    assert rules[-1] == "client.secret_invalid"  # ...but the header says why
    assert "wrong" not in refused.headers[RULES_HEADER]


def test_authorize_and_userinfo_answers_carry_rule_ids_too(http: httpx.Client) -> None:
    query = {"client_id": SPA, "response_type": "code", "redirect_uri": CALLBACK, "scope": "openid profile", "state": "s"}
    redirect = http.get("/authorize", params=query)
    assert redirect.status_code == 302
    rules = redirect.headers[RULES_HEADER].split()
    assert (rules[0], rules[-1]) == ("domain.resolved", "authorize.code_issued")
    refused = http.get("/authorize", params={**query, "redirect_uri": "https://evil.example/cb"})
    assert refused.status_code == 400
    assert refused.headers[RULES_HEADER].split() == ["domain.resolved", "authorize.redirect_uri_mismatch"]
    orders_token = http.post("/oauth/token", data=M2M).json()["access_token"]
    wrong_audience = http.get("/userinfo", headers={"Authorization": f"Bearer {orders_token}"})
    assert wrong_audience.status_code == 401
    assert wrong_audience.headers[RULES_HEADER].split()[-1] == "validate.audience"


def test_the_rule_header_can_be_turned_off(tenant: Tenant, keys: KeySet) -> None:
    with serve_in_thread(create_app(tenant, keys=keys, rule_header=False)) as server, httpx.Client(timeout=10) as client:
        response = client.post(f"{server.url}/oauth/token", data=M2M)
    assert response.status_code == 200
    assert RULES_HEADER.lower() not in response.headers
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert parser.parse_args([]).rule_header is True
    assert parser.parse_args(["--no-rule-header"]).rule_header is False


def test_one_structured_log_line_per_decision_never_a_secret(http: httpx.Client, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="claimsengine.decisions"):
        http.post("/oauth/token", data=M2M)
        http.post("/oauth/token", data={**M2M, "client_secret": "hunter2-wrong"})
        http.get("/.well-known/jwks.json")  # no decision, no line
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "claimsengine.decisions"]
    assert [(line["endpoint"], line["client_id"], line["outcome"], line["error"], line["status"]) for line in lines] == [
        ("/oauth/token", "nw-m2m-0001", "issued", None, 200),
        ("/oauth/token", "nw-m2m-0001", "rejected", "access_denied", 401),
    ]
    assert lines[1]["rules"][-1] == "client.secret_invalid"
    assert SECRET not in caplog.text
    assert "hunter2-wrong" not in caplog.text


def test_recent_decisions_with_traces_and_configuration_refs(live: LiveServer, http: httpx.Client) -> None:
    for _ in range(3):
        http.post("/oauth/token", data=M2M)
    http.post("/oauth/token", data={**M2M, "audience": "https://nope.example"})
    recent = http.get("/.claimsengine/decisions", params={"limit": 2}).json()["decisions"]
    assert [d["outcome"] for d in recent] == ["issued", "rejected"]
    last = recent[-1]
    assert last["error"] == "access_denied"
    assert [step["rule"] for step in last["trace"]] == last["rules"]
    assert any(step["ref"].startswith("clients[") for step in recent[0]["trace"])  # the configuration consulted
    assert all(set(step) == {"rule", "detail", "ref"} for step in last["trace"])
    assert len(http.get("/.claimsengine/decisions").json()["decisions"]) == 4
    assert live.fake.decisions()[-1] == last
    assert SECRET not in http.get("/.claimsengine/decisions").text


def test_the_served_cli_logs_one_decision_line_per_request(tmp_path: Path) -> None:
    with serving(tmp_path) as (_, url, log), httpx.Client(timeout=10) as client:
        client.post(f"{url}/oauth/token", data=M2M)
        client.post(f"{url}/oauth/token", data={**M2M, "client_secret": "hunter2-wrong"})
    text = log.read_text()
    lines = [json.loads(line.split("decision ", 1)[1]) for line in text.splitlines() if line.startswith("claimsengine: decision ")]
    assert [line["outcome"] for line in lines] == ["issued", "rejected"]
    assert SECRET not in text
    assert "hunter2-wrong" not in text


def _request_lines(log: Path) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for line in log.read_text().splitlines():
        if line.startswith(("claimsengine: decision ", "claimsengine: request ")):
            _, kind, fields = line.split(" ", 2)
            found.append((kind, json.loads(fields)))
    return found


def _three_requests(url: str) -> None:
    with httpx.Client(timeout=10) as client:
        assert client.post(f"{url}/oauth/token", data=M2M, params={"refresh_token": "rt-in-the-url"}).status_code == 200
        assert client.get(f"{url}/.well-known/jwks.json").status_code == 200
        unreadable = client.post(f"{url}/oauth/token", content=b"{", headers={"Content-Type": "application/json"})
        assert unreadable.status_code == 400  # a framing error: no decision


def test_the_served_cli_logs_exactly_one_line_per_request_and_none_when_told(tmp_path: Path) -> None:
    with serving(tmp_path) as (_, url, log):
        _three_requests(url)
    lines = _request_lines(log)
    assert [(kind, fields.get("request"), fields["status"]) for kind, fields in lines] == [
        ("decision", "POST /oauth/token?refresh_token=[redacted]", 200),
        ("request", "GET /.well-known/jwks.json", 200),
        ("request", "POST /oauth/token", 400),
    ]
    assert lines[0][1]["outcome"] == "issued"
    assert "rt-in-the-url" not in log.read_text()
    with serving(tmp_path, "--no-request-log", name="quiet") as (_, url, quiet):
        _three_requests(url)
    assert _request_lines(quiet) == []
    assert "Application startup complete" in quiet.read_text()


# ---------------------------------------------------------------------------------------
# Capture
# ---------------------------------------------------------------------------------------


def test_requests_are_captured_with_secrets_masked(live: LiveServer, http: httpx.Client) -> None:
    http.post("/oauth/token", data=M2M, params={"client_secret": "in-the-url"})
    http.get("/userinfo", headers={"Authorization": "Bearer abc.def.ghi"})
    token_requests = live.fake.requests("/oauth/token")
    assert len(token_requests) == 1
    captured = token_requests[0]
    assert captured["method"] == "POST"
    assert captured["params"]["client_id"] == "nw-m2m-0001"
    assert captured["params"]["audience"] == ORDERS
    assert captured["params"]["client_secret"] == "[redacted]"
    assert captured["query"]["client_secret"] == "[redacted]"
    assert live.fake.requests("/userinfo")[0]["headers"]["authorization"] == "[redacted]"
    over_http = http.get("/.claimsengine/requests").json()["requests"]
    assert [r["path"] for r in over_http] == ["/oauth/token", "/userinfo"]
    text = json.dumps(over_http)
    assert SECRET not in text
    assert "in-the-url" not in text
    assert "abc.def.ghi" not in text


# ---------------------------------------------------------------------------------------
# Overrides
# ---------------------------------------------------------------------------------------


def test_the_next_matching_request_gets_the_chosen_answer_then_the_real_one(live: LiveServer, http: httpx.Client) -> None:
    live.fake.override("/oauth/token", status=503, body={"error": "temporarily_unavailable"})
    assert http.get("/.well-known/jwks.json").status_code == 200  # another path: untouched
    failed = http.post("/oauth/token", data=M2M)
    assert (failed.status_code, failed.json()) == (503, {"error": "temporarily_unavailable"})
    assert http.post("/oauth/token", data=M2M).status_code == 200
    live.fake.override("/oauth/token", status=429, body={"error": "too_many_requests"}, times=2, method="POST")
    assert [http.post("/oauth/token", data=M2M).status_code for _ in range(3)] == [429, 429, 200]


def test_a_delay_only_override_still_gives_the_real_answer(live: LiveServer, http: httpx.Client) -> None:
    live.fake.override("/.well-known/jwks.json", delay=0.01)
    response = http.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert response.json()["keys"]
    assert len(live.fake.overrides) == 0


def test_overrides_over_http_need_the_admin_token_and_refuse_cross_site(http: httpx.Client) -> None:
    spec = {"path": "/userinfo", "status": 500, "body": {"error": "boom"}}
    assert http.post("/admin/overrides", json=spec).status_code == 401
    assert http.post("/admin/overrides", json=spec, headers={"Authorization": "Bearer wrong"}).status_code == 401
    admin = {"Authorization": "Bearer test-admin-token"}
    cross = http.post("/admin/overrides", json=spec, headers={**admin, "Sec-Fetch-Site": "cross-site"})
    assert cross.status_code == 403
    assert http.get("/userinfo").status_code == 401  # nothing was added
    added = http.post("/admin/overrides", json=spec, headers=admin)
    assert (added.status_code, added.json()) == (201, {"path": "/userinfo", "pending": 1})
    assert (http.get("/userinfo").status_code, http.get("/userinfo").status_code) == (500, 401)
    http.post("/admin/overrides", json=spec, headers=admin)
    assert http.delete("/admin/overrides", headers=admin).status_code == 204
    assert http.get("/userinfo").status_code == 401
    invalid = http.post("/admin/overrides", json={"path": "/userinfo", "stauts": 500}, headers=admin)
    assert (invalid.status_code, invalid.json()["error_description"]) == (400, "unknown fields: stauts")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "path is required and must start with /"),
        ({"path": "userinfo"}, "path is required and must start with /"),
        ({"path": "/x", "status": "500"}, "status must be an integer"),
        ({"path": "/x", "delay": "1"}, "delay must be a number of seconds"),
        ({"path": "/x", "times": 1.5}, "times must be an integer"),
        ({"path": "/x", "method": 1}, "method must be a string"),
    ],
)
def test_an_override_that_is_not_one_is_refused_with_the_reason(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        override_from_json(data)


@pytest.mark.parametrize(
    ("options", "message"),
    [({"times": 0}, "times must be at least 1"), ({"status": 99}, "status must be an HTTP status"), ({"delay": -1}, "delay must not be")],
)
def test_override_limits(live: LiveServer, options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        live.fake.override("/x", **options)

"""The token lane: ``POST /oauth/token`` past the layers that would only hand it on.

``create_app`` sends token requests without an ``Origin`` header, and with no override
pending, straight to the endpoint (``server._TokenLane``). These tests hold it to what the
whole stack (``token_lane=False``) does with the same requests: the same status, headers and
body, the same log lines, the same kept records, and the same 500 for an exception.
"""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from claimsengine import Tenant
from claimsengine.adapters import control, server
from claimsengine.adapters.loader import load_tenant
from claimsengine.adapters.server import EXAMPLE_TENANT, create_app
from claimsengine.adapters.signing import KeySet

ORDERS = "https://api.northwind.com/orders"
CANONICAL = "northwind.auth0.com"
M2M = {"client_id": "nw-m2m-0001", "client_secret": "example-billing-secret-not-for-production"}
FORM = {"content-type": "application/x-www-form-urlencoded"}
NOW = 1_800_000_000


def form(**fields: str) -> bytes:
    return urlencode(fields).encode()


CC = {"grant_type": "client_credentials", **M2M}
# (name, method, headers, body): each is sent to both apps, in this order.
REQUESTS: list[tuple[str, str, dict[str, str], bytes]] = [
    ("issued", "POST", FORM, form(**CC, audience=ORDERS)),
    ("issued with a scope", "POST", FORM, form(**CC, audience=ORDERS, scope="read:orders")),
    ("JSON body", "POST", {"content-type": "application/json"}, json.dumps({**CC, "audience": ORDERS}).encode()),
    ("wrong secret", "POST", FORM, form(**{**CC, "client_secret": "nope"}, audience=ORDERS)),
    ("unknown audience", "POST", FORM, form(**CC, audience="https://x")),
    ("unknown grant type", "POST", FORM, b"grant_type=urn:nothing&client_id=x"),
    ("no grant type", "POST", FORM, b""),
    ("secret in the query", "POST", FORM, b"grant_type=client_credentials"),
    ("wrong media type", "POST", {"content-type": "text/plain"}, b"grant_type=client_credentials"),
    ("not UTF-8", "POST", FORM, b"grant_type=\xff\xfe"),
    ("too many fields", "POST", FORM, b"&".join(b"f%d=1" % i for i in range(500))),
    ("too large", "POST", FORM, b"a=" + b"x" * (server.MAX_BODY_BYTES + 1)),
    ("invalid JSON", "POST", {"content-type": "application/json"}, b"{"),
    (
        "basic authentication",
        "POST",
        {**FORM, "authorization": "Basic bnctbTJtLTAwMDE6bm9wZQ=="},
        form(grant_type="client_credentials", audience=ORDERS),
    ),
    ("with an Origin", "POST", {**FORM, "origin": "https://shop.northwind.com"}, b"grant_type=client_credentials&client_id=nw-spa-0001"),
    ("a GET", "GET", {}, b""),
    ("discovery", "GET", {}, b""),
]
PATHS = {"discovery": "/.well-known/openid-configuration", "secret in the query": "/oauth/token?client_secret=hidden&x=1"}


def _tenant() -> Tenant:
    return load_tenant(EXAMPLE_TENANT).tenant


def _app(tenant: Tenant, *, lane: bool) -> tuple[Any, io.StringIO]:
    stream = io.StringIO()
    app = create_app(tenant, keys=KeySet.generate(seed=7), clock=lambda: NOW, lines=control.Lines(stream), token_lane=lane)
    return app, stream


async def _send(
    app: Any, method: str, path: str, headers: dict[str, str], body: bytes, *, raise_exceptions: bool = False
) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_exceptions)
    async with httpx.AsyncClient(transport=transport, base_url=f"https://{CANONICAL}") as client:
        return await client.request(method, path, headers=headers, content=body)


def _without_times(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in record.items() if k != "at"} for record in records]


def _answers(lane: bool) -> tuple[list[tuple[int, list[tuple[str, str]], bytes]], str, list[dict[str, Any]], list[dict[str, Any]]]:
    app, stream = _app(_tenant(), lane=lane)

    async def run() -> list[tuple[int, list[tuple[str, str]], bytes]]:
        answers = []
        for name, method, headers, body in REQUESTS:
            response = await _send(app, method, PATHS.get(name, "/oauth/token"), headers, body)
            answers.append((response.status_code, list(response.headers.multi_items()), response.content))
        return answers

    answers = asyncio.run(run())
    fake = app.state.auth0
    return answers, stream.getvalue(), _without_times(fake.decisions()), _without_times(fake.requests())


def test_every_request_gets_the_same_answer_log_line_and_records_through_the_lane_as_through_every_layer() -> None:
    lane, whole = _answers(True), _answers(False)
    for (name, *_), ours, theirs in zip(REQUESTS, lane[0], whole[0], strict=True):
        assert ours == theirs, name
    status = {name: answer[0] for (name, *_), answer in zip(REQUESTS, lane[0], strict=True)}
    # The requests cover what the lane answers itself and what it hands on.
    assert [status["issued"], status["issued with a scope"], status["JSON body"]] == [200, 200, 200]
    assert [status["wrong secret"], status["unknown audience"], status["wrong media type"], status["a GET"]] == [401, 403, 400, 405]
    with_origin = lane[0][[name for name, *_ in REQUESTS].index("with an Origin")]
    assert any(name.lower().startswith("access-control-") for name, _ in with_origin[1])
    assert lane[1] == whole[1]
    assert lane[1].count("claimsengine: decision ") >= 8
    assert "hidden" not in lane[1]
    assert lane[2] == whole[2]
    assert len(lane[2]) >= 8
    assert lane[3] == whole[3]
    assert len(lane[3]) == sum(method == "POST" for _, method, _, _ in REQUESTS)


def test_a_pending_override_of_the_token_endpoint_is_answered_with_the_lane_on() -> None:
    app, _ = _app(_tenant(), lane=True)
    app.state.auth0.override("/oauth/token", status=503, body={"error": "temporarily_unavailable"}, times=1)
    _, method, headers, body = REQUESTS[0]
    first = asyncio.run(_send(app, method, "/oauth/token", headers, body))
    second = asyncio.run(_send(app, method, "/oauth/token", headers, body))
    assert (first.status_code, first.json()) == (503, {"error": "temporarily_unavailable"})
    assert second.status_code == 200
    assert "access_token" in second.json()


class Boom(RuntimeError):
    pass


@pytest.mark.parametrize("lane", [True, False], ids=["lane", "every layer"])
def test_an_exception_in_the_token_endpoint_is_a_500_without_its_message_and_is_raised_again(
    lane: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: Any) -> Any:
        raise Boom("example-billing-secret-not-for-production")

    monkeypatch.setattr(server, "_decide_token", boom)
    app, stream = _app(_tenant(), lane=lane)
    _, method, headers, body = REQUESTS[0]
    response = asyncio.run(_send(app, method, "/oauth/token", headers, body))
    assert response.status_code == 500
    assert response.json() == {"error": "server_error", "error_description": "Internal error"}
    assert response.headers["cache-control"] == "no-store"
    assert "secret" not in response.text
    assert '"status":500' in stream.getvalue()
    with pytest.raises(Boom):
        asyncio.run(_send(app, method, "/oauth/token", headers, body, raise_exceptions=True))


def test_an_exception_after_the_answer_started_is_raised_without_a_second_answer() -> None:
    app, _ = _app(_tenant(), lane=True)
    _, _, _, body = REQUESTS[0]
    # The keys of an HTTP scope the app reads (uvicorn sends more).
    headers = [(b"host", CANONICAL.encode()), (b"content-type", FORM["content-type"].encode())]
    scope = {
        "type": "http",
        "method": "POST",
        "scheme": "https",
        "path": "/oauth/token",
        "query_string": b"",
        "headers": headers,
        "server": ("h", 443),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        raise Boom("the socket went away")

    with pytest.raises(Boom):
        asyncio.run(app(scope, receive, send))
    assert [message["type"] for message in sent] == ["http.response.start"]
    assert sent[0]["status"] == 200

"""CORS on the wire: the core's ``decide_cors`` answers, this middleware only translates.

A browser's preflight (``OPTIONS`` with ``Access-Control-Request-Method``) is answered here
with 204 and the decision's headers, before any route sees it. Every other request with an
``Origin`` goes on to its endpoint; the decision's headers are added to whatever it answers
(errors and test overrides included, so a page can read them). An endpoint that knows which
client a request is for (the body's ``client_id``, the token's ``azp``) says so with
:func:`for_client`; otherwise the request is decided as naming no client.
"""

from __future__ import annotations

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from claimsengine.cors import CorsDecision, CorsRequest, decide_cors

__all__ = ["CORS_RULES_HEADER", "CorsMiddleware", "for_client"]

CORS_RULES_HEADER = "X-Claimsengine-Cors"
_CLIENT_KEY = "claimsengine.cors_client"


def for_client(request: Request, client_id: str | None) -> None:
    """Record which client ``request`` is for, so its CORS headers are decided for that client."""
    request.scope[_CLIENT_KEY] = client_id


def _names(value: str | None) -> tuple[str, ...]:
    return tuple(name.strip() for name in (value or "").split(",") if name.strip())


class CorsMiddleware:
    """Answers preflights and adds CORS headers, as ``decide_cors`` decides for the current tenant."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope) if scope["type"] == "http" else None
        origin = headers.get("origin") if headers is not None else None
        if headers is None or origin is None:
            await self.app(scope, receive, send)
            return
        fake = scope["app"].state.auth0
        path: str = scope["path"]
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            request = Request(scope)
            fake.capture(request)
            decision = decide_cors(
                CorsRequest(
                    domain=headers.get("host"),
                    path=path,
                    origin=origin,
                    preflight=True,
                    request_headers=_names(headers.get("access-control-request-headers")),
                ),
                fake.tenant,
            )
            answer = {**dict(decision.headers), **fake.observe(f"OPTIONS {path}", None, decision, 204)}
            await Response(status_code=204, headers=answer)(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                decision = decide_cors(
                    CorsRequest(domain=headers.get("host"), path=path, origin=origin, client_id=scope.get(_CLIENT_KEY)),
                    fake.tenant,
                )
                _add(MutableHeaders(scope=message), decision, rule_header=fake.rule_header)
            await send(message)

        await self.app(scope, receive, send_with_cors)


def _add(headers: MutableHeaders, decision: CorsDecision, *, rule_header: bool) -> None:
    for name, value in decision.headers:
        if name == "Vary":
            headers.add_vary_header(value)
        else:
            headers[name] = value
    if rule_header:
        headers[CORS_RULES_HEADER] = " ".join(reason.rule.value for reason in decision.trace)

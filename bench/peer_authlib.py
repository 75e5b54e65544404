#!/usr/bin/env python3
"""The Python peer of ``bench_serve.py``: Authlib's client_credentials grant behind Starlette + uvicorn.

The grant is ``bench_decide.py``'s Authlib peer, contract C (form body in, RS256 JWT JSON out:
``AuthorizationServer`` with an Auth0-style ``ClientCredentialsGrant``, the rfc9068 generator,
the key imported once), on the same world (``make_world``) and key (``make_keys``). Here it sits
behind Starlette on one uvicorn worker with uvloop + httptools when installed and the access log
off: the peer's best configuration (../shared/reference/perf-anchors.md, section 4).

Usage: python bench/peer_authlib.py PORT N_CLIENTS   (prints "READY PORT", stops on SIGTERM)
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")  # plain http on loopback only
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_decide import C, build_authlib, make_keys, make_world


def build_app(n_clients: int) -> Starlette:
    keys = make_keys()
    token_response = build_authlib(make_world(n_clients), keys, C)

    async def token(request: Request) -> Response:
        status, body, headers = token_response((await request.body()).decode())
        return Response(body, status_code=status, headers=dict(headers))

    jwks_body = json.dumps(keys.jwks)

    async def jwks(request: Request) -> Response:
        return Response(jwks_body, media_type="application/json")

    return Starlette(routes=[Route("/oauth/token", token, methods=["POST"]), Route("/.well-known/jwks.json", jwks)])


def main() -> None:
    port, n_clients = int(sys.argv[1]), int(sys.argv[2])
    app = build_app(n_clients)
    loop_factory: Any = asyncio.new_event_loop
    http = "h11"
    try:
        import httptools  # noqa: F401
        import uvloop

        http, loop_factory = "httptools", uvloop.new_event_loop
    except ImportError:
        pass
    config = uvicorn.Config(app, host="127.0.0.1", port=port, http=http, access_log=False, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)

    async def serve() -> None:
        task = asyncio.create_task(server.serve())
        while not server.started and not task.done():
            await asyncio.sleep(0.02)
        print(f"READY {port} {http}", flush=True)
        await task

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(serve())


if __name__ == "__main__":
    main()

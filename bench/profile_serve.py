#!/usr/bin/env python3
"""``claimsengine serve``'s ASGI app driven in-process: CPU per POST /oauth/token, no sockets.

The app is built as ``serve`` builds it (``create_app`` with the tenant of bench_serve.py's
world, its log lines written to ``/dev/null``), and called directly with one form body per
request (the 64 rotating bodies of bench_serve.py) on uvloop. Printed: the mean of the 5 fastest
batches of 100 requests (CPU, ``time.process_time``), then the same for a raw RS256 signature of
400 bytes with a fresh 2048-bit key, so that "app minus signature" is the non-signing work above
the HTTP server. ``--profile PATH`` writes a cProfile of the requests instead of timing them.
Run another checkout's code with ``PYTHONPATH=DIR`` (``git archive <commit> claimsengine``).

    .venv/bin/python bench/profile_serve.py [--requests 3000] [--clients 1000] [--profile PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench_serve  # noqa: E402 (bench/ is not a package)

HOST = "127.0.0.1:8000"
BATCH = 100


def fastest(batches: list[float]) -> float:
    return sum(sorted(batches)[:5]) / 5


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--profile", type=Path, default=None)
    args = parser.parse_args()
    data = bench_serve.make_dataset(args.clients)
    bodies = [body.encode() for body in data.bodies()]
    sink = open(os.devnull, "w")  # noqa: SIM115 (lives as long as the app)
    with tempfile.TemporaryDirectory(prefix="profile-serve-") as tmp:
        app = bench_serve.serve_app(bench_serve.write_tenant(data, Path(tmp)), HOST, sink)

    async def one(body: bytes) -> None:
        headers = [
            (b"host", HOST.encode()),
            (b"content-type", b"application/x-www-form-urlencoded"),
            (b"content-length", b"%d" % len(body)),
        ]
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/oauth/token",
            "raw_path": b"/oauth/token",
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 5000),
            "server": ("127.0.0.1", 8000),
            "state": {},
        }
        messages = [{"type": "http.request", "body": body, "more_body": False}]
        sent: list[Any] = []

        async def receive() -> Any:
            if messages:
                return messages.pop()
            await asyncio.sleep(3600)  # pragma: no cover (the app reads the body once)
            return None

        async def send(message: Any) -> None:
            sent.append(message)

        await app(scope, receive, send)
        assert sent[0]["status"] == 200, sent

    async def run() -> float:
        for i in range(300):  # warm: the fast path's compiled routes, the first signatures
            await one(bodies[i % len(bodies)])
        if args.profile is not None:
            profile = cProfile.Profile()
            profile.enable()
            for i in range(args.requests):
                await one(bodies[i % len(bodies)])
            profile.disable()
            profile.dump_stats(args.profile)
            return float("nan")
        batches = []
        for _ in range(args.requests // BATCH):
            start = time.process_time()
            for i in range(BATCH):
                await one(bodies[i % len(bodies)])
            batches.append((time.process_time() - start) / BATCH * 1e6)
        return fastest(batches)

    import uvloop

    app_us = uvloop.run(run())
    if args.profile is not None:
        print(f"cProfile of {args.requests} requests written to {args.profile}")
        return 0
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    message = b"x" * 400
    batches = []
    for _ in range(args.requests // BATCH):
        start = time.process_time()
        for _ in range(BATCH):
            key.sign(message, padding.PKCS1v15(), hashes.SHA256())
        batches.append((time.process_time() - start) / BATCH * 1e6)
    sign_us = fastest(batches)
    print(
        f"app {app_us:.1f} us CPU/request; raw RS256 {sign_us:.1f} us; app minus signature {app_us - sign_us:.1f} us "
        f"(mean of 5 fastest batches of {BATCH}); load {os.getloadavg()[0]:.2f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

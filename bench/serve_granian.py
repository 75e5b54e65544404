#!/usr/bin/env python3
"""Would a Rust HTTP server make ``serve`` faster? The same two apps on uvicorn and on granian.

An experiment for issue 13's target 4, not part of ``bench_serve.py``: Authlib's peer
(bench/peer_authlib.py) and claimsengine's app (built as ``claimsengine serve`` builds it) each
served by uvicorn (as ``bench_serve.py`` serves them) and by granian (ASGI interface, one worker,
uvloop, ``--runtime-mode`` from ``--mode``), under the same wrk load, in shuffled rounds, with
``bench_serve.py``'s checks before and after. Printed: median req/s and server CPU per request,
and each as a median of per-round ratios to Authlib on uvicorn.

granian is not a dependency of the project: install it where this script can import it, e.g.
``pip install --target DIR granian`` and pass ``--granian DIR``.

    .venv/bin/python bench/serve_granian.py --granian DIR [--rounds 4] [--mode st]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench_decide  # noqa: E402 (bench/ is not a package)
import bench_serve as bs  # noqa: E402

PY = sys.executable


def ce_app() -> Any:
    """granian's factory for claimsengine: the app ``claimsengine serve`` builds, log lines on."""
    return bs.serve_app(Path(os.environ["CE_TENANT"]), os.environ["CE_HOST"], sys.stdout)


def authlib_app() -> Any:
    """granian's factory for Authlib's peer."""
    os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")  # plain http on loopback only
    import peer_authlib

    return peer_authlib.build_app(int(os.environ["N_CLIENTS"]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--granian", type=Path, required=True, help="a folder granian is installed in (pip install --target)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--duration", type=float, default=5)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--mode", choices=("st", "mt"), default="st", help="granian's runtime mode")
    args = parser.parse_args()
    data = bs.make_dataset(args.clients)
    with tempfile.TemporaryDirectory(prefix="serve-granian-") as tmp:
        work = Path(tmp)
        tenant = bs.write_tenant(data, work)
        running: list[bs.Server] = []
        try:
            port = bs.free_port()
            url = f"http://127.0.0.1:{port}"
            command = [PY, str(HERE / "peer_authlib.py"), str(port), str(args.clients)]
            running.append(bs.start("authlib-uvicorn", command, url, url + "/.well-known/jwks.json", work, token_path="/oauth/token"))
            port = bs.free_port()
            url = f"http://127.0.0.1:{port}"
            command = [PY, "-m", "claimsengine", "serve", "--tenant", str(tenant), "--port", str(port)]
            running.append(bs.start("ce-uvicorn", command, url, url + "/.well-known/jwks.json", work, token_path="/oauth/token"))
            for name, factory in (("authlib-granian", "authlib_app"), ("ce-granian", "ce_app")):
                port = bs.free_port()
                url = f"http://127.0.0.1:{port}"
                env = {
                    "PYTHONPATH": os.pathsep.join([str(args.granian), str(HERE)]),
                    "CE_TENANT": str(tenant),
                    "CE_HOST": f"127.0.0.1:{port}",
                    "N_CLIENTS": str(args.clients),
                }
                command = [PY, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
                command += ["--loop", "uvloop", "--runtime-mode", args.mode, "--no-access-log", "--log-level", "warning"]
                command += ["--factory", f"serve_granian:{factory}"]
                running.append(bs.start(name, command, url, url + "/.well-known/jwks.json", work, env=env, token_path="/oauth/token"))
            for server in running:
                if server.name.startswith("authlib"):
                    server.issuer = bench_decide.ISSUER
                bs.check(server, data, 0)
            script = work / "load.lua"
            script.write_text(bs.LUA % {"bodies": ", ".join(f'"{b}"' for b in data.bodies(mock=False)), "path": "/oauth/token"})
            for server in running:  # warm-up
                bs.wrk(server, script, 8, 2)
            samples: dict[str, list[dict[str, Any]]] = {server.name: [] for server in running}
            order, shuffle = list(running), random.Random(3)  # noqa: S311 (a reproducible order)
            for number in range(args.rounds):
                shuffle.shuffle(order)
                for server in order:
                    samples[server.name].append(bs.wrk(server, script, 8, args.duration))
                print(f"  round {number + 1}/{args.rounds}: load {os.getloadavg()[0]:.2f}", file=sys.stderr, flush=True)
            for server in running:
                bs.check(server, data, 1)
        finally:
            for server in running:
                bs.stop(server)
    reference = samples["authlib-uvicorn"]
    print(f"| server | req/s | CPU µs/req | req/s x Authlib on uvicorn | CPU x Authlib on uvicorn |   (granian --runtime-mode {args.mode})")
    print("|---|---:|---:|---:|---:|")
    for name, runs in samples.items():
        rps = statistics.median(run["rps"] for run in runs)
        cpu = statistics.median(run["cpu_us"] for run in runs)
        x_rps = statistics.median(a["rps"] / b["rps"] for a, b in zip(runs, reference, strict=True))
        x_cpu = statistics.median(a["cpu_us"] / b["cpu_us"] for a, b in zip(runs, reference, strict=True))
        print(f"| {name} | {rps:,.0f} | {cpu:.0f} | {x_rps:.2f} | {x_cpu:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

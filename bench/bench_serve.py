#!/usr/bin/env python3
"""``claimsengine serve`` next to its HTTP peers, side by side in one run (issue 13, target 4).

Servers, each one process on a free loopback port (pinned to CPU 0 when ``taskset`` exists):

* ``mock``: oauth2-mock-server (Node, npm), POST /token, RS256. Installed with npm into
  ``bench/results/node`` on first use (``--node-dir``). It authenticates nobody and looks
  nothing up: it only signs.
* ``authlib``: Authlib's client_credentials grant behind Starlette + uvicorn (bench/peer_authlib.py,
  uvloop + httptools when installed, access log off), with Auth0's steps.
* ``ce``: ``claimsengine serve`` exactly as shipped (its default logging).
* ``ce-quiet``: the same with ``--no-request-log`` (when this checkout has the option).

The Python servers serve bench_decide.py's world (``make_world``): ``--clients`` clients
(client_secret_post), 10 APIs with 8 scopes each, each client granted 5 scopes of one API; every
request asks for 2 granted scopes. ``--baseline CHECKOUT`` adds ``ce-before``: ``claimsengine
serve`` from another checkout (``git archive <commit> claimsengine | tar -x -C DIR``), in the same
rounds, for before/after ratios. Before timing, each server must answer a correct RS256 token: verified against its JWKS
with PyJWT (iss, aud, sub ``<client>@clients``, azp, gty, scope, exp - iat); claimsengine and
Authlib must also refuse a wrong secret and an unknown audience with a 4xx. The same checks run
again after the load.

Load: ``wrk`` (Debian's package: ``apt-get install wrk``), one thread, ``--conns`` keep-alive
connections (pinned to CPU 1), POSTing form bodies that rotate over 64 clients, for
``--duration`` seconds per run. Every configuration runs once per round, in a shuffled order,
for ``--rounds`` rounds after a warm-up run each. Reported: median req/s with min-max, p50/p99,
server CPU per request (utime + stime from /proc), and the ratios to the peers as **medians of
per-round ratios**, plus the load average at each round. Nothing here is a test.

    .venv/bin/python bench/bench_serve.py [--rounds 5] [--duration 5] [--conns 8] [--clients 1000] [--json PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlencode

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
PY = sys.executable
MOCK_VERSION = "8.2.3"  # as in ../shared/reference/perf-anchors.md
ROTATING = 64
TASKSET = shutil.which("taskset")
sys.path.insert(0, str(HERE))
import bench_decide  # noqa: E402 (bench/ is not a package)

MOCK_SCRIPT = """
import { OAuth2Server } from 'oauth2-mock-server';
const server = new OAuth2Server();
await server.issuer.keys.generate('RS256');
await server.start(Number(process.argv[2]), '127.0.0.1');
process.stdout.write(`READY ${server.address().port}\\n`);
const stop = async () => { try { await server.stop(); } finally { process.exit(0); } };
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
"""

LUA = """
local bodies = {%(bodies)s}
local headers = {["Content-Type"] = "application/x-www-form-urlencoded"}
local i = 0
request = function()
  i = i %% #bodies + 1
  return wrk.format("POST", "%(path)s", headers, bodies[i])
end
"""


# ---------------------------------------------------------------------------------------
# Data: bench_decide.py's world, so the in-process and the HTTP figures share one data set
# ---------------------------------------------------------------------------------------


@dataclass
class Dataset:
    world: Any  # bench_decide.World

    def picked(self) -> list[Any]:
        """The requests (bench_decide.Request) the load rotates over."""
        return list(self.world.requests[:ROTATING])

    def bodies(self, *, mock: bool = False) -> list[str]:
        audience = "aud" if mock else "audience"  # oauth2-mock-server reads `aud`
        return [
            urlencode(
                {
                    "grant_type": "client_credentials",
                    "client_id": r.client_id,
                    "client_secret": r.secret,
                    audience: r.audience,
                    "scope": r.scope,
                }
            )
            for r in self.picked()
        ]


def make_dataset(n_clients: int) -> Dataset:
    return Dataset(bench_decide.make_world(n_clients))


def write_tenant(data: Dataset, directory: Path) -> Path:
    """The world as a tenant file in claimsengine's own format (what bench_decide builds in Python)."""
    world = data.world
    tenant = {
        "domain": bench_decide.DOMAIN,
        "apis": [{"identifier": a.identifier, "scopes": list(a.scopes), "token_lifetime": a.lifetime} for a in world.apis.values()],
        "clients": [
            {
                "client_id": cid,
                "client_secrets": [secret],
                "app_type": "non_interactive",
                "token_endpoint_auth_method": "client_secret_post",
                "grant_types": ["client_credentials"],
            }
            for cid, secret in world.secrets.items()
        ],
        "client_grants": [{"client_id": cid, "audience": aud, "scope": list(scopes)} for (cid, aud), scopes in world.grants.items()],
        # Auth0 returns every granted scope; the peers return what was asked: ask claimsengine for that too.
        "behaviour": {"client_credentials_scopes": "requested"},
    }
    path = directory / "tenant.json"
    path.write_text(json.dumps(tenant))
    return path


def serve_app(path: Path, host: str, lines: TextIO) -> Any:
    """The ASGI app ``claimsengine serve --tenant path`` builds, served as ``host`` (plain http),
    its log lines written to ``lines``: for driving it in-process or on another HTTP server."""
    from claimsengine.adapters import control, server

    config: dict[str, Any] = {"tenant": str(path), "keywords": {}, "domain": None, "strict_host": False}
    for name in ("keyword_file", "credentials", "node_modules", "action_secrets", "users", "user_assignments", "default_user"):
        config[name] = None
    config.update(admin=False, seed=None, now=None, clock_step=0, deploy_config=None)
    app = server.create_app(server.with_served_domains(server._load(config), [host]), lines=control.Lines(lines, enabled=True))
    app.state.auth0.serve_as([host], scheme="http")
    return app


# ---------------------------------------------------------------------------------------
# Servers
# ---------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def pinned(cpu: int, command: list[str]) -> list[str]:
    return [TASKSET, "-c", str(cpu), *command] if TASKSET and (os.cpu_count() or 1) > 1 else command


@dataclass
class Server:
    name: str
    url: str
    token_path: str
    proc: subprocess.Popen[bytes]
    issuer: str | None = None  # expected iss; None: read it from discovery
    mock: bool = False
    started_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def _wait(proc: subprocess.Popen[bytes], probe: str, log: Path, seconds: float = 180) -> float:
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if proc.poll() is not None:
            break
        try:
            with urllib.request.urlopen(  # noqa: S310 (loopback http only)
                probe, timeout=2
            ) as answer:
                if answer.status == 200:
                    return time.monotonic() - started
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{probe} did not come up; see {log}")


def start(name: str, command: list[str], url: str, probe: str, logs: Path, env: dict[str, str] | None = None, **fields: Any) -> Server:
    log = logs / f"{name}.log"
    with log.open("wb") as sink:
        # cwd: the temporary folder, so that `python -m claimsengine` imports the installed package
        # (or --baseline's, through PYTHONPATH), never a checkout that happens to be the cwd.
        proc = subprocess.Popen(pinned(0, command), stdout=sink, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}, cwd=logs)
    server = Server(name=name, url=url, proc=proc, **fields)
    try:
        server.started_s = _wait(proc, probe, log)
    except BaseException:
        stop(server)
        raise
    return server


def stop(server: Server) -> None:
    proc = server.proc
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def node_dir(path: Path) -> Path:
    """A folder with oauth2-mock-server installed from the npm registry (once) and the script."""
    if not (path / "node_modules" / "oauth2-mock-server").is_dir():
        path.mkdir(parents=True, exist_ok=True)
        (path / "package.json").write_text(json.dumps({"private": True, "type": "module"}))
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--silent", f"oauth2-mock-server@{MOCK_VERSION}"], cwd=path, check=True
        )
    (path / "mock_server.mjs").write_text(MOCK_SCRIPT)
    return path


def ce_supports(option: str) -> bool:
    text = subprocess.run([PY, "-m", "claimsengine", "serve", "--help"], capture_output=True, text=True, check=True).stdout
    return option in text


# ---------------------------------------------------------------------------------------
# Correctness
# ---------------------------------------------------------------------------------------


def post(url: str, body: str) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(  # noqa: S310 (loopback http only)
        url, data=body.encode(), method="POST", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    try:
        with urllib.request.urlopen(  # noqa: S310 (loopback http only)
            request, timeout=10
        ) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read() or b"{}")


def check(server: Server, data: Dataset, index: int) -> None:
    """The server answers a correct RS256 token (and refuses bad requests, except the mock)."""
    import jwt

    asked = data.picked()[index]
    cid, secret, audience = asked.client_id, asked.secret, asked.audience
    body = data.bodies(mock=server.mock)[index]
    status, answer = post(server.url + server.token_path, body)
    assert status == 200, (server.name, status, answer)
    token = answer["access_token"]
    jwks_path = "/jwks" if server.mock else "/.well-known/jwks.json"
    with urllib.request.urlopen(  # noqa: S310 (loopback http only)
        server.url + jwks_path, timeout=10
    ) as published:
        keys = jwt.PyJWKSet.from_dict(json.loads(published.read()))
    kid = jwt.get_unverified_header(token)["kid"]
    issuer = server.issuer
    if issuer is None:
        with urllib.request.urlopen(  # noqa: S310 (loopback http only)
            server.url + "/.well-known/openid-configuration", timeout=10
        ) as discovery:
            issuer = json.loads(discovery.read())["issuer"]
    claims = jwt.decode(token, keys[kid].key, algorithms=["RS256"], audience=audience, issuer=issuer)
    assert claims["scope"] == asked.expected, (server.name, claims)
    if server.mock:
        return  # the mock signs whatever it is given; it has no clients
    assert (claims["sub"], claims["azp"], claims["gty"]) == (f"{cid}@clients", cid, "client-credentials"), claims
    assert (claims["exp"] - claims["iat"], answer["expires_in"]) == (bench_decide.LIFETIME, bench_decide.LIFETIME), (claims, answer)
    for bad in (body.replace(secret, "x" * 64), body.replace("api", "nope", 1)):
        status, _ = post(server.url + server.token_path, bad)
        assert 400 <= status < 500, (server.name, status)


# ---------------------------------------------------------------------------------------
# Load
# ---------------------------------------------------------------------------------------


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError), open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def server_pids(server: Server) -> list[int]:
    """The server process and its children (taskset execs; `claimsengine serve` may fork workers)."""
    pids = [server.proc.pid]
    with contextlib.suppress(OSError):
        children = Path(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children").read_text().split()
        pids.extend(int(p) for p in children)
    return pids


def milliseconds(value: str, unit: str) -> float:
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def wrk(server: Server, script: Path, conns: int, seconds: float) -> dict[str, Any]:
    pids = server_pids(server)
    before = cpu_seconds(pids)
    command = ["wrk", "-t1", f"-c{conns}", f"-d{max(1, round(seconds))}s", "--timeout", "5s", "--latency", "-s", str(script), server.url]
    out = subprocess.run(pinned(1, command), capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    used = cpu_seconds(pids) - before
    found = re.search(r"(\d+) requests in", out)
    requests = int(found.group(1)) if found else 0
    row: dict[str, Any] = {"requests": requests, "cpu_us": used * 1e6 / requests if requests else float("nan")}
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    row["rps"] = float(found.group(1)) if found else 0.0
    for pct in ("50", "99"):
        found = re.search(rf"^\s+{pct}(?:\.0+)?%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        row[f"p{pct}_ms"] = milliseconds(*found.groups()) if found else float("nan")
    found = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    row["non2xx"] = int(found.group(1)) if found else 0
    found = re.search(r"Socket errors: (.*)", out)
    row["socket_errors"] = found.group(1) if found else ""
    return row


@contextlib.contextmanager
def servers(args: argparse.Namespace, data: Dataset, work: Path) -> Iterator[list[Server]]:
    tenant = write_tenant(data, work)
    running: list[Server] = []
    try:
        if "mock" in args.servers:
            node = node_dir(args.node_dir)
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            running.append(
                start("mock", ["node", str(node / "mock_server.mjs"), str(port)], url, url + "/jwks", work, token_path="/token", mock=True)
            )
        if "authlib" in args.servers:
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            command = [PY, str(HERE / "peer_authlib.py"), str(port), str(args.clients)]
            running.append(start("authlib", command, url, url + "/.well-known/jwks.json", work, token_path="/oauth/token"))
            running[-1].issuer = bench_decide.ISSUER
        variants: list[tuple[str, list[str], dict[str, str]]] = [("ce", [], {})]
        if "ce-quiet" in args.servers and ce_supports("--no-request-log"):
            variants.append(("ce-quiet", ["--no-request-log"], {}))
        if args.baseline is not None:  # another checkout's claimsengine, first on the path
            variants.append(("ce-before", [], {"PYTHONPATH": str(args.baseline.resolve())}))
            args.servers.add("ce-before")
        for name, options, env in variants:
            if name not in args.servers:
                continue
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            command = [PY, "-m", "claimsengine", "serve", "--tenant", str(tenant), "--port", str(port), *options]
            running.append(start(name, command, url, url + "/.well-known/jwks.json", work, env=env, token_path="/oauth/token"))
        yield running
    finally:
        for server in running:
            stop(server)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=5, help="seconds per wrk run (default 5)")
    parser.add_argument("--conns", type=int, default=8, help="keep-alive connections (default 8)")
    parser.add_argument("--clients", type=int, default=1000, help="clients in the data set (default 1000)")
    parser.add_argument("--servers", default="mock,authlib,ce,ce-quiet", help="which servers (default: all four)")
    parser.add_argument("--node-dir", type=Path, default=RESULTS / "node", help="where oauth2-mock-server is installed")
    parser.add_argument("--baseline", type=Path, help="also serve ce-before: `claimsengine serve` from this checkout (before/after)")
    parser.add_argument("--json", type=Path, help="also write every run here")
    args = parser.parse_args()
    args.servers = set(args.servers.split(","))
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install wrk")
    data = make_dataset(args.clients)
    started = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp, servers(args, data, Path(tmp)) as running:
        for server in running:
            check(server, data, 0)
        scripts = {}
        for server in running:
            bodies = ", ".join(f'"{b}"' for b in data.bodies(mock=server.mock))
            scripts[server.name] = Path(tmp) / f"{server.name}.lua"
            scripts[server.name].write_text(LUA % {"bodies": bodies, "path": server.token_path})
        print(
            f"# bench_serve: {args.rounds} rounds x {args.duration:g} s, {args.conns} connections, {args.clients} clients; "
            f"load average at start {started[0]:.2f} {started[1]:.2f} {started[2]:.2f}; "
            + ", ".join(f"{s.name} up in {s.started_s:.1f} s" for s in running),
            flush=True,
        )
        for server in running:  # warm-up
            wrk(server, scripts[server.name], args.conns, max(1.0, args.duration / 3))
        samples: dict[str, list[dict[str, Any]]] = {s.name: [] for s in running}
        loads: list[float] = []
        order = list(running)
        shuffle = random.Random(17)  # noqa: S311 (a reproducible order)
        for number in range(args.rounds):
            loads.append(os.getloadavg()[0])
            shuffle.shuffle(order)
            for server in order:
                samples[server.name].append(wrk(server, scripts[server.name], args.conns, args.duration))
            print(f"  round {number + 1}/{args.rounds}: load {loads[-1]:.2f}", file=sys.stderr, flush=True)
        for server in running:
            check(server, data, 1)  # still correct after the load
    ended = os.getloadavg()

    def ratio(name: str, reference: str, key: str) -> float:
        if name not in samples or reference not in samples:
            return float("nan")
        pairs = zip(samples[name], samples[reference], strict=True)
        return median([a[key] / b[key] for a, b in pairs if b[key]])

    at_end = " ".join(f"{x:.2f}" for x in ended)
    print(f"\nload average (1 min) at each round: {', '.join(f'{x:.2f}' for x in loads)}; at the end {at_end}")
    print(
        "\n| server | req/s median | min-max | p50 ms | p99 ms | CPU µs/req "
        "| x mock req/s | x Authlib req/s | CPU x mock | CPU x Authlib | non-2xx |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    rows = []
    for name, runs in samples.items():
        rps = [r["rps"] for r in runs]
        row = {
            "server": name,
            "rps": median(rps),
            "rps_min": min(rps),
            "rps_max": max(rps),
            "p50_ms": median([r["p50_ms"] for r in runs]),
            "p99_ms": median([r["p99_ms"] for r in runs]),
            "cpu_us": median([r["cpu_us"] for r in runs]),
            "x_mock": ratio(name, "mock", "rps"),
            "x_authlib": ratio(name, "authlib", "rps"),
            "cpu_x_authlib": ratio(name, "authlib", "cpu_us"),
            "cpu_x_mock": ratio(name, "mock", "cpu_us"),
            "non2xx": sum(r["non2xx"] for r in runs),
            "socket_errors": [r["socket_errors"] for r in runs if r["socket_errors"]],
        }
        rows.append(row)
        print(
            f"| {name} | {row['rps']:,.0f} | {row['rps_min']:,.0f}-{row['rps_max']:,.0f} | {row['p50_ms']:.2f} | {row['p99_ms']:.2f} | "
            f"{row['cpu_us']:.0f} | {row['x_mock']:.2f} | {row['x_authlib']:.2f} | {row['cpu_x_mock']:.2f} | {row['cpu_x_authlib']:.2f} | "
            f"{row['non2xx']} |"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"loads": loads, "start": started, "end": ended, "rows": rows, "samples": samples}, indent=1))
    return 0 if all(r["non2xx"] == 0 and not r["socket_errors"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

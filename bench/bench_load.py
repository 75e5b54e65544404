"""Tenant loading: seconds and peak memory for synthetic tenants of 10, 10k and 100k clients.

Not a test: nothing here asserts a timing. Run from the repository root with the project venv:

    .venv/bin/python bench/bench_load.py                          # 10 and 10k clients, 3 rounds
    .venv/bin/python bench/bench_load.py --sizes 10,10000,100000 --rounds 1
    .venv/bin/python bench/bench_load.py --baseline /tmp/base     # also an older checkout, same run

Each tenant is written twice: as a Deploy CLI export (``tenant.yaml``) and in claimsengine's own
format as JSON (``tenant.json``). Every measurement runs in a fresh subprocess, so that its peak
resident memory (``ru_maxrss``) is its own, and reports the seconds spent in the measured call.
The rows, interleaved in a shuffled order in every round:

* ``json.load`` / ``yaml CSafeLoader``: the parser alone, the floor;
* ``load_tenant``: the whole load (parse, map, validate the model, derive credentials);
* ``load + index``: the load, then ``tenant.index`` (what a server builds before it serves);
* with ``--baseline DIR``, ``load_tenant`` from that checkout (``PYTHONPATH=DIR``).

The ``serve`` start-up (load, keys, app, first 200 on /.well-known/openid-configuration) is
timed with ``--serve``: wall seconds and the server's CPU seconds until then. Each checkout's
``claimsengine`` is compiled to bytecode first, as an installed package is.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOMAIN = "bench.auth0.com"
APIS = 20


def deploy_export(clients: int) -> dict[str, Any]:
    """A Deploy CLI export: ``clients`` applications (60% M2M with 3 grants each, 30% web apps,
    10% SPAs), 20 APIs, 2 organizations."""
    apis = [
        {
            "identifier": f"https://api{i}.bench.example",
            "name": f"API {i}",
            "scopes": [{"value": f"{verb}:r{i}", "description": f"{verb} r{i}"} for verb in ("read", "write", "delete", "admin")],
            "signing_alg": "RS256",
            "token_lifetime": 86400,
            "allow_offline_access": i % 2 == 0,
            "token_dialect": "access_token_authz" if i % 3 == 0 else "access_token",
        }
        for i in range(APIS)
    ]
    apps: list[dict[str, Any]] = []
    grants: list[dict[str, Any]] = []
    for i in range(clients):
        kind = i % 10
        name = f"App {i:06d}"
        if kind < 6:
            apps.append({"name": name, "client_id": f"cid{i:06d}", "client_secret": f"secret-{i}", "app_type": "non_interactive",
                         "grant_types": ["client_credentials"], "token_endpoint_auth_method": "client_secret_post"})  # fmt: skip
            for j in range(3):
                api = apis[(i + j) % APIS]
                grants.append({"client_id": name, "audience": api["identifier"], "scope": [s["value"] for s in api["scopes"][:2]]})
        elif kind < 9:
            apps.append({"name": name, "client_id": f"cid{i:06d}", "client_secret": f"secret-{i}", "app_type": "regular_web",
                         "grant_types": ["authorization_code", "refresh_token"], "callbacks": [f"https://app{i}.bench.example/cb"],
                         "jwt_configuration": {"lifetime_in_seconds": 36000, "alg": "RS256"}})  # fmt: skip
        else:
            apps.append({"name": name, "client_id": f"cid{i:06d}", "app_type": "spa", "token_endpoint_auth_method": "none",
                         "grant_types": ["authorization_code"], "callbacks": [f"https://spa{i}.bench.example/cb"]})  # fmt: skip
    return {
        "tenant": {"friendly_name": "bench", "default_audience": ""},
        "resourceServers": apis,
        "clients": apps,
        "clientGrants": grants,
        "organizations": [{"name": "one", "display_name": "One"}, {"name": "two", "display_name": "Two"}],
    }


def own_format(clients: int) -> dict[str, Any]:
    """The same tenant in claimsengine's own format (the Tenant model's fields)."""
    export = deploy_export(clients)
    by_name = {c["name"]: c["client_id"] for c in export["clients"]}
    apis = [
        {**{k: v for k, v in a.items() if k != "scopes"}, "scopes": [s["value"] for s in a["scopes"]]} for a in export["resourceServers"]
    ]
    own_clients = []
    for c in export["clients"]:
        item = {k: v for k, v in c.items() if k not in ("client_secret", "jwt_configuration")}
        if "client_secret" in c:
            item["client_secrets"] = [c["client_secret"]]
        own_clients.append(item)
    grants = [{**g, "client_id": by_name[g["client_id"]]} for g in export["clientGrants"]]
    return {"domain": DOMAIN, "apis": apis, "clients": own_clients, "client_grants": grants}


def write_files(clients: int, folder: Path) -> dict[str, Path]:
    import yaml

    files = {"yaml": folder / f"tenant-{clients}.yaml", "json": folder / f"tenant-{clients}.json"}
    if not files["yaml"].exists():
        files["yaml"].write_text(yaml.dump(deploy_export(clients), Dumper=yaml.CSafeDumper, sort_keys=False))
        files["json"].write_text(json.dumps(own_format(clients), indent=2))
    return files


def _measure(row: str, file: str) -> dict[str, Any]:
    """Runs in the child: one row on one file; returns seconds and peak RSS (imports are not timed)."""
    import yaml

    from claimsengine.adapters.loader import load_tenant

    start = time.perf_counter()
    if row == "parse":
        with open(file, encoding="utf-8") as f:
            if file.endswith(".json"):
                json.load(f)
            else:
                yaml.load(f, Loader=yaml.CSafeLoader)
    else:
        loaded = load_tenant(file, domain=DOMAIN)
        if row == "index":
            assert loaded.tenant.index is not None
    seconds = time.perf_counter() - start
    # VmHWM, not ru_maxrss: on Linux a child's ru_maxrss starts from its parent's peak at fork,
    # and the parent here has just built the synthetic tenant in memory.
    status = Path("/proc/self/status")
    if status.exists():
        peak_kib = int(next(line.split()[1] for line in status.read_text().splitlines() if line.startswith("VmHWM:")))
    else:
        peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"seconds": seconds, "peak_mib": peak_kib / 1024}


def _child(row: str, file: Path, pythonpath: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": pythonpath}
    out = subprocess.run(
        [sys.executable, __file__, "--child", row, str(file)], capture_output=True, text=True, check=True, env=env, cwd=ROOT
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _serve_startup(file: Path, pythonpath: str) -> tuple[float, float | None]:
    """Seconds from starting ``claimsengine serve`` to its first 200 (then it is stopped by PID),
    and the CPU seconds the server used until then (``/proc``; ``None`` elsewhere). The parent
    polls with ``urllib`` every 20 ms: a poll costs it little CPU, which the server would lose
    on a machine with few cores."""
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": pythonpath}
    cmd = [sys.executable, "-m", "claimsengine", "serve", "--tenant", str(file), "--auth0-domain", DOMAIN, "--port", str(port)]
    url = f"http://127.0.0.1:{port}/.well-known/openid-configuration"
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while proc.poll() is None:
            try:
                with urllib.request.urlopen(url, timeout=1) as response:
                    if response.status == 200:
                        return time.perf_counter() - start, _cpu_seconds(proc.pid)
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"serve exited with {proc.returncode}")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a running process, from ``/proc/PID/stat`` (Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _write_bytecode(checkout: str) -> None:
    """Compile a checkout's ``claimsengine`` once, as installing a package does: with
    ``PYTHONDONTWRITEBYTECODE`` set, every ``serve`` start-up would otherwise compile the modules
    that no earlier run wrote ``.pyc`` files for."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(checkout) / "claimsengine")], check=True, stdout=subprocess.DEVNULL)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10,10000", help="comma-separated client counts")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", metavar="DIR", help="a checkout of another commit to time in the same run")
    parser.add_argument("--serve", action="store_true", help="also time `claimsengine serve` start-up")
    parser.add_argument("--formats", default="json,yaml")
    parser.add_argument("--json", metavar="FILE", help="also write the samples as JSON")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_measure(*args.child)))
        return 0
    here = str(ROOT)
    rows: dict[str, tuple[str, str]] = {"parse (floor)": ("parse", here), "load_tenant": ("load", here), "load + index": ("index", here)}
    if args.baseline:
        rows["load_tenant (baseline)"] = ("load", str(Path(args.baseline).resolve()))
    sizes = [int(s) for s in args.sizes.split(",")]
    formats = args.formats.split(",")
    folder = Path(tempfile.mkdtemp(prefix="bench-load-"))
    files = {n: write_files(n, folder) for n in sizes}
    cells = [(row, n, fmt) for row in rows for n in sizes for fmt in formats]
    if args.serve:
        cells += [("serve start-up", n, "json") for n in sizes]
        cells += [("serve start-up (baseline)", n, "json") for n in sizes if args.baseline]
    if args.serve:
        for checkout in {here, *([str(Path(args.baseline).resolve())] if args.baseline else [])}:
            _write_bytecode(checkout)
    samples: dict[tuple[str, int, str], list[dict[str, Any]]] = {c: [] for c in cells}
    rng = random.Random(13)  # noqa: S311 (a shuffle, not a secret)
    for _ in range(args.rounds):
        rng.shuffle(cells)
        for row, n, fmt in cells:
            if row.startswith("serve"):
                path = str(Path(args.baseline).resolve()) if "baseline" in row else here
                seconds, cpu = _serve_startup(files[n][fmt], path)
                samples[(row, n, fmt)].append({"seconds": seconds, "cpu": cpu, "peak_mib": 0.0})
            else:
                kind, path = rows[row]
                samples[(row, n, fmt)].append(_child(kind, files[n][fmt], path))
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, {args.rounds} rounds, {os.cpu_count()} CPUs")
    print(f"{'row':<26} {'format':>6} {'clients':>8} {'median s':>9} {'min s':>7} {'peak MiB':>9} {'x floor':>8} {'CPU s':>6}")
    for key in sorted(samples, key=lambda k: (k[2], k[1], list(rows).index(k[0]) if k[0] in rows else 99)):
        row, n, fmt = key
        times = [s["seconds"] for s in samples[key]]
        floor = [s["seconds"] for s in samples.get(("parse (floor)", n, fmt), [])]
        ratio = statistics.median(t / f for t, f in zip(times, floor, strict=True)) if floor and not row.startswith("serve") else None
        peak = max(s["peak_mib"] for s in samples[key])
        shown = f"{ratio:>8.1f}" if ratio is not None else f"{'':>8}"
        cpus = [s["cpu"] for s in samples[key] if s.get("cpu") is not None]
        cpu = f"{statistics.median(cpus):>6.2f}" if cpus else ""
        print(f"{row:<26} {fmt:>6} {n:>8} {statistics.median(times):>9.2f} {min(times):>7.2f} {peak:>9.0f} {shown} {cpu}")
    if args.json:
        out = [{"row": r, "clients": n, "format": f, "samples": s} for (r, n, f), s in samples.items()]
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Decision-table and diff throughput on synthetic tenants: rows/s, peak memory, diff/table ratio.

Not a test: nothing here asserts a timing. Run from the repository root with the project venv:

    .venv/bin/python bench/bench_table.py                  # 1k x 20 and 150 x 40, one round each
    .venv/bin/python bench/bench_table.py --sizes 150x40 --jobs 2
    .venv/bin/python bench/bench_table.py --json bench/results/table.json
    .venv/bin/python bench/bench_table.py --sizes 1000x20 --jobs 1,2 --rounds 3 --baseline /tmp/base

Each measurement runs in a fresh subprocess so that its peak memory (ru_maxrss) is its own.
With ``--rounds N`` the cells (size x jobs x table/diff x this checkout or ``--baseline DIR``, a
checkout of another commit put first on ``PYTHONPATH``) run in a shuffled order in every round;
the medians (wall seconds, and CPU seconds of the child with its finished ``--jobs`` workers) and the
machine's load average are printed.
The diff compares the tenant with a copy whose first API has another token lifetime, so every
group that uses that API changes and has to be merged.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# This checkout, unless the parent runs a child on another one (--baseline: PYTHONPATH).
sys.path.insert(0, os.environ.get("BENCH_CODE") or str(Path(__file__).resolve().parent.parent))

from claimsengine import Tenant


def synthetic_tenant(clients: int, apis: int, *, lifetime: int = 86400) -> Tenant:
    """``clients`` applications (60% machine-to-machine, 30% web apps, 10% SPAs) and ``apis`` APIs."""
    domain = "bench.auth0.com"
    api_list = [
        {
            "identifier": f"https://api{i}.bench.example",
            "name": f"API {i}",
            "scopes": [f"read:r{i}", f"write:r{i}", f"delete:r{i}", f"admin:r{i}"],
            "token_lifetime": lifetime if i == 0 else 86400,
            "allow_offline_access": i % 2 == 0,
            "token_dialect": "access_token_authz" if i % 3 == 0 else "access_token",
        }
        for i in range(apis)
    ]
    client_list: list[dict[str, Any]] = []
    grants: list[dict[str, Any]] = []
    for i in range(clients):
        kind = i % 10
        cid = f"client{i:05d}"
        if kind < 6:
            client_list.append(
                {"client_id": cid, "name": f"Service {i}", "app_type": "non_interactive", "client_secrets": [f"secret-{i}"],
                 "grant_types": ["client_credentials"]}
            )  # fmt: skip
            for j in range(3):
                api = api_list[(i + j) % apis]
                grants.append({"client_id": cid, "audience": api["identifier"], "scope": api["scopes"][:2]})
        elif kind < 9:
            client_list.append(
                {"client_id": cid, "name": f"Web app {i}", "app_type": "regular_web", "client_secrets": [f"secret-{i}"],
                 "grant_types": ["authorization_code", "refresh_token"], "callbacks": [f"https://app{i}.bench.example/cb"]}
            )  # fmt: skip
        else:
            client_list.append(
                {"client_id": cid, "name": f"SPA {i}", "app_type": "spa", "token_endpoint_auth_method": "none",
                 "grant_types": ["authorization_code"], "callbacks": [f"https://spa{i}.bench.example/cb"]}
            )  # fmt: skip
    return Tenant.model_validate(
        {
            "domain": domain,
            "custom_domains": [{"domain": "login.bench.example"}],
            "apis": api_list,
            "clients": client_list,
            "client_grants": grants,
            "organizations": [
                {"id": "org_bench000000001", "name": "one", "members": [{"user_id": "auth0|u1"}],
                 "client_grants": [{"client_id": "client00000", "audience": api_list[0]["identifier"]}]},
                {"id": "org_bench000000002", "name": "two"},
            ],
            "users": [{"user_id": "auth0|u1"}],
        }
    )  # fmt: skip


def _measure(what: str, clients: int, apis: int, jobs: int) -> dict[str, Any]:
    """Runs in the child: one table or one diff; returns rows, seconds and peak RSS."""
    from claimsengine.adapters import table_diff
    from claimsengine.adapters.table import TableContext

    tenant = synthetic_tenant(clients, apis)
    start = time.perf_counter()
    cpu_start = _cpu_seconds()
    if what == "table":
        rows = sum(1 for _ in TableContext(tenant).rows(jobs=jobs))
    else:
        changed = synthetic_tenant(clients, apis, lifetime=60)
        rows = sum(1 for _ in table_diff.diff_tables(TableContext(tenant), TableContext(changed), jobs=jobs))
    seconds = time.perf_counter() - start
    cpu = _cpu_seconds() - cpu_start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"what": what, "clients": clients, "apis": apis, "jobs": jobs, "rows": rows, "seconds": seconds, "cpu": cpu,
            "peak_mib": peak_kib / 1024, "peak_child_mib": children / 1024}  # fmt: skip


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process and of its finished children (--jobs workers):
    the clock to read on a shared machine, where wall time includes waiting for a core."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _child(what: str, clients: int, apis: int, jobs: int, pythonpath: str | None = None) -> dict[str, Any]:
    env = {**os.environ, "BENCH_CODE": pythonpath} if pythonpath else None
    out = subprocess.run(
        [sys.executable, __file__, "--child", what, str(clients), str(apis), str(jobs)], capture_output=True, text=True, check=True, env=env
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000x20,150x40", help="comma-separated CLIENTSxAPIS")
    parser.add_argument("--jobs", default="1", help="comma-separated worker process counts for table and diff")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--baseline", metavar="DIR", help="a checkout of another commit to time in the same run")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        what, clients, apis, jobs = args.child
        print(json.dumps(_measure(what, int(clients), int(apis), int(jobs))))
        return 0
    here = str(Path(__file__).resolve().parent.parent)
    checkouts = {"this": here, **({"baseline": str(Path(args.baseline).resolve())} if args.baseline else {})}
    cells = [
        (size, int(jobs), what, name)
        for size in args.sizes.split(",")
        for jobs in args.jobs.split(",")
        for what in ("table", "diff")
        for name in checkouts
    ]
    samples: dict[tuple[str, int, str, str], list[dict[str, Any]]] = {c: [] for c in cells}
    rng = random.Random(13)  # noqa: S311 (a shuffle, not a secret)
    for _ in range(args.rounds):
        rng.shuffle(cells)
        for size, jobs, what, name in cells:
            clients, apis = (int(x) for x in size.lower().split("x"))
            samples[(size, jobs, what, name)].append(_child(what, clients, apis, jobs, checkouts[name]))
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, {args.rounds} rounds, {os.cpu_count()} CPUs")
    print(
        f"{'tenant':>10} {'code':>8} {'jobs':>4} {'what':>5} {'rows':>7} {'median s':>9} {'rows/s':>8} "
        f"{'CPU s':>7} {'rows/CPU s':>10} {'peak MiB':>9}"
    )
    results = []
    for key in sorted(samples):
        size, jobs, what, name = key
        runs = samples[key]
        seconds = statistics.median(r["seconds"] for r in runs)
        cpu = statistics.median(r["cpu"] for r in runs)
        peak = max(max(r["peak_mib"], r["peak_child_mib"]) for r in runs)
        rows = runs[0]["rows"]
        print(
            f"{size:>10} {name:>8} {jobs:>4} {what:>5} {rows:>7} {seconds:>9.2f} {rows / seconds:>8.0f} "
            f"{cpu:>7.2f} {rows / cpu:>10.0f} {peak:>9.0f}"
        )
        results.append(
            {"size": size, "code": name, "jobs": jobs, "what": what, "rows": rows,
             "seconds": [r["seconds"] for r in runs], "cpu": [r["cpu"] for r in runs]}
        )  # fmt: skip
    for size, jobs, _, name in sorted({(c[0], c[1], "", c[3]) for c in samples}):
        table = statistics.median(r["seconds"] for r in samples[(size, jobs, "table", name)])
        diff = statistics.median(r["seconds"] for r in samples[(size, jobs, "diff", name)])
        table_cpu = statistics.median(r["cpu"] for r in samples[(size, jobs, "table", name)])
        diff_cpu = statistics.median(r["cpu"] for r in samples[(size, jobs, "diff", name)])
        print(
            f"{size:>10} {name:>8} jobs={jobs}: diff / (2 x table) = {diff / (2 * table):.2f} (wall), "
            f"{diff_cpu / (2 * table_cpu):.2f} (CPU)"
        )
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

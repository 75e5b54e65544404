#!/usr/bin/env python3
"""Differential run: the engine of an earlier commit against the current one, on random
tenants and requests, decision by decision and trace entry by trace entry.

  .venv/bin/python bench/differential.py [--commit 809f2af] [--tenants 1000] [--per-tenant 20] [--seed 0]
  .venv/bin/python bench/differential.py --commit HEAD --general   # fast paths against the general path

The cases come from ``claimsengine.testing`` (Hypothesis strategies ``tenants``,
``requests_for`` and ``valid_token_requests``: client credentials, password and ``/authorize``
requests, well formed or wrong in any part), drawn in this process with a fixed seed. Each tenant and request
is handed as data (``model_dump``, pickled with its secrets) to two worker processes: one
imports ``claimsengine`` from ``git archive COMMIT`` in a temporary directory, the other from
this checkout. Each validates the data into its own models, decides every request (all of a
tenant's requests against one tenant value, so compiled per-tenant caches are exercised),
and returns each decision as ``model_dump(mode="json")``: its kind, answer, claims and every
trace entry with rule, detail and ref. The two lists must be identical.

Prints the number of decisions compared and the mismatches (the first few in full); exits 1
if there is any. Not a test (it needs git and takes a minute or two); bench/README.md reports
its output.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOW = 1_700_000_000

# Runs in each worker: argv = [source root, cases file, results file, "general" or "fast"].
WORKER = r"""
import pickle, sys
root, cases_path, out_path, general = sys.argv[1:5]
sys.path.insert(0, root)
import claimsengine
from claimsengine import AuthorizeRequest, Tenant, TokenRequest, decide
assert claimsengine.__file__.startswith(root), (claimsengine.__file__, root)
KINDS = {"token": TokenRequest, "authorize": AuthorizeRequest}
# Count the decisions a grant's fast path made (engines that have FAST_PATHS), in place.
import claimsengine.grants
FAST_PATHS = getattr(claimsengine.grants, "FAST_PATHS", {})
taken = [0]
def counted(fast):
    def run(*args):
        decision = fast(*args)
        taken[0] += decision is not None
        return decision
    return run
for name, fast in list(FAST_PATHS.items()):
    if general == "general":
        del FAST_PATHS[name]  # --general: this engine decides everything on the general path
    else:
        FAST_PATHS[name] = counted(fast)
with open(cases_path, "rb") as handle:
    cases = pickle.load(handle)
results = []
for tenant_data, requests in cases:
    try:
        tenant = Tenant.model_validate(tenant_data)
    except Exception as exc:  # noqa: BLE001 - a tenant this version cannot load: reported, not decided
        results.extend({"tenant refused": type(exc).__name__} for _ in requests)
        continue
    for kind, data in requests:
        request = KINDS[kind].model_validate(data)
        try:
            results.append(decide(request, tenant, now=NOW).model_dump(mode="json"))
        except Exception as exc:  # noqa: BLE001 - reported as a mismatch, not a crash
            results.append({"raised": f"{type(exc).__name__}: {exc}"})
with open(out_path, "wb") as handle:
    pickle.dump((results, taken[0]), handle)
""".replace("NOW", str(NOW))


def draw_cases(n_tenants: int, per_tenant: int, seed: int) -> list[tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]]:
    """``n_tenants`` random tenants with ``per_tenant`` requests each, as plain data."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as hypothesis_seed
    from hypothesis import strategies as st

    from claimsengine import AuthorizeRequest
    from claimsengine.testing import requests_for, tenants, valid_token_requests

    cases: list[tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]] = []

    @hypothesis_seed(seed)
    @settings(max_examples=n_tenants, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def collect(data: st.DataObject) -> None:
        tenant = data.draw(tenants())
        # Every kind of request, and more client credentials requests that should issue.
        mix = st.one_of(requests_for(tenant), valid_token_requests(tenant))
        drawn = [data.draw(mix) for _ in range(per_tenant)]
        requests = [("authorize" if isinstance(r, AuthorizeRequest) else "token", r.model_dump()) for r in drawn]
        cases.append((tenant.model_dump(), requests))

    collect()
    return cases


def run_worker(root: str, cases_path: str, out_path: str, *, general: bool = False) -> tuple[list[dict[str, Any]], int]:
    """Every decision of the engine under ``root``, and how many of them a fast path made
    (``general``: with every fast path removed, so the general path decides everything)."""
    mode = "general" if general else "fast"
    subprocess.run([sys.executable, "-c", WORKER, root, cases_path, out_path, mode], check=True)
    with open(out_path, "rb") as handle:
        results: tuple[list[dict[str, Any]], int] = pickle.load(handle)  # noqa: S301 - our own worker's file
    return results


def export(commit: str, target: str) -> None:
    """``claimsengine/`` as it was at ``commit``, under ``target``."""
    archive = subprocess.run(["git", "-C", ROOT, "archive", "--format=tar", commit, "claimsengine"], check=True, capture_output=True).stdout
    path = os.path.join(target, "engine.tar")
    with open(path, "wb") as handle:
        handle.write(archive)
    with tarfile.open(path) as tar:
        tar.extractall(target, filter="data")


def first_difference(old: Any, new: Any, path: str = "") -> str:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in dict.fromkeys([*old, *new]):
            if old.get(key) != new.get(key):
                return first_difference(old.get(key), new.get(key), f"{path}.{key}")
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            if a != b:
                return first_difference(a, b, f"{path}[{i}]")
    return f"{path or '(decision)'}: {json.dumps(old)[:300]} != {json.dumps(new)[:300]}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--commit", default="809f2af", help="the engine to compare against (default: before issue 13's work)")
    parser.add_argument("--new", metavar="COMMIT", help="compare this commit's engine instead of the working tree")
    parser.add_argument("--tenants", type=int, default=1000)
    parser.add_argument("--per-tenant", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--general",
        action="store_true",
        help="the old engine decides everything on the general path (grants.FAST_PATHS emptied); "
        "with --commit HEAD this compares the fast paths with the general path",
    )
    parser.add_argument("--show", type=int, default=5, help="mismatches to print in full")
    args = parser.parse_args()
    started = time.perf_counter()
    cases = draw_cases(args.tenants, args.per_tenant, args.seed)
    total = sum(len(requests) for _, requests in cases)
    print(f"# drew {len(cases)} tenants, {total} requests in {time.perf_counter() - started:.0f} s (seed {args.seed})", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="differential-") as tmp:
        export(args.commit, tmp)
        cases_path = os.path.join(tmp, "cases.pickle")
        with open(cases_path, "wb") as handle:
            pickle.dump(cases, handle)
        old, old_fast = run_worker(tmp, cases_path, os.path.join(tmp, "old.pickle"), general=args.general)
        new_root = ROOT
        if args.new:
            new_root = os.path.join(tmp, "new")
            os.mkdir(new_root)
            export(args.new, new_root)
        new, new_fast = run_worker(new_root, cases_path, os.path.join(tmp, "new.pickle"))
    assert len(old) == len(new) == total, (len(old), len(new), total)
    kinds = Counter(d.get("kind", "raised") for d in new)
    rules = len({r["rule"] for d in new for r in d.get("trace", ())})
    mismatches = [i for i, (a, b) in enumerate(zip(old, new, strict=True)) if a != b]
    entries = sum(len(d.get("trace", ())) for d in new)
    print(
        f"differential: {args.commit} vs {args.new or 'working tree'}: {total} decisions ({dict(sorted(kinds.items()))}), "
        f"{entries} trace entries, {rules} distinct rules"
    )
    old_name = f"{args.commit} (general path only)" if args.general else args.commit
    print(f"decided by a grant's fast path: {old_fast} by {old_name}, {new_fast} by {args.new or 'the working tree'}")
    print(f"mismatches: {len(mismatches)}")
    for i in mismatches[: args.show]:
        print(f"  case {i}: {first_difference(old[i], new[i])}")
    print(f"# {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())

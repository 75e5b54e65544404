"""Import time of ``claimsengine`` next to a bare interpreter and to ``import pydantic``.

Not a test: nothing here asserts a timing. Run from the repository root with the project venv:

    .venv/bin/python bench/bench_import.py                       # 30 interleaved rounds
    .venv/bin/python bench/bench_import.py --baseline /tmp/base   # also a checkout of another commit

Every row is a fresh interpreter (``python -c ...``), timed from the parent (wall clock), in
rounds whose order is shuffled; the table gives the median and min over rounds of the wall time
and of the CPU time (user + system, from ``getrusage``), and each row's median per-round CPU
ratio to the bare interpreter. Bytecode is written and warmed first (an
installed package has its ``.pyc`` files), whatever ``PYTHONDONTWRITEBYTECODE`` says here.
``--baseline DIR`` puts DIR first on ``PYTHONPATH`` (e.g. ``git archive main | tar -x -C DIR``),
so the old and the new package are timed in the same run.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The floor of any pydantic-based core: what claimsengine/model.py imports from pydantic.
PYDANTIC_FLOOR = "from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue, SecretStr, TypeAdapter"


def _run(code: str, pythonpath: str | None) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of one fresh interpreter running ``code``."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    # Not from the repository: ``-c`` puts the working directory first on sys.path.
    subprocess.run([sys.executable, "-c", code], env=env, check=True, cwd=tempfile.gettempdir())
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--baseline", metavar="DIR", help="a checkout of another commit to time in the same run")
    args = parser.parse_args()
    rows: dict[str, tuple[str, str | None]] = {
        "bare interpreter": ("pass", None),
        "import pydantic": ("import pydantic", None),
        "pydantic names the core uses": (PYDANTIC_FLOOR, None),
        "import claimsengine": ("import claimsengine", str(ROOT)),
        "from claimsengine import Tenant, decide": ("from claimsengine import Tenant, decide", str(ROOT)),
    }
    if args.baseline:
        rows["import claimsengine (baseline)"] = ("import claimsengine", str(Path(args.baseline).resolve()))
        rows["from ... import (baseline)"] = ("from claimsengine import Tenant, decide", str(Path(args.baseline).resolve()))
    for code, path in rows.values():  # write and warm the bytecode
        _run(code, path)
        _run(code, path)
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in rows}
    rng = random.Random(13)  # noqa: S311 (a shuffle, not a secret)
    for _ in range(args.rounds):
        order = list(rows)
        rng.shuffle(order)
        for name in order:
            samples[name].append(_run(*rows[name]))
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, {args.rounds} rounds, {os.cpu_count()} CPUs")
    print("wall = elapsed time of the whole interpreter; cpu = its user + system time (less sensitive to other load)")
    print(f"{'row':<40} {'wall med ms':>11} {'wall min':>8} {'cpu med ms':>10} {'cpu min':>8} {'x bare (cpu)':>12} {'- bare cpu ms':>13}")
    bare = [cpu for _, cpu in samples["bare interpreter"]]
    for name, runs in samples.items():
        walls = [w for w, _ in runs]
        cpus = [c for _, c in runs]
        ratio = statistics.median(c / b for c, b in zip(cpus, bare, strict=True))
        extra = statistics.median(c - b for c, b in zip(cpus, bare, strict=True)) * 1000
        print(
            f"{name:<40} {statistics.median(walls) * 1000:>11.1f} {min(walls) * 1000:>8.1f} {statistics.median(cpus) * 1000:>10.1f}"
            f" {min(cpus) * 1000:>8.1f} {ratio:>12.2f} {extra:>13.1f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

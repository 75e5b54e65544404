"""A bounded load run against `claimsengine serve` on loopback, in the three shapes that share state:

* 1 worker (memory store);
* `--workers 2` on SQLite;
* 2 server processes sharing one Redis (a `redis-server` started here on a free port).

Each shape gets the same bounded number of client_credentials requests (and at most a bounded
time) from a pool of keep-alive connections; the script reports requests, errors (anything but
a 200), p50/p99 latency and the servers' resident memory (sum over the processes) before and
after. Loopback only; nothing here is a test. Example:

    .venv/bin/python bench/load.py --requests 5000 --concurrency 16 --seconds 120
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.services import redis_server, serving  # noqa: E402 (the same starters the tests use)

ORDERS = "https://api.northwind.com/orders"
BODY = {
    "grant_type": "client_credentials",
    "client_id": "nw-m2m-0001",
    "client_secret": "example-billing-secret-not-for-production",
    "audience": ORDERS,
}


def rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            status = Path(f"/proc/{pid}/status").read_text()
            found = re.search(r"VmRSS:\s+(\d+) kB", status)
            total += int(found.group(1)) if found else 0
    return total


@contextlib.contextmanager
def server(tmp: Path, name: str, *options: str, workers: int = 1) -> Iterator[tuple[str, list[int]]]:
    """A server (tests/services.py starts and stops it); yields its URL and its processes."""
    with serving(tmp, *options, workers=workers, name=name) as (proc, url, log):
        workers_pids = [int(p) for p in re.findall(r"Started server process \[(\d+)\]", log.read_text())]
        yield url, sorted({proc.pid, *workers_pids})


def load(urls: list[str], requests: int, concurrency: int, seconds: float) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    counter = iter(range(requests))
    deadline = time.monotonic() + seconds

    def worker(index: int) -> None:
        nonlocal errors
        with httpx.Client(base_url=urls[index % len(urls)], timeout=30) as client:
            while time.monotonic() < deadline:
                with lock:
                    if next(counter, None) is None:
                        return
                started = time.perf_counter()
                try:
                    ok = client.post("/oauth/token", data=BODY).status_code == 200
                except httpx.HTTPError:
                    ok = False
                elapsed = time.perf_counter() - started
                with lock:
                    latencies.append(elapsed)
                    errors += 0 if ok else 1

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - started
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return {
        "requests": len(latencies),
        "errors": errors,
        "p50_ms": round(cuts[49] * 1000, 2),
        "p99_ms": round(cuts[98] * 1000, 2),
        "per_second": round(len(latencies) / wall, 1),
        "seconds": round(wall, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=5000, help="requests per shape (default 5000)")
    parser.add_argument("--concurrency", type=int, default=16, help="client connections (default 16)")
    parser.add_argument("--seconds", type=float, default=120, help="time bound per shape (default 120)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="claimsengine-load-") as tmp_name:
        tmp = Path(tmp_name)

        def measure(shape: str, urls: list[str], pids: list[int]) -> None:
            with httpx.Client(timeout=30) as warm:
                for url in urls:
                    for _ in range(20):
                        warm.post(f"{url}/oauth/token", data=BODY)
            before = rss_kib(pids)
            row = {"shape": shape, **load(urls, args.requests, args.concurrency, args.seconds)}
            row |= {"rss_before_mib": round(before / 1024, 1), "rss_after_mib": round(rss_kib(pids) / 1024, 1)}
            rows.append(row)
            print(json.dumps(row), flush=True)

        with server(tmp, "one") as (url, pids):
            measure("1 worker, memory", [url], pids)
        with server(tmp, "sqlite", "--store", f"sqlite:///{tmp / 'state.sqlite3'}", workers=2) as (url, pids):
            measure("--workers 2, SQLite", [url], pids)
        with (
            redis_server(tmp) as redis_url,
            server(tmp, "a", "--store", redis_url) as (a, pa),
            server(tmp, "b", "--store", redis_url) as (b, pb),
        ):
            measure("2 processes, Redis", [a, b], pa + pb)
    print()
    print("| shape | requests | errors | p50 ms | p99 ms | req/s | RSS before MiB | RSS after MiB |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        cells = [r["shape"], r["requests"], r["errors"], r["p50_ms"], r["p99_ms"], r["per_second"], r["rss_before_mib"], r["rss_after_mib"]]
        print("| " + " | ".join(map(str, cells)) + " |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2))
    return 0 if all(r["errors"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

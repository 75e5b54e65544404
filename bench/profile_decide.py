#!/usr/bin/env python3
"""cProfile of the engine's hot paths on bench_decide's world: where a request's time goes.

  .venv/bin/python bench/profile_decide.py [--contract A|B|C] [--n 20000] [--clients 10000] [--top 25]
  PYTHONPATH=/tmp/old .venv/bin/python bench/profile_decide.py   # an older engine (git archive COMMIT claimsengine)

A: TokenRequest -> decide; B: wire.token_request -> decide -> opaque token -> success_body;
C: parse_qsl -> wire -> decide -> RS256 JWT -> json.dumps. Not a timing: cProfile inflates
every call; read the shares, not the microseconds.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_decide as bd


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contract", choices="ABC", default="A")
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--clients", type=int, default=10_000)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--sort", default="tottime")
    args = parser.parse_args()
    contract = {"A": bd.A, "B": bd.B, "C": bd.C}[args.contract]
    world = bd.make_world(args.clients)
    keys = bd.make_keys()
    run = bd.build_engine(world, keys, contract)
    inputs = bd.inputs_for(world, contract, bd.ENGINE)
    m = len(inputs)
    for i in range(min(args.n, 2000)):
        run(inputs[i % m])
    # CPU time of this thread, not wall time: on a shared machine the shares stay readable.
    profile = cProfile.Profile(time.thread_time)
    profile.enable()
    for i in range(args.n):
        run(inputs[i % m])
    profile.disable()
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.sort_stats(args.sort).print_stats(args.top)
    print(out.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""The pieces of bench_decide.py's claimsengine C row, each timed alone (CPU, best of N loops).

C is an RS256 token from a form body: ``wire.form_pairs`` and ``Parameters`` (as ``serve``
splits a body), ``wire.token_request``, ``decide``, ``Minter.access_token`` (next to a bare
signature of the same signing input), ``success_body`` and ``json.dumps``; then the whole row
in the same way. The sum of the pieces against the whole row shows how much of the row's cost
above the signature no single piece explains. ``--alg PS256`` or ``HS256`` has every API sign
with that algorithm (HS256 with an API secret), next to a bare signature of the same kind, for
issue 13's "any algorithm at most raw + 50 µs". Nothing here is a test.

    .venv/bin/python bench/profile_c.py [--clients 10000] [--loops 20] [--alg RS256|PS256|HS256]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_decide as bench
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from pydantic import SecretStr

from claimsengine import SigningAlg, Tenant, decide
from claimsengine.adapters import wire
from claimsengine.adapters.server import MAX_FORM_FIELDS
from claimsengine.adapters.signing import Minter


def best_us(work: Callable[[Any], Any], inputs: Sequence[Any], loops: int) -> float:
    """The fastest loop's CPU µs per call."""
    best = float("inf")
    for _ in range(loops):
        start = time.process_time()
        for item in inputs:
            work(item)
        best = min(best, (time.process_time() - start) / len(inputs) * 1e6)
    return best


# The API secret of the HS256 variant: an example value, never a real one.
HS256_SECRET = "profile-c-example-api-secret-not-for-production"


def with_alg(tenant: Tenant, alg: str) -> Tenant:
    """``tenant`` with every API signing ``alg`` (HS256 with the API's own secret)."""
    if alg == "RS256":
        return tenant
    secret = SecretStr(HS256_SECRET) if alg == "HS256" else None
    apis = tuple(api.model_copy(update={"signing_alg": SigningAlg(alg), "signing_secret": secret}) for api in tenant.apis)
    changed = Tenant.model_validate({**{name: getattr(tenant, name) for name in Tenant.model_fields}, "apis": apis})
    _ = changed.index  # compiled outside the timed loops, as a server does at start-up
    return changed


def raw_signer(alg: str, keys: Any) -> Callable[[bytes], bytes]:
    """A bare signature of a signing input with ``alg``, as the token's own signature is made."""
    if alg == "HS256":
        secret = HS256_SECRET.encode()
        return lambda data: hmac.new(secret, data, hashlib.sha256).digest()
    pad = padding.PKCS1v15() if alg == "RS256" else padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    digest = hashes.SHA256()
    return lambda data: keys.private.sign(data, pad, digest)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=10_000)
    parser.add_argument("--loops", type=int, default=20)
    parser.add_argument("--alg", choices=("RS256", "PS256", "HS256"), default="RS256", help="what every API signs with")
    args = parser.parse_args()
    world, keys = bench.make_world(args.clients), bench.make_keys()
    tenant = with_alg(bench.engine_tenant(world), args.alg)
    minter = Minter(tenant, keys.keyset)
    bodies = bench.inputs_for(world, bench.C, bench.ENGINE)[:512]
    now = int(time.time())
    params = [wire.Parameters(wire.form_pairs(body, MAX_FORM_FIELDS)) for body in bodies]
    requests = [wire.token_request(p, domain=bench.DOMAIN) for p in params]
    decisions = [decide(r, tenant, now=now) for r in requests]
    tokens = [minter.access_token(d) for d in decisions]
    answers = [wire.success_body(d, t) for d, t in zip(decisions, tokens, strict=True)]
    headers = {json.loads(base64.urlsafe_b64decode(token.split(".", 1)[0] + "==")).get("alg") for token in tokens}
    if headers != {args.alg}:
        sys.exit(f"the tokens are signed {sorted(map(str, headers))}, not {args.alg}")
    signing_inputs = [token.rsplit(".", 1)[0].encode() for token in tokens]
    sign = raw_signer(args.alg, keys)
    signature_loops = max(1, args.loops // 4) if args.alg != "HS256" else args.loops
    pieces = {
        "wire.form_pairs + Parameters": best_us(lambda b: wire.Parameters(wire.form_pairs(b, MAX_FORM_FIELDS)), bodies, args.loops),
        "wire.token_request": best_us(lambda p: wire.token_request(p, domain=bench.DOMAIN), params, args.loops),
        "decide": best_us(lambda r: decide(r, tenant, now=now), requests, args.loops),
    }
    signature = best_us(sign, signing_inputs, signature_loops)
    pieces["Minter.access_token above the signature"] = best_us(minter.access_token, decisions, signature_loops) - signature
    pieces["wire.success_body"] = best_us(lambda pair: wire.success_body(*pair), list(zip(decisions, tokens, strict=True)), args.loops)
    pieces["json.dumps of the answer"] = best_us(json.dumps, answers, args.loops)
    whole = best_us(bench.build_engine(world, keys, bench.C, tenant), bodies, signature_loops) - signature
    print(f"# {args.alg}, {args.clients:,} clients, 512 bodies, CPU µs per call (best of {args.loops} loops; signatures {signature_loops})")
    for name, us in pieces.items():
        print(f"{name:45s} {us:7.2f}")
    print(f"{'sum of the pieces':45s} {sum(pieces.values()):7.2f}")
    print(f"{'the whole C row above the signature':45s} {whole:7.2f}   (signature {signature:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

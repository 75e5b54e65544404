#!/usr/bin/env python3
"""What a JavaScript Action adds to a decision: a typical roles-to-claims Action, in V8.

Rows, timed in the same interleaved, shuffled rounds (medians of per-round figures, so machine
drift cancels out; nothing here asserts a timing):

  cc/none     client_credentials, no Action
  cc/python   client_credentials, the tenant-id Action written in Python
  cc/js       client_credentials, the same Action as JavaScript from a Deploy CLI export
  login/none  /authorize with a post-login trigger but no Action
  login/python  /authorize, the roles-to-claims Action written in Python
  login/js    /authorize, the roles-to-claims Action as JavaScript
  v8/noop     one timed eval of "0" in an Action's isolate: the floor of any call into V8

The figure to read is "added": the median per-round difference between a JS row and its
no-Action row, in µs per request. Each row is checked for the claims it must carry before
it is timed. Loading (compiling) the Actions is timed once.

Run from the repository root:
  .venv/bin/pip install -e '.[js,cli]'
  .venv/bin/python bench/bench_actions.py [--rounds 15] [--json bench/results/actions.json]
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from claimsengine import Authorized, AuthorizeRequest, Issued, Tenant, TokenRequest, User, decide
from claimsengine.actions import ActionApi, CredentialsExchangeEvent, PostLoginEvent
from claimsengine.adapters.loader import load_tenant

DOMAIN = "acme.auth0.com"
ORDERS = "https://api.acme.test/orders"
CALLBACK = "https://portal.acme.test/callback"
NOW = 1_767_226_500
NAMESPACE = "https://acme.test"

EXPORT = f"""
clients:
  - name: Billing Service
    app_type: non_interactive
    client_metadata: {{tenant_id: t-42}}
  - name: Portal
    app_type: regular_web
    callbacks: [{CALLBACK}]
    grant_types: [authorization_code]
resourceServers:
  - {{name: Orders, identifier: '{ORDERS}', scopes: [{{value: read:orders}}]}}
clientGrants:
  - {{client_id: Billing Service, audience: '{ORDERS}', scope: [read:orders]}}
roles:
  - name: admin
  - name: billing
actions:
  - {{name: roles-to-claims, code: ./actions/roles-to-claims/code.js, deployed: true}}
  - {{name: tenant-claim, code: ./actions/tenant-claim/code.js, deployed: true}}
triggers:
  post-login: [{{action_name: roles-to-claims}}]
  credentials-exchange: [{{action_name: tenant-claim}}]
"""
ROLES_JS = f"""
exports.onExecutePostLogin = async (event, api) => {{
  const namespace = "{NAMESPACE}";
  if (event.authorization) {{
    api.idToken.setCustomClaim(`${{namespace}}/roles`, event.authorization.roles);
    api.accessToken.setCustomClaim(`${{namespace}}/roles`, event.authorization.roles);
  }}
}};
"""
TENANT_JS = f"""
exports.onExecuteCredentialsExchange = async (event, api) => {{
  if (event.client.metadata.tenant_id) api.accessToken.setCustomClaim("{NAMESPACE}/tenant", event.client.metadata.tenant_id);
}};
"""


def roles_python(event: PostLoginEvent, api: ActionApi) -> None:
    api.id_token.set_custom_claim(f"{NAMESPACE}/roles", list(event.roles))
    api.access_token.set_custom_claim(f"{NAMESPACE}/roles", list(event.roles))


def tenant_python(event: CredentialsExchangeEvent, api: ActionApi) -> None:
    if event.client.metadata.get("tenant_id"):
        api.access_token.set_custom_claim(f"{NAMESPACE}/tenant", event.client.metadata["tenant_id"])


def build() -> tuple[dict[str, Callable[[], Any]], float]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name, code in (("roles-to-claims", ROLES_JS), ("tenant-claim", TENANT_JS)):
            (root / "actions" / name).mkdir(parents=True)
            (root / "actions" / name / "code.js").write_text(code)
        (root / "tenant.yaml").write_text(EXPORT)
        started = time.perf_counter()
        loaded = load_tenant(root / "tenant.yaml", domain=DOMAIN)
        load_seconds = time.perf_counter() - started
    alice = User(user_id="auth0|alice", roles=("admin", "billing"))
    js = loaded.tenant.model_copy(update={"users": (alice,)})
    none = js.model_copy(update={"post_login_actions": (), "credentials_exchange_actions": ()})
    python = js.model_copy(update={"post_login_actions": (roles_python,), "credentials_exchange_actions": (tenant_python,)})
    creds = {c.name: c for c in loaded.credentials}
    billing, portal = creds["Billing Service"], creds["Portal"]
    token = TokenRequest(grant_type="client_credentials", client_id=billing.client_id, client_secret=billing.client_secret, audience=ORDERS)
    authorize = AuthorizeRequest(
        response_type="code",
        client_id=portal.client_id,
        redirect_uri=CALLBACK,
        audience=ORDERS,
        scope="openid",
        user_id=alice.user_id,
        consent=True,
    )

    def cc(tenant: Tenant) -> Callable[[], Any]:
        return lambda: decide(token, tenant, now=NOW)

    def login(tenant: Tenant) -> Callable[[], Any]:
        return lambda: decide(authorize, tenant, now=NOW)

    gate = js.credentials_exchange_actions[0]
    isolate = gate._ctx  # type: ignore[attr-defined]
    rows = {
        "v8/noop": lambda: isolate.eval("0", timeout_sec=5),
        "cc/none": cc(none),
        "cc/python": cc(python),
        "cc/js": cc(js),
        "login/none": login(none),
        "login/python": login(python),
        "login/js": login(js),
    }
    # Correctness before timing.
    for name, run in rows.items():
        if name == "v8/noop":
            continue
        decision = run()
        if name.startswith("cc/"):
            assert isinstance(decision, Issued), decision
            assert (f"{NAMESPACE}/tenant" in decision.claims) == (name != "cc/none"), name
        else:
            assert isinstance(decision, Authorized), decision
            claims = decision.grant.access_claims if hasattr(decision.grant, "access_claims") else None
            ran = [r.detail for r in decision.trace if r.rule.value == "action.ran"]
            assert bool(ran) == (name != "login/none"), (name, ran, claims)
    return rows, load_seconds


def batch(run: Callable[[], Any], seconds: float = 0.05) -> float:
    """µs per call over a batch of about ``seconds``."""
    count, started = 0, time.perf_counter()
    while True:
        run()
        count += 1
        elapsed = time.perf_counter() - started
        if elapsed >= seconds:
            return elapsed / count * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    rows, load_seconds = build()
    rng = random.Random(14)  # noqa: S311 - shuffling rows, not secrets
    samples: dict[str, list[float]] = {name: [] for name in rows}
    for run in rows.values():  # warm up
        batch(run, 0.02)
    gc.collect()
    for _ in range(args.rounds):
        order = list(rows)
        rng.shuffle(order)
        for name in order:
            samples[name].append(batch(rows[name]))
    print(f"python {platform.python_version()} on {platform.machine()}, {args.rounds} rounds")
    print(f"loading the export and compiling its 2 JavaScript Actions: {load_seconds * 1000:.0f} ms")
    print(f"{'row':<14}{'median µs':>11}{'min':>9}{'max':>9}{'added µs':>10}{'ratio':>8}")
    out: dict[str, Any] = {"rounds": args.rounds, "load_ms": load_seconds * 1000, "rows": {}}
    for name, values in samples.items():
        base = samples.get(name.split("/")[0] + "/none", [0.0] * len(values))  # v8/noop has no base
        added = statistics.median(v - b for v, b in zip(values, base, strict=True))
        ratio = statistics.median(v / b if b else 1.0 for v, b in zip(values, base, strict=True))
        print(f"{name:<14}{statistics.median(values):>11.1f}{min(values):>9.1f}{max(values):>9.1f}{added:>10.1f}{ratio:>8.2f}")
        out["rows"][name] = {"median_us": statistics.median(values), "added_us": added, "ratio": ratio, "samples": values}
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

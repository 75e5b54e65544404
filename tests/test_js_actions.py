"""The tenant's own JavaScript Actions, loaded from Deploy CLI exports and run in V8.

Every test here runs real JavaScript (mini-racer, the ``js`` extra) through the real loader and
the core; the HTTP test uses the real server on loopback and auth0-python.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType

import httpx
import jwt
import pytest
from pydantic import SecretStr

from claimsengine import Authorized, AuthorizeRequest, Issued, Rejected, Rule, Tenant, TokenRequest, User, decide
from claimsengine.actions import ClientInfo, CredentialsExchangeEvent
from claimsengine.adapters import js_actions, table
from claimsengine.adapters.cli import main as cli_main
from claimsengine.adapters.loader import ConfigError, Loaded, load_tenant
from claimsengine.adapters.server import LiveServer, create_app, serve_in_thread
from claimsengine.adapters.signing import KeySet
from claimsengine.adapters.table_diff import diff_tables

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "actions"
YAML_EXPORT = FIXTURES / "yaml" / "tenant.yaml"
DIRECTORY_EXPORT = FIXTURES / "directory"
NODE_MODULES = FIXTURES / "node_modules"
DOMAIN = "acme.auth0.com"
ORDERS = "https://api.acme.test/orders"
CALLBACK = "https://portal.acme.test/callback"
NOW = 1_767_226_500
PARTNER_KEY = "pk-billing"


def load(source: Path = YAML_EXPORT, *, node_modules: Path = NODE_MODULES) -> Loaded:
    return load_tenant(source, domain=DOMAIN, keywords={"PARTNER_KEY": PARTNER_KEY}, node_modules=node_modules)


# The global CLI options that load the YAML fixture export.
TENANT_OPTIONS: tuple[str, ...] = ("--tenant", str(YAML_EXPORT), "--auth0-domain", DOMAIN, "--keyword", f"PARTNER_KEY={PARTNER_KEY}")
TENANT_OPTIONS += ("--node-modules", str(NODE_MODULES))


def billing_form(loaded: Loaded) -> dict[str, str]:
    """The token endpoint form of Billing Service's client_credentials request for Orders."""
    creds = next(c for c in loaded.credentials if c.name == "Billing Service")
    assert creds.client_secret is not None
    secret = creds.client_secret.get_secret_value()
    return {"grant_type": "client_credentials", "client_id": creds.client_id, "client_secret": secret, "audience": ORDERS}


def with_users(tenant: Tenant, *users: User) -> Tenant:
    return tenant.model_copy(update={"users": users})


def client_id(loaded: Loaded, name: str) -> str:
    return next(c.client_id for c in loaded.credentials if c.name == name)


def m2m(loaded: Loaded, name: str, *, tenant: Tenant | None = None, now: int = NOW) -> Issued | Rejected:
    creds = next(c for c in loaded.credentials if c.name == name)
    request = TokenRequest(grant_type="client_credentials", client_id=creds.client_id, client_secret=creds.client_secret, audience=ORDERS)
    return decide(request, tenant or loaded.tenant, now=now)


def login(loaded: Loaded, tenant: Tenant, user_id: str, *, audience: str | None = ORDERS) -> Issued | Rejected:
    """/authorize (the user consents), then the code exchange."""
    portal = client_id(loaded, "Portal")
    creds = next(c for c in loaded.credentials if c.name == "Portal")
    first = decide(
        AuthorizeRequest(
            response_type="code",
            client_id=portal,
            redirect_uri=CALLBACK,
            audience=audience,
            scope="openid profile",
            user_id=user_id,
            consent=True,
        ),
        tenant,
        now=NOW,
    )
    if isinstance(first, Rejected):
        return first
    assert isinstance(first, Authorized)
    second = decide(
        TokenRequest(
            grant_type="authorization_code",
            client_id=portal,
            client_secret=creds.client_secret,
            code=SecretStr("code"),
            redirect_uri=CALLBACK,
            code_grant=first.grant,
        ),
        tenant,
        now=NOW,
    )
    # Post-login Actions run at /authorize: keep that trace too.
    return second.model_copy(update={"trace": first.trace + second.trace})


def only_js(actions: tuple[object, ...]) -> js_actions.JsAction:
    [action] = actions
    assert isinstance(action, js_actions.JsAction)
    return action


def details(decision: Issued | Rejected, rule: Rule) -> list[str]:
    return [r.detail for r in decision.trace if r.rule is rule]


def write_export(tmp_path: Path, actions: dict[str, tuple[str, str]], *, extra: str = "") -> Path:
    """A minimal YAML export with one client and the given Actions ({name: (trigger, code)})."""
    lines = [
        "clients:",
        "  - name: Billing Service",
        "    app_type: non_interactive",
        "  - name: Portal",
        "    app_type: regular_web",
        f"    callbacks: [{CALLBACK}]",
        "    grant_types: [authorization_code]",
        "resourceServers:",
        f"  - {{name: Orders, identifier: '{ORDERS}', scopes: [{{value: read:orders}}]}}",
        "clientGrants:",
        f"  - {{client_id: Billing Service, audience: '{ORDERS}', scope: [read:orders]}}",
        "actions:",
    ]
    bindings: dict[str, list[str]] = {}
    for name, (trigger, code) in actions.items():
        folder = tmp_path / "actions" / name
        folder.mkdir(parents=True)
        (folder / "code.js").write_text(textwrap.dedent(code))
        lines += [f"  - name: {name}", f"    code: ./actions/{name}/code.js", "    deployed: true"]
        bindings.setdefault(trigger, []).append(name)
    lines.append(extra) if extra else None
    lines.append("triggers:")
    for trigger, names in bindings.items():
        lines.append(f"  {trigger}:")
        lines += [f"    - action_name: {name}" for name in names]
    path = tmp_path / "tenant.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


# ---------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------


def test_bound_actions_load_in_trigger_order_as_named_callables() -> None:
    loaded = load()
    assert [a.__name__ for a in loaded.tenant.credentials_exchange_actions] == ["m2m-gate", "partner-claim"]
    assert [a.__name__ for a in loaded.tenant.post_login_actions] == ["roles-to-claims"]
    assert "credentials-exchange Action 'm2m-gate' runs as JavaScript (./actions/m2m-gate/code.js)" in loaded.notes


def test_an_unresolvable_dependency_is_a_load_error_naming_the_action_and_the_package(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as missing:
        load(node_modules=tmp_path)
    assert [str(p) for p in missing.value.problems] == [
        "tenant.yaml:actions[2].dependencies[0] (line 61): Action 'partner-claim' depends on claims-helper@1.0.0, "
        f"which is not installed in {tmp_path.name}/"
    ]
    with pytest.raises(ConfigError) as unset:
        load_tenant(YAML_EXPORT, domain=DOMAIN, keywords={"PARTNER_KEY": "x"})
    assert "Action 'partner-claim' depends on claims-helper@1.0.0: pass the folder of installed Node modules (--node-modules)" in str(
        unset.value
    )


def test_requiring_an_undeclared_package_or_a_missing_code_file_is_a_load_error(tmp_path: Path) -> None:
    export = write_export(
        tmp_path,
        {
            "uses-axios": (
                "credentials-exchange",
                "const axios = require('axios');\nexports.onExecuteCredentialsExchange = async () => {};\n",
            )
        },
    )
    with pytest.raises(ConfigError) as refused:
        load_tenant(export, domain=DOMAIN, node_modules=NODE_MODULES)
    assert "Action 'uses-axios' requires 'axios', which is not among its dependencies" in str(refused.value)
    (tmp_path / "actions" / "uses-axios" / "code.js").unlink()
    with pytest.raises(ConfigError) as missing:
        load_tenant(export, domain=DOMAIN)
    assert "Action 'uses-axios': code file './actions/uses-axios/code.js' not found next to the export" in str(missing.value)


def test_requires_in_comments_and_strings_of_code_are_not_dependencies(tmp_path: Path) -> None:
    code = """
        // const axios = require('axios');  (not any more)
        /* require("node-fetch") */
        exports.onExecuteCredentialsExchange = async (event, api) => {
          api.accessToken.setCustomClaim("https://acme.test/note", "100%Done(" + "require('x')".length);
        };
    """
    loaded = load_tenant(write_export(tmp_path, {"commented": ("credentials-exchange", code)}), domain=DOMAIN)
    decision = m2m(loaded, "Billing Service")
    assert isinstance(decision, Issued)
    assert decision.claims["https://acme.test/note"] == "100%Done(12"


def test_a_syntax_error_fails_the_load_naming_the_action(tmp_path: Path) -> None:
    export = write_export(tmp_path, {"broken": ("post-login", "exports.onExecutePostLogin = async (event, api) => { const = 1; };\n")})
    with pytest.raises(ConfigError) as broken:
        load_tenant(export, domain=DOMAIN)
    assert "Action 'broken' (./actions/broken/code.js) does not compile: SyntaxError: Unexpected token '=' (line 1)" in str(broken.value)


def test_v8_natives_syntax_in_action_code_is_refused(tmp_path: Path) -> None:
    export = write_export(tmp_path, {"sneaky": ("post-login", "exports.onExecutePostLogin = async () => { %DebugPrint(1); };\n")})
    with pytest.raises(ConfigError) as refused:
        load_tenant(export, domain=DOMAIN)
    assert "uses V8 natives syntax" in str(refused.value)


def test_secrets_come_from_keywords_an_overlay_or_the_environment_and_are_never_shown(tmp_path: Path) -> None:
    code = """
        exports.onExecuteCredentialsExchange = async (event, api) => {
          api.accessToken.setCustomClaim("https://acme.test/keys", Object.keys(event.secrets).sort());
          throw new Error("leaking " + event.secrets.FROM_OVERLAY + " and " + event.secrets.FROM_ENV);
        };
    """
    secrets = "    secrets:\n      - {name: FROM_OVERLAY, value: _VALUE_NOT_SHOWN_}\n      - {name: FROM_ENV, value: _VALUE_NOT_SHOWN_}"
    export = write_export(tmp_path, {"secretive": ("credentials-exchange", code)})
    export.write_text(export.read_text().replace("    deployed: true", "    deployed: true\n" + secrets))
    overlay = tmp_path / "action-secrets.json"
    overlay.write_text(json.dumps({"secretive": {"FROM_OVERLAY": "overlay-value-123"}}))
    loaded = load_tenant(export, domain=DOMAIN, action_secrets=overlay, environ={"FROM_ENV": "env-value-456"})
    action = only_js(loaded.tenant.credentials_exchange_actions)
    assert "overlay-value-123" not in repr(action)
    assert "overlay-value-123" not in repr(action.spec)
    decision = m2m(loaded, "Billing Service")
    assert isinstance(decision, Rejected)
    assert (decision.status, decision.error.value, decision.rejected_by) == (500, "server_error", Rule.ACTION_FAILED)
    assert details(decision, Rule.ACTION_FAILED) == ["credentials-exchange action 1 'secretive' raised ActionFailed"]
    with pytest.raises(js_actions.ActionFailed) as failed:
        action.run(_exchange_event(loaded), {})
    assert str(failed.value) == "leaking [secret] and [secret]"

    hidden = load_tenant(export, domain=DOMAIN)  # no value anywhere: a warning, and no secret
    assert [w.message for w in hidden.warnings] == [
        "Action 'secretive': secret FROM_OVERLAY has no value (give it in the Action secrets file or as keyword FROM_OVERLAY)",
        "Action 'secretive': secret FROM_ENV has no value (give it in the Action secrets file or as keyword FROM_ENV)",
    ]


def _exchange_event(loaded: Loaded) -> CredentialsExchangeEvent:
    client = ClientInfo(client_id(loaded, "Billing Service"), "Billing Service", MappingProxyType({}))
    return CredentialsExchangeEvent(client, ORDERS, DOMAIN, None, DOMAIN, None, ("read:orders",), ("read:orders",), now=NOW)


# ---------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------

ALICE = User(user_id="auth0|alice", profile={"email": "alice@acme.test", "name": "Alice"}, roles=("admin", "billing"))


def test_a_post_login_action_puts_the_users_roles_under_a_namespaced_claim() -> None:
    loaded = load()
    decision = login(loaded, with_users(loaded.tenant, ALICE), ALICE.user_id)
    assert isinstance(decision, Issued)
    assert decision.claims["https://acme.test/roles"] == ["admin", "billing"]
    assert decision.id_token is not None
    assert decision.id_token["https://acme.test/roles"] == ["admin", "billing"]
    assert details(decision, Rule.ACTION_RAN) == [
        "post-login action 1 'roles-to-claims': access token sets 'https://acme.test/roles'; id token sets 'https://acme.test/roles'"
    ]


def test_a_credentials_exchange_action_denies_one_client_and_adds_a_claim_for_another() -> None:
    loaded = load()
    billing = m2m(loaded, "Billing Service")
    assert isinstance(billing, Issued)
    assert billing.claims["https://acme.test/tenant"] == "t-42"
    blocked = m2m(loaded, "Blocked Service")
    assert isinstance(blocked, Rejected)
    assert (blocked.status, blocked.error.value, blocked.rejected_by) == (400, "invalid_request", Rule.ACTION_DENY)
    assert blocked.error_description == f"Client {client_id(loaded, 'Blocked Service')} may not get tokens for {ORDERS}"
    assert details(blocked, Rule.ACTION_RAN) == ["credentials-exchange action 1 'm2m-gate': denies"]


def test_an_action_uses_its_secret_and_a_dependency_from_node_modules() -> None:
    loaded = load()
    trusted = m2m(loaded, "Billing Service")
    assert isinstance(trusted, Issued)
    assert trusted.claims["https://acme.test/partner"] is True
    distrusted = load_tenant(YAML_EXPORT, domain=DOMAIN, keywords={"PARTNER_KEY": "another"}, node_modules=NODE_MODULES)
    decision = m2m(distrusted, "Billing Service")
    assert isinstance(decision, Issued)
    assert decision.claims["https://acme.test/partner"] is False


def test_the_core_still_filters_what_the_javascript_set(tmp_path: Path) -> None:
    code = """
        exports.onExecuteCredentialsExchange = async (event, api) => {
          api.accessToken.setCustomClaim("sub", "someone-else");
          api.accessToken.setCustomClaim("https://auth0.com/role", "admin");
          api.accessToken.setCustomClaim("https://acme.test/ok", 1);
        };
    """
    loaded = load_tenant(write_export(tmp_path, {"greedy": ("credentials-exchange", code)}), domain=DOMAIN)
    decision = m2m(loaded, "Billing Service")
    assert isinstance(decision, Issued)
    assert decision.claims["sub"] == f"{client_id(loaded, 'Billing Service')}@clients"
    assert "https://auth0.com/role" not in decision.claims
    assert decision.claims["https://acme.test/ok"] == 1
    rules = [r.rule for r in decision.trace]
    assert Rule.ACTION_CLAIM_RESTRICTED in rules
    assert Rule.ACTION_CLAIM_FORBIDDEN_NAMESPACE in rules


def test_scope_calls_and_the_size_limit_reach_the_core(tmp_path: Path) -> None:
    login_code = """
        exports.onExecutePostLogin = async (event, api) => {
          api.accessToken.removeScope("profile");
          api.accessToken.addScope("read:orders");
        };
    """
    exchange_code = """
        exports.onExecuteCredentialsExchange = async (event, api) => {
          api.transaction.setTargetScopes(["read:orders", "delete:orders"]);
        };
    """
    (tmp_path / "small").mkdir()
    export = write_export(tmp_path / "small", {"scopes": ("post-login", login_code), "exchange": ("credentials-exchange", exchange_code)})
    loaded = load_tenant(export, domain=DOMAIN)
    user = User(user_id="auth0|bob")
    decision = login(loaded, with_users(loaded.tenant, user), user.user_id)
    assert isinstance(decision, Issued)
    assert decision.scope == "openid read:orders"
    m2m_token = m2m(loaded, "Billing Service")
    assert isinstance(m2m_token, Issued)
    assert m2m_token.scope == "read:orders"  # delete:orders is outside the grant (R81)
    huge = (
        "exports.onExecuteCredentialsExchange = async (event, api) => {"
        " api.accessToken.setCustomClaim('https://acme.test/blob', 'x'.repeat(110000)); };\n"
    )
    (tmp_path / "huge").mkdir()
    too_large = m2m(
        load_tenant(write_export(tmp_path / "huge", {"huge": ("credentials-exchange", huge)}), domain=DOMAIN), "Billing Service"
    )
    assert isinstance(too_large, Rejected)
    assert too_large.rejected_by is Rule.ACTION_CLAIMS_TOO_LARGE


def test_a_throwing_action_gives_auth0s_outcome_with_its_name_in_the_trace(tmp_path: Path) -> None:
    throwing = "exports.{handler} = async (event, api) => {{ throw new Error('no roles for ' + event.client.name); }};\n"
    export = write_export(
        tmp_path,
        {
            "boom-login": ("post-login", throwing.format(handler="onExecutePostLogin")),
            "boom-m2m": ("credentials-exchange", throwing.format(handler="onExecuteCredentialsExchange")),
        },
    )
    loaded = load_tenant(export, domain=DOMAIN)
    user = User(user_id="auth0|bob")
    failed_login = login(loaded, with_users(loaded.tenant, user), user.user_id, audience=None)
    assert isinstance(failed_login, Rejected)
    assert (failed_login.error.value, failed_login.error_description) == ("access_denied", "no roles for Portal")
    assert failed_login.redirect_uri == CALLBACK
    assert details(failed_login, Rule.ACTION_FAILED) == ["post-login action 1 'boom-login' raised ActionFailed"]
    failed_m2m = m2m(loaded, "Billing Service")
    assert isinstance(failed_m2m, Rejected)
    assert (failed_m2m.status, failed_m2m.error.value, failed_m2m.error_description) == (500, "server_error", "A server error occurred.")
    assert details(failed_m2m, Rule.ACTION_FAILED) == ["credentials-exchange action 1 'boom-m2m' raised ActionFailed"]


@pytest.mark.parametrize(
    "body",
    [
        "while (true) {}",
        "await null; for (;;) {}",
        "await new Promise(() => {}); ",
    ],
    ids=["sync-loop", "loop-after-await", "never-settles"],
)
def test_an_action_that_never_finishes_is_stopped_and_fails(tmp_path: Path, body: str) -> None:
    code = f"exports.onExecuteCredentialsExchange = async (event, api) => {{ {body} }};\n"
    loaded = load_tenant(write_export(tmp_path, {"forever": ("credentials-exchange", code)}), domain=DOMAIN, action_time_limit=0.25)
    action = only_js(loaded.tenant.credentials_exchange_actions)
    with pytest.raises(js_actions.ActionFailed) as stopped:
        action.run(_exchange_event(loaded), {})
    assert "forever" in str(stopped.value) or "never finished" in str(stopped.value)
    decision = m2m(loaded, "Billing Service")
    assert isinstance(decision, Rejected)
    assert decision.rejected_by is Rule.ACTION_FAILED
    # The isolate is usable again afterwards.
    again = m2m(loaded, "Billing Service")
    assert isinstance(again, Rejected)
    assert again.rejected_by is Rule.ACTION_FAILED


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("await fetch('https://example.com/');", "fetch (network access) is refused"),
        ("require('https').get('https://example.com/');", "require('https') is refused"),
        ("require('node:fs').readFileSync('/etc/passwd');", "require('node:fs') is refused"),
        ("eval('1 + 1');", "Code generation from strings disallowed"),
        (
            "await new Promise((r) => setTimeout(r, 10)); api.redirect.sendUserTo('https://example.com/');",
            "api.redirect.sendUserTo is not supported",
        ),
    ],
    ids=["fetch", "https", "fs", "eval", "redirect"],
)
def test_network_file_system_and_unsupported_calls_are_refused(tmp_path: Path, code: str, message: str) -> None:
    source = f"exports.onExecutePostLogin = async (event, api) => {{ {code} }};\n"
    loaded = load_tenant(write_export(tmp_path, {"outside": ("post-login", source)}), domain=DOMAIN)
    user = User(user_id="auth0|bob")
    decision = login(loaded, with_users(loaded.tenant, user), user.user_id, audience=None)
    assert isinstance(decision, Rejected)
    assert decision.rejected_by is Rule.ACTION_FAILED
    assert decision.error.value == "access_denied"
    assert message in decision.error_description


def test_an_action_over_its_memory_limit_fails() -> None:
    spec = js_actions.ActionSpec(
        name="hungry",
        trigger="credentials-exchange",
        file="code.js",
        code="",
        modules={
            js_actions.MAIN: (
                "exports.onExecuteCredentialsExchange = async () => { const a = []; for (;;) a.push(new Array(1e6).fill(1)); };"
            )
        },
    )
    action = js_actions.JsAction(spec, memory_limit=16 * 1024 * 1024, time_limit=10)
    loaded = load()
    with pytest.raises(js_actions.ActionFailed, match="exceeded its memory limit of 16 MB"):
        action.run(_exchange_event(loaded), {})


def test_time_and_randomness_come_from_the_decision(tmp_path: Path) -> None:
    code = """
        exports.onExecuteCredentialsExchange = async (event, api) => {
          api.accessToken.setCustomClaim("https://acme.test/now", Date.now());
          api.accessToken.setCustomClaim("https://acme.test/date", new Date().toISOString());
          api.accessToken.setCustomClaim("https://acme.test/hour", new Date().getHours());
          api.accessToken.setCustomClaim("https://acme.test/random", [Math.random(), Math.random()]);
        };
    """
    loaded = load_tenant(write_export(tmp_path, {"clock": ("credentials-exchange", code)}), domain=DOMAIN)
    first, second, later = m2m(loaded, "Billing Service"), m2m(loaded, "Billing Service"), m2m(loaded, "Billing Service", now=NOW + 3600)
    assert isinstance(first, Issued)
    assert isinstance(second, Issued)
    assert isinstance(later, Issued)
    assert first.claims["https://acme.test/now"] == NOW * 1000
    assert first.claims["https://acme.test/date"] == "2026-01-01T00:15:00.000Z"
    assert first.claims["https://acme.test/hour"] == 0
    assert first.claims == second.claims
    randoms = first.claims["https://acme.test/random"]
    assert isinstance(randoms, list)
    assert randoms[0] != randoms[1]
    assert all(0 <= r < 1 for r in randoms)
    assert later.claims["https://acme.test/random"] != randoms


def test_the_cache_is_shared_by_the_actions_of_one_run(tmp_path: Path) -> None:
    writer = "exports.onExecuteCredentialsExchange = async (event, api) => { api.cache.set('tier', 'gold'); };\n"
    reader = """
        exports.onExecuteCredentialsExchange = async (event, api) => {
          const hit = api.cache.get("tier");
          api.accessToken.setCustomClaim("https://acme.test/tier", hit ? hit.value : null);
          api.accessToken.setCustomClaim("https://acme.test/big", api.cache.set("k", "x".repeat(5000)).type);
        };
    """
    loaded = load_tenant(
        write_export(tmp_path, {"writer": ("credentials-exchange", writer), "reader": ("credentials-exchange", reader)}), domain=DOMAIN
    )
    decision = m2m(loaded, "Billing Service")
    assert isinstance(decision, Issued)
    assert decision.claims["https://acme.test/tier"] == "gold"
    assert decision.claims["https://acme.test/big"] == "error"


def test_the_deploy_cli_example_action_shapes_run_from_a_directory_export() -> None:
    loaded = load_tenant(DIRECTORY_EXPORT, domain=DOMAIN)
    assert [a.__name__ for a in loaded.tenant.post_login_actions] == ["action-example", "welcome"]
    assert [w.message for w in loaded.warnings] == [
        "Action 'action-example': secret MY_SECRET has no value (give it in the Action secrets file or as keyword MY_SECRET)"
    ]
    user = User(user_id="auth0|carol", profile={"logins_count": 7})
    decision = login(loaded, with_users(loaded.tenant, user), user.user_id, audience=None)
    assert isinstance(decision, Issued)
    assert decision.id_token is not None
    assert decision.id_token["https://acme.test/welcome"] == "logins: 7"
    assert details(decision, Rule.ACTION_RAN) == [
        "post-login action 1 'action-example'",
        "post-login action 2 'welcome': id token sets 'https://acme.test/welcome'",
    ]


def test_a_compiled_action_is_reused_across_requests() -> None:
    loaded = load()
    gate = only_js(loaded.tenant.credentials_exchange_actions[:1])
    isolate = gate._ctx
    for _ in range(3):
        assert isinstance(m2m(loaded, "Billing Service"), Issued)
    assert gate._ctx is isolate


# ---------------------------------------------------------------------------------------
# Explain, tables, diff
# ---------------------------------------------------------------------------------------


def test_explain_names_the_action_and_what_it_set(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    request = tmp_path / "request.json"
    request.write_text(json.dumps(billing_form(load())))
    assert cli_main([*TENANT_OPTIONS, "explain", "--request", str(request), "--now", str(NOW)]) == 0
    out = capsys.readouterr().out
    assert "action.ran — credentials-exchange action 1 'm2m-gate': access token sets 'https://acme.test/tenant'" in out
    assert "action.ran — credentials-exchange action 2 'partner-claim': access token sets 'https://acme.test/partner'" in out
    assert PARTNER_KEY not in out


def test_tables_show_action_claims_and_diff_shows_a_changed_action(tmp_path: Path) -> None:
    code = (
        "exports.onExecuteCredentialsExchange = async (event, api) => {{"
        " api.accessToken.setCustomClaim('https://acme.test/tier', '{tier}'); }};\n"
    )
    old_dir, new_dir = tmp_path / "old", tmp_path / "new"
    old_dir.mkdir()
    new_dir.mkdir()
    old = load_tenant(write_export(old_dir, {"tier": ("credentials-exchange", code.format(tier="gold"))}), domain=DOMAIN)
    new = load_tenant(write_export(new_dir, {"tier": ("credentials-exchange", code.format(tier="silver"))}), domain=DOMAIN)
    old_ctx = table.TableContext(old.tenant, table.secrets_of(old.credentials))
    rows = [row for row in old_ctx.rows() if row.outcome.kind == "issued" and row.request.grant == "client_credentials"]
    assert rows
    assert all('https://acme.test/tier="gold"' in row.outcome.claims for row in rows)
    changes = list(diff_tables(old_ctx, table.TableContext(new.tenant, table.secrets_of(new.credentials))))
    assert changes
    fields = {(f.field, f.old, f.new) for c in changes for f in c.fields()}
    assert fields == {("claims", ("gty", "azp", 'https://acme.test/tier="gold"'), ("gty", "azp", 'https://acme.test/tier="silver"'))}
    assert all("action.claim_set" in f.rules for c in changes for f in c.fields())


# ---------------------------------------------------------------------------------------
# Over HTTP
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    with serve_in_thread(create_app(load().tenant, keys=KeySet.generate()), tls=True) as live:
        yield live


@pytest.mark.interop
def test_an_sdk_gets_a_token_whose_claims_came_from_the_javascript(server: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from auth0.authentication import GetToken
    from auth0.authentication.exceptions import Auth0Error

    loaded = load()
    creds = {c.name: c for c in loaded.credentials}
    secret = creds["Billing Service"].client_secret
    assert secret is not None
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(server.ca_path))
    domain = f"localhost:{server.port}"
    issued = GetToken(domain, creds["Billing Service"].client_id, client_secret=secret.get_secret_value()).client_credentials(
        audience=ORDERS
    )
    claims = jwt.decode(issued["access_token"], options={"verify_signature": False})
    assert (claims["https://acme.test/tenant"], claims["https://acme.test/partner"]) == ("t-42", True)

    blocked = creds["Blocked Service"]
    assert blocked.client_secret is not None
    with pytest.raises(Auth0Error) as denied:
        GetToken(domain, blocked.client_id, client_secret=blocked.client_secret.get_secret_value()).client_credentials(audience=ORDERS)
    assert (denied.value.status_code, denied.value.error_code) == (400, "invalid_request")

    # The fake explains which Actions ran and what they set.
    assert server.ca_path is not None
    with httpx.Client(verify=ssl.create_default_context(cafile=str(server.ca_path)), timeout=10) as client:
        response = client.post(f"{server.url}/oauth/token", data=billing_form(loaded))
    assert response.status_code == 200
    assert response.headers["x-claimsengine-actions"] == (
        "credentials-exchange action 1 'm2m-gate': access token sets 'https://acme.test/tenant'; "
        "credentials-exchange action 2 'partner-claim': access token sets 'https://acme.test/partner'"
    )


# ---------------------------------------------------------------------------------------
# Without the js extra
# ---------------------------------------------------------------------------------------

WITHOUT_ENGINE = """
import sys
sys.modules["py_mini_racer"] = None  # as if the js extra were not installed: importing it fails
from claimsengine.adapters.js_actions import engine_available
from claimsengine.adapters.loader import ConfigError, load_tenant
from claimsengine import TokenRequest, decide
assert not engine_available()
try:
    load_tenant(sys.argv[1], domain="acme.auth0.com", keywords={"PARTNER_KEY": "x"}, node_modules=sys.argv[2])
except ConfigError as exc:
    print("ERROR", exc)
plain = load_tenant(sys.argv[3])
print("PLAIN", decide(TokenRequest(grant_type="client_credentials", client_id="nw-m2m-0001",
      client_secret="example-billing-secret-not-for-production", audience="https://api.northwind.com/orders"), plain.tenant, now=1).kind)
"""


def test_without_the_js_extra_loading_actions_says_how_to_install_it_and_the_rest_works() -> None:
    from claimsengine.adapters.server import EXAMPLE_TENANT

    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_ENGINE, str(YAML_EXPORT), str(NODE_MODULES), str(EXAMPLE_TENANT)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    lines = done.stdout.splitlines()
    assert lines == [
        "ERROR tenant.yaml:actions: the tenant's Actions ('roles-to-claims', 'm2m-gate', 'partner-claim') are JavaScript; "
        "running JavaScript Actions needs the js extra: pip install 'claimsengine[js]'",
        "PLAIN issued",
    ]


@pytest.mark.slow
def test_claimsengine_serve_runs_the_actions_in_each_forked_worker(tmp_path: Path) -> None:
    """The CLI passes --node-modules through, and each forked worker compiles its own isolates
    (the parent's live in threads a child does not have)."""
    from tests.services import serving

    form = billing_form(load())
    with serving(tmp_path, *TENANT_OPTIONS, workers=2) as (_proc, url, _log), httpx.Client(timeout=30) as client:
        for _ in range(6):  # new connections: both workers answer some
            response = client.post(f"{url}/oauth/token", data=form, headers={"Connection": "close"})
            assert response.status_code == 200
            claims = jwt.decode(response.json()["access_token"], options={"verify_signature": False})
            assert (claims["https://acme.test/tenant"], claims["https://acme.test/partner"]) == ("t-42", True)

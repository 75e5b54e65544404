"""The grant table: every declared grant is dispatched to its handler and nothing else is;
everything that depends on the set of grants is derived from the table; and a new grant
needs its own module and its table entry, nothing more."""

from __future__ import annotations

import inspect
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from pydantic import SecretStr

import claimsengine.grants as grants_package
from claimsengine import GRANTS, Client, ErrorCode, GrantType, Issued, Rejected, Rule, Tenant, TokenRequest, decide, engine
from claimsengine import testing as strategies
from claimsengine.adapters import table, wire
from claimsengine.adapters.server import discovery_document
from claimsengine.grants import BY_WIRE, TOKEN_PARAMETERS, Grant, declaration
from claimsengine.steps import Trace

NOW = 1_700_000_000
API = "https://api.example.com"
TENANT = Tenant.model_validate(
    {
        "domain": "acme.auth0.com",
        "apis": [{"identifier": API, "scopes": ["read"]}],
        # Every declared grant type enabled: the defaults (R14) do not include them all.
        "clients": [
            {
                "client_id": "m2m",
                "client_secrets": ["m2m-secret"],
                "app_type": "non_interactive",
                "grant_types": [g.value for g in GrantType],
            }
        ],
        "client_grants": [{"client_id": "m2m", "audience": API, "scope": ["read"]}],
    }
)
PACKAGE = Path(grants_package.__file__).resolve().parent


def _request(grant: Grant, *, without: str | None = None) -> TokenRequest:
    """A request of ``grant`` with every required parameter (but ``without``), as the wire sends it."""
    required = {name: "present" for name in grant.required if name != without}
    return wire.token_request({"grant_type": grant.grant_type.value, "client_id": "m2m", "client_secret": "m2m-secret", **required})


def test_the_table_declares_every_grant_type_once_under_its_own_wire_identifier() -> None:
    assert set(GRANTS) == set(GrantType)
    assert all(GRANTS[g].grant_type is g and declaration(g) == GRANTS[g] for g in GrantType)
    assert {g.value: GRANTS[g] for g in GrantType} == BY_WIRE
    assert len({g.handler for g in GRANTS.values()}) == len(GRANTS), "two grants share a handler"


@pytest.mark.parametrize("grant_type", list(GrantType))
def test_every_declared_grant_is_dispatched_to_its_own_handler(grant_type: GrantType, monkeypatch: pytest.MonkeyPatch) -> None:
    called: list[GrantType] = []

    def recorder(declared: Grant) -> Callable[[TokenRequest, Client, str, Trace], Issued | Rejected]:
        def handler(req: TokenRequest, client: Client, domain: str, t: Trace) -> Issued | Rejected:
            called.append(declared.grant_type)
            return t.reject(Rule.PARAMETER_MISSING, ErrorCode.INVALID_REQUEST, "recorded")

        return handler

    recording = {wire_id: Grant(**{**_fields(g), "handler": recorder(g)}) for wire_id, g in BY_WIRE.items()}
    monkeypatch.setattr(engine, "BY_WIRE", recording)
    decide(_request(GRANTS[grant_type]), TENANT, now=NOW)
    assert called == [grant_type]


def _fields(grant: Grant) -> dict[str, Any]:
    return {name: getattr(grant, name) for name in grant.__dataclass_fields__}


@pytest.mark.parametrize("grant_type", list(GrantType))
def test_a_declared_grant_runs_its_real_handler_past_the_common_steps(grant_type: GrantType) -> None:
    decision = decide(_request(GRANTS[grant_type]), TENANT, now=NOW)
    rules = [r.rule for r in decision.trace]
    assert Rule.CLIENT_GRANT_TYPE_ALLOWED in rules
    # The handler decided something after the common steps: the trace goes on.
    assert rules[-1] is not Rule.CLIENT_GRANT_TYPE_ALLOWED
    assert not (isinstance(decision, Rejected) and decision.rejected_by is Rule.GRANT_TYPE_UNSUPPORTED)


@pytest.mark.parametrize("grant_type", list(GrantType))
def test_a_missing_required_parameter_is_refused_before_the_handler_runs(grant_type: GrantType) -> None:
    grant = GRANTS[grant_type]
    for name in grant.required:
        request = _request(grant, without=name)
        decision = decide(request, TENANT, now=NOW)
        assert isinstance(decision, Rejected)
        assert decision.rejected_by is Rule.PARAMETER_MISSING
        assert decision.error_description == f"Missing required parameter: {name}"


def test_no_handler_is_dispatched_without_a_declaration() -> None:
    # Every public function of a handler module of the package is some grant's handler (or its
    # fast path, which the table declares with it).
    declared = {g.handler for g in GRANTS.values()} | {g.fast for g in GRANTS.values() if g.fast is not None}
    modules = [p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"]
    handlers: set[Callable[..., Any]] = set()
    for stem in modules:
        module: ModuleType = sys.modules[f"claimsengine.grants.{stem}"]
        handlers.update(getattr(module, name) for name in module.__all__)
    assert handlers == declared
    # And the engine reaches handlers only through the table: no handler is named in it.
    source = inspect.getsource(engine)
    assert not any(h.__name__ + "(" in source for h in declared)


def test_an_undeclared_grant_type_is_unsupported() -> None:
    request = TokenRequest(grant_type="urn:ietf:params:oauth:grant-type:jwt-bearer", client_id="m2m", client_secret=SecretStr("m2m-secret"))
    decision = decide(request, TENANT, now=NOW)
    assert isinstance(decision, Rejected)
    assert decision.rejected_by is Rule.GRANT_TYPE_UNSUPPORTED


def test_what_depends_on_the_set_of_grants_is_derived_from_the_table() -> None:
    declared = sorted(g.value for g in GrantType)
    assert sorted(discovery_document(TENANT, TENANT.domain)["grant_types_supported"]) == declared
    assert wire.TOKEN_PARAMETERS == TOKEN_PARAMETERS
    assert {p for g in GRANTS.values() for p in (*g.parameters, *g.required)} <= set(TOKEN_PARAMETERS)
    assert tuple(g.grant_type.value for g in GRANTS.values() if g.table is not None) == table.GRANTS
    assert set(declared) <= set(strategies.GRANT_TYPES)


# --- a new grant: its module and its table entry, nothing else ------------------------------

DUMMY_MODULE = '''"""A dummy grant: a machine-to-machine token for the API the ``dummy_api`` parameter names."""

from __future__ import annotations

from claimsengine.model import Client, Issued, Rejected, SubjectType, TokenRequest
from claimsengine.rules import Rule
from claimsengine.steps import Trace, api_for, find_grant, granted_scopes, parameter
from claimsengine.tokens import Draft, issue

__all__ = ["dummy"]


def dummy(req: TokenRequest, client: Client, domain: str, t: Trace) -> Issued | Rejected:
    audience = parameter(req, "dummy_api") or ""
    api = api_for(audience, t, unknown=Rule.AUDIENCE_UNKNOWN, text="Service not enabled within domain")
    if isinstance(api, Rejected):
        return api
    grant = find_grant(client, api, SubjectType.CLIENT, t)
    if isinstance(grant, Rejected):
        return grant
    scopes = granted_scopes(grant, api, t)
    return issue(Draft(client=client, domain=domain, scopes=scopes, api=api, gty="dummy"), t)
'''
DUMMY_ENTRY = """        case GrantType.DUMMY:
            return Grant(
                grant_type,
                dummy,
                "a dummy grant for the test that adding a grant touches two files",
                parameters=("dummy_api",),
                required=("dummy_api",),
                client_authentication=True,
                subject=SubjectType.CLIENT,
                table=None,
            )
"""
DUMMY_CHECK = """
import json
from claimsengine import Tenant, decide
from claimsengine.adapters import table, wire
from claimsengine.adapters.server import discovery_document
from claimsengine import testing

tenant = Tenant.model_validate({
    "domain": "acme.auth0.com",
    "apis": [{"identifier": "https://api.example.com", "scopes": ["read"]}],
    "clients": [{"client_id": "m2m", "client_secrets": ["s"], "app_type": "non_interactive",
                 "grant_types": ["urn:example:dummy"]}],
    "client_grants": [{"client_id": "m2m", "audience": "https://api.example.com", "scope": ["read"]}],
})
params = {"grant_type": "urn:example:dummy", "client_id": "m2m", "client_secret": "s", "dummy_api": "https://api.example.com"}
issued = decide(wire.token_request(params), tenant, now=1700000000)
missing = decide(wire.token_request({k: v for k, v in params.items() if k != "dummy_api"}), tenant, now=1700000000)
print(json.dumps({
    "kind": issued.kind,
    "gty": issued.claims.get("gty") if issued.kind == "issued" else None,
    "missing": missing.error_description if missing.kind == "rejected" else None,
    "discovery": "urn:example:dummy" in discovery_document(tenant, "acme.auth0.com")["grant_types_supported"],
    "wire": "dummy_api" in wire.TOKEN_PARAMETERS,
    "strategies": "urn:example:dummy" in testing.GRANT_TYPES,
}))
"""


def _insert_after(text: str, anchor: str, addition: str) -> str:
    assert text.count(anchor) == 1, f"anchor {anchor!r} is not unique"
    return text.replace(anchor, anchor + addition)


def test_a_new_grant_needs_only_its_module_and_its_table_entry(tmp_path: Path) -> None:
    root = tmp_path / "copy"
    shutil.copytree(PACKAGE.parent, root / "claimsengine", ignore=shutil.ignore_patterns("__pycache__"))
    before = {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    # The grant's own module...
    (root / "claimsengine/grants/dummy.py").write_text(DUMMY_MODULE)
    # ...and its entry in the table: its wire identifier, its import, its declaration.
    table_file = root / "claimsengine/grants/__init__.py"
    text = table_file.read_text()
    text = _insert_after(
        text,
        "from claimsengine.grants.client_credentials import client_credentials, client_credentials_fast\n",
        "from claimsengine.grants.dummy import dummy\n",
    )
    text = _insert_after(text, '    REFRESH_TOKEN = "refresh_token"\n', '    DUMMY = "urn:example:dummy"\n')
    text = text.replace(
        "        case _:\n            assert_never(grant_type)", DUMMY_ENTRY + "        case _:\n            assert_never(grant_type)"
    )
    table_file.write_text(text)
    changed = {p.relative_to(root) for p in root.rglob("*") if p.is_file() and before.get(p.relative_to(root)) != p.read_bytes()}
    assert changed == {Path("claimsengine/grants/dummy.py"), Path("claimsengine/grants/__init__.py")}
    out = subprocess.run(
        [sys.executable, "-c", DUMMY_CHECK], cwd=root, capture_output=True, text=True, check=True, env={"PYTHONPATH": str(root)}
    )
    assert out.stdout.strip() == (
        '{"kind": "issued", "gty": "dummy", "missing": "Missing required parameter: dummy_api", '
        '"discovery": true, "wire": true, "strategies": true}'
    )

"""Golden spec cases, and the checks that keep specs, code and cases in agreement.

``specs/rules.toml`` names every rule; ``claimsengine/rules.py`` is its enum;
``specs/cases/*.json`` demonstrate every rule against ``decide`` and
``validate_access_token``. See ``specs/README.md`` for the formats.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from claimsengine import (
    AuthorizeRequest,
    CorsRequest,
    DeviceApprovalRequest,
    DeviceCodeRequest,
    LogoutRequest,
    MfaAssociateRequest,
    MfaChallengeRequest,
    PresentedToken,
    RevokeRequest,
    Rule,
    Tenant,
    TokenRequest,
    decide,
    decide_cors,
    validate_access_token,
)
from tests import spec_actions

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
CATALOGUE = [f"R{n}" for n in range(1, 96)]
CONFIDENCE = {"documented", "observed", "inferred", "choice"}
CASE_KEYS = {"id", "description", "rules", "request", "now", "expect", "tenant_patch", "actions", "engine_bug"}
# Expected values under these keys are compared key by key (the rest of the value is free);
# every other expected key must equal the decision's value exactly.
PARTIAL_KEYS = {"grant", "refresh", "id_token", "access", "oob"}


@dataclass(frozen=True)
class SpecCase:
    """One golden case and the file it came from."""

    topic: str
    tenant: str
    data: dict[str, Any]

    @property
    def id(self) -> str:
        return str(self.data["id"])

    @property
    def rules(self) -> list[str]:
        return list(self.data["rules"])

    @property
    def expect(self) -> dict[str, Any]:
        return dict(self.data["expect"])


@cache
def rules_toml() -> dict[str, Any]:
    with (SPECS / "rules.toml").open("rb") as f:
        return tomllib.load(f)


@cache
def load_cases() -> tuple[SpecCase, ...]:
    cases: list[SpecCase] = []
    for path in sorted((SPECS / "cases").glob("*.json")):
        doc = json.loads(path.read_text())
        cases.extend(SpecCase(path.stem, doc["tenant"], case) for case in doc["cases"])
    return tuple(cases)


@cache
def tenant_json(name: str) -> str:
    return (SPECS / "tenants" / name).read_text()


def tenant_data(case: SpecCase) -> dict[str, Any]:
    """The case's tenant as a dict: the file, with ``tenant_patch`` applied shallowly."""
    data: dict[str, Any] = json.loads(tenant_json(case.tenant))
    data.update(case.data.get("tenant_patch", {}))
    return data


def build_tenant(case: SpecCase) -> Tenant:
    data = tenant_data(case)
    actions = case.data.get("actions", {})
    data["credentials_exchange_actions"] = tuple(getattr(spec_actions, n) for n in actions.get("credentials_exchange", []))
    data["post_login_actions"] = tuple(getattr(spec_actions, n) for n in actions.get("post_login", []))
    return Tenant.model_validate(data)


def run(case: SpecCase) -> tuple[dict[str, Any], str]:
    """Run a case; return the decision's JSON dump and its full JSON text."""
    decision = decision_of(case)
    dumped: dict[str, Any] = decision.model_dump(mode="json")
    return dumped, decision.model_dump_json()


def decision_of(case: SpecCase) -> Any:
    """Run a case; return the decision (or the CORS answer) itself."""
    tenant = build_tenant(case)
    request = dict(case.data["request"])
    kind = request.pop("kind")
    now = int(case.data["now"])
    if kind == "validate":
        token = PresentedToken.model_validate(request["token"])
        decision: Any = validate_access_token(token, audience=request["audience"], domain=request["domain"], tenant=tenant, now=now)
    elif kind == "token":
        decision = decide(TokenRequest.model_validate(request), tenant, now=now)
    elif kind == "authorize":
        decision = decide(AuthorizeRequest.model_validate(request), tenant, now=now)
    elif kind == "device_code":
        decision = decide(DeviceCodeRequest.model_validate(request), tenant, now=now)
    elif kind == "device_approval":
        decision = decide(DeviceApprovalRequest.model_validate(request), tenant, now=now)
    elif kind == "revoke":
        decision = decide(RevokeRequest.model_validate(request), tenant, now=now)
    elif kind == "cors":
        decision = decide_cors(CorsRequest.model_validate(request), tenant)
    elif kind == "logout":
        decision = decide(LogoutRequest.model_validate(request), tenant, now=now)
    elif kind == "mfa_challenge":
        decision = decide(MfaChallengeRequest.model_validate(request), tenant, now=now)
    elif kind == "mfa_associate":
        decision = decide(MfaAssociateRequest.model_validate(request), tenant, now=now)
    else:
        raise AssertionError(f"{case.id}: unknown request kind {kind!r}")
    return decision


def trace_of(dumped: dict[str, Any]) -> list[str]:
    return [reason["rule"] for reason in dumped["trace"]]


def case_params() -> list[Any]:
    params = []
    for case in load_cases():
        marks = []
        bug = case.data.get("engine_bug")
        if bug:
            marks.append(pytest.mark.xfail(strict=True, reason=f"known engine bug: {bug}"))
        params.append(pytest.param(case, id=case.id, marks=marks))
    return params


# ---------------------------------------------------------------------------------------
# (a) every case
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", case_params())
def test_case(case: SpecCase) -> None:
    dumped, _ = run(case)
    expect = case.expect
    assert "trace" in expect, f"{case.id}: expect needs the full trace"
    problems: list[str] = []
    for key, want in expect.items():
        if key == "trace":
            got: Any = trace_of(dumped)
        elif key not in dumped:
            problems.append(f"{key}: not in the decision (kind {dumped['kind']})")
            continue
        else:
            got = dumped[key]
        if key in PARTIAL_KEYS and isinstance(want, dict) and isinstance(got, dict):
            for sub, sub_want in want.items():
                if got.get(sub, "<absent>") != sub_want:
                    problems.append(f"{key}.{sub}: expected {sub_want!r}, got {got.get(sub, '<absent>')!r}")
        elif got != want:
            problems.append(f"{key}: expected {want!r}, got {got!r}")
    assert not problems, f"{case.id} ({case.data['description']}):\n  " + "\n  ".join(problems)


# ---------------------------------------------------------------------------------------
# The specs themselves
# ---------------------------------------------------------------------------------------


def test_every_decision_is_the_validated_value_of_the_fields_it_says_it_sets() -> None:
    """The engine builds its decisions with ``model.trusted``, which skips validation and trusts
    the caller to pass every required field. Rebuilt by the validating constructor from only the
    fields it counts as set (nested values included), each case's decision is valid and equal to
    itself: no required field was left to the template's placeholder."""
    problems = []
    for case in load_cases():
        decision = decision_of(case)
        try:
            rebuilt = type(decision).model_validate(decision.model_dump(exclude_unset=True))
        except ValidationError as error:
            problems.append(f"{case.id}: {error.errors()[0]['loc']} {error.errors()[0]['msg']}")
            continue
        if rebuilt != decision:
            problems.append(f"{case.id}: rebuilt from its set fields, the decision differs")
    assert not problems, "\n".join(problems)


def test_cases_are_well_formed() -> None:
    ids = [case.id for case in load_cases()]
    assert ids, "no spec cases found"
    assert len(ids) == len(set(ids)), f"duplicate case ids: {sorted({i for i in ids if ids.count(i) > 1})}"
    known = {r.value for r in Rule}
    for case in load_cases():
        assert set(case.data) <= CASE_KEYS, f"{case.id}: unknown keys {set(case.data) - CASE_KEYS}"
        assert case.data["description"], f"{case.id}: empty description"
        assert case.rules, f"{case.id}: cites no rule"
        assert set(case.rules) <= known, f"{case.id}: unknown rule ids {set(case.rules) - known}"
        assert set(case.expect.get("trace", [])) <= known, f"{case.id}: unknown ids in expect.trace"
        for trigger, names in case.data.get("actions", {}).items():
            assert trigger in {"credentials_exchange", "post_login"}, f"{case.id}: unknown trigger {trigger}"
            missing = [n for n in names if not callable(getattr(spec_actions, n, None))]
            assert not missing, f"{case.id}: no such action in tests/spec_actions.py: {missing}"


def test_rules_toml_entries_are_complete() -> None:
    for rule in rules_toml()["rule"]:
        assert set(rule) == {"id", "title", "statement", "catalogue", "source", "confidence"}, rule.get("id")
        for field in ("title", "statement", "source"):
            assert rule[field], f"{rule['id']}: empty {field}"
        assert rule["confidence"] in CONFIDENCE, rule["id"]
        assert set(rule["catalogue"]) <= set(CATALOGUE), rule["id"]


# (b) the enum and rules.toml name the same rules
def test_rule_enum_matches_rules_toml() -> None:
    toml_ids = [rule["id"] for rule in rules_toml()["rule"]]
    assert len(toml_ids) == len(set(toml_ids)), "duplicate ids in rules.toml"
    enum_ids = {r.value for r in Rule}
    assert sorted(enum_ids - set(toml_ids)) == [], "Rule members missing from specs/rules.toml"
    assert sorted(set(toml_ids) - enum_ids) == [], "rules.toml ids that are not Rule members"


# (c) every rule is demonstrated by a case that is expected to pass
def test_every_rule_is_cited_by_a_case() -> None:
    cited = {rule for case in load_cases() if not case.data.get("engine_bug") for rule in case.rules}
    assert sorted({r.value for r in Rule} - cited) == []


# (d) a case's citations are in its trace: the expected one, and the engine's
@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in load_cases()])
def test_cited_rules_are_in_the_trace(case: SpecCase) -> None:
    expected = set(case.expect.get("trace", []))
    assert set(case.rules) <= expected, f"cited but not in expect.trace: {set(case.rules) - expected}"
    if not case.data.get("engine_bug"):
        actual = set(trace_of(run(case)[0]))
        assert set(case.rules) <= actual, f"cited but not in the engine's trace: {set(case.rules) - actual}"


# (e) every catalogue entry is implemented by a rule or listed as not modelled, never both
def test_catalogue_is_accounted_for() -> None:
    data = rules_toml()
    cited = {number for rule in data["rule"] for number in rule["catalogue"]}
    listed = [entry["catalogue"] for entry in data["not_modelled"] if "catalogue" in entry]
    assert all(entry["reason"] for entry in data["not_modelled"])
    # A feature outside the catalogue that the engine leaves out names itself and its sources.
    features = [entry for entry in data["not_modelled"] if "catalogue" not in entry]
    assert all(set(entry) == {"feature", "reason", "sources"} and entry["sources"] for entry in features)
    assert len(listed) == len(set(listed)), "a catalogue entry is listed twice in not_modelled"
    assert sorted(cited & set(listed)) == [], "cited by a rule and listed as not modelled"
    assert sorted(set(CATALOGUE) - cited - set(listed), key=lambda n: int(n[1:])) == []
    assert sorted((cited | set(listed)) - set(CATALOGUE)) == []


# (f) every Rule.X the code uses is specified
def test_rules_used_in_code_are_specified() -> None:
    toml_ids = {rule["id"] for rule in rules_toml()["rule"]}
    used: set[str] = set()
    for path in sorted((ROOT / "claimsengine").rglob("*.py")):
        used.update(re.findall(r"\bRule\.([A-Z][A-Z0-9_]*)\b", path.read_text()))
    assert used, "no Rule.X found in claimsengine/"
    unknown = sorted(name for name in used if name not in Rule.__members__)
    assert unknown == [], f"Rule members used in code but not defined: {unknown}"
    unspecified = sorted(name for name in used if Rule[name].value not in toml_ids)
    assert unspecified == []


# (g) secrets from the tenant never reach a decision
def _tenant_secrets(data: dict[str, Any]) -> set[str]:
    secrets = {str(s) for client in data.get("clients", []) for s in client.get("client_secrets", [])}
    secrets |= {str(api["signing_secret"]) for api in data.get("apis", []) if api.get("signing_secret")}
    return secrets


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in load_cases()])
def test_decisions_never_contain_secrets(case: SpecCase) -> None:
    secrets = _tenant_secrets(tenant_data(case))
    request = case.data["request"]
    for field in (
        "client_secret",
        "basic_client_secret",
        "code",
        "refresh_token",
        "device_code",
        "token",
        "new_secret",
        "new_recovery_code",
    ):
        if isinstance(request.get(field), str) and request[field]:
            secrets.add(request[field])
    assert secrets, "the spec tenant should have secrets to look for"
    dumped, text = run(case)
    blob = text + json.dumps(dumped)
    leaked = sorted(s for s in secrets if s in blob)
    assert leaked == [], f"{case.id}: secrets in the decision"

"""claimsengine.testing tests the user's own tenant: its strategies draw real credentials, so
tokens are really issued; the shipped example property file runs against a tenant file."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from claimsengine import Issued, TokenRequest, decide
from claimsengine.adapters.docgen import load_example
from claimsengine.testing import token_requests, valid_token_requests

NOW = 1_700_000_000
EXAMPLE_PROPERTIES = Path(__file__).resolve().parent.parent / "claimsengine" / "examples" / "test_tenant_properties.py"


def _issued_share(strategy_for: object, examples: int) -> tuple[int, int]:
    tenant = load_example().tenant
    outcomes: list[bool] = []

    @settings(max_examples=examples, database=None, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
    @given(strategy_for(tenant))  # type: ignore[operator]
    def draw(request: TokenRequest) -> None:
        outcomes.append(isinstance(decide(request, tenant, now=NOW), Issued))

    draw()
    return sum(outcomes), len(outcomes)


def test_at_least_a_quarter_of_drawn_token_requests_issue_on_the_bundled_tenant() -> None:
    issued, drawn = _issued_share(token_requests, 200)
    assert drawn >= 100
    assert issued * 4 >= drawn, f"only {issued} of {drawn} drawn requests issued"
    assert issued < drawn, "wrong parts must be drawn too"


def test_requests_made_of_the_tenants_real_parts_issue() -> None:
    issued, drawn = _issued_share(valid_token_requests, 60)
    assert issued == drawn > 0


@pytest.mark.slow
def test_the_example_property_file_runs_against_a_tenant_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAIMSENGINE_TENANT", str(EXAMPLE_PROPERTIES.parent / "northwind.yaml"))
    spec = importlib.util.spec_from_file_location("example_tenant_properties", EXAMPLE_PROPERTIES)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    tests = [getattr(module, name) for name in dir(module) if name.startswith("test_")]
    assert len(tests) == 4
    for test in tests:
        test()

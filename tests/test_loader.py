"""Tests for the tenant loader (claimsengine.adapters.loader)."""

from __future__ import annotations

import yaml

from claimsengine import Tenant
from claimsengine.adapters.loader import load_tenant
from tests.conftest import EXAMPLE


def test_own_format_yaml_equals_model() -> None:
    loaded = load_tenant(EXAMPLE)
    assert loaded.tenant == Tenant.model_validate(yaml.safe_load(EXAMPLE.read_text()))
    assert loaded.warnings == ()

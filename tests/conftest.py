"""Shared test set-up: Hypothesis profiles and the paths tests share."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, settings

# The plugin users get through the pytest11 entry point (disabled in pyproject's addopts so
# that coverage starts before the package is imported).
pytest_plugins = ("claimsengine.adapters.pytest_plugin", "pytester")

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "claimsengine" / "examples" / "northwind.yaml"
CORPUS = ROOT.parent / "shared" / "corpus" / "tenants"

# "dev" keeps local runs quick; CI sets HYPOTHESIS_PROFILE=ci for more examples.
settings.register_profile("dev", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

"""The strict tooling bars are part of the suite, so the README's one test command checks them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, check=False)


@pytest.mark.slow
def test_mypy_strict_is_clean_on_the_package_and_the_tests() -> None:
    result = _run("mypy")  # files and strictness come from pyproject.toml
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_finds_nothing_to_lint() -> None:
    result = _run("ruff", "check", "claimsengine", "tests", "bench")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_has_nothing_to_change() -> None:
    result = _run("ruff", "format", "--check", "claimsengine", "tests", "bench")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_tools_are_installed() -> None:
    # A missing tool must fail loudly rather than let the checks above pass vacuously.
    assert shutil.which("ruff") or _run("ruff", "--version").returncode == 0
    assert _run("mypy", "--version").returncode == 0

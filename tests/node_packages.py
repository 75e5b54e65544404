"""Real npm packages for tests: installed from a lock file with npm when missing, or skipped."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


def installed(folder: Path, *packages: str) -> Path:
    """``folder/node_modules`` with ``packages`` in it, running ``npm ci`` there if needed;
    skips the test when node or npm is missing or the registry cannot be reached."""
    package = ", ".join(packages)
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip(f"node and npm are needed to install {package}")
    if not all((folder / "node_modules" / name).is_dir() for name in packages):
        command = [npm, "ci" if (folder / "package-lock.json").exists() else "install", "--no-audit", "--no-fund", "--ignore-scripts"]
        try:
            done = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=120, check=False)
        except subprocess.TimeoutExpired:
            pytest.skip(f"npm could not install {package} in time (no network?)")
        if done.returncode != 0:
            pytest.skip(f"npm could not install {package} (no network?): {done.stderr.strip()[-300:]}")
    return folder / "node_modules"

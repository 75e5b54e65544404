"""The README's promises are checked: its example runs, and CI runs its test command."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _shell_blocks() -> list[str]:
    return re.findall(r"```sh\n(.*?)```", README, re.S)


def test_the_readme_opens_with_the_main_job_and_the_test_command() -> None:
    first, second = (block.strip() for block in _shell_blocks()[:2])
    assert "claimsengine table" in first, "the first command runs the main job on the bundled tenant"
    assert first.startswith("python3 -m venv .venv && .venv/bin/pip install -e")
    assert second.startswith("python3 -m venv .venv && .venv/bin/pip install -e")
    assert second.endswith("-m pytest")


def test_ci_runs_the_readmes_test_command() -> None:
    install_and_test = _shell_blocks()[1].strip().split(" && ", 1)[1]
    assert install_and_test in (ROOT / ".ci" / "run").read_text()


def test_the_python_example_runs_and_says_what_the_readme_says() -> None:
    example = re.search(r"## In Python\n\n```python\n(.*?)```", README, re.S)
    assert example is not None
    namespace: dict[str, object] = {}
    exec(compile(example.group(1), "README.md", "exec"), namespace)
    decision = namespace["decision"]
    assert getattr(decision, "kind", None) == "issued"
    assert getattr(decision, "issuer", None) == "https://login.northwind.com/"

"""SECURITY.md names the tests that prove each invariant: every one it names exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_test_security_md_cites_exists() -> None:
    text = (ROOT / "SECURITY.md").read_text()
    cited: list[tuple[str, str]] = []
    for row in text.splitlines():
        current = None
        for found in re.finditer(r"`(tests/[\w/]+\.py)?(?:::(\w+))?`", row):
            path, name = found.groups()
            current = path or current
            if name is not None:
                assert current is not None, row
                cited.append((current, name))
            elif path is not None:
                assert (ROOT / path).exists(), path
    assert len(cited) >= 20
    for path, name in cited:
        assert re.search(rf"^def {name}\(", (ROOT / path).read_text(), re.M), f"{path}::{name}"
    for rule in re.findall(r"`([a-z_]+\.[a-z_]+)` cases", text) + re.findall(r"`([a-z_]+\.[a-z_]+)`, `", text):
        assert f'id = "{rule}"' in (ROOT / "specs" / "rules.toml").read_text(), rule

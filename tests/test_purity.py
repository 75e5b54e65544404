"""The core stays pure: no I/O, clock, randomness, environment or logging, checked on the source."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "claimsengine"
# Every module of the core: the package's top level and its grant handlers; not the adapters,
# not the Hypothesis strategies, not the entry point.
CORE = tuple(
    sorted(
        str(path.relative_to(PACKAGE))
        for path in (*PACKAGE.glob("*.py"), *PACKAGE.glob("grants/*.py"))
        if path.name not in ("testing.py", "__main__.py")
    )
)

# Everything a core module may import. Pure computation from the standard library is fine
# (hashing for PKCE, JSON for claim sizes, URL splitting); nothing that touches the world.
ALLOWED = {
    "__future__",
    "base64",
    "collections",
    "collections.abc",
    "dataclasses",
    "difflib",
    "enum",
    "functools",
    "hashlib",
    "hmac",
    "itertools",
    "math",
    "json",
    "re",
    "string",
    "types",
    "typing",
    "urllib.parse",
    "pydantic",
}
FORBIDDEN_CALLS = {"open", "print", "input", "exec", "eval", "__import__", "breakpoint"}


def _imports(tree: ast.AST) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "core modules import absolutely"
            found.add(node.module or "")
    return found


@pytest.mark.parametrize("name", CORE)
def test_a_core_module_imports_nothing_that_touches_the_world(name: str) -> None:
    tree = ast.parse((PACKAGE / name).read_text())
    for module in _imports(tree):
        own = module == "claimsengine" or module.startswith("claimsengine.")
        assert not module.startswith("claimsengine.adapters"), f"{name} imports an adapter"
        assert module in ALLOWED or (own and module != "claimsengine.testing"), f"{name} imports {module}"


@pytest.mark.parametrize("name", CORE)
def test_a_core_module_calls_no_io_builtins(name: str) -> None:
    tree = ast.parse((PACKAGE / name).read_text())
    called = {node.func.id for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}
    assert not called & FORBIDDEN_CALLS


def test_importing_the_core_loads_no_adapter_or_io_library() -> None:
    # pydantic itself lazily loads random, secrets and socket, so the runtime check looks for
    # what only our code could bring in; the AST checks above police the standard library.
    code = (
        "import sys, claimsengine\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in {'yaml', 'starlette', 'uvicorn', 'httpx', 'joserfc',"
        " 'cryptography', 'rich', 'hypothesis'} or m.startswith('claimsengine.adapters')]\n"
        "print(','.join(sorted(bad)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_the_guard_would_catch_a_forbidden_import(tmp_path: Path) -> None:
    # The check above must be able to fail: feed it a module that reads the clock.
    tree = ast.parse("import time\nfrom os import environ\n")
    assert _imports(tree) - ALLOWED == {"time", "os"}


@pytest.mark.parametrize("name", CORE)
def test_a_core_module_says_what_it_exports(name: str) -> None:
    tree = ast.parse((PACKAGE / name).read_text())
    exported = [
        node
        for node in tree.body
        if isinstance(node, ast.Assign | ast.AnnAssign)
        and any(isinstance(t, ast.Name) and t.id == "__all__" for t in (node.targets if isinstance(node, ast.Assign) else [node.target]))
    ]
    assert len(exported) == 1, f"{name} has no __all__"

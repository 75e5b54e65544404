"""The README's promises are checked: its example runs, and CI runs its test command."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EXAMPLE

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


def test_the_embedding_example_serves_auth0s_answers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import jwt

    from claimsengine.adapters.server import asgi_client

    example = re.search(r"## Embedding the engine in your own app\n.*?```python\n(.*?)```", README, re.S)
    assert example is not None
    shutil.copy(EXAMPLE, tmp_path / "tenant.yaml")
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {}
    exec(compile(example.group(1), "README.md", "exec"), namespace)
    form = {
        "grant_type": "client_credentials",
        "client_id": "nw-m2m-0001",
        "client_secret": "example-billing-secret-not-for-production",
        "audience": "https://api.northwind.com/orders",
    }
    with asgi_client(namespace["app"], base_url="https://login.northwind.com") as client:
        issued = client.post("/oauth/token", data=form)
        wrong = client.post("/oauth/token", data={**form, "client_secret": "nope"})
        basic = client.post("/oauth/token", data={k: v for k, v in form.items() if k not in ("client_id", "client_secret")},
                            auth=("nw-partner-0001", "example-partner-secret-not-for-production"))  # fmt: skip
    assert issued.status_code == 200, issued.text
    assert issued.headers["cache-control"] == "no-store"
    body = issued.json()
    assert list(body) == ["access_token", "scope", "expires_in", "token_type"]
    keys = namespace["keys"]
    kid = jwt.get_unverified_header(body["access_token"])["kid"]
    key = jwt.PyJWK(next(k for k in keys.jwks()["keys"] if k["kid"] == kid))
    claims = jwt.decode(body["access_token"], key.key, algorithms=["RS256"], audience=form["audience"])
    assert claims["iss"] == "https://login.northwind.com/"
    assert claims["sub"] == "nw-m2m-0001@clients"
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "access_denied"
    assert basic.status_code == 403
    assert basic.json()["error"] == "access_denied"


def test_decide_json_has_the_header_and_key_id(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    from claimsengine.adapters.signing import KeySet

    keys = KeySet.generate(seed=7)
    keys.save(tmp_path / "keys.json")
    request = json.dumps(
        {"grant_type": "client_credentials", "client_id": "nw-m2m-0001",
         "client_secret": "example-billing-secret-not-for-production", "audience": "https://api.northwind.com/orders"}
    )  # fmt: skip
    out = subprocess.run(
        [sys.executable, "-m", "claimsengine", "decide", "--now", "1700000000", "--keys", str(tmp_path / "keys.json")],
        input=request, capture_output=True, text=True, check=True,
    )  # fmt: skip
    decision = json.loads(out.stdout)
    assert decision["header"] == {"alg": "RS256", "typ": "JWT", "kid": keys.current_kid}
    assert decision["signing_key"] == "tenant"
    assert decision["refresh_token"] is False

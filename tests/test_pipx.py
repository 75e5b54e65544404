"""`pipx run` serves the fake tenant without installing claimsengine anywhere (issue 10, item 9).

pipx itself comes from PyPI into a throwaway virtual environment; it then builds claimsengine
from this checkout with the `server` extra in its own cached environment, exactly as
`pipx run --spec "claimsengine[server]" claimsengine serve` does from PyPI."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import venv
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_pipx_run_serves_the_example_tenant(tmp_path: Path) -> None:
    venv.create(tmp_path / "pipx", with_pip=True)
    python = tmp_path / "pipx" / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "-q", "pipx"]
    installed = subprocess.run(pip, capture_output=True, text=True, timeout=300, check=False)
    assert installed.returncode == 0, installed.stderr[-2000:]
    env = {**os.environ, "PIPX_HOME": str(tmp_path / "home"), "PIPX_BIN_DIR": str(tmp_path / "bin")}
    env.pop("VIRTUAL_ENV", None)
    log = tmp_path / "serve.log"
    with log.open("w") as sink:
        proc = subprocess.Popen(
            [str(python), "-m", "pipx", "run", "--spec", f"{ROOT}[server]", "claimsengine", "serve", "--port", "0"],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=tmp_path,
        )
    try:
        deadline = time.monotonic() + 400
        while not (found := re.search(r"serving \S+ at (http://127\.0\.0\.1:\d+)", log.read_text())):
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        url = found.group(1)
        with httpx.Client(timeout=10) as client:
            for _ in range(200):
                try:
                    discovery = client.get(f"{url}/.well-known/openid-configuration")
                    break
                except httpx.ConnectError:
                    time.sleep(0.05)
        assert discovery.json()["issuer"] == f"https://{url.removeprefix('http://')}/"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0

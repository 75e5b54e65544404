"""Real services the tests start themselves: a Debian ``redis-server`` on a free loopback port."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def redis_server(directory: Path) -> Iterator[str]:
    """A throwaway ``redis-server`` (no persistence) on loopback; yields its URL, stops it by PID."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed (.ci/run installs Debian's redis-server package)")
    port = free_port()
    log = directory / "redis.log"
    with log.open("w") as sink:
        proc = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(directory)],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"redis-server did not start:\n{log.read_text()}")
            time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def serving(tmp_path: Path, *options: str, workers: int = 1, name: str = "serve") -> Iterator[tuple[subprocess.Popen[str], str, Path]]:
    """``claimsengine serve`` in a child process on a free loopback port; yields (process, url, log).

    Waits until every worker accepts connections; stops the server by PID (SIGINT, then SIGKILL).
    """
    import re
    import signal
    import sys

    log = tmp_path / f"{name}.log"
    with log.open("w") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "claimsengine", "serve", "--port", "0", "--workers", str(workers), *options],
            stdout=sink,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            text = log.read_text()
            found = re.search(r"claimsengine: serving \S+ at (https?://127\.0\.0\.1:\d+)", text)
            if found and text.count("Application startup complete") >= workers:
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the server did not start:\n{text}")
            time.sleep(0.05)
        yield proc, found.group(1), log
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

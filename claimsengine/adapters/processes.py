"""How ``claimsengine serve`` runs: one process or N workers, atomic reload, process hygiene.

* The parent binds the listening socket itself (``SO_REUSEADDR``) and loads the tenant.
* ``--workers 1`` serves in that process. ``--workers N`` forks N workers that inherit the
  socket and the parent's *validated* tenant: workers never read the tenant file. A worker
  that dies is replaced by a fork of the parent's current generation.
* ``SIGHUP`` (and, with ``--watch``, a change of the tenant file) reloads: the parent loads and
  validates the file first. If that fails, the error is logged and the current generation
  keeps serving. If it succeeds, the next generation starts (new workers, or a new
  configuration object in the single process), and the old workers finish their requests
  and exit. Each request is answered by one generation from start to end.
* Workers exit when the parent dies, even by ``kill -9`` (``PR_SET_PDEATHSIG`` on Linux, a
  watchdog elsewhere), so the port is free for a restart.
* A request must arrive whole (headers and body) within ``--read-timeout`` seconds of the
  connection or of the previous response: slow clients cannot hold a worker's connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import os
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import h11
import uvicorn
from starlette.applications import Starlette
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from claimsengine import Tenant

__all__ = ["BoundedH11Protocol", "BoundedHttpToolsProtocol", "Serving", "bind", "serve"]

DEFAULT_READ_TIMEOUT = 10.0
# How long a stopping worker may take to finish its requests.
GRACEFUL_SECONDS = 5
# How long a stopping worker waits for the request of a connection it has just accepted.
SHUTDOWN_GRACE = 1.0
# How often the parent looks at its children and, with --watch, at the tenant file.
POLL_SECONDS = 0.2
_PR_SET_PDEATHSIG = 1


class _ReadDeadline:
    """A deadline for reading each request (headers and body), for uvicorn's HTTP protocols.

    uvicorn bounds idle keep-alive connections but not a client that sends a request slowly;
    this closes the connection when a request is still incomplete ``read_timeout`` seconds
    after the connection opened or the previous response completed.
    """

    read_timeout: float = DEFAULT_READ_TIMEOUT
    loop: Any
    transport: Any
    _read_deadline: Any = None

    def _arm_read_deadline(self) -> None:
        if self._read_deadline is not None:
            self._read_deadline.cancel()
        self._read_deadline = self.loop.call_later(self.read_timeout, self._read_timed_out)

    def _disarm_read_deadline(self) -> None:
        if self._read_deadline is not None:
            self._read_deadline.cancel()

    def _request_whole(self) -> bool:
        raise NotImplementedError

    def _read_timed_out(self) -> None:
        # A request that arrived whole is being answered; anything else is too slow.
        if not self._request_whole() and not self.transport.is_closing():
            self.transport.close()


class BoundedH11Protocol(_ReadDeadline, H11Protocol):
    """uvicorn's pure-Python h11 protocol with a read deadline."""

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._arm_read_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm_read_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_read_deadline()
        super().connection_lost(exc)

    def _request_whole(self) -> bool:
        return self.conn.their_state is h11.DONE


class BoundedHttpToolsProtocol(_ReadDeadline, HttpToolsProtocol):
    """uvicorn's httptools (C parser) protocol with a read deadline: the fast default."""

    _whole = False

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._whole = False
        self._arm_read_deadline()

    def on_message_complete(self) -> None:
        self._whole = True
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._whole = False
        self._arm_read_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_read_deadline()
        super().connection_lost(exc)

    def _request_whole(self) -> bool:
        return self._whole

    # A graceful stop (a reload retiring this worker, SIGTERM) closes idle connections. One
    # accepted a moment ago whose request has not arrived yet is not idle: its client is about to
    # send, and closing it would answer that request with a bare disconnect. It gets its answer
    # (with Connection: close) if the request comes within SHUTDOWN_GRACE seconds.
    _stopping = False

    def shutdown(self) -> None:
        if self.cycle is None and not self.transport.is_closing():
            self._stopping = True
            self.loop.call_later(SHUTDOWN_GRACE, self._close_if_nothing_came)
            return
        super().shutdown()

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if self._stopping and self.cycle is not None:
            self.cycle.keep_alive = False

    def _close_if_nothing_came(self) -> None:
        if self.cycle is None and not self.transport.is_closing():
            self.transport.close()


def _event_loop() -> str:
    """uvloop when installed (the ``server`` extra brings it, except on Windows), else asyncio."""
    try:
        import uvloop  # noqa: F401
    except ImportError:  # pragma: no cover (not on every platform)
        return "asyncio"
    return "uvloop"


def bounded_protocol(read_timeout: float, base: type[asyncio.Protocol] = BoundedHttpToolsProtocol) -> type[asyncio.Protocol]:
    """A protocol class with its own read deadline (httptools' C parser unless told otherwise)."""
    bounded: type[asyncio.Protocol] = type(base.__name__, (base,), {"read_timeout": read_timeout})
    return bounded


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port``, reusable at once after a restart, inheritable by workers."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _log(message: str) -> None:
    print(f"claimsengine: {message}", file=sys.stderr, flush=True)


@dataclass
class Serving:
    """What ``serve`` needs: how to load the tenant and how to build a worker's app."""

    load: Callable[[], Tenant]
    # Builds the app for one generation; runs in the serving process (after the fork).
    make_app: Callable[[Tenant, int], Starlette]
    # Adopt a newly loaded generation in the single serving process (no fork).
    adopt: Callable[[Starlette, Tenant, int], None]
    workers: int = 1
    watch: Sequence[Path] = ()
    read_timeout: float = DEFAULT_READ_TIMEOUT
    uvicorn_options: dict[str, Any] = field(default_factory=dict)


def _uvicorn_config(app: Starlette, serving: Serving) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        http=bounded_protocol(serving.read_timeout),
        loop=_event_loop(),
        log_level="info",
        # One line per request comes from the app itself (control.RequestLog): cheap, structured.
        access_log=False,
        timeout_graceful_shutdown=GRACEFUL_SECONDS,
        **serving.uvicorn_options,
    )


class _Reloader:
    """Loads the next generation, or logs why it cannot and keeps the current one."""

    def __init__(self, serving: Serving, tenant: Tenant) -> None:
        self.serving = serving
        self.tenant = tenant
        self.generation = 1
        self._stamps = self._stat()

    def _stat(self) -> list[tuple[int, int] | None]:
        stamps: list[tuple[int, int] | None] = []
        for path in self.serving.watch:
            try:
                st = path.stat()
                stamps.append((st.st_mtime_ns, st.st_size))
            except OSError:
                stamps.append(None)
        return stamps

    def changed(self) -> bool:
        stamps = self._stat()
        if stamps == self._stamps:
            return False
        self._stamps = stamps
        return True

    def restore(self, generation: int) -> None:
        """Go back to the generation that is still serving (its tenant is what the parent had)."""
        self.tenant, self.generation = self._previous
        assert self.generation == generation

    def reload(self) -> bool:
        try:
            tenant = self.serving.load()
        except Exception as exc:  # noqa: BLE001 (a bad file must never take the server down)
            _log(f"reload failed; generation {self.generation} keeps serving:\n{exc}")
            return False
        self._previous = (self.tenant, self.generation)
        self.tenant = tenant
        self.generation += 1
        _log(f"reloaded the tenant: generation {self.generation}")
        return True


def serve(sock: socket.socket, tenant: Tenant, serving: Serving) -> None:
    """Serve on ``sock`` until SIGINT or SIGTERM."""
    if serving.workers == 1:
        _serve_here(sock, tenant, serving)
    else:
        _Supervisor(sock, tenant, serving).run()


def _serve_here(sock: socket.socket, tenant: Tenant, serving: Serving) -> None:
    """One process: a reload swaps the generation object in place (the store stays open)."""
    reloader = _Reloader(serving, tenant)
    app = serving.make_app(tenant, 1)
    lock = threading.Lock()

    def reload() -> None:
        with lock:
            if reloader.reload():
                serving.adopt(app, reloader.tenant, reloader.generation)

    # The handler only starts a thread: a reload never runs inside a signal handler (a second
    # SIGHUP arriving mid-reload would otherwise re-enter it on the same thread).
    previous = signal.signal(signal.SIGHUP, lambda signum, frame: threading.Thread(target=reload, daemon=True).start())
    stop = threading.Event()
    watcher = None
    if serving.watch:

        def watch() -> None:
            while not stop.wait(POLL_SECONDS):
                if reloader.changed():
                    reload()

        watcher = threading.Thread(target=watch, name="claimsengine-watch", daemon=True)
        watcher.start()
    try:
        uvicorn.Server(_uvicorn_config(app, serving)).run(sockets=[sock])
    finally:
        stop.set()
        signal.signal(signal.SIGHUP, previous)
        if watcher is not None:
            watcher.join(timeout=2)


class _ReadyServer(uvicorn.Server):
    """A worker's server that tells the parent when it accepts connections."""

    def __init__(self, config: uvicorn.Config, ready_fd: int) -> None:
        super().__init__(config)
        self._ready_fd = ready_fd

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        with contextlib.suppress(OSError):
            os.write(self._ready_fd, b"1")
            os.close(self._ready_fd)


def _die_with_parent(parent: int) -> None:
    """Make this worker receive SIGTERM when the parent dies, however it dies."""
    libc_name = ctypes.util.find_library("c") if sys.platform.startswith("linux") else None
    if libc_name is not None:
        libc = ctypes.CDLL(libc_name, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    else:  # pragma: no cover (not Linux)

        def watchdog() -> None:
            while os.getppid() == parent:
                time.sleep(1)
            os.kill(os.getpid(), signal.SIGTERM)

        threading.Thread(target=watchdog, daemon=True).start()
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


class _Supervisor:
    """The parent of ``--workers N``: forks, replaces, reloads and stops its workers."""

    def __init__(self, sock: socket.socket, tenant: Tenant, serving: Serving) -> None:
        self.sock = sock
        self.serving = serving
        self.reloader = _Reloader(serving, tenant)
        self.children: dict[int, int] = {}  # pid -> generation
        self.pid = os.getpid()
        self._hup = False
        self._stop = False
        self._failures: list[float] = []

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            self._hup = True
        else:
            self._stop = True

    def run(self) -> None:
        handled = (signal.SIGHUP, signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in handled}
        try:
            self._spawn_generation()
            while not self._stop:
                self._reap()
                if self._hup or (self.serving.watch and self.reloader.changed()):
                    self._hup = False
                    if self.reloader.reload():
                        self._spawn_generation(retire=True)
                self._replace_missing()
                time.sleep(POLL_SECONDS)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._stop_all()

    # Workers ---------------------------------------------------------------------------

    def _spawn(self) -> tuple[int, int]:
        """Fork one worker of the current generation; (pid, read end of its readiness pipe)."""
        ready_r, ready_w = os.pipe()
        tenant, generation = self.reloader.tenant, self.reloader.generation
        pid = os.fork()
        if pid == 0:  # pragma: no cover (runs in the child; measured by the process tests)
            code = 1
            try:
                os.close(ready_r)
                _die_with_parent(self.pid)
                for sig in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM):
                    signal.signal(sig, signal.SIG_DFL)
                signal.signal(signal.SIGHUP, signal.SIG_IGN)  # workers never reload on their own
                app = self.serving.make_app(tenant, generation)
                _ReadyServer(_uvicorn_config(app, self.serving), ready_w).run(sockets=[self.sock])
                code = 0
            except BaseException as exc:  # noqa: BLE001 (report and leave; the parent replaces us)
                _log(f"worker {os.getpid()} failed: {type(exc).__name__}: {exc}")
            finally:
                os._exit(code)
        os.close(ready_w)
        self.children[pid] = generation
        return pid, ready_r

    def _spawn_generation(self, *, retire: bool = False) -> None:
        old = [pid for pid, gen in self.children.items() if gen != self.reloader.generation]
        started = [self._spawn() for _ in range(self.serving.workers)]
        if self._await_ready(started) == 0 and retire:
            # Not one new worker came up: keep the old generation serving.
            _log(f"generation {self.reloader.generation} did not start; generation {self.children[old[0]]} keeps serving")
            for pid, _fd in started:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.reloader.restore(self.children[old[0]])
            return
        if retire:
            for pid in old:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)

    @staticmethod
    def _await_ready(started: list[tuple[int, int]], timeout: float = 30) -> int:
        """How many of the ``started`` workers said they accept connections within ``timeout``."""
        deadline = time.monotonic() + timeout
        ready = 0
        for _pid, fd in started:
            try:
                while time.monotonic() < deadline:
                    with contextlib.suppress(InterruptedError):
                        readable, _, _ = select.select([fd], [], [], 0.1)
                        if readable:
                            ready += os.read(fd, 1) == b"1"
                            break
            finally:
                os.close(fd)
        return ready

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            generation = self.children.pop(pid, None)
            if generation == self.reloader.generation and not self._stop:
                _log(f"worker {pid} exited ({os.waitstatus_to_exitcode(status)}); starting a replacement")
                self._failures.append(time.monotonic())

    def _replace_missing(self) -> None:
        current = sum(1 for gen in self.children.values() if gen == self.reloader.generation)
        if current >= self.serving.workers or self._stop:
            return
        now = time.monotonic()
        self._failures = [t for t in self._failures if now - t < 10]
        if len(self._failures) > 2 * self.serving.workers:
            time.sleep(1)  # a crash loop: do not spin
        for _ in range(self.serving.workers - current):
            _, fd = self._spawn()
            os.close(fd)

    def _stop_all(self) -> None:
        for pid in list(self.children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + GRACEFUL_SECONDS + 5
        while self.children and time.monotonic() < deadline:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                time.sleep(0.05)
                continue
            self.children.pop(pid, None)
        for pid in list(self.children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        self.children.clear()

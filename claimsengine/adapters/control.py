"""What a test sees of the fake tenant, and what it can make it do.

* Reasons: every decision's rule ids go into a response header (``X-Claimsengine-Rules``,
  on by default), one structured log line per decision (logger ``claimsengine.decisions``:
  endpoint, client, outcome, status, rule ids; never a secret), and the last decisions with
  their traces and the configuration paths they consulted at ``GET /.claimsengine/decisions``.
* Capture: every request the server received (method, path, query, headers and form or JSON
  parameters, secrets masked) at ``GET /.claimsengine/requests`` and ``FakeTenant.requests()``.
* Overrides: ``FakeTenant.override(path, status=..., body=..., delay=...)`` makes the next
  matching request fail with that answer, or wait first (``POST /admin/overrides`` with the
  admin token does the same over HTTP).

Decisions and requests are kept in the server's store, so every worker's are seen; overrides
live in the process that was told (use one worker when testing with them).
"""

from __future__ import annotations

import contextvars
import json
import logging
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from claimsengine import Rejected
from claimsengine.adapters import wire

if TYPE_CHECKING:
    from claimsengine.model import Reason

RULES_HEADER = "X-Claimsengine-Rules"
RESERVED_PREFIX = "/.claimsengine"
DECISIONS_PATH = f"{RESERVED_PREFIX}/decisions"
REQUESTS_PATH = f"{RESERVED_PREFIX}/requests"
DEFAULT_LIMIT = 50
MAX_KEPT = 1_000
decision_log = logging.getLogger("claimsengine.decisions")
request_log = logging.getLogger("claimsengine.requests")
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
# json.dumps(..., separators=(",", ":")) builds a JSONEncoder per call; one, made once, writes the same text.
_compact = json.JSONEncoder(separators=(",", ":")).encode


# ---------------------------------------------------------------------------------------
# Reasons
# ---------------------------------------------------------------------------------------


def outcome(decision: Any) -> tuple[str, str | None]:
    """(kind, error code) of a decision: ``("issued", None)``, ``("rejected", "access_denied")``."""
    if isinstance(decision, Rejected):
        return "rejected", wire.error_body(decision)["error"]
    return str(decision.kind), None


def decision_record(endpoint: str, client_id: str | None, decision: Any, status: int, at: int) -> dict[str, Any]:
    """The record kept of one decision: what the log line says, plus the trace with its refs."""
    kind, error = outcome(decision)
    trace: Sequence[Reason] = decision.trace
    return {
        "at": at,
        "endpoint": endpoint,
        "client_id": client_id,
        "outcome": kind,
        "error": error,
        "status": status,
        "rules": [reason.rule.value for reason in trace],
        "trace": [{"rule": r.rule.value, "detail": r.detail, "ref": r.ref} for r in trace],
    }


def decision_line(endpoint: str, client_id: str | None, decision: Any, status: int, rules: Sequence[str]) -> dict[str, Any]:
    """What the log line of a decision says: ``decision_record`` without the time and the trace."""
    kind, error = outcome(decision)
    return {"endpoint": endpoint, "client_id": client_id, "outcome": kind, "error": error, "status": status, "rules": rules}


# ---------------------------------------------------------------------------------------
# One log line per request
# ---------------------------------------------------------------------------------------


class _Answering:
    """The request being answered in this task: its line (method, path, secrets in the query
    masked), and whether its decision wrote that line."""

    __slots__ = ("logged", "request")

    def __init__(self, request: str) -> None:
        self.request = request
        self.logged = False


_answering: contextvars.ContextVar[_Answering] = contextvars.ContextVar("claimsengine_answering")


def request_target(scope: Scope) -> str:
    """``METHOD /path?query`` of a request, with every secret in the query masked."""
    query = scope.get("query_string", b"")
    path = scope["path"]
    target = wire.redact_query(f"{path}?{query.decode('latin-1')}") if query else path
    return f"{scope['method']} {target}"


class Lines:
    """Where the one structured line per request goes.

    A request that reaches a decision gets its decision line (``decision_line`` plus ``request``, the
    method and path with secrets in the query masked); any other gets a request line
    (``request`` and ``status``) from :class:`RequestLog`. By default both go to the loggers
    ``claimsengine.decisions`` and ``claimsengine.requests`` (tests and embedding apps see
    ``LogRecord`` objects). ``claimsengine serve`` passes its ``stream``: each line is then one
    write to it, ``claimsengine: decision {...}`` or ``claimsengine: request {...}``, with no
    ``LogRecord`` built (a ``logging`` call costs 10-15x the write). ``enabled=False``
    (``--no-request-log``) writes nothing.
    """

    __slots__ = ("_lock", "enabled", "stream")

    def __init__(self, stream: TextIO | None = None, *, enabled: bool = True) -> None:
        self.stream = stream
        self.enabled = enabled
        self._lock = threading.Lock()

    def _write(self, logger: logging.Logger, prefix: str, line: str) -> None:
        if self.stream is None:
            logger.info(line)
            return
        with self._lock:
            self.stream.write(f"claimsengine: {prefix}{line}\n")
            self.stream.flush()

    def decision(self, line: dict[str, Any]) -> None:
        """Log one decision: ``decision_line``'s fields (no trace details, never a secret)."""
        if not self.enabled:
            return
        answering = _answering.get(None)
        if answering is not None:
            answering.logged = True
            line["request"] = answering.request
        self._write(decision_log, "decision ", _compact(line))

    def request(self, target: str, status: int) -> None:
        self._write(request_log, "request ", _compact({"request": target, "status": status}))


class RequestLog:
    """ASGI middleware: the request line of a request that reached no decision (discovery, JWKS,
    a body that could not be read, an override...). Decisions log their own line."""

    def __init__(self, app: ASGIApp, lines: Lines) -> None:
        self.app = app
        self.lines = lines

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.lines.enabled:
            await self.app(scope, receive, send)
            return
        answering = _Answering(request_target(scope))
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        reset = _answering.set(answering)
        try:
            await self.app(scope, receive, sending)
        finally:
            _answering.reset(reset)
            if not answering.logged:
                self.lines.request(answering.request, status)


# ---------------------------------------------------------------------------------------
# What is kept: decisions and requests
# ---------------------------------------------------------------------------------------


class Kept:
    """The last ``MAX_KEPT`` decisions and requests of a one-process server, rendered only when read.

    With a shared store (SQLite, Redis) every record is serialised when it happens, so that
    every worker's are seen. In one process with the memory store nobody else reads them: the
    values are kept as they are (decisions are immutable, the request's scope and parameters are
    not changed after the request) and turned into JSON when ``GET /.claimsengine/...`` or
    ``FakeTenant.decisions()`` asks, not on every request.
    """

    def __init__(self, limit: int = MAX_KEPT) -> None:
        self._kept: dict[str, deque[Callable[[], dict[str, Any]]]] = {
            "decision": deque(maxlen=limit),
            "request": deque(maxlen=limit),
        }

    def keep(self, kind: str, render: Callable[[], dict[str, Any]]) -> None:
        self._kept[kind].append(render)

    def records(self, kind: str) -> list[str]:
        """The records of ``kind``, oldest first, as the store would give them (JSON text)."""
        return [json.dumps(render()) for render in list(self._kept.get(kind, ()))]


async def decisions(request: Request) -> Response:
    """GET /.claimsengine/decisions?limit=N: the last N decisions, newest last."""
    return _last(request, "decision", "decisions")


async def requests(request: Request) -> Response:
    """GET /.claimsengine/requests?limit=N: the last N requests received, newest last, secrets masked."""
    return _last(request, "request", "requests")


def _last(request: Request, kind: str, name: str) -> Response:
    raw = request.query_params.get("limit", str(DEFAULT_LIMIT))
    if not (raw.isascii() and raw.isdigit()):
        body = {"error": "invalid_request", "error_description": "limit must be a whole number"}
        return JSONResponse(body, status_code=400, headers=_NO_STORE)
    limit = int(raw)
    kept = request.app.state.auth0.captured(kind)
    return JSONResponse({name: [json.loads(item) for item in kept[-limit:]] if limit else []}, headers=_NO_STORE)


# ---------------------------------------------------------------------------------------
# Capture
# ---------------------------------------------------------------------------------------


def request_record(request: Request, params: Mapping[str, Any] | None, at: int) -> dict[str, Any]:
    """A received request, secrets masked (parameters, headers and query alike)."""
    return {
        "at": at,
        "method": request.method,
        "path": request.url.path,
        "query": wire.redact_mapping(dict(request.query_params)),
        "headers": wire.redact_mapping(dict(request.headers)),
        "params": wire.redact_mapping(dict(params)) if params is not None else None,
    }


# ---------------------------------------------------------------------------------------
# Overrides
# ---------------------------------------------------------------------------------------


@dataclass
class Override:
    """The next ``times`` requests to ``path`` (and ``method``, if given) wait ``delay`` seconds,
    then get ``status`` and ``body`` instead of the real answer (or the real answer, if
    ``status`` is None)."""

    path: str
    status: int | None = None
    body: Any = None
    delay: float = 0.0
    method: str | None = None
    times: int = 1

    def matches(self, method: str, path: str) -> bool:
        return path == self.path and (self.method is None or self.method.upper() == method.upper())


class Overrides:
    """The pending overrides of one process, consumed first come, first served."""

    def __init__(self) -> None:
        self._pending: list[Override] = []
        self._lock = threading.Lock()

    def add(self, override: Override) -> Override:
        if override.times < 1:
            raise ValueError("times must be at least 1")
        if override.status is not None and not 100 <= override.status <= 599:
            raise ValueError("status must be an HTTP status (100-599)")
        if override.delay < 0:
            raise ValueError("delay must not be negative")
        with self._lock:
            self._pending.append(override)
        return override

    def take(self, method: str, path: str) -> Override | None:
        with self._lock:
            for override in self._pending:
                if override.matches(method, path):
                    override.times -= 1
                    if override.times == 0:
                        self._pending.remove(override)
                    return override
        return None

    def clear(self) -> None:
        with self._lock:
            self._pending.clear()

    def __len__(self) -> int:
        return len(self._pending)


class OverrideMiddleware:
    """Answers a request with a pending override before the app sees it."""

    def __init__(self, app: ASGIApp, overrides: Overrides) -> None:
        self.app = app
        self.overrides = overrides

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope["path"].startswith(RESERVED_PREFIX):
            override = self.overrides.take(scope["method"], scope["path"])
            if override is not None:
                if override.delay:
                    await anyio.sleep(override.delay)
                if override.status is not None:
                    response = JSONResponse(override.body, status_code=override.status, headers=_NO_STORE)
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)


def override_from_json(data: Any) -> Override:
    """An Override from ``POST /admin/overrides``'s JSON body; ValueError if it is not one."""
    if not isinstance(data, dict) or not isinstance(data.get("path"), str) or not data["path"].startswith("/"):
        raise ValueError("path is required and must start with /")
    unknown = set(data) - {"path", "status", "body", "delay", "method", "times"}
    if unknown:
        raise ValueError(f"unknown fields: {', '.join(sorted(unknown))}")
    status, delay, times, method = data.get("status"), data.get("delay", 0), data.get("times", 1), data.get("method")
    if status is not None and (not isinstance(status, int) or isinstance(status, bool)):
        raise ValueError("status must be an integer")
    if not isinstance(delay, int | float) or isinstance(delay, bool):
        raise ValueError("delay must be a number of seconds")
    if not isinstance(times, int) or isinstance(times, bool):
        raise ValueError("times must be an integer")
    if method is not None and not isinstance(method, str):
        raise ValueError("method must be a string")
    return Override(path=data["path"], status=status, body=data.get("body"), delay=float(delay), method=method, times=times)

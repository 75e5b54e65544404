"""Run a tenant's own JavaScript Actions (``post-login``, ``credentials-exchange``) in V8.

A Deploy CLI export carries each Action's code (``actions[].code``, a path to ``code.js``), its
secrets, its npm dependencies and, under ``triggers:``, the order the Actions are bound in.
:func:`read_export_actions` reads them; :func:`compile_actions` turns each into a
:class:`JsAction`, the plain ``action(event, api)`` callable the core already calls. The core
keeps enforcing R74 to R81 on what the code asked for.

The engine is V8 through ``mini-racer`` (the ``js`` extra; see specs/choices.md for why). Each
Action gets its own isolate, compiled once and reused for every request, with:

* no file system and no network: ``require`` resolves only the Action's declared
  dependencies, read from a ``node_modules`` folder at load time; Node built-ins that reach
  the outside (``fs``, ``http``, ...) and ``fetch`` throw;
* no code generation from strings (``eval``, ``new Function``);
* a time limit and a memory limit per execution; promises are settled inside the timed call;
* ``Date`` reading the decision's ``now`` and a ``Math.random`` seeded from the decision.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from types import ModuleType
from typing import Any

from pydantic import SecretStr

from claimsengine.actions import ActionApi, CredentialsExchangeEvent, PostLoginEvent

__all__ = [
    "INSTALL_HINT",
    "TRIGGERS",
    "ActionFailed",
    "ActionSpec",
    "ExportReader",
    "JsAction",
    "JsUnavailableError",
    "compile_actions",
    "read_export_actions",
]

INSTALL_HINT = "pip install 'claimsengine[js]'"
TRIGGERS = ("post-login", "credentials-exchange")
# The Deploy CLI writes this instead of a secret's value.
HIDDEN = "_VALUE_NOT_SHOWN_"
DEFAULT_TIME_LIMIT = 5.0  # seconds per execution
DEFAULT_MEMORY_LIMIT = 128 * 1024 * 1024  # bytes of V8 heap per Action
COMPILE_TIME_LIMIT = 60.0  # seconds to compile one module (a guard, not a limit users meet)
RUNTIME = Path(__file__).with_name("js_runtime.js")
# Node built-ins an Action might require. None is given to Actions; these are refused with a
# message saying why (the rest are reported as unresolvable).
REFUSED_BUILTINS = frozenset(
    {
        "fs", "fs/promises", "http", "https", "http2", "net", "tls", "dgram", "dns", "dns/promises", "child_process",
        "cluster", "worker_threads", "os", "process", "vm", "v8", "inspector", "module", "readline", "repl", "crypto",
        "url", "util", "path", "events", "stream", "buffer", "zlib", "querystring", "assert", "timers", "perf_hooks",
    }
)  # fmt: skip
_REQUIRE = re.compile(r"""\brequire\s*\(\s*(['"])([^'"\n]+)\1\s*\)""")
# V8's natives syntax (%Name(...)) is enabled so the sandbox can settle promises inside a
# timed call (js_runtime.js). Valid JavaScript never has '%' where an expression starts;
# source that looks like it does is refused.
_NATIVES = re.compile(
    r"(?:^|[^\w$)\]\s]|\b(?:return|typeof|void|delete|new|in|of|case|throw|await|yield|else|do))\s*%\s*[A-Za-z_$][\w$]*\s*\(", re.MULTILINE
)


_REGEX_AFTER = set("(,=:[!&|?{};~+-*%<>^")
_REGEX_KEYWORDS = frozenset({"return", "typeof", "void", "delete", "new", "in", "of", "case", "throw", "await", "yield", "else", "do"})


def _code_only(source: str, *, keep_strings: bool = False) -> str:
    """``source`` with comments, string and template text and regular expressions blanked out,
    so a check for natives syntax sees code only (a small lexer; ``${...}`` stays code).
    ``keep_strings`` blanks comments only (for finding ``require('...')`` calls)."""
    out = list(source)
    i, n = 0, len(source)
    depth: list[int] = []  # brace depth of each open ${ ... } inside a template

    def blank(start: int, end: int) -> None:
        for k in range(start, min(end, n)):
            if out[k] != "\n":
                out[k] = " "

    def template(start: int) -> int:
        """Blank template text from ``start`` (after a backtick or a closing brace); return
        where code resumes (after ``${``) or after the closing backtick."""
        k = start
        while k < n:
            if source[k] == "\\":
                k += 2
            elif source[k] == "`":
                blank(start, k)
                return k + 1
            elif source.startswith("${", k):
                blank(start, k)
                depth.append(0)
                return k + 2
            else:
                k += 1
        blank(start, n)
        return n

    def previous_significant(k: int) -> str:
        j = k - 1
        while j >= 0 and out[j] in " \t\r\n":
            j -= 1
        if j < 0:
            return ""
        if out[j].isalnum() or out[j] in "_$":
            end = j + 1
            while j >= 0 and (out[j].isalnum() or out[j] in "_$"):
                j -= 1
            return "".join(out[j + 1 : end])
        return out[j]

    while i < n:
        c = source[i]
        if source.startswith("//", i):
            end = source.find("\n", i)
            end = n if end < 0 else end
            blank(i, end)
            i = end
        elif source.startswith("/*", i):
            end = source.find("*/", i + 2)
            end = n if end < 0 else end + 2
            blank(i, end)
            i = end
        elif c in "'\"":
            k = i + 1
            while k < n and source[k] != c and source[k] != "\n":
                k += 2 if source[k] == "\\" else 1
            if not keep_strings:
                blank(i + 1, k)
            i = k + 1
        elif c == "`":
            i = template(i + 1)
        elif c == "{" and depth:
            depth[-1] += 1
            i += 1
        elif c == "}" and depth:
            if depth[-1] == 0:
                depth.pop()
                i = template(i + 1)
            else:
                depth[-1] -= 1
                i += 1
        elif c == "/":
            before = previous_significant(i)
            if before == "" or before in _REGEX_AFTER or before in _REGEX_KEYWORDS:
                k, in_class = i + 1, False
                while k < n and source[k] != "\n":
                    if source[k] == "\\":
                        k += 2
                        continue
                    if source[k] == "[":
                        in_class = True
                    elif source[k] == "]":
                        in_class = False
                    elif source[k] == "/" and not in_class:
                        break
                    k += 1
                blank(i + 1, k)
                i = k + 1
            else:
                i += 1
        else:
            i += 1
    return "".join(out)


class JsUnavailableError(RuntimeError):
    """The JavaScript engine (the ``js`` extra) is not installed."""


class ActionFailed(RuntimeError):
    """A JavaScript Action threw, timed out or ran out of memory. The message is the error's
    (secrets masked); for post-login the core sends it as the ``error_description``."""


@dataclass(frozen=True)
class ActionSpec:
    """One Action of an export, ready to compile: everything read from disk at load time."""

    name: str
    trigger: str
    file: str  # where the code came from, for messages
    code: str
    secrets: Mapping[str, SecretStr] = field(default_factory=dict)
    # Module path -> source, and per module the path each literal require() resolves to.
    modules: Mapping[str, str] = field(default_factory=dict)
    links: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"ActionSpec(name={self.name!r}, trigger={self.trigger!r}, file={self.file!r}, secrets={sorted(self.secrets)})"


# ---------------------------------------------------------------------------------------
# The engine
# ---------------------------------------------------------------------------------------

_engine_lock = threading.Lock()
_engine_module: ModuleType | None = None


def _engine() -> ModuleType:
    """``py_mini_racer``, initialised once with the sandbox's V8 flags."""
    global _engine_module
    with _engine_lock:
        if _engine_module is None:
            try:
                import py_mini_racer
            except ImportError as exc:
                raise JsUnavailableError(f"running JavaScript Actions needs the js extra: {INSTALL_HINT}") from exc
            flags = [*py_mini_racer.DEFAULT_V8_FLAGS, "--allow-natives-syntax", "--disallow-code-generation-from-strings"]
            try:
                py_mini_racer.init_mini_racer(flags=flags)
            except py_mini_racer.LibAlreadyInitializedError as exc:
                raise JsUnavailableError(
                    "V8 was already started in this process by someone else; claimsengine must start it to sandbox Actions"
                ) from exc
            _engine_module = py_mini_racer
        return _engine_module


# Isolates inherited from a parent process: kept, never closed (see JsAction.run).
_ABANDONED: list[Any] = []


def _new_isolate(engine: ModuleType) -> Any:
    """A ``MiniRacer`` with its own event-loop thread. Created on a helper thread: created
    inside a running asyncio loop (a server's), mini-racer would adopt that loop and then
    refuse timeouts on calls made from it."""
    made: list[Any] = []
    maker = threading.Thread(target=lambda: made.append(engine.MiniRacer()), name="claimsengine-js-isolate")
    maker.start()
    maker.join()
    if not made:
        raise ActionFailed("the JavaScript engine could not start an isolate")
    return made[0]


def engine_available() -> bool:
    """Whether the ``js`` extra is installed (without starting V8)."""
    try:
        import py_mini_racer  # noqa: F401
    except ImportError:
        return False
    return True


# ---------------------------------------------------------------------------------------
# Events: the Auth0-shaped ``event`` object, built from the core's event
# ---------------------------------------------------------------------------------------


def _organization(event: CredentialsExchangeEvent | PostLoginEvent) -> dict[str, Any] | None:
    org = event.organization
    return None if org is None else {"id": org.id, "name": org.name, "display_name": org.name, "metadata": {}}


def _tenant_id(domain: str) -> str:
    return domain.split(".", 1)[0]


def _iso(now: int) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(now, tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _request(event: CredentialsExchangeEvent | PostLoginEvent, method: str, **extra: Any) -> dict[str, Any]:
    """``event.request``: what the fake knows of the HTTP request (it runs on loopback)."""
    return {"hostname": event.hostname, "ip": "127.0.0.1", "method": method, "language": "en", "user_agent": "", "geoip": {}, **extra}


def event_object(event: CredentialsExchangeEvent | PostLoginEvent, secrets: Mapping[str, SecretStr]) -> dict[str, Any]:
    """What Auth0 documents for the trigger's ``event``, from the decision (choices.md lists
    the values a fake cannot know and what it puts there)."""
    out: dict[str, Any] = {
        "client": {"client_id": event.client.client_id, "name": event.client.name, "metadata": dict(event.client.metadata)},
        "tenant": {"id": _tenant_id(event.tenant)},
        "secrets": {name: value.get_secret_value() for name, value in secrets.items()},
    }
    org = _organization(event)
    if org is not None:
        out["organization"] = org
    if isinstance(event, CredentialsExchangeEvent):
        body = {"grant_type": "client_credentials", "client_id": event.client.client_id, "audience": event.resource_server}
        out["request"] = _request(event, "POST", body=body)
        out["resource_server"] = {"identifier": event.resource_server}
        out["transaction"] = {"requested_scopes": list(event.requested_scopes)}
        out["accessToken"] = {"scope": list(event.scopes), "customClaims": {}}
        if event.custom_domain is not None:
            out["custom_domain"] = {"domain": event.custom_domain}
        return out
    profile = dict(event.user_profile)
    identities = profile.get("identities")
    first = identities[0] if isinstance(identities, list) and identities and isinstance(identities[0], dict) else {}
    connection = str(first.get("connection", "Username-Password-Authentication"))
    logins = profile.get("logins_count")
    out["user"] = {"app_metadata": {}, "user_metadata": {}, "identities": [], **profile, "user_id": event.user_id}
    out["request"] = _request(event, "GET", query={"client_id": event.client.client_id, "scope": " ".join(event.requested_scopes)}, body={})
    out["transaction"] = {
        "requested_scopes": list(event.requested_scopes),
        "protocol": "oidc-basic-profile",
        "locale": "en",
        "ui_locales": [],
    }
    out["authorization"] = {"roles": list(event.roles)}
    out["authentication"] = {"methods": [{"name": "pwd", "timestamp": _iso(event.now)}]}
    out["connection"] = {
        "id": "con_" + hashlib.sha256(connection.encode()).hexdigest()[:16],
        "name": connection,
        "strategy": str(first.get("provider", "auth0")),
        "metadata": {},
    }
    out["stats"] = {"logins_count": logins if isinstance(logins, int) else 1}
    if event.resource_server is not None:
        out["resource_server"] = {"identifier": event.resource_server}
    return out


# ---------------------------------------------------------------------------------------
# A compiled Action
# ---------------------------------------------------------------------------------------


def _seed(name: str, now: int, event: Mapping[str, Any]) -> int:
    digest = hashlib.sha256(json.dumps([name, now, event], sort_keys=True, default=str).encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


class JsAction:
    """One Action, compiled into its own V8 isolate; called by the core as ``action(event, api)``.

    ``__name__`` is the Action's name, which is how the core's trace names it. Calls are
    serialised per Action (one isolate runs one thing at a time).
    """

    def __init__(self, spec: ActionSpec, *, time_limit: float = DEFAULT_TIME_LIMIT, memory_limit: int = DEFAULT_MEMORY_LIMIT) -> None:
        self.spec = spec
        self.__name__ = spec.name
        self.time_limit = time_limit
        self.memory_limit = memory_limit
        self._lock = threading.Lock()
        self._ctx: Any = self._compile()

    def __repr__(self) -> str:
        return f"JsAction({self.spec.name!r}, trigger={self.spec.trigger!r})"

    def _compile(self) -> Any:
        engine = _engine()
        self._pid = os.getpid()
        ctx = _new_isolate(engine)
        ctx.set_hard_memory_limit(self.memory_limit)
        # Defining modules runs no Action code; the time limit is for runs, not for compiling.
        ctx.eval(RUNTIME.read_text(encoding="utf-8"), timeout_sec=COMPILE_TIME_LIMIT)
        for path, source in self.spec.modules.items():
            if path.endswith(".json"):
                factory = f"function (exports, require, module) {{ module.exports = {json.dumps(json.loads(source))}; }}"
            else:
                factory = f"function (exports, require, module, __filename, __dirname) {{\n{source}\n}}"
            links = json.dumps(dict(self.spec.links.get(path, {})))
            try:
                # One module per eval, its code from line 2: errors point at the module's lines.
                ctx.eval(f"__claimsengine_define({json.dumps(path)}, {factory}, {links});", timeout_sec=COMPILE_TIME_LIMIT)
            except engine.JSEvalException as exc:
                where = self.spec.file if path == MAIN else path
                raise ActionFailed(f"Action {self.spec.name!r} ({where}) does not compile: {self._mask(_compile_error(exc))}") from None
        return ctx

    def _mask(self, text: str) -> str:
        for secret in self.spec.secrets.values():
            value = secret.get_secret_value()
            if value:
                text = text.replace(value, "[secret]")
        return text

    def run(self, event: CredentialsExchangeEvent | PostLoginEvent, cache: Mapping[str, str]) -> dict[str, Any]:
        """One execution: the operations the Action asked for, in call order (raises
        :class:`ActionFailed` if it threw, timed out or ran out of memory)."""
        engine = _engine()
        shaped = event_object(event, self.spec.secrets)
        payload = json.dumps(
            {
                "trigger": self.spec.trigger,
                "event": shaped,
                "now_ms": event.now * 1000,
                "seed": _seed(self.spec.name, event.now, {k: v for k, v in shaped.items() if k != "secrets"}),
                "cache": dict(cache),
            }
        )
        with self._lock:
            if self._pid != os.getpid():
                # A forked server worker: the parent's isolate lives in threads this process
                # does not have. Compile a fresh one here, once, and never free the old one
                # (freeing it would wait for those threads forever).
                _ABANDONED.append(self._ctx)
                self._ctx = self._compile()
            try:
                # One eval (the payload is a JSON, hence JavaScript, literal): one trip into V8.
                raw = self._ctx.eval(f"__claimsengine_run({json.dumps(MAIN)}, {payload});", timeout_sec=self.time_limit)
            except engine.JSTimeoutException:
                self._ctx = self._compile()  # a terminated isolate may be left half-way
                raise ActionFailed(f"Action {self.spec.name!r} did not finish within {self.time_limit:g} s") from None
            except engine.JSOOMException:
                self._ctx = self._compile()
                raise ActionFailed(
                    f"Action {self.spec.name!r} exceeded its memory limit of {self.memory_limit // (1024 * 1024)} MB"
                ) from None
        result: dict[str, Any] = json.loads(raw)
        error = result.get("error")
        if error is not None:
            raise ActionFailed(self._mask(str(error.get("message", ""))) or f"Action {self.spec.name!r} failed")
        return result

    def __call__(self, event: CredentialsExchangeEvent | PostLoginEvent, api: ActionApi) -> None:
        result = self.run(event, api.cache)
        for op, *args in result["ops"]:
            _apply(api, op, args)


MAIN = "/action/code.js"


def _compile_error(exc: BaseException) -> str:
    """``SyntaxError: ... (line N)`` from V8's ``<anonymous>:N+1: SyntaxError: ...``."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    match = re.match(r"<anonymous>:(\d+): (.*)", text)
    return f"{match.group(2)} (line {int(match.group(1)) - 1})" if match else text


def _apply(api: ActionApi, op: str, args: list[Any]) -> None:
    """Replay one recorded JavaScript call on the core's recording ``api``."""
    text = [str(a) for a in args]
    if op == "accessToken.setCustomClaim":
        api.access_token.set_custom_claim(text[0], args[1] if len(args) > 1 else None)
    elif op == "idToken.setCustomClaim":
        api.id_token.set_custom_claim(text[0], args[1] if len(args) > 1 else None)
    elif op == "accessToken.addScope":
        api.access_token.add_scope(text[0])
    elif op == "accessToken.removeScope":
        api.access_token.remove_scope(text[0])
    elif op == "access.deny":
        api.access.deny(*text[:2])
    elif op == "transaction.addTargetScope":
        api.transaction.add_target_scope(text[0])
    elif op == "transaction.removeTargetScope":
        api.transaction.remove_target_scope(text[0])
    elif op == "transaction.setTargetScopes":
        api.transaction.set_target_scopes([str(s) for s in args[0]] if args and isinstance(args[0], list) else [])
    elif op == "transaction.clearTargetScopes":
        api.transaction.clear_target_scopes()
    elif op == "cache.set":
        api.cache[text[0]] = text[1]
    elif op == "cache.delete":
        api.cache.pop(text[0], None)


# ---------------------------------------------------------------------------------------
# Reading an export
# ---------------------------------------------------------------------------------------

Report = Callable[[str, str, str], None]  # (file, path, message)


@dataclass(frozen=True)
class _Declared:
    """An ``actions[]`` entry of the export, before its code is read."""

    file: str
    path: str
    entry: Mapping[str, Any]


def _declared_actions(source: Path, data: Mapping[str, Any] | None, read: Callable[[Path, str], Any], problem: Report) -> list[_Declared]:
    if data is not None:  # a YAML export
        found = data.get("actions")
        if found is None:
            return []
        if not isinstance(found, list):
            problem(source.name, "actions", "actions must be a list")
            return []
        out = []
        for i, entry in enumerate(found):
            if isinstance(entry, Mapping):
                out.append(_Declared(source.name, f"actions[{i}]", entry))
            else:
                problem(source.name, f"actions[{i}]", "each entry of actions must be a mapping")
        return out
    out = []
    for path in sorted((source / "actions").glob("*.json")):
        display = path.relative_to(source).as_posix()
        value = read(path, display)
        if isinstance(value, Mapping):
            out.append(_Declared(display, "", value))
        elif value is not None:
            problem(display, "", "expected a JSON object")
    return out


def _bindings(source: Path, data: Mapping[str, Any] | None, read: Callable[[Path, str], Any]) -> tuple[str, Any]:
    if data is not None:
        return source.name, data.get("triggers")
    file = source / "triggers" / "triggers.json"
    if not file.is_file():
        return "triggers/triggers.json", None
    return "triggers/triggers.json", read(file, "triggers/triggers.json")


def _code_candidates(base: Path, name: str, code: str) -> list[Path]:
    """Where the Deploy CLI would find ``code``: relative to the action's folder, to the
    export, or (as the CLI falls back to) the working directory it ran in; since that is
    unknown here, every tail of the path is tried against the export too."""
    pure = PurePosixPath(code.replace("\\", "/"))
    if pure.is_absolute():
        return [Path(pure)]
    parts = [p for p in pure.parts if p not in (".", "")]
    candidates = [base / "actions" / name / Path(*parts), base / "actions" / Path(*parts)]
    candidates += [base / Path(*parts[i:]) for i in range(len(parts))]
    candidates.append(base / "actions" / re.sub(r"[^\w .-]", "_", name) / "code.js")
    return candidates


@dataclass(frozen=True)
class ExportReader:
    """What reading an export's Actions needs from the loader: its readers (with keyword
    replacement), where problems and warnings go, and the user's inputs."""

    read: Callable[[Path, str], Any]  # parse a JSON or YAML file
    read_text: Callable[[Path, str], str | None]  # a code file's text
    problem: Report
    warn: Report
    keywords: Mapping[str, Any]
    secrets_overlay: Mapping[str, Any]
    node_modules: Path | None


def read_export_actions(source: Path, data: Mapping[str, Any] | None, reader: ExportReader) -> list[ActionSpec]:
    """The deployed Actions bound to ``post-login`` and ``credentials-exchange``, in bound
    order, with code, secrets and resolved dependencies. ``data`` is the parsed YAML export,
    or ``None`` for a directory export at ``source``. Problems go to ``reader.problem``."""
    base = source.parent if data is not None else source
    if reader.node_modules is not None:
        reader = replace(reader, node_modules=reader.node_modules.resolve())
    problem = reader.problem
    declared = {str(d.entry.get("name")): d for d in _declared_actions(source, data, reader.read, problem) if d.entry.get("name")}
    bind_file, bindings = _bindings(source, data, reader.read)
    if bindings is None:
        return []
    if not isinstance(bindings, Mapping):
        problem(bind_file, "triggers", "triggers must be a mapping of trigger id to bound Actions")
        return []
    specs: list[ActionSpec] = []
    for trigger in TRIGGERS:
        bound = bindings.get(trigger) or []
        prefix = "triggers." if data is not None else ""
        if not isinstance(bound, list):
            problem(bind_file, f"{prefix}{trigger}", "must be a list")
            continue
        for i, binding in enumerate(bound):
            where = f"{prefix}{trigger}[{i}]"
            name = binding.get("action_name") if isinstance(binding, Mapping) else None
            if not isinstance(name, str) or name not in declared:
                problem(bind_file, where, f"bound Action {name!r} is not among the export's actions")
                continue
            spec = _spec(declared[name], trigger, base, reader)
            if spec is not None:
                specs.append(spec)
    return specs


def _spec(declared: _Declared, trigger: str, base: Path, reader: ExportReader) -> ActionSpec | None:
    problem, warn, node_modules = reader.problem, reader.warn, reader.node_modules
    entry, file, path = declared.entry, declared.file, declared.path
    name = str(entry["name"])

    def at(key: str) -> str:
        return f"{path}.{key}" if path else key

    if entry.get("deployed") is False:
        warn(file, at("deployed"), f"Action {name!r} is bound to {trigger} but not deployed; it does not run")
        return None
    code_ref = entry.get("code")
    if not isinstance(code_ref, str) or not code_ref:
        problem(file, at("code"), f"Action {name!r} has no code path")
        return None
    code_file = next((c for c in _code_candidates(base, name, code_ref) if c.is_file()), None)
    if code_file is None:
        problem(file, at("code"), f"Action {name!r}: code file {code_ref!r} not found next to the export")
        return None
    code = reader.read_text(code_file, code_ref)
    if code is None:
        return None
    secrets = _secrets(entry, name, file, at("secrets"), problem, warn, reader.keywords, reader.secrets_overlay)
    modules: dict[str, str] = {MAIN: code}
    links: dict[str, dict[str, str]] = {}
    packages = _dependencies(entry, name, file, at("dependencies"), problem, warn, node_modules)
    if packages is None:
        return None
    if not _resolve_requires(name, file, at("code"), modules, links, packages, node_modules, problem):
        return None
    for module_path, source in modules.items():
        if _NATIVES.search(_code_only(source)):
            problem(file, at("code"), f"Action {name!r}: {module_path} uses V8 natives syntax (%Name(...)), which the sandbox refuses")
            return None
    return ActionSpec(name=name, trigger=trigger, file=code_ref, code=code, secrets=secrets, modules=modules, links=links)


def _secrets(
    entry: Mapping[str, Any],
    name: str,
    file: str,
    path: str,
    problem: Report,
    warn: Report,
    keywords: Mapping[str, Any],
    overlay: Mapping[str, Any],
) -> dict[str, SecretStr]:
    """Secret values: the export's (after keyword replacement), else the secrets overlay's
    (``{action name: {SECRET: value}}``), else a keyword (or environment variable, when the
    environment is passed) of the secret's name. Values are never printed."""
    given = overlay.get(name)
    given = given if isinstance(given, Mapping) else {}
    out: dict[str, SecretStr] = {}
    listed = entry.get("secrets") or []
    if not isinstance(listed, list):
        problem(file, path, "secrets must be a list of {name, value}")
        return out
    for i, item in enumerate(listed):
        key = item.get("name") if isinstance(item, Mapping) else None
        if not isinstance(key, str) or not key:
            problem(file, f"{path}[{i}]", "each secret needs a name")
            continue
        value = item.get("value")
        if key in given:
            value = given[key]
        elif (value is None or value == HIDDEN) and key in keywords:
            value = keywords[key]
        if value is None or value == HIDDEN:
            warn(
                file, f"{path}[{i}]", f"Action {name!r}: secret {key} has no value (give it in the Action secrets file or as keyword {key})"
            )
            continue
        out[key] = SecretStr(str(value))
    return out


@dataclass(frozen=True)
class _Package:
    name: str
    root: Path


def _dependencies(
    entry: Mapping[str, Any], name: str, file: str, path: str, problem: Report, warn: Report, node_modules: Path | None
) -> dict[str, _Package] | None:
    deps = entry.get("dependencies") or []
    if not isinstance(deps, list):
        problem(file, path, "dependencies must be a list of {name, version}")
        return None
    found: dict[str, _Package] = {}
    ok = True
    for i, dep in enumerate(deps):
        package = dep.get("name") if isinstance(dep, Mapping) else None
        version = dep.get("version") if isinstance(dep, Mapping) else None
        if not isinstance(package, str) or not package:
            problem(file, f"{path}[{i}]", "each dependency needs a name")
            ok = False
            continue
        wanted = f"{package}@{version}" if version else package
        if node_modules is None:
            problem(
                file, f"{path}[{i}]", f"Action {name!r} depends on {wanted}: pass the folder of installed Node modules (--node-modules)"
            )
            ok = False
            continue
        root = node_modules / package
        manifest = _manifest(root)
        if manifest is None:
            problem(file, f"{path}[{i}]", f"Action {name!r} depends on {wanted}, which is not installed in {node_modules.name}/")
            ok = False
            continue
        installed = manifest.get("version")
        if version and installed != str(version):
            warn(file, f"{path}[{i}]", f"Action {name!r} declares {wanted}; {installed} is installed and used")
        found[package] = _Package(package, root)
    return found if ok else None


def _manifest(root: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((root / "package.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _entry_point(manifest: Mapping[str, Any]) -> str:
    exports = manifest.get("exports")
    if isinstance(exports, Mapping):
        exports = exports.get(".", exports)
    while isinstance(exports, Mapping):
        exports = exports.get("require") or exports.get("node") or exports.get("default")
    if isinstance(exports, str):
        return exports
    main = manifest.get("main")
    return main if isinstance(main, str) and main else "index.js"


def _as_file(path: Path) -> Path | None:
    """Node's file and directory resolution for a CommonJS require."""
    for candidate in (path, path.with_name(path.name + ".js"), path.with_name(path.name + ".json")):
        if candidate.is_file():
            return candidate
    if path.is_dir():
        manifest = _manifest(path)
        if manifest is not None:
            main = _as_file(path / _entry_point(manifest))
            if main is not None:
                return main
        for index in ("index.js", "index.json"):
            if (path / index).is_file():
                return path / index
    return None


def _package_of(spec: str) -> tuple[str, str]:
    parts = spec.split("/")
    count = 2 if spec.startswith("@") else 1
    return "/".join(parts[:count]), "/".join(parts[count:])


def _resolve_requires(
    name: str,
    file: str,
    path: str,
    modules: dict[str, str],
    links: dict[str, dict[str, str]],
    packages: Mapping[str, _Package],
    node_modules: Path | None,
    problem: Report,
) -> bool:
    """Follow every literal require() from the Action's code through its dependencies."""
    virtual: dict[Path, str] = {}
    real: dict[str, Path] = {}

    def key(target: Path) -> str:
        if target not in virtual:
            inside = node_modules is not None and node_modules in target.parents
            relative = (
                target.relative_to(node_modules).as_posix()
                if inside and node_modules is not None
                else f"@outside/{len(virtual)}/{target.name}"
            )
            virtual[target] = f"/node_modules/{relative}"
            real[virtual[target]] = target
        return virtual[target]

    pending = [MAIN]
    ok = True
    while pending:
        current = pending.pop()
        links[current] = {}
        code = _code_only(modules[current])  # a require( inside a string or comment is no require
        for match in _REQUIRE.finditer(_code_only(modules[current], keep_strings=True)):
            if code[match.start()] != "r":
                continue
            spec = match.group(2)
            bare = spec.removeprefix("node:")
            if bare in REFUSED_BUILTINS or spec.startswith("node:"):
                links[current][spec] = "\u0000refused"
                continue
            target: Path | None = None
            if spec.startswith(("./", "../", "/")):
                if current == MAIN:
                    problem(file, path, f"Action {name!r} requires {spec!r}: an Action is one file")
                    ok = False
                    continue
                target = _as_file((real[current].parent / spec).resolve())
            else:
                package, rest = _package_of(spec)
                if current == MAIN and package not in packages:
                    problem(file, path, f"Action {name!r} requires {package!r}, which is not among its dependencies")
                    ok = False
                    continue
                target = _find_package(real.get(current), package, rest, packages, node_modules)
            if target is None:
                if current == MAIN:
                    problem(file, path, f"Action {name!r}: require({spec!r}) cannot be resolved in the Node modules folder")
                    ok = False
                continue  # inside a package: an optional require; it throws if reached
            module_key = key(target)
            links[current][spec] = module_key
            if module_key not in modules:
                try:
                    modules[module_key] = target.read_text(encoding="utf-8")
                except (OSError, UnicodeDecodeError) as exc:
                    problem(file, path, f"Action {name!r}: cannot read {module_key}: {exc}")
                    return False
                pending.append(module_key)
    return ok


def _find_package(
    importer: Path | None, package: str, rest: str, packages: Mapping[str, _Package], node_modules: Path | None
) -> Path | None:
    """A package as Node finds it from ``importer``: the nearest ``node_modules`` above it, then
    the top-level folder."""
    if node_modules is None:
        return None
    roots: list[Path] = []
    if importer is not None:
        for parent in importer.parents:
            if parent == node_modules.parent or node_modules not in (parent, *parent.parents):
                break
            if parent.name != "node_modules":
                roots.append(parent / "node_modules" / package)
    roots.append(packages[package].root if package in packages else node_modules / package)
    for root in roots:
        if root.is_dir():
            return _as_file(root / rest) if rest else _as_file(root)
    return None


def compile_actions(
    specs: Sequence[ActionSpec], *, time_limit: float = DEFAULT_TIME_LIMIT, memory_limit: int = DEFAULT_MEMORY_LIMIT
) -> tuple[tuple[JsAction, ...], tuple[JsAction, ...]]:
    """Compile each Action: (credentials-exchange Actions, post-login Actions), in bound order.
    Raises :class:`JsUnavailableError` without the ``js`` extra, :class:`ActionFailed` for code
    that does not compile."""
    compiled = [JsAction(spec, time_limit=time_limit, memory_limit=memory_limit) for spec in specs]
    return (
        tuple(a for a in compiled if a.spec.trigger == "credentials-exchange"),
        tuple(a for a in compiled if a.spec.trigger == "post-login"),
    )

"""Read a tenant configuration from disk into :class:`claimsengine.Tenant`.

Three inputs are understood:

* an Auth0 Deploy CLI YAML export (``tenant.yaml``);
* a Deploy CLI directory export (``tenant.json``, ``clients/*.json``, ...);
* claimsengine's own format: a JSON or YAML mapping of the ``Tenant`` model's fields.

Keywords (``##KEY##`` and ``@@KEY@@``, R92) are replaced in the raw text before parsing,
as the Deploy CLI does. Every problem found is collected and raised at once as a
:class:`ConfigError`, with the file, the path inside it and, for YAML, the line.
"""

from __future__ import annotations

import base64
import dataclasses
import difflib
import hashlib
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import SecretStr, ValidationError

from claimsengine.model import AuthMethod, CrossReferenceError, Tenant, auth_method_of

__all__ = ["ConfigError", "Credentials", "Loaded", "Problem", "SourceMap", "load_tenant"]


@dataclass(frozen=True)
class Problem:
    """One problem in a configuration: where it is and what is wrong."""

    file: str
    path: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.path}" if self.path else self.file
        if self.line is not None:
            where += f" (line {self.line})"
        return f"{where}: {self.message}"


class ConfigError(Exception):
    """A configuration that cannot be loaded; ``problems`` lists every reason."""

    def __init__(self, problems: tuple[Problem, ...]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass(frozen=True)
class Credentials:
    """How to authenticate as one client. ``source`` says where the values came from."""

    name: str
    client_id: str
    client_secret: SecretStr | None
    source: Literal["export", "overlay", "derived"]


@dataclass(frozen=True)
class SourceMap:
    """Where each part of a loaded tenant came from: model path -> file, path in it and line."""

    origins: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    renames: Mapping[str, str] = field(default_factory=dict)
    lines: Mapping[str, Mapping[str, int]] = field(default_factory=dict)

    def locate(self, model_path: str) -> Problem:
        """The file, source path and line of a model path such as ``client_grants[3].scope``
        (as a message-less :class:`Problem`); the model path itself when nothing is known."""
        if not self.origins:
            return Problem("", model_path, "")
        file, path = _to_source(model_path, dict(self.origins), self.renames)
        lines = self.lines.get(file, {})
        probe = path
        while probe not in lines and probe:
            probe = _parent(probe)
        return Problem(file, path, "", lines.get(probe))


@dataclass(frozen=True)
class Loaded:
    """A loaded tenant, with what the loader had to say about it."""

    tenant: Tenant
    warnings: tuple[Problem, ...] = ()
    notes: tuple[str, ...] = ()
    credentials: tuple[Credentials, ...] = ()
    derived_api_secrets: tuple[str, ...] = ()
    source: SourceMap = field(default_factory=SourceMap)


# ---------------------------------------------------------------------------------------
# Reading files: keywords, parsing, line numbers
# ---------------------------------------------------------------------------------------

KEYWORD = re.compile(r"(##|@@)([A-Za-z0-9_]+)\1")


@dataclass
class _Run:
    """State of one load: the keyword values, and the problems found so far."""

    keywords: dict[str, Any]
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # file name -> source path -> 1-based line (composed on first use)
    lines: Lines = field(default_factory=lambda: Lines())
    overlay_file: str = ""
    # (file, line) -> the keywords substituted on that line, as written (``@@CALLBACKS@@``)
    substituted: dict[tuple[str, int], list[str]] = field(default_factory=dict)

    def line(self, file: str, path: str) -> int | None:
        """The line of ``path`` in ``file``, or of its closest enclosing node."""
        lines = self.lines.get(file, {})
        while True:
            if path in lines:
                return lines[path]
            if not path:
                return None
            path = _parent(path)

    def problem(self, file: str, path: str, message: str, *, unless_reported: bool = False) -> None:
        if unless_reported and path and any(p.file == file and _related(p.path, path) for p in self.problems if p.path):
            return  # the same spot was already reported (e.g. an unresolved client name)
        line = self.line(file, path)
        if line is not None:
            message += "".join(self._keyword_hint(k) for k in self.substituted.get((file, line), ()))
        self.problems.append(Problem(file, path, message, line))

    def _keyword_hint(self, written: str) -> str:
        """Which keyword put the value there, and how to give it another type."""
        marker, key = written[:2], written[2:-2]
        value = self.keywords.get(key)
        hint = f" (the value comes from keyword {written}, given as {type(value).__name__} {_shown(key, value)}"
        if marker == "@@" and isinstance(value, str):
            hint += (
                f"; @@{key}@@ inserts its value as JSON, so give JSON for an array or object:"
                f" --keyword '{key}=[\"...\"]' or a --keyword-file mapping"
            )
        elif marker == "##":
            hint += f"; ##{key}## inserts text; use @@{key}@@ in the export to insert a JSON value"
        return hint + ")"

    def warn(self, file: str, path: str, message: str) -> None:
        self.warnings.append(Problem(file, path, message, self.line(file, path)))


def _organization_usage(item: dict[str, Any], run: _Run, file: str, path: str) -> None:
    """Accept the docs' ``required`` spelling of ``organization_usage`` as ``require``, with a
    warning (open question 7 in specs/choices.md): the API enum and SDKs spell it ``require``."""
    if item.get("organization_usage") == "required":
        item["organization_usage"] = "require"
        run.warn(file, _join(path, "organization_usage"), "'required' read as 'require' (the API's spelling)")


def _parent(path: str) -> str:
    """``a.b[2]`` -> ``a.b`` -> ``a`` -> ``''``."""
    cut = max(path.rfind("."), path.rfind("["))
    return path[:cut] if cut > 0 else ""


def _related(a: str, b: str) -> bool:
    """Whether one path is the other or lies inside it (``x[1]`` and ``x[1].y``, not ``x[10]``)."""
    short, long = sorted((a, b), key=len)
    return long == short or long.startswith((f"{short}.", f"{short}["))


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _shown(key: str, value: Any) -> str:
    """A keyword's value for a message; secrets-looking keywords are not shown."""
    if any(hint in key.lower() for hint in SECRET_HINTS):
        return "(value hidden)"
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _replace_keywords(text: str, file: str, run: _Run) -> str | None:
    """Substitute keywords in raw text; ``None`` (and problems) if any is unresolved."""
    missing = False

    def substitute(match: re.Match[str]) -> str:
        nonlocal missing
        marker, key = match.group(1), match.group(2)
        if key not in run.keywords:
            missing = True
            line = text.count("\n", 0, match.start()) + 1
            run.problems.append(Problem(file, "", f"keyword {match.group(0)} has no value (pass it as a keyword)", line))
            return match.group(0)
        value = run.keywords[key]
        line = text.count("\n", 0, match.start()) + 1
        run.substituted.setdefault((file, line), []).append(match.group(0))
        if marker == "@@" or not isinstance(value, str):
            return json.dumps(value)
        return value

    result = KEYWORD.sub(substitute, text)
    return None if missing else result


# libyaml's C parser when PyYAML was built with it, else the pure-Python one: the same
# constructor (SafeConstructor) either way, so the same data; the C parser is ~10x faster.
LIBYAML: bool = bool(getattr(yaml, "__with_libyaml__", False))


def _yaml_loader() -> Any:
    return yaml.CSafeLoader if LIBYAML else yaml.SafeLoader


def _yaml_lines(node: yaml.Node, path: str, out: dict[str, int]) -> None:
    """Record the 1-based line of every mapping key and sequence item under ``node``."""
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            child = _join(path, str(key_node.value))
            out.setdefault(child, key_node.start_mark.line + 1)
            _yaml_lines(value_node, child, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            child = _join(path, i)
            out.setdefault(child, item.start_mark.line + 1)
            _yaml_lines(item, child, out)


def line_table(text: str) -> dict[str, int]:
    """Source path -> 1-based line for a YAML or JSON text (JSON is, nearly always, YAML too);
    empty when the text does not compose as YAML: line numbers are a nicety."""
    try:
        node = yaml.compose(text, Loader=_yaml_loader())
    except yaml.YAMLError:
        return {}
    lines: dict[str, int] = {}
    if node is not None:
        _yaml_lines(node, "", lines)
    return lines


class Lines(Mapping[str, Mapping[str, int]]):
    """File -> its line table, each computed on first use from the text that was parsed.

    Parsing does not track lines (the fast parsers cannot); a file's lines are composed only
    when a problem, a warning or ``SourceMap.locate`` asks for one, so a clean load of a
    large tenant never pays for them. Each text is dropped once its table is built."""

    def __init__(self) -> None:
        self._texts: dict[str, str] = {}
        self._tables: dict[str, Mapping[str, int]] = {}

    def add(self, file: str, text: str) -> None:
        self._texts[file] = text
        self._tables.pop(file, None)

    def __getitem__(self, file: str) -> Mapping[str, int]:
        if file not in self._tables:
            self._tables[file] = line_table(self._texts.pop(file))  # KeyError: a file never read
        return self._tables[file]

    def __iter__(self) -> Iterator[str]:
        return iter([*self._tables, *self._texts])

    def __len__(self) -> int:
        return len(self._tables) + len(self._texts)


def _parse_yaml(text: str) -> Any:
    """Parse YAML with the fast loader; on an error, parse again with the pure-Python loader,
    whose messages (and data, should the two parsers ever disagree) are the reference."""
    if LIBYAML:
        try:
            return yaml.load(text, Loader=yaml.CSafeLoader)
        except yaml.YAMLError:
            pass
    return yaml.load(text, Loader=yaml.SafeLoader)


def _read(path: Path, display: str, run: _Run, *, substitute: bool = True) -> Any | None:
    """Read, substitute keywords (unless told not to) and parse one file; ``None`` on failure.
    JSON goes through the JSON parser, YAML through libyaml when present; line numbers are
    composed later, only when needed (:class:`Lines`)."""
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        run.problems.append(Problem(display, "", f"cannot read: {exc}"))
        return None
    text = _replace_keywords(raw, display, run) if substitute else raw
    if text is None:
        return None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            run.problems.append(Problem(display, "", f"invalid JSON: {exc.msg}", exc.lineno))
            return None
    else:
        try:
            data = _parse_yaml(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark is not None else None
            reason = getattr(exc, "problem", None) or str(exc)
            run.problems.append(Problem(display, "", f"invalid YAML: {reason}", line))
            return None
    run.lines.add(display, text)
    return data


# ---------------------------------------------------------------------------------------
# Stable derived values (for local testing only)
# ---------------------------------------------------------------------------------------


def _digest(*parts: str) -> bytes:
    return hashlib.sha256("\x00".join(parts).encode()).digest()


def derived_client_id(domain: str, name: str, occurrence: int = 0) -> str:
    """A stable 32-character client id for a client that an export names but does not identify.

    ``occurrence`` counts earlier clients of the same name (Auth0 allows duplicate names, issue 8,
    item 10): the first keeps the plain derivation, later ones get their own id."""
    parts = ("client_id", domain, name) if occurrence == 0 else ("client_id", domain, name, str(occurrence))
    return base64.b32encode(_digest(*parts)).decode().lower()[:32]


def derived_secret(domain: str, *parts: str) -> SecretStr:
    """A stable secret for LOCAL TESTING ONLY: anyone who knows the inputs can compute it."""
    raw = _digest("claimsengine-local-test-secret", domain, *parts)
    return SecretStr(base64.urlsafe_b64encode(raw).decode().rstrip("="))


def derived_organization_id(domain: str, name: str) -> str:
    """A stable ``org_`` id for an organization exported without one."""
    return "org_" + base64.b32encode(_digest("organization", domain, name)).decode().lower()[:16]


# ---------------------------------------------------------------------------------------
# Credentials
# ---------------------------------------------------------------------------------------


def _needs_secret(client: Mapping[str, Any]) -> bool:
    """Whether the client authenticates with a secret: the core decides its method."""
    registered = client.get("token_endpoint_auth_method")
    if registered is not None and registered not in AuthMethod.__members__.values():
        return False  # the model will refuse the value; no secret is made up for it
    app_type = client.get("app_type")
    method = auth_method_of(
        registered, has_public_keys=bool(client.get("public_keys")), app_type=app_type if isinstance(app_type, str) else None
    )
    return method in (AuthMethod.CLIENT_SECRET_POST, AuthMethod.CLIENT_SECRET_BASIC)


def _fill_credentials(
    clients: list[dict[str, Any]],
    overlay: Mapping[str, Any],
    domain: str,
    run: _Run,
) -> list[Credentials]:
    """Give each client (a model-shaped dict) an id and, if it needs one, a secret.

    Precedence: the entry itself, then the overlay (by client name), then a derived value.
    """
    found: list[Credentials] = []
    occurrences: dict[str, int] = {}
    for client in clients:
        name = str(client.get("name", ""))
        occurrence = occurrences.get(name, 0)
        occurrences[name] = occurrence + 1
        # The overlay names clients; with duplicate names it applies to the first, as by-name
        # references do (issue 8, item 10).
        extra = overlay.get(name) if occurrence == 0 else None
        extra = extra if isinstance(extra, Mapping) else {}
        source: Literal["export", "overlay", "derived"] = "export"
        if not client.get("client_id"):
            if extra.get("client_id"):
                client["client_id"] = str(extra["client_id"])
                source = "overlay"
            else:
                client["client_id"] = derived_client_id(domain, name, occurrence)
                source = "derived"
                run.notes.append(f"client {name!r}: no client_id in the export; derived stable id {client['client_id']}")
        if not client.get("public_keys") and isinstance(extra.get("public_keys"), list):
            client["public_keys"] = extra["public_keys"]
        secrets = client.get("client_secrets")
        if not secrets and _needs_secret(client):
            if extra.get("client_secret"):
                client["client_secrets"] = [str(extra["client_secret"])]
                source = "overlay" if source != "derived" else source
            else:
                parts = ("client", name) if occurrence == 0 else ("client", name, str(occurrence))
                client["client_secrets"] = [derived_secret(domain, *parts).get_secret_value()]
                source = "derived"
                run.notes.append(f"client {name!r}: no client_secret in the export; derived a stable local-testing secret")
        secrets = client.get("client_secrets")
        secret = None
        if isinstance(secrets, list | tuple) and secrets:
            first = secrets[0]
            secret = first if isinstance(first, SecretStr) else SecretStr(str(first))
        found.append(Credentials(name=name, client_id=str(client["client_id"]), client_secret=secret, source=source))
    names = {c.name for c in found}
    for name in overlay:
        if name not in names:
            run.warn(run.overlay_file, str(name), f"no client named {name!r}; these credentials are not used")
    return found


def _fill_api_secrets(apis: list[dict[str, Any]], domain: str, run: _Run) -> list[str]:
    """Derive a signing secret for every HS256 API that has none; return their identifiers."""
    derived: list[str] = []
    for api in apis:
        if api.get("signing_alg") == "HS256" and not api.get("signing_secret") and isinstance(api.get("identifier"), str):
            api["signing_secret"] = derived_secret(domain, "api", api["identifier"]).get_secret_value()
            derived.append(api["identifier"])
            run.notes.append(f"API {api['identifier']!r}: HS256 without signing_secret; derived a stable local-testing secret")
    return derived


# ---------------------------------------------------------------------------------------
# Building the tenant and mapping validation errors back to the source
# ---------------------------------------------------------------------------------------

# Model path of a list element -> (file, path in that file); plus per-field renames.
Origins = dict[str, tuple[str, str]]
SECRET_HINTS = ("secret", "password", "pem", "key")


def _loc_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path = _join(path, part)
    return path


def _to_source(model_path: str, origins: Origins, renames: Mapping[str, str]) -> tuple[str, str]:
    """Map a model path such as ``clients[2].app_type`` to (file, source path)."""
    prefix = model_path
    while prefix and prefix not in origins:
        prefix = _parent(prefix)
    file, base = origins[prefix]
    rest = model_path[len(prefix) :].lstrip(".")
    head, dot, tail = rest.partition(".")
    name, bracket, index = head.partition("[")
    if head in renames:  # e.g. client_secrets[0] <- client_secret
        head = renames[head]
    elif name in renames:
        head = renames[name] + bracket + index
    rest = head + dot + tail
    if not rest or rest.startswith("["):
        return file, base + rest
    return file, _join(base, rest)


def _build(data: dict[str, Any], origins: Origins, renames: Mapping[str, str], run: _Run) -> Tenant | None:
    """Validate ``data`` as a Tenant; record every error, mapped back to the source."""
    try:
        return Tenant.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            model_path = _loc_path(tuple(error["loc"]))
            message = str(error["msg"]).removeprefix("Value error, ")
            cause = (error.get("ctx") or {}).get("error")
            if isinstance(cause, CrossReferenceError):
                # The tenant's cross-reference check: (model path, message) pairs.
                for sub_path, sub_message in cause.problems:
                    file, path = _to_source(sub_path, origins, renames)
                    run.problem(file, path, sub_message, unless_reported=True)
                continue
            value = error.get("input")
            file, path = _to_source(model_path, origins, renames)
            # A value is not shown when its field, or a keyword that put it there, looks secret.
            line = run.line(file, path)
            keywords = run.substituted.get((file, line), []) if line is not None else []
            secret = any(hint in name.lower() for name in (model_path, *keywords) for hint in SECRET_HINTS)
            if isinstance(value, str | int | float | bool) and not secret and error["type"] != "missing":
                message = f"{value!r} is invalid: {message}"
            run.problem(file, path, message, unless_reported=True)
        return None


# ---------------------------------------------------------------------------------------
# claimsengine's own format
# ---------------------------------------------------------------------------------------


def _load_own(data: dict[str, Any], file: str, domain: str | None, overlay: Mapping[str, Any], run: _Run) -> Loaded | None:
    data = dict(data)
    if domain is not None:
        data["domain"] = domain
    canonical = str(data.get("domain") or "")
    origins: Origins = {"": (file, "")}
    clients = [dict(c) if isinstance(c, Mapping) else c for c in data.get("clients") or []]
    proper = [c for c in clients if isinstance(c, dict)]
    credentials = _fill_credentials(proper, overlay, canonical, run)
    if "clients" in data:
        data["clients"] = clients
    apis = [dict(a) if isinstance(a, Mapping) else a for a in data.get("apis") or []]
    derived = _fill_api_secrets([a for a in apis if isinstance(a, dict)], canonical, run)
    if "apis" in data:
        data["apis"] = apis
    tenant = _build(data, origins, {}, run)
    if tenant is None:
        return None
    source = SourceMap(origins, {}, run.lines)
    return Loaded(tenant, tuple(run.warnings), tuple(run.notes), tuple(credentials), tuple(derived), source)


# ---------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------

DEPLOY_ONLY_KEYS = frozenset({"tenant", "resourceServers", "clientGrants", "customDomains"})


def _mapping_file(path: str | Path | None, what: str, run: _Run) -> dict[str, Any]:
    if path is None:
        return {}
    p = Path(path)
    # Keyword and credentials files are taken literally: keywords apply to the tenant only.
    data = _read(p, p.name, run, substitute=False)
    if data is None:
        return {}
    if not isinstance(data, dict):
        run.problems.append(Problem(p.name, "", f"the {what} file must be a mapping"))
        return {}
    return data


def load_tenant(
    path: str | Path,
    *,
    keywords: Mapping[str, Any] | None = None,
    keyword_file: str | Path | None = None,
    domain: str | None = None,
    credentials: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    node_modules: str | Path | None = None,
    action_secrets: str | Path | None = None,
    action_time_limit: float | None = None,
) -> Loaded:
    """Load a tenant from a Deploy CLI export (YAML or directory) or claimsengine's format.

    Keyword values come from ``keywords``, then ``keyword_file``, then ``environ`` (only
    when given). The export's post-login and credentials-exchange Actions run as JavaScript
    (the ``js`` extra): their npm dependencies come from ``node_modules``, hidden secret values
    from ``action_secrets`` (``{action name: {SECRET: value}}``) or keywords. Raises
    :class:`ConfigError` listing every problem found.
    """
    run = _Run(keywords={})
    merged: dict[str, Any] = dict(environ or {})
    merged.update(_mapping_file(keyword_file, "keyword", run))
    merged.update(keywords or {})
    run.keywords = merged
    overlay = _mapping_file(credentials, "credentials", run)
    run.overlay_file = Path(credentials).name if credentials is not None else ""
    source = Path(path)
    loaded: Loaded | None = None
    export: dict[str, Any] | None = None  # the parsed YAML export, for its actions
    if source.is_dir():
        loaded = _load_directory(source, domain, overlay, run)
    else:
        data = _read(source, source.name, run)
        if data is not None and not isinstance(data, dict):
            run.problem(source.name, "", "the configuration must be a mapping at the top level")
        elif isinstance(data, dict):
            if "domain" in data and not DEPLOY_ONLY_KEYS & data.keys():
                loaded = _load_own(data, source.name, domain, overlay, run)
            else:
                export = data
                loaded = _load_deploy(data, source.name, domain, overlay, run)
    if loaded is not None and (export is not None or source.is_dir()):
        secrets_overlay = _mapping_file(action_secrets, "Action secrets", run)
        loaded = _with_actions(loaded, source, export, run, node_modules, secrets_overlay, action_time_limit)
    if run.problems or loaded is None:
        raise ConfigError(tuple(run.problems))
    return loaded


def _with_actions(
    loaded: Loaded,
    source: Path,
    export: dict[str, Any] | None,
    run: _Run,
    node_modules: str | Path | None,
    secrets_overlay: Mapping[str, Any],
    time_limit: float | None,
) -> Loaded:
    """The export's bound post-login and credentials-exchange Actions, compiled into the
    tenant (claimsengine/adapters/js_actions.py)."""
    from claimsengine.adapters import js_actions

    def read_text(path: Path, display: str) -> str | None:
        try:
            raw = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            run.problems.append(Problem(display, "", f"cannot read: {exc}"))
            return None
        return _replace_keywords(raw, display, run)

    reader = js_actions.ExportReader(
        read=lambda path, display: _read(path, display, run),
        read_text=read_text,
        problem=run.problem,
        warn=run.warn,
        keywords=run.keywords,
        secrets_overlay=secrets_overlay,
        node_modules=Path(node_modules) if node_modules is not None else None,
    )
    specs = js_actions.read_export_actions(source, export, reader)
    if not specs or run.problems:
        return loaded
    try:
        exchange, login = js_actions.compile_actions(specs, time_limit=time_limit or js_actions.DEFAULT_TIME_LIMIT)
    except js_actions.JsUnavailableError as exc:
        names = ", ".join(repr(s.name) for s in specs)
        run.problems.append(Problem(source.name, "actions", f"the tenant's Actions ({names}) are JavaScript; {exc}"))
        return loaded
    except js_actions.ActionFailed as exc:
        run.problems.append(Problem(source.name, "actions", str(exc)))
        return loaded
    tenant = loaded.tenant.model_copy(update={"credentials_exchange_actions": exchange, "post_login_actions": login})
    run.notes.extend(f"{s.trigger} Action {s.name!r} runs as JavaScript ({s.file})" for s in specs)
    return dataclasses.replace(loaded, tenant=tenant, warnings=tuple(run.warnings), notes=tuple(run.notes))


# ---------------------------------------------------------------------------------------
# Auth0 Deploy CLI exports (YAML file or directory)
# ---------------------------------------------------------------------------------------

# One entry of a section: (file, path of the entry in that file, the entry).
Entry = tuple[str, str, Any]

# Top-level sections the Deploy CLI writes that the engine does not model: skipped silently.
# They are listed so that a misspelt section name is reported rather than ignored.
IGNORED_SECTIONS = frozenset(
    {
        "rules", "rulesConfigs", "hooks", "pages", "databases", "connections", "emailProvider",
        "emailTemplates", "guardianFactors", "guardianFactorProviders", "guardianFactorTemplates",
        "guardianPolicies", "guardianPhoneFactorSelectedProvider", "guardianPhoneFactorMessageTypes",
        "branding", "prompts", "migrations", "actions", "triggers", "attackProtection", "logStreams",
        "themes", "phoneProviders", "forms", "flows", "flowVaultConnections", "selfServiceProfiles",
        "networkACLs", "networkACLKeys", "connectionProfiles", "userAttributeProfiles", "riskAssessments",
        "eventStreams", "customText", "userAttributes", "tokenExchangeProfiles", "emailTemplatesConfig",
    }
)  # fmt: skip


def _check_fields(section: Section, entry: Mapping[str, Any], file: str, path: str, run: _Run) -> None:
    """Warn about fields that are neither read nor known to be exported (likely typos)."""
    allowed = section.reads | section.known
    for key in entry:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), sorted(allowed), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            run.warn(file, _join(path, str(key)), f"unknown field {key!r}{hint}")


def _pick(entry: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    """The given fields of an entry; an explicit null counts as absent (the default applies)."""
    return {key: entry[key] for key in keys if entry.get(key) is not None}


def _quota(value: Any) -> Any:
    """Auth0 nests quotas as ``{"client_credentials": {...}}``; the model holds the inner part."""
    if isinstance(value, Mapping) and isinstance(value.get("client_credentials"), Mapping):
        return value["client_credentials"]
    return value


def _dig(value: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _entries(section: str, value: Any, file: str, path: str, run: _Run) -> list[Entry]:
    """A section's entries as (file, path, mapping); anything malformed is a problem."""
    if value is None:
        return []
    if not isinstance(value, list):
        run.problem(file, path, f"{section} must be a list")
        return []
    found: list[Entry] = []
    for i, item in enumerate(value):
        item_path = _join(path, i)
        if isinstance(item, Mapping):
            found.append((file, item_path, item))
        else:
            run.problem(file, item_path, f"each entry of {section} must be a mapping")
    return found


# ---------------------------------------------------------------------------------------
# The export -> model mapping, one table entry per Deploy CLI section (R88-R95)
# ---------------------------------------------------------------------------------------


@dataclass
class _Mapping:
    """One export being mapped: the run, the canonical domain, and what earlier sections resolved."""

    run: _Run
    canonical: str
    overlay: Mapping[str, Any]
    organization_ids: dict[str, str] = field(default_factory=dict)  # organization name -> id
    client_names: set[str] = field(default_factory=set)
    credentials: list[Credentials] = field(default_factory=list)
    client_ids_by_name: dict[str, list[str]] = field(default_factory=dict)  # in export order
    client_ids: set[str] = field(default_factory=set)
    derived_apis: list[str] = field(default_factory=list)

    def client_ref(self, value: Any, file: str, path: str) -> Any:
        """R89: the export names clients; an id the tenant knows is accepted as well.

        Auth0 allows two clients of one name (the client id is the identity, issue 8, item 10):
        a name resolves to the first client of that name, as the Deploy CLI's
        ``convertClientNameToId`` does, with a warning; every explicit id stays known."""
        if not isinstance(value, str):
            return value
        named = self.client_ids_by_name.get(value)
        if named:
            if len(named) > 1:
                self.run.warn(
                    file, path, f"{len(named)} clients are named {value!r}; resolved to the first ({named[0]}), as the Deploy CLI does"
                )
            return named[0]
        if value not in self.client_ids:
            self.run.problem(file, path, f"no client named {value!r}")
        return value


# (the mapping, the entry's file, its path in that file, the entry) -> the model's dict
EntryMapper = Callable[[_Mapping, str, str, Mapping[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Section:
    """How one Deploy CLI section maps onto the Tenant model."""

    key: str  # the section's key in tenant.yaml
    model_field: str  # the Tenant field it fills; "" for the tenant settings (merged at the top level)
    folders: tuple[str, ...]  # its folders in a directory export
    reads: frozenset[str]  # fields the engine reads
    known: frozenset[str]  # fields Auth0 exports that the engine ignores (anything else is a likely typo)
    entry: EntryMapper
    # Model field (under this section's entries) -> the export field it comes from, for errors.
    renames: Mapping[str, str] = field(default_factory=dict)
    # Runs over the section's entries before any section is mapped (ids other sections refer to).
    prepare: Callable[[_Mapping, list[Entry]], None] | None = None
    # Runs over the mapped entries (derived ids and secrets).
    finish: Callable[[_Mapping, list[dict[str, Any]]], None] | None = None


def _tenant_settings(m: _Mapping, file: str, path: str, settings: Mapping[str, Any]) -> dict[str, Any]:
    data = _pick(settings, "resource_parameter_profile", "allow_organization_name_in_authentication_api", "default_directory")
    data.update(_pick(settings, "allowed_logout_urls", "session_lifetime", "idle_session_lifetime"))
    for name in ("session_lifetime", "idle_session_lifetime"):
        # The Management API's *_in_minutes variants say the same in minutes (hours here).
        minutes = settings.get(f"{name}_in_minutes")
        if isinstance(minutes, int | float) and not isinstance(minutes, bool):
            data[name] = minutes / 60
    if settings.get("default_audience"):  # '' means "no default audience"
        data["default_audience"] = settings["default_audience"]
    legacy = settings.get("allow_api1_non_global_clients", _dig(settings, "flags", "allow_api1_non_global_clients"))
    if legacy is not None:
        data["allow_api1_non_global_clients"] = legacy
    # The tenant toggle "Refresh Token Revocation Deletes Grant" (Tenant Settings > Advanced).
    revokes_grant = _dig(settings, "flags", "revoke_refresh_token_grant")
    if isinstance(revokes_grant, bool):
        data["behaviour"] = {"revoke_refresh_token_grant": revokes_grant}
    quotas = settings.get("default_token_quota")
    if isinstance(quotas, Mapping):
        if _dig(quotas, "clients") is not None:
            data["default_token_quota"] = _quota(quotas["clients"])
        if _dig(quotas, "organizations") is not None:
            data["default_organization_token_quota"] = _quota(quotas["organizations"])
    return data


def _custom_domain(m: _Mapping, file: str, path: str, entry: Mapping[str, Any]) -> dict[str, Any]:
    # Exports carry no status; a configured domain is taken as verified.
    item = _pick(entry, "domain", "is_default")
    if entry.get("status") is not None:
        item["verified"] = entry["status"] == "ready"
    return item


def _api(m: _Mapping, file: str, path: str, entry: Mapping[str, Any]) -> dict[str, Any]:
    api = _pick(
        entry,
        *("identifier", "name", "signing_alg", "signing_secret", "token_lifetime", "token_lifetime_for_web"),
        *("token_dialect", "enforce_policies", "allow_offline_access", "skip_consent_for_verifiable_first_party_clients"),
    )
    scopes = entry.get("scopes")
    if isinstance(scopes, list):
        api["scopes"] = [s.get("value") if isinstance(s, Mapping) else s for s in scopes]
    elif scopes is not None:
        api["scopes"] = scopes
    for who, key in (("client", "client_policy"), ("user", "user_policy")):
        policy = _dig(entry, "subject_type_authorization", who, "policy")
        if policy is not None:
            api[key] = policy
    # The Management API is built in (R91); an exported one extends its scope list, so warn.
    if api.get("identifier") == f"https://{m.canonical}/api/v2/":
        m.run.warn(file, _join(path, "identifier"), "the Management API is built in; this entry's scopes extend its scope list")
    return api


def _finish_apis(m: _Mapping, apis: list[dict[str, Any]]) -> None:
    m.derived_apis = _fill_api_secrets(apis, m.canonical, m.run)


def _client(m: _Mapping, file: str, path: str, entry: Mapping[str, Any]) -> dict[str, Any]:
    client = _pick(entry, "name", "client_id", "app_type", "token_endpoint_auth_method", "grant_types", "is_first_party")
    client.update(_pick(entry, "callbacks", "organization_usage", "token_quota", "refresh_token", "third_party_security_mode"))
    client.update(_pick(entry, "web_origins", "allowed_origins", "allowed_logout_urls"))
    _organization_usage(client, m.run, file, path)
    if entry.get("client_secret"):
        client["client_secrets"] = [entry["client_secret"]]
    lifetime = _dig(entry, "jwt_configuration", "lifetime_in_seconds")
    if lifetime is not None:
        client["id_token_lifetime"] = lifetime
    if entry.get("client_metadata") is not None:
        client["metadata"] = entry["client_metadata"]
    keys = _dig(entry, "client_authentication_methods", "private_key_jwt", "credentials")
    if isinstance(keys, list):
        client["public_keys"] = [_pick(k, "pem", "alg", "kid") if isinstance(k, Mapping) else k for k in keys]
    if "token_quota" in client:
        client["token_quota"] = _quota(client["token_quota"])
    default_org = entry.get("default_organization")
    if isinstance(default_org, Mapping):
        default_org = dict(default_org)
        # Deploy CLI refers to other objects by name; accept a name or an id.
        org = default_org.get("organization_id")
        default_org["organization_id"] = m.organization_ids.get(org, org) if isinstance(org, str) else org
        client["default_organization"] = default_org
    elif default_org is not None:
        client["default_organization"] = default_org
    name = client.get("name")
    if isinstance(name, str):
        if name in m.client_names:
            # Issue 8, item 10: Auth0 allows it (the client id is the identity); the Deploy CLI's
            # import refuses it ("Names must be unique"), its export writes both.
            m.run.warn(
                file,
                _join(path, "name"),
                f"duplicate client name {name!r}: references by name resolve to the first client of that name; "
                "a Deploy CLI import of this export would refuse it (names must be unique)",
            )
        m.client_names.add(name)
    return client


def _finish_clients(m: _Mapping, clients: list[dict[str, Any]]) -> None:
    m.credentials = _fill_credentials(clients, m.overlay, m.canonical, m.run)
    for c in m.credentials:
        if c.name:
            m.client_ids_by_name.setdefault(c.name, []).append(c.client_id)
        m.client_ids.add(c.client_id)


def _client_grant(m: _Mapping, file: str, path: str, entry: Mapping[str, Any]) -> dict[str, Any]:
    grant = _pick(entry, "id", "audience", "scope", "allow_all_scopes", "subject_type", "default_for")
    grant.update(_pick(entry, "organization_usage", "allow_any_organization"))
    _organization_usage(grant, m.run, file, path)
    if entry.get("client_id") is not None:
        grant["client_id"] = m.client_ref(entry["client_id"], file, _join(path, "client_id"))
    return grant


def _organization_ids(m: _Mapping, entries: list[Entry]) -> None:
    """Organization ids first: clients may name one as their default organization."""
    for _file, _path, entry in entries:
        name = entry.get("name")
        if isinstance(name, str) and name:
            org_id = entry.get("id") or derived_organization_id(m.canonical, name)
            if not entry.get("id"):
                m.run.notes.append(f"organization {name!r}: no id in the export; derived stable id {org_id}")
            m.organization_ids[name] = str(org_id)


def _organization(m: _Mapping, file: str, path: str, entry: Mapping[str, Any]) -> dict[str, Any]:
    org = _pick(entry, "name", "token_quota", "third_party_client_access")
    if "token_quota" in org:
        org["token_quota"] = _quota(org["token_quota"])
    if isinstance(entry.get("name"), str) and entry["name"] in m.organization_ids:
        org["id"] = m.organization_ids[entry["name"]]
    refs = entry.get("client_grants")
    if isinstance(refs, list):
        org["client_grants"] = [
            {**_pick(ref, "audience"), "client_id": m.client_ref(ref.get("client_id"), file, f"{path}.client_grants[{j}].client_id")}
            if isinstance(ref, Mapping)
            else ref
            for j, ref in enumerate(refs)
        ]
    elif refs is not None:
        org["client_grants"] = refs
    return org


def _role(m: _Mapping, file: str, path: str, entry: Mapping[str, Any]) -> dict[str, Any]:
    role = _pick(entry, "name")
    perms = entry.get("permissions")
    if isinstance(perms, list):
        role["permissions"] = [_pick(p, "resource_server_identifier", "permission_name") if isinstance(p, Mapping) else p for p in perms]
    elif perms is not None:
        role["permissions"] = perms
    return role


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


# In mapping order: a section may use what the sections before it resolved (grants and
# organizations name clients, so clients come first).
SECTIONS: tuple[Section, ...] = (
    Section(
        "tenant",
        "",
        (),
        reads=_names(
            """
            allow_api1_non_global_clients allowed_logout_urls allow_organization_name_in_authentication_api default_audience
            default_directory default_token_quota flags idle_session_lifetime idle_session_lifetime_in_minutes
            resource_parameter_profile session_lifetime session_lifetime_in_minutes
            """
        ),
        known=_names(
            """
            acr_values_supported authorization_response_iss_parameter_supported change_password
            customize_mfa_in_postlogin_action default_organization default_redirection_uri device_flow
            enable_ai_guide enabled_locales ephemeral_session_lifetime error_page friendly_name guardian_mfa_page
            idle_ephemeral_session_lifetime mtls oidc_logout
            phone_consolidated_experience picture_url pushed_authorization_requests_supported sandbox_version
            sandbox_versions_available session_cookie sessions
            skip_non_verifiable_callback_uri_confirmation_prompt support_email support_url universal_login
            """
        ),
        entry=_tenant_settings,
    ),
    Section(
        "customDomains",
        "custom_domains",
        ("custom-domains",),
        reads=_names(
            """
            domain is_default status
            """
        ),
        known=_names(
            """
            custom_client_ip_header custom_domain_id domain_metadata origin_domain_name primary relying_party_identifier
            tls_policy type verification verification_method
            """
        ),
        entry=_custom_domain,
        renames={"verified": "status"},
    ),
    Section(
        "resourceServers",
        "apis",
        ("resource-servers",),
        reads=_names(
            """
            allow_offline_access enforce_policies identifier name scopes signing_alg signing_secret
            skip_consent_for_verifiable_first_party_clients subject_type_authorization token_dialect token_lifetime
            token_lifetime_for_web
            """
        ),
        known=_names(
            """
            allow_online_access allow_online_access_with_ephemeral_sessions authorization_details authorization_policy
            client consent_policy id is_system options proof_of_possession token_encryption verificationLocation
            """
        ),
        entry=_api,
        renames={"client_policy": "subject_type_authorization.client.policy", "user_policy": "subject_type_authorization.user.policy"},
        finish=_finish_apis,
    ),
    Section(
        "clients",
        "clients",
        ("clients",),
        reads=_names(
            """
            app_type callbacks client_authentication_methods client_id client_metadata client_secret default_organization
            grant_types is_first_party jwt_configuration name organization_usage refresh_token third_party_security_mode
            token_endpoint_auth_method token_quota web_origins allowed_origins allowed_logout_urls
            """
        ),
        known=_names(
            """
            addons allowed_clients async_approval_notification_channels
            b2b_integration_configuration callback_url_template client_aliases compliance_level cross_origin_auth
            cross_origin_authentication cross_origin_loc custom_login_page custom_login_page_on custom_login_page_preview
            description encryption_key express_configuration external_client_id form_template global initiate_login_uri
            is_token_endpoint_ip_header_trusted logo_uri mobile my_organization_configuration native_social_login
            oidc_backchannel_logout oidc_conformant oidc_logout organization_discovery_methods
            organization_require_behavior owners par_request_expiry require_proof_of_possession
            require_pushed_authorization_requests resource_server_identifier session_transfer signed_request_object
            signing_keys skip_non_verifiable_callback_uri_confirmation_prompt sso sso_disabled tenant token_exchange
            """
        ),
        entry=_client,
        renames={
            "id_token_lifetime": "jwt_configuration.lifetime_in_seconds",
            "metadata": "client_metadata",
            "public_keys": "client_authentication_methods.private_key_jwt.credentials",
            "client_secrets[0]": "client_secret",
        },
        finish=_finish_clients,
    ),
    Section(
        "clientGrants",
        "client_grants",
        ("grants", "client-grants"),
        reads=_names(
            """
            allow_all_scopes allow_any_organization audience client_id default_for id organization_usage scope
            subject_type
            """
        ),
        known=_names(
            """
            authorization_details_types is_system
            """
        ),
        entry=_client_grant,
    ),
    Section(
        "organizations",
        "organizations",
        ("organizations",),
        reads=_names(
            """
            client_grants id name third_party_client_access token_quota
            """
        ),
        known=_names(
            """
            branding connections display_name enabled_connections metadata
            """
        ),
        entry=_organization,
        prepare=_organization_ids,
    ),
    Section(
        "roles",
        "roles",
        ("roles",),
        reads=_names(
            """
            name permissions
            """
        ),
        known=_names(
            """
            description id
            """
        ),
        entry=_role,
    ),
)  # fmt: skip
SECTIONS_BY_KEY = {s.key: s for s in SECTIONS}
MODELLED_SECTIONS = frozenset(SECTIONS_BY_KEY)


def _load_deploy(data: dict[str, Any], file: str, domain: str | None, overlay: Mapping[str, Any], run: _Run) -> Loaded | None:
    """A Deploy CLI YAML export: split it into sections, then map them."""
    sections: dict[str, list[Entry]] = {}
    for key, value in data.items():
        if key in MODELLED_SECTIONS:
            if key == "tenant":
                if value is not None and not isinstance(value, Mapping):
                    run.problem(file, key, "tenant must be a mapping")
                else:
                    sections[key] = [(file, key, value or {})]
            else:
                sections[key] = _entries(key, value, file, key, run)
        elif key not in IGNORED_SECTIONS:
            close = difflib.get_close_matches(str(key), sorted(MODELLED_SECTIONS | IGNORED_SECTIONS), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            run.warn(file, str(key), f"unknown section {key!r} (ignored){hint}")
    return _from_deploy(sections, file, domain, overlay, run)


def _load_directory(source: Path, domain: str | None, overlay: Mapping[str, Any], run: _Run) -> Loaded | None:
    """A Deploy CLI directory export: one JSON file per object, grouped in folders."""
    sections: dict[str, list[Entry]] = {}
    tenant_file = source / "tenant.json"
    if tenant_file.is_file():
        value = _read(tenant_file, "tenant.json", run)
        if value is not None and not isinstance(value, Mapping):
            run.problem("tenant.json", "", "tenant.json must be a mapping")
        elif value is not None:
            sections["tenant"] = [("tenant.json", "", value)]
    for section in SECTIONS:
        if not section.folders:
            continue
        files = [f for folder in section.folders for f in sorted((source / folder).glob("*.json"))]
        if section.key == "customDomains" and (source / "custom-domains.json").is_file():
            files.append(source / "custom-domains.json")
        found: list[Entry] = []
        for path in files:
            display = path.relative_to(source).as_posix()
            value = _read(path, display, run)
            if isinstance(value, list):
                found.extend(_entries(section.key, value, display, "", run))
            elif isinstance(value, Mapping):
                found.append((display, "", value))
            elif value is not None:
                run.problem(display, "", "expected a JSON object or list")
        sections[section.key] = found
    return _from_deploy(sections, source.name, domain, overlay, run)


MANAGEMENT_AUDIENCE = re.compile(r"^https://([^/#@]+)/api/v2/?$")


def management_api_domains(sections: Mapping[str, list[Entry]]) -> dict[str, tuple[str, str]]:
    """Domains named by client grants to Auth0's Management API (``https://{domain}/api/v2/``),
    each with the (file, path) of its first grant."""
    found: dict[str, tuple[str, str]] = {}
    for file, path, entry in sections.get("clientGrants", []):
        audience = entry.get("audience")
        if isinstance(audience, str) and (match := MANAGEMENT_AUDIENCE.match(audience.strip())):
            found.setdefault(match.group(1).lower(), (file, f"{path}.audience"))
    return found


def _inferred_domain(sections: Mapping[str, list[Entry]], main_file: str, run: _Run) -> str:
    """The canonical domain when neither --auth0-domain nor AUTH0_DOMAIN gives it: the one
    domain the Management API grants name (only the canonical domain names that API), with a
    note saying so; else a problem that names the candidates."""
    found = management_api_domains(sections)
    if len(found) == 1:
        ((inferred, (file, path)),) = found.items()
        run.notes.append(
            f"canonical domain {inferred} inferred from {file} {path} (https://{{domain}}/api/v2/ is the Management API of the "
            "tenant's canonical domain); if that is not this tenant's domain, pass --auth0-domain"
        )
        return inferred
    hint = f" (the Management API grants name {', '.join(sorted(found))})" if found else ""
    run.problems.append(Problem(main_file, "", f"no canonical domain: pass --auth0-domain or the AUTH0_DOMAIN keyword{hint}"))
    return "unknown.invalid"  # keeps collecting problems; the load fails anyway


@dataclass(frozen=True)
class DeployConfig:
    """What claimsengine reads from the Deploy CLI's own ``config.json``."""

    domain: str | None
    keywords: Mapping[str, Any]


def read_deploy_config(path: str | Path) -> DeployConfig:
    """The Deploy CLI's ``config.json``: ``AUTH0_DOMAIN`` (the canonical domain) and
    ``AUTH0_KEYWORD_REPLACE_MAPPINGS`` (keyword values). Other keys (credentials, flags) are
    the Deploy CLI's business and are ignored. Raises :class:`ConfigError` for a file that is
    not such a mapping."""
    name = Path(path).name
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError((Problem(name, "", f"cannot read the Deploy CLI config: {type(exc).__name__}"),)) from None
    problems: list[Problem] = []
    if not isinstance(data, dict):
        raise ConfigError((Problem(name, "", "the Deploy CLI config must be a JSON object"),))
    domain = data.get("AUTH0_DOMAIN")
    if domain is not None and (not isinstance(domain, str) or not domain.strip()):
        problems.append(Problem(name, "AUTH0_DOMAIN", "must be a non-empty string"))
    keywords = data.get("AUTH0_KEYWORD_REPLACE_MAPPINGS", {})
    if not isinstance(keywords, dict):
        problems.append(Problem(name, "AUTH0_KEYWORD_REPLACE_MAPPINGS", "must be a mapping of keyword to value"))
    if problems:
        raise ConfigError(tuple(problems))
    return DeployConfig(domain=domain.strip() if isinstance(domain, str) else None, keywords=dict(keywords))


def _from_deploy(
    sections: Mapping[str, list[Entry]], main_file: str, domain: str | None, overlay: Mapping[str, Any], run: _Run
) -> Loaded | None:
    """Map Deploy CLI sections onto the Tenant model, section by section (``SECTIONS``), and build it."""
    for key, entries in sections.items():
        for file, path, entry in entries:
            _check_fields(SECTIONS_BY_KEY[key], entry, file, path, run)
    canonical = domain or run.keywords.get("AUTH0_DOMAIN")
    if not isinstance(canonical, str) or not canonical:
        canonical = _inferred_domain(sections, main_file, run)
    mapping = _Mapping(run, canonical, overlay)
    tenant_file, tenant_path, _settings = (sections.get("tenant") or [(main_file, "tenant", {})])[0]
    origins: Origins = {"": (tenant_file, tenant_path)}
    renames: dict[str, str] = {}
    data: dict[str, Any] = {"domain": canonical}
    for section in SECTIONS:
        if section.prepare is not None:
            section.prepare(mapping, sections.get(section.key, []))
    for section in SECTIONS:
        entries = sections.get(section.key, [])
        if not section.model_field:
            for file, path, entry in entries[:1]:
                data.update(section.entry(mapping, file, path, entry))
            continue
        items: list[dict[str, Any]] = []
        for file, path, entry in entries:
            origins[f"{section.model_field}[{len(items)}]"] = (file, path)
            items.append(section.entry(mapping, file, path, entry))
        if section.finish is not None:
            section.finish(mapping, items)
        data[section.model_field] = items
        renames.update(section.renames)
    tenant = _build(data, origins, renames, run)
    if tenant is None:
        return None
    source = SourceMap(origins, renames, run.lines)
    return Loaded(tenant, tuple(run.warnings), tuple(run.notes), tuple(mapping.credentials), tuple(mapping.derived_apis), source)

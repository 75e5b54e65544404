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
import difflib
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import SecretStr, ValidationError

from claimsengine.model import PUBLIC_APP_TYPES, Tenant

__all__ = ["ConfigError", "Credentials", "Loaded", "Problem", "load_tenant"]


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
class Loaded:
    """A loaded tenant, with what the loader had to say about it."""

    tenant: Tenant
    warnings: tuple[Problem, ...] = ()
    notes: tuple[str, ...] = ()
    credentials: tuple[Credentials, ...] = ()
    derived_api_secrets: tuple[str, ...] = ()


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
    # file name -> source path -> 1-based line
    lines: dict[str, dict[str, int]] = field(default_factory=dict)

    def line(self, file: str, path: str) -> int | None:
        """The line of ``path`` in ``file``, or of its closest enclosing node."""
        lines = self.lines.get(file, {})
        while True:
            if path in lines:
                return lines[path]
            if not path:
                return None
            path = _parent(path)

    def problem(self, file: str, path: str, message: str) -> None:
        self.problems.append(Problem(file, path, message, self.line(file, path)))

    def warn(self, file: str, path: str, message: str) -> None:
        self.warnings.append(Problem(file, path, message, self.line(file, path)))


def _parent(path: str) -> str:
    """``a.b[2]`` -> ``a.b`` -> ``a`` -> ``''``."""
    cut = max(path.rfind("."), path.rfind("["))
    return path[:cut] if cut > 0 else ""


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


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
        if marker == "@@" or not isinstance(value, str):
            return json.dumps(value)
        return value

    result = KEYWORD.sub(substitute, text)
    return None if missing else result


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


def _read(path: Path, display: str, run: _Run) -> Any | None:
    """Read, substitute and parse one file; ``None`` when it could not be parsed."""
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        run.problems.append(Problem(display, "", f"cannot read: {exc}"))
        return None
    text = _replace_keywords(raw, display, run)
    if text is None:
        return None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            run.problems.append(Problem(display, "", f"invalid JSON: {exc.msg}", exc.lineno))
            return None
        # JSON is (nearly always) YAML too; line numbers are a nicety, so a failure is fine.
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError:
            node = None
    else:
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark is not None else None
            reason = getattr(exc, "problem", None) or str(exc)
            run.problems.append(Problem(display, "", f"invalid YAML: {reason}", line))
            return None
    lines: dict[str, int] = {}
    if node is not None:
        _yaml_lines(node, "", lines)
    run.lines[display] = lines
    return data


# ---------------------------------------------------------------------------------------
# Stable derived values (for local testing only)
# ---------------------------------------------------------------------------------------


def _digest(*parts: str) -> bytes:
    return hashlib.sha256("\x00".join(parts).encode()).digest()


def derived_client_id(domain: str, name: str) -> str:
    """A stable 32-character client id for a client that an export names but does not identify."""
    return base64.b32encode(_digest("client_id", domain, name)).decode().lower()[:32]


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
    """Whether the client authenticates with a secret (mirrors ``Client.auth_method``)."""
    method = client.get("token_endpoint_auth_method")
    if method is None:
        if client.get("public_keys"):
            return False
        return client.get("app_type") not in PUBLIC_APP_TYPES
    return method in ("client_secret_post", "client_secret_basic")


def _fill_credentials(
    clients: list[dict[str, Any]],
    origins: list[tuple[str, str]],
    overlay: Mapping[str, Any],
    domain: str,
    run: _Run,
) -> list[Credentials]:
    """Give each client (a model-shaped dict) an id and, if it needs one, a secret.

    Precedence: the entry itself, then the overlay (by client name), then a derived value.
    """
    found: list[Credentials] = []
    for client, (file, path) in zip(clients, origins, strict=True):
        name = str(client.get("name", ""))
        extra = overlay.get(name)
        extra = extra if isinstance(extra, Mapping) else {}
        source: Literal["export", "overlay", "derived"] = "export"
        if not client.get("client_id"):
            if extra.get("client_id"):
                client["client_id"] = str(extra["client_id"])
                source = "overlay"
            else:
                client["client_id"] = derived_client_id(domain, name)
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
                client["client_secrets"] = [derived_secret(domain, "client", name).get_secret_value()]
                source = "derived"
                run.notes.append(f"client {name!r}: no client_secret in the export; derived a stable local-testing secret")
        secrets = client.get("client_secrets")
        secret = None
        if isinstance(secrets, list | tuple) and secrets:
            first = secrets[0]
            secret = first if isinstance(first, SecretStr) else SecretStr(str(first))
        found.append(Credentials(name=name, client_id=str(client["client_id"]), client_secret=secret, source=source))
        del file, path
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
    while prefix:
        if prefix in origins:
            file, base = origins[prefix]
            rest = model_path[len(prefix) :].lstrip(".")
            head, _, tail = rest.partition(".")
            head = renames.get(head.split("[")[0], head.split("[")[0]) + head[len(head.split("[")[0]) :]
            rest = f"{head}.{tail}" if tail else head
            return file, _join(base, rest) if rest and not rest.startswith("[") else base + rest
        prefix = _parent(prefix)
    file, base = origins[""]
    return file, _join(base, model_path) if base else model_path


CROSS_REFERENCE = re.compile(r"^([A-Za-z_][\w.\[\]]*): (.+)$")


def _build(data: dict[str, Any], origins: Origins, renames: Mapping[str, str], run: _Run) -> Tenant | None:
    """Validate ``data`` as a Tenant; record every error, mapped back to the source."""
    try:
        return Tenant.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            model_path = _loc_path(tuple(error["loc"]))
            message = str(error["msg"]).removeprefix("Value error, ")
            if not error["loc"] and error["type"] == "value_error":
                # The cross-reference check reports "path: message; path: message".
                for part in message.split("; "):
                    match = CROSS_REFERENCE.match(part)
                    sub_path, sub_message = (match.group(1), match.group(2)) if match else ("", part)
                    file, path = _to_source(sub_path, origins, renames)
                    run.problem(file, path, sub_message)
                continue
            value = error.get("input")
            secret = any(hint in model_path for hint in SECRET_HINTS)
            if isinstance(value, str | int | float | bool) and not secret and error["type"] != "missing":
                message = f"{value!r} is invalid: {message}"
            file, path = _to_source(model_path, origins, renames)
            run.problem(file, path, message)
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
    credentials = _fill_credentials(proper, [(file, "")] * len(proper), overlay, canonical, run)
    if "clients" in data:
        data["clients"] = clients
    apis = [dict(a) if isinstance(a, Mapping) else a for a in data.get("apis") or []]
    derived = _fill_api_secrets([a for a in apis if isinstance(a, dict)], canonical, run)
    if "apis" in data:
        data["apis"] = apis
    tenant = _build(data, origins, {}, run)
    if tenant is None:
        return None
    return Loaded(tenant, tuple(run.warnings), tuple(run.notes), tuple(credentials), tuple(derived))


# ---------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------

DEPLOY_ONLY_KEYS = frozenset({"tenant", "resourceServers", "clientGrants", "customDomains"})


def _mapping_file(path: str | Path | None, what: str, run: _Run) -> dict[str, Any]:
    if path is None:
        return {}
    p = Path(path)
    holder = _Run(keywords={})
    data = _read(p, p.name, holder)
    run.problems.extend(holder.problems)
    if data is None:
        return {}
    if not isinstance(data, dict):
        run.problems.append(Problem(p.name, "", f"the {what} file must be a mapping"))
        return {}
    return data


def load_tenant(
    path: str | Path,
    *,
    keywords: Mapping[str, str] | None = None,
    keyword_file: str | Path | None = None,
    domain: str | None = None,
    credentials: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Loaded:
    """Load a tenant from a Deploy CLI export (YAML or directory) or claimsengine's format.

    Keyword values come from ``keywords``, then ``keyword_file``, then ``environ`` (only
    when given). Raises :class:`ConfigError` listing every problem found.
    """
    run = _Run(keywords={})
    merged: dict[str, Any] = dict(environ or {})
    merged.update(_mapping_file(keyword_file, "keyword", run))
    merged.update(keywords or {})
    run.keywords = merged
    overlay = _mapping_file(credentials, "credentials", run)
    source = Path(path)
    loaded: Loaded | None = None
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
                loaded = _load_deploy(data, source.name, domain, overlay, run)
    if run.problems or loaded is None:
        raise ConfigError(tuple(run.problems))
    return loaded


def _load_directory(source: Path, domain: str | None, overlay: Mapping[str, Any], run: _Run) -> Loaded | None:
    raise NotImplementedError


def _load_deploy(data: dict[str, Any], file: str, domain: str | None, overlay: Mapping[str, Any], run: _Run) -> Loaded | None:
    raise NotImplementedError


del difflib

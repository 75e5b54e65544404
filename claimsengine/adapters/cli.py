"""The ``claimsengine`` command line: decide, explain, tabulate, lint, diff and serve a tenant.

The CLI only reads files, the clock and the environment and prints; every decision is
``claimsengine.decide``'s. Exit statuses: 0 success (``decide`` and ``explain`` exit 0
for any decision, issued or rejected); 1 ``check`` found an error-severity finding or
``diff`` found changes; 2 a usage or configuration error (message on stderr, no
traceback). See ``docs/cli.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NoReturn, TypeVar

from claimsengine.engine import decide
from claimsengine.model import (
    BUILT_IN_MANAGEMENT_API,
    Api,
    Authorized,
    Client,
    ClientGrant,
    CustomDomain,
    Issued,
    Organization,
    Rejected,
    Tenant,
    TokenRequest,
    User,
)

from . import docgen, table, table_diff, table_render, wire
from .files import atomic_writer

if TYPE_CHECKING:
    from rich.console import Console

    from claimsengine.adapters.loader import Loaded

T = TypeVar("T")

PROG = "claimsengine"
EXAMPLE_TENANT = Path(__file__).resolve().parent.parent / "examples" / "northwind.yaml"


class UsageError(Exception):
    """A problem with the command line or its input: exit 2, message on stderr."""


# ---------------------------------------------------------------------------------------
# Shared plumbing
# ---------------------------------------------------------------------------------------


def _is_tty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _console(*, stderr: bool = False) -> Console:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def _keywords(values: Sequence[str] | None) -> dict[str, Any]:
    """``--keyword KEY=VALUE`` values. VALUE is read as JSON when it is a JSON array, object,
    ``true``, ``false`` or ``null`` (what ``@@KEY@@`` keywords need, as in the Deploy CLI's
    mappings); anything else is the string itself."""
    out: dict[str, Any] = {}
    for item in values or ():
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise UsageError(f"--keyword expects KEY=VALUE, got {item!r}")
        out[name] = value
        if value.lstrip()[:1] in ("[", "{") or value.strip() in ("true", "false", "null"):
            try:
                out[name] = json.loads(value)
            except json.JSONDecodeError as exc:
                raise UsageError(f"--keyword {name}: {value!r} looks like JSON but is not valid JSON ({exc.msg} at {exc.pos})") from exc
    return out


def _load(args: argparse.Namespace, path: str | Path | None = None) -> Loaded:
    from claimsengine.adapters.loader import load_tenant
    from claimsengine.adapters.users import with_users

    loaded = load_tenant(
        path if path is not None else args.tenant,
        keywords=_keywords(args.keyword),
        keyword_file=args.keyword_file,
        domain=args.auth0_domain,
        credentials=args.credentials,
        environ=os.environ,
        node_modules=args.node_modules,
        action_secrets=args.action_secrets,
    )
    if args.users is None and args.user_assignments is None:
        return loaded
    return dataclasses.replace(loaded, tenant=with_users(loaded.tenant, args.users, args.user_assignments))


@contextmanager
def _output(path: str | None) -> Iterator[IO[str]]:
    """stdout, or a file that is replaced only when the output is complete."""
    if path is None or path == "-":
        yield sys.stdout
        return
    with ExitStack() as stack:
        try:
            handle = stack.enter_context(atomic_writer(path))
        except OSError as exc:
            raise UsageError(f"cannot write {path}: {exc.strerror}") from exc
        yield handle


@contextmanager
def _progress(total: int, description: str, *, after: float = 1.0) -> Iterator[Callable[[], None]]:
    """A progress bar on stderr for a run that takes longer than ``after`` seconds, only when
    stderr is a terminal; yields the step callback (call it once per unit of work)."""
    if not _is_tty(sys.stderr) or total <= 1:
        yield lambda: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=_console(stderr=True),
        transient=True,
    )
    task = bar.add_task(description, total=total)
    started = time.monotonic()
    shown = False

    def step() -> None:
        nonlocal shown
        bar.advance(task)
        if not shown and time.monotonic() - started > after:
            shown = True
            bar.start()

    try:
        yield step
    finally:
        if shown:
            bar.stop()


def _print_json(value: Any, out: IO[str] | None = None) -> None:
    out = out or sys.stdout
    text = json.dumps(value, indent=2, ensure_ascii=False)
    if out is sys.stdout and _is_tty(sys.stdout):
        _console().print_json(text)
    else:
        out.write(text + "\n")


# ---------------------------------------------------------------------------------------
# decide and explain
# ---------------------------------------------------------------------------------------


def _read_request(args: argparse.Namespace) -> dict[str, Any]:
    source = args.request
    try:
        if source is None or source == "-":
            if _is_tty(sys.stdin):
                print(f"{PROG}: reading the request's JSON parameters from stdin (end with Ctrl-D)", file=sys.stderr)
            text = sys.stdin.read()
            where = "stdin"
        else:
            text = Path(source).read_text(encoding="utf-8")
            where = source
    except OSError as exc:
        raise UsageError(f"cannot read the request {source}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise UsageError(f"the request is not UTF-8 text: {exc}") from exc
    try:
        params = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"the request on {where} is not valid JSON: {exc}") from exc
    if not isinstance(params, dict):
        raise UsageError(f"the request on {where} must be a JSON object of token endpoint parameters, not {type(params).__name__}")
    return params


def _token_request(args: argparse.Namespace, tenant: Tenant) -> TokenRequest:
    params = _read_request(args)
    host = args.host or tenant.domain
    matched: tuple[str, ...] = ()
    username, password = params.get("username"), params.get("password")
    if isinstance(username, str) and isinstance(password, str) and any(u.password_hash is not None for u in tenant.users):
        from claimsengine.adapters.users import password_matches

        matched = password_matches(tenant, username, password)
    return wire.token_request(params, domain=host, authorization=args.authorization, password_valid_for=matched)


def _now(args: argparse.Namespace) -> int:
    return int(time.time()) if args.now is None else int(args.now)


def decision_json(decision: Issued | Rejected | Authorized, *, kid: str | None = None) -> dict[str, Any]:
    """The decision as ``decide`` prints it: kind and trace, then the outcome's fields.

    An issued JWT's ``header`` has ``alg``, ``typ`` and ``kid``: the id of the tenant key that
    signs it (``kid``, from ``--keys``; null when no key set is given) or null for an API
    secret (HS256 tokens carry no kid). ``signing_key`` says which of the two signs.
    """
    out: dict[str, Any] = {"kind": decision.kind, "trace": [r.rule.value for r in decision.trace]}
    if isinstance(decision, Issued):
        audience = list(decision.audience) if isinstance(decision.audience, tuple) else decision.audience
        header = None
        if decision.header is not None:
            header = {
                "alg": decision.header.alg.value,
                "typ": decision.header.typ,
                "kid": kid if decision.signing_key == "tenant" else None,
            }
        out.update(
            format=decision.format.value,
            header=header,
            signing_key=decision.signing_key,
            issuer=decision.issuer,
            audience=audience,
            scope=decision.scope,
            expires_in=decision.expires_in,
            refresh_token=decision.refresh is not None,
            id_token=decision.id_token is not None,
            claims=decision.claims,
        )
    elif isinstance(decision, Rejected):
        out.update(status=decision.status, error=decision.error.value, error_description=decision.error_description)
        if decision.error_uri is not None:
            out["error_uri"] = decision.error_uri
    else:
        out.update(redirect_uri=decision.redirect_uri, scope=" ".join(decision.grant.scope), audience=decision.grant.audience)
    return out


def cmd_decide(args: argparse.Namespace) -> int:
    loaded = _load(args)
    request = _token_request(args, loaded.tenant)
    decision = decide(request, loaded.tenant, now=_now(args))
    _print_json(decision_json(decision, kid=_current_kid(args.keys) if args.keys else None))
    return 0


def _current_kid(path: str) -> str:
    """The id of the current signing key in a key set file (as ``serve --keys`` writes it)."""
    try:
        from claimsengine.adapters.signing import KeySet
    except ImportError as exc:
        raise UsageError(f"--keys needs the jwt extras: pip install 'claimsengine[jwt]' ({exc.name} is missing)") from exc
    try:
        return KeySet.load(path).current_kid
    except (OSError, ValueError) as exc:
        raise UsageError(f"--keys {path}: {exc}") from exc


def _describe(tenant: Tenant, ref: str) -> str:
    """A few words about the configured value at ``ref``, a tenant path a trace entry named."""
    name, bracket, rest = ref.partition("[")
    items = getattr(tenant, name, None) if bracket and rest.endswith("]") and rest[:-1].isdigit() else None
    if isinstance(items, tuple) and int(rest[:-1]) < len(items):
        item = items[int(rest[:-1])]
        if isinstance(item, Client):
            return f"{item.name or '(no name)'} ({item.client_id}), auth method {item.auth_method.value}"
        if isinstance(item, Api):
            return f"{item.name or '(no name)'} ({item.identifier})"
        if isinstance(item, ClientGrant):
            who = item.client_id or "default grant for third-party clients"
            scope = "all API scopes" if item.allow_all_scopes else " ".join(item.scope) or "(none)"
            return f"{who} -> {item.audience} ({item.subject_type.value}), scope {scope}"
        if isinstance(item, Organization):
            return f"{item.name} ({item.id})"
        if isinstance(item, CustomDomain):
            return f"{item.domain} ({'verified' if item.verified else 'not verified'})"
        if isinstance(item, User):
            return item.user_id
        return "an Action" if name.endswith("_actions") else str(item)
    if ref == "domain":
        return f"{tenant.domain} (canonical)"
    if ref == BUILT_IN_MANAGEMENT_API:
        return f"the Auth0 Management API, {tenant.management_api_identifier}"
    owner: Any = tenant.behaviour if ref.startswith("behaviour.") else tenant
    field_name = ref.removeprefix("behaviour.")
    if field_name in type(owner).model_fields:
        return f"{getattr(owner, field_name)!r}"
    if ref in Tenant.model_fields:
        return "searched; nothing matched the request"
    return ref


def _locator(loaded: Loaded) -> Callable[[str], str]:
    """Where a tenant path came from in the loaded files: ``northwind.yaml:32 (clients[0])``."""

    def where(ref: str) -> str:
        if ref.partition("[")[0].partition(".")[0] not in Tenant.model_fields:
            return ""  # not a part of the file, e.g. the built-in Management API
        found = loaded.source.locate(ref)
        if not found.file:
            return ""
        at = f"{found.file}:{found.line}" if found.line is not None else found.file
        return f"{at} ({found.path})" if found.path else at

    return where


def consulted_lines(tenant: Tenant, decision: Issued | Rejected | Authorized, where: Callable[[str], str] | None = None) -> list[str]:
    """The configuration the decision's trace names, once each, in order, with where it came from."""
    lines: list[str] = []
    for ref in dict.fromkeys(reason.ref for reason in decision.trace if reason.ref):
        where_from = where(ref) if where is not None else ""
        lines.append(f"{ref}: {_describe(tenant, ref)}" + (f" [{where_from}]" if where_from else ""))
    return lines


def explain_lines(
    tenant: Tenant, decision: Issued | Rejected | Authorized, statements: dict[str, str], where: Callable[[str], str] | None = None
) -> list[str]:
    """The plain-words explanation ``claimsengine explain`` prints."""
    lines: list[str] = []
    if isinstance(decision, Issued):
        aud = ", ".join(decision.audience) if isinstance(decision.audience, tuple) else decision.audience
        scope = f", scope {decision.scope!r}" if decision.scope else ", no scope"
        what = ("a JWT" if decision.format.value == "jwt" else f"an {decision.format.value}") + f" access token for {aud}"
        lines.append(f"Outcome: issued {what} (iss {decision.issuer}{scope}, expires in {decision.expires_in} s)")
    elif isinstance(decision, Rejected):
        lines.append(f"Outcome: rejected with HTTP {decision.status} {decision.error.value}: {decision.error_description}")
        lines.append(f"Decided by rule {decision.rejected_by.value}")
    else:
        lines.append(f"Outcome: authorized; redirect to {decision.redirect_uri}")
    lines.append("")
    lines.append("Steps:")
    for number, reason in enumerate(decision.trace, 1):
        rule = reason.rule.value
        parts = [f"{number:2}. {rule}"]
        if reason.detail:
            parts.append(reason.detail)
        if reason.ref:
            parts.append(f"consulted {reason.ref}")
        statement = statements.get(rule)
        if statement:
            parts.append(statement)
        lines.append(" — ".join(parts))
    if not statements:
        lines.append("(rule statements unavailable: specs/rules.toml was not found)")
    lines.append("")
    lines.append("Configuration consulted:")
    lines.extend(f"  - {line}" for line in consulted_lines(tenant, decision, where) or ["(nothing in the tenant)"])
    return lines


def cmd_explain(args: argparse.Namespace) -> int:
    loaded = _load(args)
    request = _token_request(args, loaded.tenant)
    decision = decide(request, loaded.tenant, now=_now(args))
    lines = explain_lines(loaded.tenant, decision, docgen.rule_statements(), _locator(loaded))
    if _is_tty(sys.stdout):
        from rich.text import Text

        console = _console()
        style = "bold green" if isinstance(decision, Issued) else "bold red"
        console.print(Text(lines[0], style=style))
        for line in lines[1:]:
            console.print(Text(line, style="bold" if line.endswith(":") and not line.startswith(" ") else ""))
    else:
        sys.stdout.write("\n".join(lines) + "\n")
    return 0


# ---------------------------------------------------------------------------------------
# table and diff
# ---------------------------------------------------------------------------------------


def _context(loaded: Loaded) -> table.TableContext:
    return table.TableContext(loaded.tenant, table.secrets_of(loaded.credentials))


def cmd_table(args: argparse.Namespace) -> int:
    loaded = _load(args)
    ctx = _context(loaded)
    with _progress(ctx.group_count(), "tabulating") as step:
        rows = ctx.rows(on_group=step, jobs=args.jobs)
        if args.format is None and args.output is None and _is_tty(sys.stdout):
            table_render.render_terminal(rows, f"Decision table: {loaded.tenant.domain}", _console())
            return 0
        fmt: table_render.Format = args.format or "markdown"
        with _output(args.output) as out:
            for chunk in table_render.render(rows, fmt, title=f"Decision table: {loaded.tenant.domain}"):
                out.write(chunk)
    return 0


def _rule_delta(change: table_diff.Change) -> str:
    removed, added = change.rule_delta()
    return " ".join([*(f"-{r}" for r in removed), *(f"+{r}" for r in added)]) or "same rules"


def _summary(o: table.Outcome | None) -> str:
    return "(no such request class)" if o is None else o.summary()


def _value(value: Any) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(value) + "]"
    return "—" if value is None else str(value)


def _field_lines(change: table_diff.Change) -> list[str]:
    return [f"{f.field}: {_value(f.old)} → {_value(f.new)} ({' '.join(f.rules) or 'no rule'})" for f in change.fields()]


def _change_key(change: table_diff.Change) -> str:
    r = change.request
    who = f"{change.client_name} ({r.client})" if change.client_name else r.client
    return f"{who} · {r.grant} · audience {r.audience} · scope {r.scope} · domain {r.domain} · organization {r.organization}"


def cmd_diff(args: argparse.Namespace) -> int:
    old = _context(_load(args, args.old))
    new = _context(_load(args, args.new))
    with _progress(max(old.group_count(), new.group_count()), "comparing") as step:
        changes = list(table_diff.diff_tables(old, new, on_group=step, jobs=args.jobs))
    fmt = args.format or "text"
    if fmt == "json":
        _print_json([c.as_dict() for c in changes])
    elif fmt == "markdown":
        header = ("application", *table.DIMENSIONS[1:], "old", "new", "changed", "rules changed")
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for c in changes:
            who = f"{c.client_name} ({c.request.client})" if c.client_name else c.request.client
            cells = [who, *(c.request.get(d) for d in table.DIMENSIONS[1:])]
            cells += [_summary(c.old), _summary(c.new), "; ".join(_field_lines(c)), _rule_delta(c)]
            lines.append("| " + " | ".join(x.replace("|", "\\|") for x in cells) + " |")
        sys.stdout.write("\n".join(lines) + "\n")
    else:
        tty = _is_tty(sys.stdout)
        console = _console() if tty else None
        if not changes:
            print("No request class changes its outcome.")
        for c in changes:
            block = [_change_key(c), f"    old: {_summary(c.old)}", f"    new: {_summary(c.new)}"]
            block += [f"    {line}" for line in _field_lines(c)]
            block.append(f"    rules: {_rule_delta(c)}")
            if console is not None:
                from rich.text import Text

                styles = ["bold", "red", "green", *(["yellow"] * (len(block) - 4)), "dim"]
                for line, style in zip(block, styles, strict=True):
                    console.print(Text(line, style=style))
            else:
                sys.stdout.write("\n".join(block) + "\n")
        if changes:
            print(f"{len(changes)} request class{'es' if len(changes) != 1 else ''} change{'' if len(changes) != 1 else 's'} outcome.")
    return 1 if changes else 0


# ---------------------------------------------------------------------------------------
# check and clients
# ---------------------------------------------------------------------------------------


def _notes_summary(notes: Sequence[str]) -> str:
    """The loader's notes in one line: how many of each kind (derived ids, secrets, ...)."""
    kinds: dict[str, int] = {}
    for note in notes:
        what = note.split(": ", 1)[-1]
        kind = "derived ids" if "derived stable id" in what else "derived local-testing secrets" if "secret" in what else "other notes"
        kinds[kind] = kinds.get(kind, 0) + 1
    parts = ", ".join(f"{count} {kind}" for kind, count in kinds.items())
    return f"note: {len(notes)} loader note{'s' if len(notes) != 1 else ''} ({parts}); -v lists them"


def cmd_check(args: argparse.Namespace) -> int:
    from claimsengine.lint import lint

    loaded = _load(args)
    findings = lint(loaded.tenant, derived_api_secrets=loaded.derived_api_secrets)
    errors = sum(1 for f in findings if f.severity == "error")
    located = [(f, loaded.source.locate(f.path) if f.path else None) for f in findings]
    if args.format == "json":
        _print_json(
            {
                "warnings": [{"file": w.file, "path": w.path, "message": w.message, "line": w.line} for w in loaded.warnings],
                "notes": list(loaded.notes),
                "findings": [
                    {
                        "code": f.code,
                        "severity": f.severity,
                        "path": f.path,
                        "message": f.message,
                        "file": where.file if where is not None else None,
                        "source_path": where.path if where is not None else None,
                        "line": where.line if where is not None else None,
                    }
                    for f, where in located
                ],
                "errors": errors,
            }
        )
        return 1 if errors else 0
    lines: list[tuple[str, str]] = [("yellow", f"loader warning: {w}") for w in loaded.warnings]
    if loaded.notes and args.verbose:
        lines += [("dim", f"note: {n}") for n in loaded.notes]
    elif loaded.notes:
        lines.append(("dim", _notes_summary(loaded.notes)))
    colours = {"error": "red", "warning": "yellow", "info": "cyan"}
    for f, where in located:
        at = "(tenant)" if where is None else f"{where.file}:{where.path}" if where.file else where.path
        if where is not None and where.line is not None:
            at += f" (line {where.line})"
        lines.append((colours.get(f.severity, ""), f"{f.severity}: {f.code} at {at}: {f.message}"))
    counts = {s: sum(1 for f in findings if f.severity == s) for s in ("error", "warning", "info")}
    summary = f"{counts['error']} error(s), {counts['warning']} warning(s), {counts['info']} info, {len(loaded.warnings)} loader warning(s)"
    if _is_tty(sys.stdout):
        from rich.text import Text

        console = _console()
        for style, line in lines:
            console.print(Text(line, style=style))
        console.print(Text(summary, style="bold red" if errors else "bold green"))
    else:
        sys.stdout.write("".join(line + "\n" for _, line in lines) + summary + "\n")
    return 1 if errors else 0


def cmd_clients(args: argparse.Namespace) -> int:
    loaded = _load(args)
    creds = [
        {
            "name": c.name,
            "client_id": c.client_id,
            "client_secret": c.client_secret.get_secret_value() if c.client_secret is not None else None,
            "source": c.source,
        }
        for c in loaded.credentials
    ]
    if args.format == "json":
        _print_json(creds)
        return 0
    if _is_tty(sys.stdout):
        from rich.table import Table

        grid = Table(title=f"Credentials: {loaded.tenant.domain}")
        for column in ("name", "client_id", "client_secret", "source"):
            grid.add_column(column, overflow="fold")
        for c in creds:
            grid.add_row(*(str(c[k] or "") for k in ("name", "client_id", "client_secret", "source")))
        _console().print(grid)
    else:
        for c in creds:
            sys.stdout.write("\t".join(str(c[k] or "") for k in ("name", "client_id", "client_secret", "source")) + "\n")
    return 0


def cmd_docs(args: argparse.Namespace) -> int:
    return docgen.main(["--write-docs" if args.write else "--check-docs", *(["--output", args.output] if args.output else [])])


# ---------------------------------------------------------------------------------------
# serve
# ---------------------------------------------------------------------------------------


def _server_module() -> tuple[Any, str | None]:
    try:
        from claimsengine.adapters import server
    except ImportError as exc:
        missing = getattr(exc, "name", None) or str(exc)
        return None, (
            f"{PROG} serve is unavailable: {missing} could not be imported. Install the extras: pip install 'claimsengine[server]'"
        )
    return server, None


def _serve_unavailable(message: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        print(message, file=sys.stderr)
        return 2

    return run


# ---------------------------------------------------------------------------------------
# The parser
# ---------------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors reported as ``prog: error: ...`` and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def _add_globals(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    group = parser.add_argument_group("tenant options (before or after the command)")
    group.add_argument(
        "--tenant", metavar="PATH", default=default(str(EXAMPLE_TENANT)), help="tenant file or directory (default: the example)"
    )
    group.add_argument(
        "--auth0-domain",
        metavar="HOST",
        default=default(None),
        help="the tenant's canonical domain (e.g. acme.auth0.com), which Deploy CLI exports do not record",
    )
    group.add_argument("--keyword", metavar="KEY=VALUE", action="append", default=default(None), help="keyword replacement (repeatable)")
    group.add_argument("--keyword-file", metavar="PATH", default=default(None), help="JSON or YAML mapping of keyword values")
    group.add_argument("--credentials", metavar="PATH", default=default(None), help="client credentials overlay (JSON or YAML)")
    group.add_argument(
        "--node-modules",
        metavar="DIR",
        default=default(None),
        help="installed Node modules the tenant's Actions depend on (a node_modules folder)",
    )
    group.add_argument(
        "--action-secrets", metavar="PATH", default=default(None), help="values of the Actions' secrets: {action name: {SECRET: value}}"
    )
    group.add_argument(
        "--users", metavar="PATH", default=default(None), help="users with bcrypt password hashes, in Auth0's bulk user import JSON"
    )
    group.add_argument(
        "--user-assignments",
        metavar="PATH",
        default=default(None),
        help="the users' connection, roles, organization memberships and MFA factors (JSON; see docs/server.md)",
    )


def _add_request_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--request", metavar="FILE", help="JSON object of token endpoint parameters (default: stdin)")
    parser.add_argument(
        "--domain",
        "--host",
        dest="host",
        metavar="HOST",
        help="the domain the request came through, which decides iss (default: the canonical domain)",
    )
    parser.add_argument("--now", metavar="EPOCH", type=int, help="Unix time of the request (default: the current time)")
    parser.add_argument("--authorization", metavar="HEADER", help="Authorization header value, e.g. 'Basic ...'")


def _jobs(value: str) -> int:
    try:
        jobs = int(value)
    except ValueError:
        jobs = 0
    if jobs < 1:
        raise argparse.ArgumentTypeError(f"expects a number of processes (1 or more), got {value!r}")
    return jobs


def _add_jobs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--jobs", "-j", metavar="N", type=_jobs, default=1, help="compute with N processes (large tenants)")


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Decide what Auth0 would issue for a token request, or which error, and why.")
    _add_globals(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    def command(name: str, func: Callable[[argparse.Namespace], int], help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        _add_globals(p, suppress=True)
        p.set_defaults(func=func)
        return p

    p = command("decide", cmd_decide, "decide a token request; print the decision as JSON")
    _add_request_options(p)
    p.add_argument("--keys", metavar="FILE", help="the key set file (as serve --keys writes it): its current key id goes in header.kid")
    p = command("explain", cmd_explain, "decide a token request and explain the decision in plain words")
    _add_request_options(p)
    p = command("table", cmd_table, "the tenant's decision table")
    p.add_argument("--format", choices=table_render.FORMATS, help="output format (default: a terminal table, or markdown when piped)")
    p.add_argument("--output", "-o", metavar="FILE", help="write to FILE instead of stdout (replaced only when complete)")
    _add_jobs(p)
    p = command("check", cmd_check, "lint the tenant: loader warnings and findings; exit 1 on an error")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--verbose", "-v", action="store_true", help="list every loader note (default: one summary line)")
    p = command("diff", cmd_diff, "request classes whose outcome changes between two configurations; exit 1 if any")
    p.add_argument("old", metavar="OLD", help="the current configuration")
    p.add_argument("new", metavar="NEW", help="the proposed configuration")
    p.add_argument("--format", choices=("text", "markdown", "json"), default="text")
    _add_jobs(p)
    p = command("clients", cmd_clients, "the effective client credentials (shows secrets)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p = command("docs", cmd_docs, "regenerate (--write) or check the generated pages under docs/")
    p.add_argument("--write", action="store_true", help="write the pages (default: check, exit 1 if one is stale or missing)")
    p.add_argument("--output", "-o", metavar="DIR", help="the docs directory (default: ./docs)")

    # serve: the server module (and its extras) is imported only when asked for.
    if "serve" in argv:
        server, problem = _server_module()
        if server is None:
            p = command("serve", _serve_unavailable(problem or "serve is unavailable"), "serve the tenant over HTTP")
            p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        else:
            p = command("serve", server.run, "serve the tenant over HTTP (a fake Auth0)")
            server.add_arguments(p)
    else:
        sub.add_parser("serve", help="serve the tenant over HTTP (a fake Auth0)", add_help=False)
    return parser


def _fail(message: str) -> int:
    print(f"{PROG}: {message}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``claimsengine`` console script."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(arguments)
    args = parser.parse_args(arguments)
    from claimsengine.adapters.loader import ConfigError

    try:
        result: int = args.func(args)
    except ConfigError as exc:
        return _fail(f"cannot load the tenant configuration:\n{exc}")
    except UsageError as exc:
        return _fail(str(exc))
    except BrokenPipeError:
        # The reader went away (e.g. `| head`); stop quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        return 130
    return result


if __name__ == "__main__":
    raise SystemExit(main())

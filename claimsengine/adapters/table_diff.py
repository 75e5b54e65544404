"""Diffs of decision tables: the request classes whose outcome changes between two tenants."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from dataclasses import fields as dataclass_fields
from typing import Any

from .table import FIELD_RULES, GRANTS, Outcome, RequestClass, TableContext, merge_rows, stamp_class, stamp_outcome, twin_map


@dataclass(frozen=True)
class FieldChange:
    """One field of the outcome that differs, and the rule ids that explain it."""

    field: str
    old: Any
    new: Any
    rules: tuple[str, ...]


@dataclass(frozen=True)
class Change:
    """A request class (cells may be ``any``) whose outcome differs between two tenants."""

    request: RequestClass
    old: Outcome | None
    new: Outcome | None
    client_name: str = ""

    def fields(self) -> list[FieldChange]:
        """Every outcome field that changed (``rules`` aside), each with the rule ids behind it."""
        old_rules = self.old.rules if self.old is not None else ()
        new_rules = self.new.rules if self.new is not None else ()
        delta = tuple(r for r in dict.fromkeys((*old_rules, *new_rules)) if (r in old_rules) != (r in new_rules))
        # The rule that ended a trace decided its outcome (the rejection or the last step).
        deciding = tuple(dict.fromkeys(t[-1] for t in (old_rules, new_rules) if t))
        out: list[FieldChange] = []
        for name, prefixes in FIELD_RULES.items():
            before = getattr(self.old, name) if self.old is not None else None
            after = getattr(self.new, name) if self.new is not None else None
            if before == after:
                continue
            rules: tuple[str, ...] = ()
            if prefixes:
                rules = tuple(r for r in dict.fromkeys((*new_rules, *old_rules)) if r.startswith(prefixes))
            out.append(FieldChange(name, before, after, rules or delta or deciding))
        return out

    def rule_delta(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(rules only the old trace has, rules only the new trace has)."""
        old_rules = self.old.rules if self.old is not None else ()
        new_rules = self.new.rules if self.new is not None else ()
        return tuple(r for r in old_rules if r not in new_rules), tuple(r for r in new_rules if r not in old_rules)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = asdict(self.request)
        out["client_name"] = self.client_name or None
        out["old"] = _outcome_dict(self.old)
        out["new"] = _outcome_dict(self.new)
        out["changed"] = [{"field": f.field, "old": _json(f.old), "new": _json(f.new), "rules": list(f.rules)} for f in self.fields()]
        return out


def _json(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _outcome_dict(o: Outcome | None) -> dict[str, Any] | None:
    """The outcome's fields (as in ``Outcome``), as JSON values."""
    if o is None:
        return None
    return {f.name: _json(getattr(o, f.name)) for f in dataclass_fields(o)}


def diff_tables(old: TableContext, new: TableContext, *, on_group: Callable[[], None] | None = None, jobs: int = 1) -> Iterator[Change]:
    """Request classes whose outcome changes from ``old`` to ``new``, group by group.

    Classes are compared on their key (application, grant type, audience, scope class,
    domain, organization class, state); a class only one tenant has shows ``None`` on the other
    side. A group (application x grant type) with no change costs its two evaluations and
    one comparison (a group refused alike in both before its grant's own parameters are
    read, two briefs: ``TableContext.early_group``); only groups with a change are merged, and
    unchanged classes take part in that merge so that ``any`` never stands for a class that did not change. An
    application that has the same first twin in both tenants gets that twin's changes with
    its client id stamped in (``table.twin_map``).
    """
    old_clients = {c.client_id: c for c in old.tenant.clients}
    new_clients = {c.client_id: c for c in new.tenant.clients}
    groups = [(client_id, grant) for client_id in dict.fromkeys([*old_clients, *new_clients]) for grant in GRANTS]
    old_twins, new_twins = old.twins(), new.twins()

    def rep_of(client_id: str) -> str | None:
        a, b = old_twins.get(client_id, ()), new_twins.get(client_id, ())
        return a[0] if len(a) > 1 and len(b) > 1 and a[0] == b[0] else None

    def evaluate(index: int) -> tuple[list[Change], bool, frozenset[Outcome]]:
        client_id, grant = groups[index]
        if client_id in old_clients and client_id in new_clients:
            brief = old.early_group(old_clients[client_id], grant)
            if brief is not None and brief == new.early_group(new_clients[client_id], grant):
                # Refused alike, on every domain, before the grant's own parameters are read, with
                # the same classes: the same group in both tenants, so no change (as the table's
                # single row, without enumerating its classes).
                if rep_of(client_id) != client_id:
                    return [], True, frozenset()
                exact = old.early_witnessed(brief, client_id, grant, old_twins[client_id][1]) and new.early_witnessed(
                    brief, client_id, grant, new_twins[client_id][1]
                )
                return [], exact, frozenset(brief[0].values())
        a = old.evaluate_group(old_clients[client_id], grant) if client_id in old_clients else {}
        b = new.evaluate_group(new_clients[client_id], grant) if client_id in new_clients else {}
        changes = _changes(a, b, (new_clients.get(client_id) or old_clients[client_id]).name)
        if rep_of(client_id) != client_id:
            return changes, True, frozenset()
        exact = old.witnessed(a, old_clients[client_id], grant, old_twins[client_id][1]) and new.witnessed(
            b, new_clients[client_id], grant, new_twins[client_id][1]
        )
        return changes, exact, frozenset((*a.values(), *b.values()))

    def stamp(changes: list[Change], rep: str, client_id: str) -> list[Change]:
        name = (new_clients.get(client_id) or old_clients[client_id]).name
        return [
            Change(
                stamp_class(c.request, client_id),
                None if c.old is None else stamp_outcome(c.old, rep, client_id),
                None if c.new is None else stamp_outcome(c.new, rep, client_id),
                name,
            )
            for c in changes
        ]

    for changes in twin_map(groups, rep_of, evaluate, stamp, jobs):
        yield from changes
        if on_group is not None:
            on_group()


def _changes(a: dict[RequestClass, Outcome], b: dict[RequestClass, Outcome], name: str) -> list[Change]:
    if a == b:
        return []
    pairs = {k: (a.get(k), b.get(k)) for k in dict.fromkeys([*a, *b])}
    return [Change(cls, before, after, name) for cls, (before, after) in merge_rows(pairs) if before != after]

"""Diffs of decision tables: the request classes whose outcome changes between two tenants."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from dataclasses import fields as dataclass_fields
from typing import Any

from .parallel import ordered_map
from .table import FIELD_RULES, GRANTS, Outcome, RequestClass, TableContext, merge_rows, stamp_group


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
    domain, organization class); a class only one tenant has shows ``None`` on the other
    side. A group (application x grant type) with no change costs its two evaluations and
    one comparison; only groups with a change are merged, and unchanged classes take part
    in that merge so that ``any`` never stands for a class that did not change.
    """
    old_clients = {c.client_id: c for c in old.tenant.clients}
    new_clients = {c.client_id: c for c in new.tenant.clients}
    groups = [(client_id, grant) for client_id in dict.fromkeys([*old_clients, *new_clients]) for grant in GRANTS]

    def compare(index: int) -> list[Change]:
        client_id, grant = groups[index]
        # Twins' groups are their first member's stamped (TableContext.template): when both
        # tenants stamp from the same member's equal groups, the stamped groups are equal too.
        ra, a, memo = old.template(old_clients[client_id], grant) if client_id in old_clients else (client_id, {}, {})
        rb, b, _ = new.template(new_clients[client_id], grant) if client_id in new_clients else (client_id, {}, {})
        if ra == rb:
            seen = memo.get(("equal", rb))
            if seen is None or seen[0] is not b:
                seen = memo[("equal", rb)] = (b, a == b)
            if seen[1]:
                return []
        a, b = stamp_group(a, ra, client_id), stamp_group(b, rb, client_id)
        if a == b:
            return []
        name = (new_clients.get(client_id) or old_clients[client_id]).name
        pairs = {k: (a.get(k), b.get(k)) for k in dict.fromkeys([*a, *b])}
        return [Change(cls, before, after, name) for cls, (before, after) in merge_rows(pairs) if before != after]

    for changes in ordered_map(compare, len(groups), jobs):
        yield from changes
        if on_group is not None:
            on_group()

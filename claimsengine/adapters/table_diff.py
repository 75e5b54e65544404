"""Diffs of decision tables: the request classes whose outcome changes between two tenants."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields
from typing import Any

from .table import GRANTS, MERGE_ORDER, Outcome, RequestClass, TableContext, merge_rows


@dataclass(frozen=True)
class Change:
    """A request class (cells may be ``any``) whose outcome differs between two tenants."""

    request: RequestClass
    old: Outcome | None
    new: Outcome | None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = asdict(self.request)
        out["old"] = _outcome_dict(self.old)
        out["new"] = _outcome_dict(self.new)
        return out


def _outcome_dict(o: Outcome | None) -> dict[str, Any] | None:
    if o is None:
        return None
    d = {f.name: getattr(o, f.name) for f in fields(o)}
    d["rules"] = list(o.rules)
    return d


def diff_tables(old: TableContext, new: TableContext, *, on_group: Callable[[], None] | None = None) -> Iterator[Change]:
    """Request classes whose outcome changes from ``old`` to ``new``, group by group.

    Classes are compared on their key (application, grant type, audience, scope class,
    domain, organization class); a class only one tenant has shows ``None`` on the other
    side. Unchanged classes help merging but are not reported.
    """
    old_clients = {c.client_id: c for c in old.tenant.clients}
    new_clients = {c.client_id: c for c in new.tenant.clients}
    ids = list(dict.fromkeys([*old_clients, *new_clients]))
    for client_id in ids:
        for grant in GRANTS:
            a = old.raw(old_clients[client_id], grant) if client_id in old_clients else {}
            b = new.raw(new_clients[client_id], grant) if client_id in new_clients else {}
            pairs = {k: (a.get(k), b.get(k)) for k in dict.fromkeys([*a, *b])}
            # The merge order that reports the changes in the fewest rows (ties: the first order).
            best: list[tuple[RequestClass, tuple[Outcome | None, Outcome | None]]] | None = None
            for order in itertools.permutations(MERGE_ORDER):
                changed = [(k, v) for k, v in merge_rows(pairs, order) if v[0] != v[1]]
                if best is None or len(changed) < len(best):
                    best = changed
            for cls, (before, after) in best or []:
                yield Change(cls, before, after)
            if on_group is not None:
                on_group()

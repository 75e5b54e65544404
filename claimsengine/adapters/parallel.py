"""An ordered map over forked worker processes, for tabulating large tenants (``table --jobs N``).

The work is a closure over the tenant; forked workers inherit it, so nothing but the group
index goes to a worker and only the (small) results come back. Where ``fork`` is not
available, or one job is asked for, the work runs in this process.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

_WORK: Callable[[int], Any] | None = None


def _run(index: int) -> Any:
    assert _WORK is not None, "a worker runs only inside ordered_map"
    return _WORK(index)


def ordered_map(work: Callable[[int], T], count: int, jobs: int) -> Iterator[T]:
    """``work(0), ..., work(count - 1)`` in order, computed by up to ``jobs`` processes."""
    global _WORK
    if jobs <= 1 or count < 2 or "fork" not in multiprocessing.get_all_start_methods():
        for index in range(count):
            yield work(index)
        return
    _WORK = work
    try:
        with multiprocessing.get_context("fork").Pool(min(jobs, count)) as pool:
            yield from pool.imap(_run, range(count), chunksize=max(1, count // (jobs * 8)))
    finally:
        _WORK = None

"""The state store's contract, run against every backend: memory, SQLite and a real Redis."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from claimsengine.adapters.store import MemoryStore, RedisStore, SqliteStore, Store, StoreError, open_store
from tests.services import redis_server

NOW = 1_800_000_000
T = TypeVar("T")


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture(params=["memory", "sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "memory":
        opened: Store = open_store("memory")
    elif request.param == "sqlite":
        opened = open_store(f"sqlite:///{tmp_path / 'state.sqlite3'}")
    else:
        url: str = request.getfixturevalue("redis_url")
        opened = open_store(url)
        assert isinstance(opened, RedisStore)
        opened._redis.flushdb()
    yield opened
    opened.close()


def test_open_store_picks_the_backend_from_the_url(tmp_path: Path) -> None:
    assert isinstance(open_store("memory"), MemoryStore)
    sqlite = open_store(f"sqlite:///{tmp_path / 's.db'}")
    assert isinstance(sqlite, SqliteStore)
    assert sqlite.url == f"sqlite:///{tmp_path / 's.db'}"
    sqlite.close()
    for bad in ("", "sqlite:///", "postgres://x", "memory:", "redis"):
        with pytest.raises(StoreError):
            open_store(bad)


def test_an_unreachable_redis_is_a_store_error_without_its_password() -> None:
    from tests.services import free_port

    with pytest.raises(StoreError) as caught:
        open_store(f"redis://user:hunter2@127.0.0.1:{free_port()}/0")
    assert "hunter2" not in str(caught.value)
    assert "[redacted]" in str(caught.value)


def test_a_claim_succeeds_once_until_it_expires(store: Store) -> None:
    assert not store.claimed("code", "abc", now=NOW)
    assert store.claim("code", "abc", expires=NOW + 60, now=NOW)
    assert not store.claim("code", "abc", expires=NOW + 60, now=NOW + 1)
    assert store.claimed("code", "abc", now=NOW + 1)
    assert not store.claimed("jti", "abc", now=NOW + 1)  # kinds are separate
    assert store.claim("jti", "abc", expires=NOW + 60, now=NOW)
    store.release("jti", "abc")
    assert not store.claimed("jti", "abc", now=NOW)
    if not isinstance(store, RedisStore):  # Redis expires in real seconds; see the TTL test
        assert not store.claimed("code", "abc", now=NOW + 60)
        assert store.claim("code", "abc", expires=NOW + 120, now=NOW + 60)


def test_redis_entries_carry_the_ttl_of_what_they_guard(redis_url: str) -> None:
    store = RedisStore(redis_url)
    store._redis.flushdb()
    store.claim("code", "ttl", expires=NOW + 600, now=NOW)
    store.add("client_hour", "c", 1, expires=NOW + 3600, now=NOW)
    assert store.swap("family", "f", None, "{}", expires=NOW + 86400, now=NOW)
    store.link("grant", "g", "f", expires=NOW + 7200, now=NOW)
    store.link("grant", "g", "e", expires=NOW + 60, now=NOW)  # the index keeps its latest member's ttl
    ttls = sorted(int(store._redis.ttl(k)) for k in store._redis.keys("claimsengine:*"))
    assert 590 <= ttls[0] <= 600
    assert 3590 <= ttls[1] <= 3600
    assert 7190 <= ttls[2] <= 7200
    assert 86390 <= ttls[3] <= 86400
    # Keys are digests: the code itself is not stored.
    assert not any(b"ttl" in k for k in store._redis.keys("*"))
    store.close()


def test_counters_add_and_expire(store: Store) -> None:
    assert store.count("client_hour", "c1", now=NOW) == 0
    assert store.add("client_hour", "c1", 1, expires=NOW + 3600, now=NOW) == 1
    assert store.add("client_hour", "c1", 1, expires=NOW + 3600, now=NOW) == 2
    assert store.add("client_hour", "c1", -1, expires=NOW + 3600, now=NOW) == 1
    assert store.count("client_hour", "c1", now=NOW) == 1
    assert store.count("client_hour", "c2", now=NOW) == 0
    if not isinstance(store, RedisStore):
        assert store.count("client_hour", "c1", now=NOW + 3600) == 0
        assert store.add("client_hour", "c1", 1, expires=NOW + 7200, now=NOW + 3600) == 1


def test_a_record_changes_only_from_the_value_its_writer_read(store: Store) -> None:
    assert store.load("family", "fam", now=NOW) is None
    assert not store.swap("family", "fam", '{"current":0}', '{"current":1}', expires=NOW + 60, now=NOW)
    assert store.swap("family", "fam", None, '{"current":0}', expires=NOW + 60, now=NOW)
    assert not store.swap("family", "fam", None, '{"current":9}', expires=NOW + 60, now=NOW)  # exists now
    assert store.swap("family", "fam", '{"current":0}', '{"current":1}', expires=NOW + 60, now=NOW)
    assert not store.swap("family", "fam", '{"current":0}', '{"current":1}', expires=NOW + 60, now=NOW)  # stale read
    assert store.load("family", "fam", now=NOW) == '{"current":1}'
    assert store.load("device", "fam", now=NOW) is None  # kinds are separate
    if not isinstance(store, RedisStore):  # Redis expires in real seconds; see the TTL test
        assert store.load("family", "fam", now=NOW + 60) is None
        assert store.swap("family", "fam", None, '{"current":0}', expires=NOW + 120, now=NOW + 60)


def test_several_records_change_together_or_not_at_all(store: Store) -> None:
    assert store.swap_all("family", {"a": (None, "a0", NOW + 60), "b": (None, "b0", NOW + 60)}, now=NOW)
    # One stale expectation and nothing is written, not even the records that matched.
    assert not store.swap_all("family", {"a": ("a0", "a1", NOW + 60), "b": ("stale", "b1", NOW + 60)}, now=NOW)
    assert (store.load("family", "a", now=NOW), store.load("family", "b", now=NOW)) == ("a0", "b0")
    assert not store.swap_all("family", {"a": ("a0", "a1", NOW + 60), "c": ("c0", "c1", NOW + 60)}, now=NOW)  # c is absent
    assert store.load("family", "a", now=NOW) == "a0"
    assert store.swap_all("family", {"a": ("a0", "a1", NOW + 60), "b": ("b0", "b1", NOW + 60)}, now=NOW)
    assert (store.load("family", "a", now=NOW), store.load("family", "b", now=NOW)) == ("a1", "b1")
    assert store.swap_all("family", {}, now=NOW)
    assert store.load("device", "a", now=NOW) is None  # kinds are separate


def test_an_index_lists_its_members_until_each_expires(store: Store) -> None:
    assert store.linked("grant", "alice", now=NOW) == []
    store.link("grant", "alice", "f2", expires=NOW + 60, now=NOW)
    store.link("grant", "alice", "f1", expires=NOW + 30, now=NOW)
    store.link("grant", "alice", "f1", expires=NOW + 10, now=NOW)  # an earlier expiry does not shorten it
    store.link("grant", "bob", "f3", expires=NOW + 60, now=NOW)
    assert store.linked("grant", "alice", now=NOW) == ["f1", "f2"]
    assert store.linked("grant", "bob", now=NOW) == ["f3"]
    assert store.linked("other", "alice", now=NOW) == []  # kinds are separate
    assert store.linked("grant", "alice", now=NOW + 30) == ["f2"]
    store.link("grant", "alice", "f4", expires=NOW + 90, now=NOW + 40)
    assert store.linked("grant", "alice", now=NOW + 40) == ["f2", "f4"]
    if not isinstance(store, RedisStore):  # Redis forgets the whole index in real seconds
        assert store.linked("grant", "alice", now=NOW + 90) == []


def test_captured_requests_keep_the_last_few(store: Store) -> None:
    for i in range(7):
        store.capture("token", f"r{i}", limit=5)
    store.capture("authorize", "a\ud800", limit=5)
    assert store.captured("token") == ["r2", "r3", "r4", "r5", "r6"]
    assert store.captured("authorize") == ["a\ud800"]
    assert store.captured("none") == []


def race(action: Callable[[], T], n: int = 32) -> list[T]:
    barrier = threading.Barrier(n)

    def run() -> T:
        barrier.wait()
        return action()

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(lambda _: run(), range(n)))


def test_a_claim_raced_by_32_threads_succeeds_exactly_once(store: Store) -> None:
    outcomes = race(lambda: store.claim("code", "raced", expires=NOW + 60, now=NOW))
    assert outcomes.count(True) == 1


def test_a_record_swap_raced_by_32_threads_succeeds_exactly_once(store: Store) -> None:
    assert store.swap("family", "raced", None, "0", expires=NOW + 60, now=NOW)
    outcomes = race(lambda: store.swap("family", "raced", "0", f"1-{threading.get_ident()}", expires=NOW + 60, now=NOW))
    assert outcomes.count(True) == 1
    assert store.load("family", "raced", now=NOW) != "0"


def test_all_or_nothing_swaps_raced_by_32_threads_leave_one_writer_on_every_record(store: Store) -> None:
    keys = ("x", "y", "z")
    assert store.swap_all("family", dict.fromkeys(keys, (None, "0", NOW + 60)), now=NOW)

    def write() -> bool:
        mine = str(threading.get_ident())
        return store.swap_all("family", dict.fromkeys(keys, ("0", mine, NOW + 60)), now=NOW)

    assert race(write).count(True) == 1
    assert len({store.load("family", k, now=NOW) for k in keys}) == 1


def test_links_raced_by_32_threads_keep_every_member(store: Store) -> None:
    race(lambda: store.link("grant", "g", str(threading.get_ident()), expires=NOW + 60, now=NOW))
    assert len(store.linked("grant", "g", now=NOW)) == 32


def test_counters_raced_by_32_threads_count_every_add(store: Store) -> None:
    values = race(lambda: store.add("client_day", "c", 1, expires=NOW + 60, now=NOW))
    assert sorted(values) == list(range(1, 33))


def test_two_sqlite_connections_share_one_truth(tmp_path: Path) -> None:
    a, b = SqliteStore(tmp_path / "s.db"), SqliteStore(tmp_path / "s.db")
    assert a.claim("code", "x", expires=NOW + 60, now=NOW)
    assert not b.claim("code", "x", expires=NOW + 60, now=NOW)
    assert b.add("n", "k", 2, expires=NOW + 60, now=NOW) == 2
    assert a.count("n", "k", now=NOW) == 2
    a.close()
    b.close()


def test_the_memory_store_is_bounded_and_forgets_what_expires_soonest() -> None:
    store = MemoryStore(max_entries=3)
    for i in range(3):
        assert store.claim("jti", f"j{i}", expires=NOW + 10 + i, now=NOW)
    assert store.claim("jti", "late", expires=NOW + 1000, now=NOW)
    assert len(store) == 3
    assert not store.claimed("jti", "j0", now=NOW)  # evicted: it would have expired first
    assert store.claimed("jti", "late", now=NOW)
    assert store._claims.evicted == 1
    # Expired entries go first, without counting as evictions.
    assert store.claim("jti", "after", expires=NOW + 2000, now=NOW + 500)
    assert store._claims.evicted == 1
    assert "MemoryStore(entries=" in repr(store)
    with pytest.raises(StoreError):
        MemoryStore(max_entries=0)


def test_a_counter_added_to_on_every_request_keeps_one_expiry_entry_in_memory() -> None:
    # A quota counter is added to on every issued token: its expiry bookkeeping must not grow.
    store = MemoryStore()
    for _ in range(500):
        store.add("client_hour", "app\0486000", 1, expires=NOW + 3600, now=NOW)
    assert store.count("client_hour", "app\0486000", now=NOW) == 500
    assert len(store._counters._heap) == 1
    # Once due, the entry goes with its counter, which starts again.
    store.add("client_hour", "app\0486000", 1, expires=NOW + 7200, now=NOW + 3600)
    store.add("other", "x", 1, expires=NOW + 9000, now=NOW + 3601)
    assert store.count("client_hour", "app\0486000", now=NOW + 3601) == 1
    assert len(store._counters._heap) == 2


def test_sqlite_prunes_expired_rows(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "p.db")
    for i in range(600):
        store.claim("code", f"c{i}", expires=NOW + 1, now=NOW)
    store.claim("code", "live", expires=NOW + 10_000, now=NOW + 5000)
    for i in range(600):
        store.add("n", f"k{i}", 1, expires=NOW + 10_000, now=NOW + 5000)
    rows = store._db.execute("SELECT count(*) FROM claims").fetchone()[0]
    assert rows < 600
    assert store.claimed("code", "live", now=NOW + 5000)
    store.close()


@given(st.text(), st.text())
def test_any_kind_and_key_can_be_claimed_once_in_memory(kind: str, key: str) -> None:
    store = MemoryStore()
    assert store.claim(kind, key, expires=NOW + 1, now=NOW)
    assert not store.claim(kind, key, expires=NOW + 1, now=NOW)

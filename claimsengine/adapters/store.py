"""The fake tenant's shared state: what must be true across workers, replicas and restarts.

One small interface, three backends chosen by URL (``claimsengine serve --store URL``):

* ``memory``: a bounded in-process store (the default for one process);
* ``sqlite:///path``: a file every worker on the machine opens (the default for ``--workers N``);
* ``redis://host:port/db``: a Redis server shared by replicas on several machines.

What is kept: single-use keys (authorization codes, assertion ``jti``\\ s), counters
(tokens issued per hour and day, for quotas), records (small JSON facts changed by
compare-and-set: refresh-token families for rotation, reuse detection and revocation;
device codes' answers and polls), links (an index from one key to several members, each
until its own expiry: a user's grant to a client for an audience to its refresh-token
families) and a bounded log of captured requests. Every check-and-set is atomic in each
backend: one SQLite statement or ``BEGIN IMMEDIATE`` transaction, one Redis ``SET NX`` or Lua
script; ``swap_all`` changes several records at once or none. Every entry expires with the thing it
guards. Keys are stored as SHA-256 digests, so a store never holds a code or a token.

Times are the fake tenant's clock (``--now`` may fix it); Redis expiries are the difference
to ``now`` in seconds.
"""

from __future__ import annotations

import contextlib
import hashlib
import heapq
import sqlite3
import threading
from collections import deque
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

__all__ = [
    "DEFAULT_MAX_ENTRIES",
    "MemoryStore",
    "RedisStore",
    "SqliteStore",
    "Store",
    "StoreError",
    "open_store",
    "shown_url",
]

DEFAULT_MAX_ENTRIES = 100_000
# The captured-request log keeps at most this many records per kind.
DEFAULT_CAPTURE_LIMIT = 1_000


class StoreError(ValueError):
    """A store URL that names no backend, or a backend that cannot be opened."""


class Store(Protocol):
    """The shared truth. Every method is atomic with respect to every process using the store."""

    url: str

    def claim(self, kind: str, key: str, *, expires: int, now: int) -> bool:
        """Mark ``key`` used until ``expires``; True only for the one caller that marked it first."""
        ...

    def claimed(self, kind: str, key: str, *, now: int) -> bool:
        """Whether ``key`` is marked used (and not expired)."""
        ...

    def release(self, kind: str, key: str) -> None:
        """Forget ``key`` (undo a claim whose outcome was not used)."""
        ...

    def add(self, kind: str, key: str, amount: int, *, expires: int, now: int) -> int:
        """Add ``amount`` to a counter that lives until ``expires``; the new value."""
        ...

    def count(self, kind: str, key: str, *, now: int) -> int:
        """A counter's value (0 when absent or expired)."""
        ...

    def load(self, kind: str, key: str, *, now: int) -> str | None:
        """The record stored under ``key`` (``None``: absent or expired)."""
        ...

    def swap(self, kind: str, key: str, expected: str | None, value: str, *, expires: int, now: int) -> bool:
        """If the record under ``key`` is ``expected`` (``None``: absent or expired), store
        ``value`` until ``expires``; True only when it did (compare-and-set)."""
        ...

    def swap_all(self, kind: str, changes: Mapping[str, tuple[str | None, str, int]], *, now: int) -> bool:
        """Compare-and-set several records at once: ``changes`` maps each key to (expected,
        new value, expires). Either every record is ``expected`` and all are written, or
        none is (True only when they were)."""
        ...

    def link(self, kind: str, key: str, member: str, *, expires: int, now: int) -> None:
        """Add ``member`` to the index ``key`` until ``expires`` (a later expiry extends it)."""
        ...

    def linked(self, kind: str, key: str, *, now: int) -> list[str]:
        """The members of the index ``key`` that have not expired, sorted."""
        ...

    def capture(self, kind: str, record: str, *, limit: int = DEFAULT_CAPTURE_LIMIT) -> None:
        """Append ``record`` (already redacted) to a log that keeps the last ``limit``."""
        ...

    def captured(self, kind: str) -> list[str]:
        """The captured records of ``kind``, oldest first."""
        ...

    def close(self) -> None: ...


def digest(kind: str, key: str) -> str:
    """The stored form of a key: never the key itself (codes and tokens are secrets)."""
    return hashlib.sha256(f"{kind}\0{key}".encode("utf-8", "surrogatepass")).hexdigest()


# ---------------------------------------------------------------------------------------
# memory
# ---------------------------------------------------------------------------------------


class _Expiring:
    """A bounded map of digests to (value, expiry). Full of live entries, it forgets the one
    expiring soonest first; ``bounded`` says whether that ever happened."""

    def __init__(self, max_entries: int) -> None:
        self.max = max_entries
        self.items: dict[str, tuple[Any, int]] = {}
        self._heap: list[tuple[int, str]] = []
        self.evicted = 0

    def get(self, key: str, now: int) -> Any:
        item = self.items.get(key)
        if item is None or item[1] <= now:
            return None
        return item[0]

    def put(self, key: str, value: Any, expires: int, now: int) -> None:
        heap = self._heap
        while heap and (heap[0][0] <= now or len(self.items) >= self.max):
            when, old = heapq.heappop(heap)
            item = self.items.get(old)
            if item is not None and item[1] == when:
                if when > now:
                    self.evicted += 1
                del self.items[old]
        previous = self.items.get(key)
        self.items[key] = (value, expires)
        # One heap entry per (key, expiry): a counter added to on every request keeps its one.
        if previous is None or previous[1] != expires:
            heapq.heappush(heap, (expires, key))

    def pop(self, key: str) -> None:
        self.items.pop(key, None)


class MemoryStore:
    """One process's store, bounded to ``max_entries`` per table."""

    def __init__(self, *, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        if max_entries < 1:
            raise StoreError("max_entries must be at least 1")
        self.url = "memory"
        self._lock = threading.Lock()
        self._claims = _Expiring(max_entries)
        self._counters = _Expiring(max_entries)
        self._records = _Expiring(max_entries)
        # An index's value: its members with their expiries; the index lives as long as its last.
        self._links = _Expiring(max_entries)
        self._logs: dict[str, deque[str]] = {}

    def __repr__(self) -> str:
        return f"MemoryStore(entries={len(self)})"

    def __len__(self) -> int:
        return len(self._claims.items) + len(self._counters.items) + len(self._records.items) + len(self._links.items)

    def claim(self, kind: str, key: str, *, expires: int, now: int) -> bool:
        k = digest(kind, key)
        with self._lock:
            if self._claims.get(k, now) is not None:
                return False
            self._claims.put(k, True, expires, now)
            return True

    def claimed(self, kind: str, key: str, *, now: int) -> bool:
        with self._lock:
            return self._claims.get(digest(kind, key), now) is not None

    def release(self, kind: str, key: str) -> None:
        with self._lock:
            self._claims.pop(digest(kind, key))

    def add(self, kind: str, key: str, amount: int, *, expires: int, now: int) -> int:
        k = digest(kind, key)
        with self._lock:
            value = int(self._counters.get(k, now) or 0) + amount
            self._counters.put(k, value, expires, now)
            return value

    def count(self, kind: str, key: str, *, now: int) -> int:
        with self._lock:
            return int(self._counters.get(digest(kind, key), now) or 0)

    def load(self, kind: str, key: str, *, now: int) -> str | None:
        with self._lock:
            value: str | None = self._records.get(digest(kind, key), now)
            return value

    def swap(self, kind: str, key: str, expected: str | None, value: str, *, expires: int, now: int) -> bool:
        k = digest(kind, key)
        with self._lock:
            if self._records.get(k, now) != expected:
                return False
            self._records.put(k, value, expires, now)
            return True

    def swap_all(self, kind: str, changes: Mapping[str, tuple[str | None, str, int]], *, now: int) -> bool:
        keyed = [(digest(kind, key), change) for key, change in changes.items()]
        with self._lock:
            if any(self._records.get(k, now) != expected for k, (expected, _, _) in keyed):
                return False
            for k, (_, value, expires) in keyed:
                self._records.put(k, value, expires, now)
            return True

    def link(self, kind: str, key: str, member: str, *, expires: int, now: int) -> None:
        k = digest(kind, key)
        with self._lock:
            members = {m: e for m, e in (self._links.get(k, now) or {}).items() if e > now}
            members[member] = max(expires, members.get(member, expires))
            self._links.put(k, members, max(members.values()), now)

    def linked(self, kind: str, key: str, *, now: int) -> list[str]:
        with self._lock:
            members: dict[str, int] = self._links.get(digest(kind, key), now) or {}
            return sorted(m for m, e in members.items() if e > now)

    def capture(self, kind: str, record: str, *, limit: int = DEFAULT_CAPTURE_LIMIT) -> None:
        with self._lock:
            log = self._logs.setdefault(kind, deque(maxlen=limit))
            log.append(record)

    def captured(self, kind: str) -> list[str]:
        with self._lock:
            return list(self._logs.get(kind, ()))

    def close(self) -> None:
        return None


# ---------------------------------------------------------------------------------------
# SQLite
# ---------------------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS claims (key TEXT PRIMARY KEY, expires INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS counters (key TEXT PRIMARY KEY, value INTEGER NOT NULL, expires INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS records (key TEXT PRIMARY KEY, value BLOB NOT NULL, expires INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS links (
  key TEXT NOT NULL, member TEXT NOT NULL, expires INTEGER NOT NULL, PRIMARY KEY (key, member)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS captured (id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, record BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS captured_kind ON captured (kind, id);
"""
# Expired rows are deleted every this many writes (and each write ignores expired rows).
_PRUNE_EVERY = 512


class SqliteStore:
    """A store in one SQLite file, shared by every process that opens it (WAL mode)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        self._lock = threading.Lock()
        self._writes = 0
        try:
            self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            with self._transaction() as db:
                db.executescript("BEGIN IMMEDIATE;" + _SCHEMA + "COMMIT;")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the SQLite store {self.path}: {exc}") from None

    def __repr__(self) -> str:
        return f"SqliteStore({str(self.path)!r})"

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self._db

    @contextlib.contextmanager
    def _immediate(self, now: int) -> Iterator[sqlite3.Connection]:
        """A write transaction: ``BEGIN IMMEDIATE`` takes the file's write lock up front."""
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                self._writes += 1
                if self._writes % _PRUNE_EVERY == 0:
                    for table in ("claims", "counters", "records", "links"):
                        db.execute(f"DELETE FROM {table} WHERE expires <= ?", (now,))  # noqa: S608 (fixed names)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def claim(self, kind: str, key: str, *, expires: int, now: int) -> bool:
        with self._immediate(now) as db:
            cur = db.execute(
                "INSERT INTO claims (key, expires) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET expires = excluded.expires WHERE claims.expires <= ?",
                (digest(kind, key), expires, now),
            )
            return cur.rowcount == 1

    def claimed(self, kind: str, key: str, *, now: int) -> bool:
        with self._transaction() as db:
            row = db.execute("SELECT 1 FROM claims WHERE key = ? AND expires > ?", (digest(kind, key), now)).fetchone()
        return row is not None

    def release(self, kind: str, key: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM claims WHERE key = ?", (digest(kind, key),))

    def add(self, kind: str, key: str, amount: int, *, expires: int, now: int) -> int:
        with self._immediate(now) as db:
            row = db.execute(
                "INSERT INTO counters (key, value, expires) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET "
                "value = CASE WHEN counters.expires <= ? THEN excluded.value ELSE counters.value + excluded.value END, "
                "expires = CASE WHEN counters.expires <= ? THEN excluded.expires ELSE counters.expires END "
                "RETURNING value",
                (digest(kind, key), amount, expires, now, now),
            ).fetchone()
        return int(row[0])

    def count(self, kind: str, key: str, *, now: int) -> int:
        with self._transaction() as db:
            row = db.execute("SELECT value FROM counters WHERE key = ? AND expires > ?", (digest(kind, key), now)).fetchone()
        return int(row[0]) if row is not None else 0

    def load(self, kind: str, key: str, *, now: int) -> str | None:
        with self._transaction() as db:
            row = db.execute("SELECT value FROM records WHERE key = ? AND expires > ?", (digest(kind, key), now)).fetchone()
        return bytes(row[0]).decode("utf-8") if row is not None else None

    def swap(self, kind: str, key: str, expected: str | None, value: str, *, expires: int, now: int) -> bool:
        k = digest(kind, key)
        with self._immediate(now) as db:
            row = db.execute("SELECT value FROM records WHERE key = ? AND expires > ?", (k, now)).fetchone()
            current = bytes(row[0]).decode("utf-8") if row is not None else None
            if current != expected:
                return False
            db.execute("INSERT OR REPLACE INTO records (key, value, expires) VALUES (?, ?, ?)", (k, value.encode("utf-8"), expires))
            return True

    def swap_all(self, kind: str, changes: Mapping[str, tuple[str | None, str, int]], *, now: int) -> bool:
        keyed = [(digest(kind, key), change) for key, change in changes.items()]
        with self._immediate(now) as db:
            for k, (expected, _, _) in keyed:
                row = db.execute("SELECT value FROM records WHERE key = ? AND expires > ?", (k, now)).fetchone()
                if (bytes(row[0]).decode("utf-8") if row is not None else None) != expected:
                    return False
            db.executemany(
                "INSERT OR REPLACE INTO records (key, value, expires) VALUES (?, ?, ?)",
                [(k, value.encode("utf-8"), expires) for k, (_, value, expires) in keyed],
            )
            return True

    def link(self, kind: str, key: str, member: str, *, expires: int, now: int) -> None:
        with self._immediate(now) as db:
            db.execute(
                "INSERT INTO links (key, member, expires) VALUES (?, ?, ?) ON CONFLICT (key, member) DO UPDATE SET "
                "expires = CASE WHEN links.expires <= ? THEN excluded.expires ELSE max(links.expires, excluded.expires) END",
                (digest(kind, key), member, expires, now),
            )

    def linked(self, kind: str, key: str, *, now: int) -> list[str]:
        with self._transaction() as db:
            rows = db.execute("SELECT member FROM links WHERE key = ? AND expires > ? ORDER BY member", (digest(kind, key), now)).fetchall()
        return [str(row[0]) for row in rows]

    def capture(self, kind: str, record: str, *, limit: int = DEFAULT_CAPTURE_LIMIT) -> None:
        with self._immediate(0) as db:
            db.execute("INSERT INTO captured (kind, record) VALUES (?, ?)", (kind, record.encode("utf-8", "surrogatepass")))
            db.execute(
                "DELETE FROM captured WHERE kind = ? AND id <= (SELECT id FROM captured WHERE kind = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
                (kind, kind, limit),
            )

    def captured(self, kind: str) -> list[str]:
        with self._transaction() as db:
            rows = db.execute("SELECT record FROM captured WHERE kind = ? ORDER BY id", (kind,)).fetchall()
        return [bytes(r[0]).decode("utf-8", "surrogatepass") for r in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()


# ---------------------------------------------------------------------------------------
# Redis
# ---------------------------------------------------------------------------------------

# KEYS[1] counter; ARGV amount, ttl. A new counter gets the ttl; an existing one keeps its own.
_ADD = """
local value = redis.call('INCRBY', KEYS[1], ARGV[1])
if redis.call('TTL', KEYS[1]) < 0 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return value
"""
# KEYS[1] record; ARGV: whether a record is expected ('1'/'0'), the expected value, the new
# value, ttl. Compare-and-set in one script, so no other client runs in between.
_SWAP = """
local current = redis.call('GET', KEYS[1])
if ARGV[1] == '1' then
  if current ~= ARGV[2] then return 0 end
elseif current then return 0 end
redis.call('SET', KEYS[1], ARGV[3], 'EX', ARGV[4])
return 1
"""

# KEYS: the records; ARGV: n, then per record whether one is expected, the expected value,
# the new value and the ttl. Every record is compared before any is written.
_SWAP_ALL = """
for i = 1, #KEYS do
  local current = redis.call('GET', KEYS[i])
  local base = (i - 1) * 4
  if ARGV[base + 1] == '1' then
    if current ~= ARGV[base + 2] then return 0 end
  elseif current then return 0 end
end
for i = 1, #KEYS do
  local base = (i - 1) * 4
  redis.call('SET', KEYS[i], ARGV[base + 3], 'EX', ARGV[base + 4])
end
return 1
"""
# KEYS[1] the index (a sorted set: member -> expiry on the tenant's clock); ARGV member,
# expires, now, ttl. Expired members go; the set lives at least as long as its latest member.
_LINK = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
redis.call('ZADD', KEYS[1], 'GT', ARGV[2], ARGV[1])
if redis.call('TTL', KEYS[1]) < tonumber(ARGV[4]) then redis.call('EXPIRE', KEYS[1], ARGV[4]) end
return 1
"""


class RedisStore:
    """A store in a Redis database, for replicas on several machines."""

    def __init__(self, url: str, *, prefix: str = "claimsengine:") -> None:
        import redis

        self.url = url
        self._prefix = prefix
        try:
            self._redis = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=10)
            self._redis.ping()
        except (redis.RedisError, ValueError) as exc:
            raise StoreError(f"cannot reach the Redis store {shown_url(url)}: {type(exc).__name__}") from None
        self._add = self._redis.register_script(_ADD)
        self._swap = self._redis.register_script(_SWAP)
        self._swap_all = self._redis.register_script(_SWAP_ALL)
        self._link = self._redis.register_script(_LINK)

    def __repr__(self) -> str:
        return f"RedisStore({shown_url(self.url)!r})"

    def _key(self, table: str, kind: str, key: str) -> str:
        return f"{self._prefix}{table}:{digest(kind, key)}"

    def claim(self, kind: str, key: str, *, expires: int, now: int) -> bool:
        return bool(self._redis.set(self._key("claim", kind, key), b"1", nx=True, ex=_ttl(expires, now)))

    def claimed(self, kind: str, key: str, *, now: int) -> bool:
        return bool(self._redis.exists(self._key("claim", kind, key)))

    def release(self, kind: str, key: str) -> None:
        self._redis.delete(self._key("claim", kind, key))

    def add(self, kind: str, key: str, amount: int, *, expires: int, now: int) -> int:
        return int(self._add(keys=[self._key("count", kind, key)], args=[amount, _ttl(expires, now)]))

    def count(self, kind: str, key: str, *, now: int) -> int:
        value = self._redis.get(self._key("count", kind, key))
        return int(value) if value is not None else 0

    def load(self, kind: str, key: str, *, now: int) -> str | None:
        value = self._redis.get(self._key("record", kind, key))
        return value.decode("utf-8") if isinstance(value, bytes) else None

    def swap(self, kind: str, key: str, expected: str | None, value: str, *, expires: int, now: int) -> bool:
        args = ["0" if expected is None else "1", expected or "", value, _ttl(expires, now)]
        return bool(self._swap(keys=[self._key("record", kind, key)], args=args))

    def swap_all(self, kind: str, changes: Mapping[str, tuple[str | None, str, int]], *, now: int) -> bool:
        keys, args = [], []
        for key, (expected, value, expires) in changes.items():
            keys.append(self._key("record", kind, key))
            args += ["0" if expected is None else "1", expected or "", value, _ttl(expires, now)]
        return bool(self._swap_all(keys=keys, args=args))

    def link(self, kind: str, key: str, member: str, *, expires: int, now: int) -> None:
        self._link(keys=[self._key("link", kind, key)], args=[member, expires, now, _ttl(expires, now)])

    def linked(self, kind: str, key: str, *, now: int) -> list[str]:
        values: list[bytes] = self._redis.zrangebyscore(self._key("link", kind, key), f"({now}", "+inf")  # type: ignore[assignment]
        return sorted(v.decode("utf-8") for v in values)

    def capture(self, kind: str, record: str, *, limit: int = DEFAULT_CAPTURE_LIMIT) -> None:
        k = f"{self._prefix}captured:{kind}"
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.rpush(k, record.encode("utf-8", "surrogatepass"))
            pipe.ltrim(k, -limit, -1)
            pipe.execute()

    def captured(self, kind: str) -> list[str]:
        values: list[bytes] = self._redis.lrange(f"{self._prefix}captured:{kind}", 0, -1)  # type: ignore[assignment]
        return [v.decode("utf-8", "surrogatepass") for v in values]

    def close(self) -> None:
        self._redis.close()


def _ttl(expires: int, now: int) -> int:
    return max(1, expires - now)


def shown_url(url: str) -> str:
    """``url`` with its password (if any) masked, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":[redacted]@")).geturl()


# ---------------------------------------------------------------------------------------
# Choosing a backend
# ---------------------------------------------------------------------------------------


def open_store(url: str, *, max_entries: int = DEFAULT_MAX_ENTRIES) -> Store:
    """The store a ``--store`` URL names: ``memory``, ``sqlite:///path`` or ``redis://host:port/db``."""
    if url == "memory":
        return MemoryStore(max_entries=max_entries)
    if url.startswith("sqlite:///") and len(url) > len("sqlite:///"):
        return SqliteStore(url[len("sqlite:///") :])
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisStore(url)
    raise StoreError(f"--store must be memory, sqlite:///PATH or redis://HOST:PORT/DB, not {shown_url(url)!r}")

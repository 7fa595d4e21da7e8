"""The hot-path SQL executor: plain driver calls, no ORM on the request path.

Measured here (2 cores): one indexed SELECT costs ~13 µs of CPU through ``sqlite3``, ~170 µs
through SQLAlchemy Core and ~720 µs through SQLAlchemy's async engine over aiosqlite. Manifest and
blob requests make one or two such queries, so the registry's stores use this executor; SQLModel
and SQLAlchemy still own the schema (``create_all``) and the cold paths.

SQL is written once with ``:name`` parameters. Reads and writes of a local SQLite database run
inline (page-cache reads, and commits that append to the write-ahead log without a sync); the
log's checkpoints, the only syncs, run in a worker thread (see :class:`SqliteBackend`), so the
event loop never waits on disk.

PostgreSQL (:class:`PostgresBackend`) runs on asyncpg. Measured here (2 cores, PostgreSQL 15 on
loopback, the manifest-by-tag SELECT, client-side CPU per query): asyncpg on a connection of our
own ~80 µs (~170 µs wall); asyncpg's ``Pool`` ~230 µs (~170 µs with its reset query skipped);
psycopg 3 async on one connection ~170 µs, through ``AsyncConnectionPool`` ~230–470 µs; psycopg 3
sync in a worker thread ~330 µs. A write transaction of five upserts: asyncpg ~510 µs, psycopg 3
sync in a worker thread ~950 µs, asyncpg driven from a worker thread (one loop hop per
statement) ~1,750 µs. So reads and writes both use asyncpg on a small free list of connections
(no pool reset on release), ``:name`` is rewritten to ``$n`` once per statement (cached), and a
write's synchronous ``fn(tx)`` runs in a greenlet on the event loop (as SQLAlchemy's async engine
does): each ``tx`` call switches back to the loop to await asyncpg, so no thread is involved and
the ``Tx`` shape is the same as SQLite's. Write transactions that hit a deadlock or a
serialization failure are retried (``fn`` must only act through ``tx``).
"""

from __future__ import annotations

import logging
import re
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import anyio
import anyio.to_thread

from registry.meta.cache import Invalidator

if TYPE_CHECKING:
    import asyncpg

__all__ = [
    "PG_SERVER_SETTINGS",
    "SQLITE_PRAGMAS",
    "PostgresBackend",
    "SqlBackend",
    "SqliteBackend",
    "Tx",
    "postgres_dsn",
    "sqlite_path",
]

#: Every SQLite connection, ours and SQLAlchemy's (see :func:`registry.meta.db.create_engine`).
SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=30000",
)
#: How long a write waits for another process's hold on SQLite's write lock (``busy_timeout``).
BUSY_SECONDS = 30.0
#: Commits between two checkpoints of SQLite's write-ahead log (SQLite's own default is one per
#: 1,000 pages; a push writes a few pages per commit).
CHECKPOINT_EVERY = 200
#: How long a checkpoint waits (in its worker thread, this process's writes held off) for
#: other processes' writes and older readers to finish.
CHECKPOINT_WAIT_MS = 100
#: Every PostgreSQL connection, ours and SQLAlchemy's.
PG_SERVER_SETTINGS = {"application_name": "seawall", "timezone": "UTC"}

T = TypeVar("T")
Row = tuple[Any, ...]

log = logging.getLogger("seawall.sql")


class Tx(ABC):
    """A write transaction's view of the connection (synchronous; used inside ``write`` only)."""

    @abstractmethod
    def execute(self, sql: str, **params: Any) -> int:
        """Run one statement; the number of rows it changed."""

    @abstractmethod
    def executemany(self, sql: str, rows: Sequence[dict[str, Any]]) -> None: ...

    @abstractmethod
    def one(self, sql: str, **params: Any) -> Row | None: ...

    @abstractmethod
    def all(self, sql: str, **params: Any) -> list[Row]: ...

    @abstractmethod
    def notify(self, channel: str, payload: str) -> None:
        """Tell the other nodes' caches (see :class:`Invalidator`), if this transaction commits.
        A no-op where no other node shares the database (SQLite)."""


class SqlBackend(ABC):
    #: ``sqlite`` or ``postgresql``: for the few fragments of SQL that differ
    dialect: str = "sqlite"
    #: what other processes changed, for this process's caches (SQLite: nothing is delivered,
    #: always live; the caches' TTL bounds other workers' changes)
    invalidator: Invalidator

    @abstractmethod
    async def one(self, sql: str, **params: Any) -> Row | None: ...

    @abstractmethod
    async def all(self, sql: str, **params: Any) -> list[Row]: ...

    @abstractmethod
    async def write(self, fn: Callable[[Tx], T], *, large: bool = False) -> T:
        """Run ``fn`` in one transaction (committed if it returns, rolled back if it raises).
        ``large``: its statements may take long (SQLite runs them off the event loop)."""

    @abstractmethod
    def now(self) -> Any:
        """The current time (UTC) as this database's timestamp columns take it."""

    @abstractmethod
    def close(self) -> None: ...

    async def aclose(self) -> None:
        self.close()


# ----------------------------------------------------------------------------------- SQLite


def sqlite_path(url: str) -> str | None:
    """The file of a ``sqlite[+driver]:///path`` URL, else None."""
    if not url.startswith("sqlite"):
        return None
    return url.split(":///", 1)[1] if ":///" in url else None


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    for pragma in SQLITE_PRAGMAS:
        conn.execute(pragma)
    return conn


class SqliteTx(Tx):
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, **params: Any) -> int:
        return self._conn.execute(sql, params).rowcount

    def executemany(self, sql: str, rows: Sequence[dict[str, Any]]) -> None:
        self._conn.executemany(sql, rows)

    def one(self, sql: str, **params: Any) -> Row | None:
        row: Row | None = self._conn.execute(sql, params).fetchone()
        return row

    def all(self, sql: str, **params: Any) -> list[Row]:
        return list(self._conn.execute(sql, params).fetchall())

    def notify(self, channel: str, payload: str) -> None:
        pass  # one machine: other workers' caches rely on their TTL


class SqliteBackend(SqlBackend):
    """Reads and write transactions run inline on the event loop's thread: in WAL mode with
    ``synchronous=NORMAL`` a commit appends to the log without syncing it, so a small
    transaction costs tens of microseconds and no disk wait. The only syncs, checkpoints of
    the log, run in a worker thread every :data:`CHECKPOINT_EVERY` commits (the connections
    here never checkpoint at commit). A ``large`` write (a whole repository deleted) runs its
    statements in a worker thread instead, between an inline ``BEGIN`` and ``COMMIT``.

    Measured (2 cores, 25 pushes/s fanned out to two Seawalls): with every write in a worker
    thread, the hop to it and back cost one or two loop turns *while the write lock was held*;
    the lock was busy all the time and each write waited ~140 ms for it, five times per push.
    """

    dialect = "sqlite"

    def __init__(self, path: str) -> None:
        self.path = path
        self._reader = _connect(path)  # used on the event loop thread only
        self._writer: sqlite3.Connection | None = None
        self._checkpointer: sqlite3.Connection | None = None  # used in a worker thread
        #: Held around every write transaction of this process, including SQLAlchemy's (see
        #: :class:`registry.meta.db.Database`): SQLite has one writer, and connections racing
        #: for its lock pay milliseconds of busy-handler sleeps. Taking it free does not yield
        #: to the loop (``fast_acquire``): a write holds it for its statements only.
        self.write_lock = anyio.Lock(fast_acquire=True)
        self.invalidator = Invalidator(live=True)
        self._commits = 0

    async def one(self, sql: str, **params: Any) -> Row | None:
        row: Row | None = self._reader.execute(sql, params).fetchone()
        return row

    async def all(self, sql: str, **params: Any) -> list[Row]:
        return list(self._reader.execute(sql, params).fetchall())

    def reader(self) -> sqlite3.Connection:
        """The inline reading connection (autocommit: each statement its own snapshot)."""
        return self._reader

    def writer(self) -> sqlite3.Connection:
        """The writing connection; use it inside :meth:`transaction` only."""
        if self._writer is None:
            conn = _connect(self.path)
            # never block the loop: no busy handler (see _begin), no checkpoint at commit
            conn.execute("PRAGMA busy_timeout=0")
            conn.execute("PRAGMA wal_autocheckpoint=0")
            self._writer = conn
        return self._writer

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[sqlite3.Connection]:
        """The write lock, then ``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` if the block
        raises) on :meth:`writer`. The block should await nothing slow: the lock is held."""
        async with self.write_lock:
            conn = self.writer()
            await _begin(conn)
            try:
                yield conn
                conn.execute("COMMIT")
            finally:  # the block raised, or the commit failed
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            self._commits += 1
        if self._commits >= CHECKPOINT_EVERY:
            self._commits = 0
            # with this process's writes held off: a checkpoint that copies every frame lets
            # the next write start the log again from its beginning (one that raced the
            # writes never caught up, and the log grew by megabytes a second)
            async with self.write_lock:
                await anyio.to_thread.run_sync(self._checkpoint)

    async def write(self, fn: Callable[[Tx], T], *, large: bool = False) -> T:
        async with self.transaction() as conn:
            if large:
                return await anyio.to_thread.run_sync(fn, SqliteTx(conn))
            return fn(SqliteTx(conn))

    def _checkpoint(self) -> None:
        """Copy the log into the database and have the next write start it again
        (``RESTART``: it holds off other processes' writes too, waiting up to
        :data:`CHECKPOINT_WAIT_MS` for them and for readers of older snapshots; when that is not
        enough it has copied what it could, and the next checkpoint copies the rest)."""
        if self._checkpointer is None:
            conn = _connect(self.path)
            conn.execute(f"PRAGMA busy_timeout={CHECKPOINT_WAIT_MS}")
            self._checkpointer = conn
        self._checkpointer.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()

    def now(self) -> str:
        """The form SQLAlchemy uses for SQLite DATETIME columns (UTC)."""
        return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")

    def close(self) -> None:
        self._reader.close()
        for conn in (self._writer, self._checkpointer):
            if conn is not None:
                conn.close()


async def _begin(conn: sqlite3.Connection) -> None:
    """``BEGIN IMMEDIATE``: SQLite's write lock. When another process holds it, wait on the
    loop (the connection has no busy handler), for up to :data:`BUSY_SECONDS`."""
    delay, deadline = 0.001, anyio.current_time() + BUSY_SECONDS
    while True:
        try:
            conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or anyio.current_time() >= deadline:
                raise
        await anyio.sleep(delay)
        delay = min(delay * 2, 0.05)


# ------------------------------------------------------------------------------- PostgreSQL

_POSTGRES_SCHEMES = ("postgresql", "postgres")


def postgres_dsn(url: str) -> str | None:
    """The libpq-style DSN (``postgresql://…``, driver suffix dropped) of a PostgreSQL URL —
    ``postgresql://``, ``postgres://`` or ``postgresql+<driver>://`` — else None."""
    parts = urlsplit(url)
    scheme = parts.scheme.split("+", 1)[0]
    if scheme not in _POSTGRES_SCHEMES:
        return None
    return urlunsplit(("postgresql", *parts[1:]))


_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


@dataclass(frozen=True, slots=True)
class _Statement:
    sql: str
    names: tuple[str, ...]

    def args(self, params: dict[str, Any]) -> list[Any]:
        return [params[n] for n in self.names]


def _translate(sql: str) -> _Statement:
    """``:name`` → ``$n`` (a name used twice is one parameter). ``::type`` casts are left alone;
    the registry's SQL has no ``:word`` inside string literals."""
    names: list[str] = []

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    return _Statement(_PARAM.sub(sub, sql), tuple(names))


def _rowcount(status: str) -> int:
    """Rows changed, from asyncpg's command tag (``INSERT 0 1``, ``DELETE 3``, ``UPDATE 0``)."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else -1


class _Pending:
    """An awaitable a greenlet hands to its parent (on the event loop) to await for it."""

    __slots__ = ("awaitable",)

    def __init__(self, awaitable: Awaitable[Any]) -> None:
        self.awaitable = awaitable


def _await(awaitable: Awaitable[T]) -> T:
    """From inside :func:`_run_in_greenlet`: await on the event loop, return the result."""
    import greenlet

    parent = greenlet.getcurrent().parent
    if parent is None:
        raise RuntimeError("Tx used outside its write transaction")
    result: T = parent.switch(_Pending(awaitable))
    return result


async def _run_in_greenlet(fn: Callable[..., T], *args: Any) -> T:
    """Run the synchronous ``fn`` on the event loop; its :func:`_await` calls are awaited here."""
    import greenlet

    child = greenlet.greenlet(fn)
    value = child.switch(*args)
    while not child.dead:
        if not isinstance(value, _Pending):
            raise RuntimeError("greenlet switched without an awaitable")
        try:
            result = await value.awaitable
        except BaseException as exc:  # handed to fn, which may catch it
            value = child.throw(exc)
        else:
            value = child.switch(result)
    return value


class PostgresTx(Tx):
    def __init__(self, backend: PostgresBackend, conn: asyncpg.Connection) -> None:
        self._backend, self._conn = backend, conn
        self.notifications: dict[tuple[str, str], None] = {}  # ordered, deduplicated

    def notify(self, channel: str, payload: str) -> None:
        self.notifications[(channel, payload)] = None

    def execute(self, sql: str, **params: Any) -> int:
        st = self._backend.statement(sql)
        return _rowcount(_await(self._conn.execute(st.sql, *st.args(params))))

    def executemany(self, sql: str, rows: Sequence[dict[str, Any]]) -> None:
        st = self._backend.statement(sql)
        _await(self._conn.executemany(st.sql, [st.args(r) for r in rows]))

    def one(self, sql: str, **params: Any) -> Row | None:
        st = self._backend.statement(sql)
        row = _await(self._conn.fetchrow(st.sql, *st.args(params)))
        return None if row is None else tuple(row)

    def all(self, sql: str, **params: Any) -> list[Row]:
        st = self._backend.statement(sql)
        return [tuple(r) for r in _await(self._conn.fetch(st.sql, *st.args(params)))]


class PostgresBackend(SqlBackend):
    """asyncpg on a free list of at most ``max_connections`` connections, opened on first use
    (in the event loop that uses them). Reads run outside transactions (each sees the latest
    committed data); a read whose connection broke (server restart, failover) is retried once on
    a new connection."""

    dialect = "postgresql"

    WRITE_ATTEMPTS = 5
    #: how often the listener connection is checked when no notification arrives
    LISTENER_PING_SECONDS = 5.0

    def __init__(self, dsn: str, *, max_connections: int = 8) -> None:
        self.dsn = dsn
        self._idle: list[asyncpg.Connection] = []
        self._open: set[asyncpg.Connection] = set()
        self._slots = anyio.Semaphore(max_connections)
        self._statements: dict[str, _Statement] = {}
        # not live until :meth:`run_listener` listens: until then caches are bypassed
        self.invalidator = Invalidator(live=False)

    def statement(self, sql: str) -> _Statement:
        st = self._statements.get(sql)
        if st is None:
            st = self._statements[sql] = _translate(sql)
        return st

    def now(self) -> datetime:
        return datetime.now(UTC)

    # -------------------------------------------------------------- connections
    async def _acquire(self) -> asyncpg.Connection:
        try:
            self._slots.acquire_nowait()
        except anyio.WouldBlock:
            await self._slots.acquire()
        try:
            while self._idle:
                conn = self._idle.pop()
                if not conn.is_closed():
                    return conn
                self._open.discard(conn)
            return await self._connect()
        except BaseException:
            self._slots.release()
            raise

    async def _connect(self) -> asyncpg.Connection:
        conn = await self._new_connection()
        self._open.add(conn)
        return conn

    async def _new_connection(self) -> asyncpg.Connection:
        import asyncpg

        return await asyncpg.connect(
            self.dsn,
            timeout=30,
            command_timeout=300,
            server_settings=dict(PG_SERVER_SETTINGS),
        )

    def _release(self, conn: asyncpg.Connection, *, discard: bool = False) -> None:
        if discard or conn.is_closed() or conn.is_in_transaction():
            self._open.discard(conn)
            conn.terminate()
        else:
            self._idle.append(conn)
        self._slots.release()

    async def _read(self, method: str, sql: str, params: dict[str, Any]) -> Any:
        st = self.statement(sql)
        args = st.args(params)
        for attempt in (1, 2):
            conn = await self._acquire()
            try:
                result = await getattr(conn, method)(st.sql, *args)
            except BaseException:
                broken = conn.is_closed()
                self._release(conn, discard=True)
                if broken and attempt == 1:
                    continue
                raise
            self._release(conn)
            return result
        raise AssertionError("unreachable")

    # -------------------------------------------------------------- SqlBackend
    async def one(self, sql: str, **params: Any) -> Row | None:
        row = await self._read("fetchrow", sql, params)
        return None if row is None else tuple(row)

    async def all(self, sql: str, **params: Any) -> list[Row]:
        return [tuple(r) for r in await self._read("fetch", sql, params)]

    async def write(self, fn: Callable[[Tx], T], *, large: bool = False) -> T:
        import asyncpg

        for attempt in range(1, self.WRITE_ATTEMPTS + 1):
            conn = await self._acquire()
            ok = False
            try:
                await conn.execute("BEGIN")
                tx = PostgresTx(self, conn)
                result = await _run_in_greenlet(fn, tx)
                for channel, payload in tx.notifications:
                    await conn.execute("SELECT pg_notify($1, $2)", channel, payload)
                await conn.execute("COMMIT")
                ok = True
                return result
            except asyncpg.TransactionRollbackError:  # deadlock, serialization failure
                if attempt == self.WRITE_ATTEMPTS:
                    raise
                await anyio.sleep(0.005 * attempt)
            finally:
                if not ok and not conn.is_closed() and conn.is_in_transaction():
                    with anyio.CancelScope(shield=True):
                        try:
                            await conn.execute("ROLLBACK")
                        except Exception:
                            conn.terminate()
                self._release(conn)
        raise AssertionError("unreachable")

    # -------------------------------------------------------------- notifications
    async def run_listener(self, *, retry_seconds: float = 1.0) -> None:
        """Keep one connection ``LISTEN``-ing on the invalidator's channels and deliver what
        arrives; the invalidator is live exactly while that connection is known to be up
        (checked every :attr:`LISTENER_PING_SECONDS`). Runs until cancelled."""
        inv = self.invalidator

        def deliver(_conn: Any, _pid: int, channel: str, payload: str) -> None:
            inv.deliver(channel, payload)

        while True:
            conn: asyncpg.Connection | None = None
            lost = anyio.Event()
            try:
                conn = await self._new_connection()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                for channel in inv.channels:
                    await conn.add_listener(channel, deliver)
                inv.set_live(True)
                while not lost.is_set():
                    with anyio.move_on_after(self.LISTENER_PING_SECONDS):
                        await lost.wait()
                    if not lost.is_set():
                        with anyio.fail_after(self.LISTENER_PING_SECONDS):
                            await conn.execute("SELECT 1")
                log.warning("the PostgreSQL notification connection closed; reconnecting")
            except Exception as exc:
                log.warning("PostgreSQL notifications unavailable (%s); caches bypassed", exc)
            finally:
                inv.set_live(False)
                if conn is not None:
                    conn.terminate()
            await anyio.sleep(retry_seconds)

    def close(self) -> None:
        for conn in self._open:
            conn.terminate()
        self._open.clear()
        self._idle.clear()

    async def aclose(self) -> None:
        for conn in list(self._open):
            try:
                with anyio.fail_after(5):
                    await conn.close()
            except Exception:
                conn.terminate()
        self._open.clear()
        self._idle.clear()

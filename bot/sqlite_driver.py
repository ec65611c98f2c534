"""aiosqlite as SQLAlchemy's SQLite driver, without a thread hop per statement when none is needed.

SQLAlchemy's aiosqlite adapter sends every cursor step (open, execute, fetch, close) through
aiosqlite's worker thread and back through the event loop. SQLite has one writer at a time, so
the transaction holding the write lock waits in a busy loop's queue four times per statement,
and those waits, not SQLite, capped throughput (bench/updates.py).

Our statements are point lookups on a local file that take microseconds. This driver runs them
directly on the event loop thread with `busy_timeout = 0`, so a statement can never sleep there:
when another process holds the write lock, SQLite answers "busy" at once and the statement is
retried in aiosqlite's worker thread, which may wait (the configured busy timeout) without
stalling the loop. It plugs in through `create_async_engine(module=...)`, SQLAlchemy's documented
way to supply a DBAPI, so URLs stay `sqlite+aiosqlite://`. BEGIN is deferred to the
transaction's first statement and sent with it.
"""

from __future__ import annotations

import sqlite3
from collections import deque
from collections.abc import Sequence
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util.concurrency import await_

Outcome = tuple[Any, list[Any], int, int | None]
BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})


def _run(
    raw: sqlite3.Connection, begin: str | None, operation: str, parameters: Any, many: bool
) -> Outcome:
    if begin is not None:
        raw.execute(begin)
    cursor = raw.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        else:
            cursor.execute(operation, parameters if parameters is not None else ())
        rows = cursor.fetchall() if cursor.description else []
        return cursor.description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


def _run_patiently(raw: sqlite3.Connection, patience_ms: int, *args: Any) -> Outcome:
    """In the worker thread: wait for the lock as long as the configuration allows."""
    raw.execute(f"PRAGMA busy_timeout = {int(patience_ms)}")
    try:
        return _run(raw, *args)
    finally:
        raw.execute("PRAGMA busy_timeout = 0")


async def _settled() -> None:
    """Awaited after an inline statement: SQLAlchemy's AsyncConnection insists that a statement
    awaits something. A finished coroutine costs two greenlet switches and no loop turn."""


def _is_busy(error: BaseException) -> bool:
    return isinstance(error, sqlite3.OperationalError) and (
        getattr(error, "sqlite_errorcode", None) in BUSY_CODES
        or "locked" in str(error)
        or "busy" in str(error)
    )


class InlineCursor(AsyncAdapt_aiosqlite_cursor):
    __slots__ = ("_arraysize", "_description", "_lastrowid", "_rowcount")

    def __init__(self, adapt_connection: InlineConnection) -> None:
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]
        self._rows: deque[Any] = deque()
        self._soft_closed_memoized = {}  # type: ignore[assignment]
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None
        self._arraysize = 1  # the DBAPI default; the base class asks a cursor we never open

    @property
    def arraysize(self) -> int:
        return self._arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._arraysize = value

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> int:
        return self._lastrowid  # type: ignore[return-value]

    def _call(self, operation: Any, parameters: Any, many: bool) -> None:
        adapted: InlineConnection = self._adapt_connection  # type: ignore[assignment]
        begin, adapted.pending_begin = adapted.pending_begin, None
        raw = self._connection._conn
        try:
            try:
                outcome = _run(raw, begin, operation, parameters, many)
                await_(_settled())
            except sqlite3.OperationalError as error:
                if not _is_busy(error):
                    raise
                if raw.in_transaction:
                    begin = None  # the BEGIN went through; only the statement waits
                outcome = await_(
                    self._connection._execute(
                        _run_patiently, raw, adapted.patience_ms, begin, operation, parameters, many
                    )
                )
        except Exception as error:
            adapted._handle_exception(error)
        self._description, rows, self._rowcount, self._lastrowid = outcome
        self._rows = deque(rows)

    def execute(self, operation: Any, parameters: Any = None) -> None:
        self._call(operation, parameters, False)

    def executemany(self, operation: Any, seq_of_parameters: Sequence[Any]) -> None:
        self._call(operation, seq_of_parameters, True)

    async def _async_soft_close(self) -> None:
        return None

    def close(self) -> None:
        self._rows.clear()


class InlineConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ("patience_ms", "pending_begin")
    _cursor_cls = InlineCursor  # type: ignore[assignment]

    def __init__(self, dbapi: Any, connection: Any, patience_ms: int) -> None:
        super().__init__(dbapi, connection)
        self.pending_begin: str | None = None
        self.patience_ms = patience_ms

    def begin(self, statement: str) -> None:
        self.pending_begin = statement

    def commit(self) -> None:
        self._finish("commit")

    def rollback(self) -> None:
        self._finish("rollback")

    def _finish(self, how: str) -> None:
        # Nothing ran, so no BEGIN was sent and there is nothing to end.
        if self.pending_begin is None:
            try:
                getattr(self._connection._conn, how)()
            except Exception as error:
                self._handle_exception(error)
        self.pending_begin = None


class InlineDBAPI(AsyncAdapt_aiosqlite_dbapi):
    def __init__(self, patience_ms: int) -> None:
        super().__init__(aiosqlite, sqlite3)
        self.patience_ms = patience_ms

    def connect(self, *arg: Any, **kw: Any) -> InlineConnection:
        # Used from the loop thread and from aiosqlite's thread, never at the same time.
        kw["check_same_thread"] = False
        adapted = super().connect(*arg, **kw)
        return InlineConnection(self, adapted._connection, self.patience_ms)

"""Pins on the private internals that two speed-ups build on.

bot/sqlite_driver.py subclasses SQLAlchemy's private aiosqlite adapter classes and reaches into
aiosqlite's private `Connection._conn` and `Connection._execute`; bot/channels/telegram_http.py
imports from `telegram._utils`. pyproject.toml allows upgrades of all three within a range, and
none of them promises these names. Each test below says which line of ours depends on what it
checks, so that a failing pin after an upgrade points at the code to look at.

Expectations are written out by hand from what our code needs, not read from the libraries.
"""

from __future__ import annotations

import inspect
import sqlite3
import threading
import time
import typing
from collections import deque
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import Connection, exc, text
from sqlalchemy.connectors.asyncio import AsyncAdapt_dbapi_cursor
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util import concurrency
from telegram import Bot
from telegram._utils.defaultvalue import DefaultValue
from telegram._utils.types import JSONDict, ODVInput
from telegram.request import BaseRequest, RequestData

from bot.channels.telegram_http import AiohttpRequest
from bot.database import create_engine
from bot.sqlite_driver import InlineConnection, InlineCursor, InlineDBAPI
from tests.telegram_stub import BotApiStub, UploadedFile

P = inspect.Parameter


def shape(function: Any) -> list[tuple[str, Any, Any]]:
    """A signature as (name, kind, default) triples: what a caller or an override depends on."""
    return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]


def all_slots(cls: type) -> set[str]:
    return {name for klass in cls.__mro__ for name in klass.__dict__.get("__slots__", ())}


# ====================================================================== SQLAlchemy: the names


def test_the_private_adapter_classes_and_await_exist() -> None:
    """bot/sqlite_driver.py imports AsyncAdapt_aiosqlite_{connection,cursor,dbapi} from
    sqlalchemy.dialects.sqlite.aiosqlite and `await_` from sqlalchemy.util.concurrency (the
    2.0 series calls it `await_only`, and shapes the cursor differently)."""
    assert issubclass(AsyncAdapt_aiosqlite_cursor, AsyncAdapt_dbapi_cursor)
    assert issubclass(InlineCursor, AsyncAdapt_aiosqlite_cursor)
    assert issubclass(InlineConnection, AsyncAdapt_aiosqlite_connection)
    assert issubclass(InlineDBAPI, AsyncAdapt_aiosqlite_dbapi)
    assert shape(concurrency.await_) == [("awaitable", P.POSITIONAL_OR_KEYWORD, P.empty)]


def test_the_cursor_state_is_exactly_what_InlineCursor_init_sets() -> None:
    """InlineCursor.__init__ does not call the base __init__ (which would open an aiosqlite
    cursor in the worker thread); it sets `_adapt_connection`, `_connection`, `_cursor`, `_rows`
    and `_soft_closed_memoized` itself. Every slot the adapter cursor has must be among them,
    or an inherited method would read an attribute that was never set."""
    assert all_slots(AsyncAdapt_aiosqlite_cursor) == {
        "_adapt_connection",
        "_connection",
        "_cursor",
        "_rows",
        "_soft_closed_memoized",
    }
    assert all_slots(InlineCursor) - all_slots(AsyncAdapt_aiosqlite_cursor) == {
        "_arraysize",
        "_description",
        "_lastrowid",
        "_rowcount",
    }


def test_the_cursor_methods_InlineCursor_overrides_keep_their_signatures() -> None:
    """InlineCursor.execute(operation, parameters=None), .executemany(operation,
    seq_of_parameters), .close() and the coroutine ._async_soft_close() replace the base's;
    SQLAlchemy calls them by these names and shapes. description/rowcount/lastrowid are
    properties there too, read by the execution context."""
    base = AsyncAdapt_aiosqlite_cursor
    assert shape(base.execute) == [
        ("self", P.POSITIONAL_OR_KEYWORD, P.empty),
        ("operation", P.POSITIONAL_OR_KEYWORD, P.empty),
        ("parameters", P.POSITIONAL_OR_KEYWORD, None),
    ]
    assert shape(base.executemany) == [
        ("self", P.POSITIONAL_OR_KEYWORD, P.empty),
        ("operation", P.POSITIONAL_OR_KEYWORD, P.empty),
        ("seq_of_parameters", P.POSITIONAL_OR_KEYWORD, P.empty),
    ]
    assert shape(base.close) == [("self", P.POSITIONAL_OR_KEYWORD, P.empty)]
    assert shape(base._async_soft_close) == [("self", P.POSITIONAL_OR_KEYWORD, P.empty)]
    assert inspect.iscoroutinefunction(base._async_soft_close)
    for name in ("description", "rowcount", "lastrowid"):
        assert isinstance(inspect.getattr_static(base, name), property), name
    # What InlineCursor inherits and feeds through `_rows`:
    for name in ("fetchone", "fetchmany", "fetchall", "__iter__"):
        assert inspect.getattr_static(InlineCursor, name) is inspect.getattr_static(base, name)


def test_the_connection_hooks_InlineConnection_uses_keep_their_signatures() -> None:
    """InlineConnection.__init__ calls super().__init__(dbapi, connection); it sets the class
    attribute `_cursor_cls` for the base's cursor(server_side=False) to instantiate; it
    replaces commit() and rollback(); InlineCursor._call and _finish call
    `_handle_exception(error)` to re-raise."""
    base = AsyncAdapt_aiosqlite_connection
    assert shape(base.__init__) == [
        ("self", P.POSITIONAL_OR_KEYWORD, P.empty),
        ("dbapi", P.POSITIONAL_OR_KEYWORD, P.empty),
        ("connection", P.POSITIONAL_OR_KEYWORD, P.empty),
    ]
    assert shape(base.cursor) == [
        ("self", P.POSITIONAL_OR_KEYWORD, P.empty),
        ("server_side", P.POSITIONAL_OR_KEYWORD, False),
    ]
    assert base._cursor_cls is AsyncAdapt_aiosqlite_cursor
    for name in ("commit", "rollback"):
        assert shape(getattr(base, name)) == [("self", P.POSITIONAL_OR_KEYWORD, P.empty)], name
    assert shape(base._handle_exception) == [
        ("self", P.POSITIONAL_OR_KEYWORD, P.empty),
        ("error", P.POSITIONAL_OR_KEYWORD, P.empty),
    ]


def test_the_dbapi_constructor_and_connect_keep_their_signatures() -> None:
    """InlineDBAPI.__init__ calls super().__init__(aiosqlite, sqlite3); InlineDBAPI.connect
    passes `check_same_thread=False` through super().connect(*arg, **kw) to aiosqlite, and
    takes the aiosqlite.Connection from the result's `._connection`."""
    base = AsyncAdapt_aiosqlite_dbapi
    assert shape(base.__init__) == [
        ("self", P.POSITIONAL_OR_KEYWORD, P.empty),
        ("aiosqlite", P.POSITIONAL_OR_KEYWORD, P.empty),
        ("sqlite", P.POSITIONAL_OR_KEYWORD, P.empty),
    ]
    assert shape(base.connect) == [
        ("self", P.POSITIONAL_OR_KEYWORD, P.empty),
        ("arg", P.VAR_POSITIONAL, P.empty),
        ("kw", P.VAR_KEYWORD, P.empty),
    ]
    # What the dialect reads from the module object we hand to create_async_engine(module=…):
    # sqlite3's own exception classes, so errors raised by the inline path (straight from
    # sqlite3) are wrapped by SQLAlchemy just like the adapter's own.
    dbapi = InlineDBAPI(patience_ms=1)
    assert dbapi.paramstyle == "qmark"
    assert dbapi.Error is sqlite3.Error
    assert dbapi.OperationalError is sqlite3.OperationalError
    assert dbapi.IntegrityError is sqlite3.IntegrityError


async def test_asyncconnection_insists_on_an_await_and_a_finished_coroutine_counts() -> None:
    """InlineCursor._call ends an inline statement with `await_(_settled())`: AsyncConnection
    runs statements under greenlet_spawn(..., _require_await=True), which refuses a call that
    never awaited; a coroutine that has nothing to wait for satisfies it."""

    async def settled() -> None:
        return None

    def quiet() -> str:
        return "no await"

    def awaits() -> str:
        concurrency.await_(settled())
        return "awaited"

    with pytest.raises(exc.AwaitRequired):
        await concurrency.greenlet_spawn(quiet, _require_await=True)
    assert await concurrency.greenlet_spawn(awaits, _require_await=True) == "awaited"


# ====================================================================== aiosqlite: the names


async def test_aiosqlite_conn_and_execute(tmp_path: Path) -> None:
    """InlineCursor._call runs statements on `self._connection._conn` (the sqlite3 connection
    behind aiosqlite's Connection) and sends busy ones to
    `self._connection._execute(_run_patiently, raw, …)`, which must run the function with those
    arguments in aiosqlite's worker thread and hand back its result or its exception."""
    connection = await aiosqlite.connect(tmp_path / "a.db")
    try:
        assert isinstance(inspect.getattr_static(aiosqlite.Connection, "_conn"), property)
        raw = connection._conn
        assert isinstance(raw, sqlite3.Connection)
        assert shape(aiosqlite.Connection._execute) == [
            ("self", P.POSITIONAL_OR_KEYWORD, P.empty),
            ("fn", P.POSITIONAL_OR_KEYWORD, P.empty),
            ("args", P.VAR_POSITIONAL, P.empty),
            ("kwargs", P.VAR_KEYWORD, P.empty),
        ]

        def where(given: sqlite3.Connection, tag: str) -> tuple[int, bool, str]:
            return threading.get_ident(), given is raw, tag

        worker, same, tag = await connection._execute(where, raw, "x")
        assert (same, tag) == (True, "x")
        assert worker != threading.get_ident()

        def fails() -> None:
            raise sqlite3.OperationalError("database is locked")

        with pytest.raises(sqlite3.OperationalError, match="database is locked"):
            await connection._execute(fails)
    finally:
        await connection.close()


# ====================================================================== the driver, behaving


def raw_of(connection: Connection) -> InlineConnection:
    inline = connection.connection.dbapi_connection
    assert isinstance(inline, InlineConnection)
    return inline


async def test_statements_run_inline_and_busy_ones_in_aiosqlites_thread(tmp_path: Path) -> None:
    """The two paths of InlineCursor._call on a real file: `_run(raw, …)` on the loop thread,
    and, when another process holds the write lock, `await_(self._connection._execute(
    _run_patiently, …))` in aiosqlite's thread. A SQL function tells which thread ran it."""
    path = tmp_path / "paths.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    loop_thread = threading.get_ident()
    try:
        async with engine.connect() as conn:
            inline = await conn.run_sync(raw_of)
            driver = inline._connection
            assert isinstance(driver, aiosqlite.Connection)
            # The connect event set it: sqlite3 must not send BEGINs of its own.
            assert driver._conn.isolation_level is None
            driver._conn.create_function("thread_id", 0, threading.get_ident)
            worker_thread = await driver._execute(threading.get_ident)
            assert worker_thread != loop_thread

            await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, ran_on INTEGER)"))
            await conn.commit()
            assert (await conn.execute(text("SELECT thread_id()"))).scalar() == loop_thread
            await conn.commit()

            other = sqlite3.connect(path, check_same_thread=False)
            other.execute("BEGIN IMMEDIATE")

            def release_later() -> None:
                time.sleep(0.3)
                other.commit()

            releaser = threading.Thread(target=release_later)
            releaser.start()
            await conn.execute(text("INSERT INTO t (ran_on) VALUES (thread_id())"))
            await conn.commit()
            releaser.join()
            other.close()
            assert (await conn.execute(text("SELECT ran_on FROM t"))).scalar() == worker_thread
            await conn.commit()
    finally:
        await engine.dispose()


async def test_rows_counts_ids_and_errors_through_the_inline_cursor(tmp_path: Path) -> None:
    """What InlineCursor keeps from the base: fetchone/fetchmany/fetchall/iteration read the
    `_rows` deque `_call` fills; SQLAlchemy reads our description/rowcount/lastrowid; an error
    goes through `_handle_exception` and comes out wrapped by SQLAlchemy; AsyncConnection calls
    `cursor._async_soft_close()` (ours: a no-op) after a statement that returned rows."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'rows.db'}")
    try:
        async with engine.connect() as conn:
            await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE)"))
            inserted = await conn.execute(text("INSERT INTO t (name) VALUES ('a')"))
            assert inserted.lastrowid == 1
            many = await conn.execute(
                text("INSERT INTO t (name) VALUES (:name)"),
                [{"name": "b"}, {"name": "c"}, {"name": "d"}],
            )
            assert many.rowcount == 3
            updated = await conn.execute(text("UPDATE t SET name = name || '!' WHERE id > 2"))
            assert updated.rowcount == 2
            selected = await conn.execute(text("SELECT id, name FROM t ORDER BY id"))
            assert list(selected.keys()) == ["id", "name"]
            assert selected.all() == [(1, "a"), (2, "b"), (3, "c!"), (4, "d!")]
            await conn.commit()

            def fetch(connection: Connection) -> list[Any]:
                cursor = raw_of(connection).cursor()
                assert type(cursor) is InlineCursor
                cursor.execute("SELECT id FROM t ORDER BY id")
                assert [column[0] for column in cursor.description] == ["id"]
                got = [cursor.fetchone(), cursor.fetchmany(2), list(cursor), cursor.fetchall()]
                cursor.execute("SELECT id FROM t WHERE id > ?", (2,))
                got.append(cursor.fetchall())
                cursor.close()
                return got

            assert await conn.run_sync(fetch) == [(1,), [(2,), (3,)], [(4,)], [], [(3,), (4,)]]
            with pytest.raises(exc.IntegrityError) as duplicate:
                await conn.execute(text("INSERT INTO t (name) VALUES ('a')"))
            assert isinstance(duplicate.value.orig, sqlite3.IntegrityError)
            await conn.rollback()
            assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar() == 4
    finally:
        await engine.dispose()


def test_inline_cursor_state_after_construction() -> None:
    """InlineCursor.__init__ reads `adapt_connection._connection` (the base connection's slot)
    and leaves the base's `_cursor` empty: there is no aiosqlite cursor behind ours."""
    connection = InlineConnection(InlineDBAPI(patience_ms=1), "the aiosqlite connection", 1)
    cursor = InlineCursor(connection)
    assert cursor._connection == "the aiosqlite connection"
    assert cursor._adapt_connection is connection
    assert cursor._cursor is None
    assert cursor._rows == deque()
    assert (cursor.description, cursor.rowcount, cursor.lastrowid) == (None, -1, None)


# ====================================================================== telegram._utils


def test_telegram_utils_names_and_what_they_stand_for() -> None:
    """telegram_http.py line 16 imports DefaultValue from telegram._utils.defaultvalue, line 17
    JSONDict and ODVInput from telegram._utils.types (the last two only in annotations)."""
    assert JSONDict == dict[str, Any]
    assert (
        ODVInput[float]
        == typing.Union[  # noqa: UP007 (comparing with what PTB builds)
            DefaultValue[float], float, DefaultValue[None], None
        ]
    )
    assert DefaultValue(None).value is None
    assert DefaultValue.get_value(DefaultValue(7.5)) == 7.5
    assert DefaultValue.get_value(3.0) == 3.0


def test_default_none_is_a_default_value_and_the_default_of_every_timeout() -> None:
    """AiohttpRequest.do_request tells "no timeout given" from an explicit one with
    `isinstance(read_timeout, DefaultValue)` (and the same for write, connect and pool), and
    declares `BaseRequest.DEFAULT_NONE` as each parameter's default, like BaseRequest does."""
    assert isinstance(BaseRequest.DEFAULT_NONE, DefaultValue)
    assert BaseRequest.DEFAULT_NONE.value is None
    timeouts = ("read_timeout", "write_timeout", "connect_timeout", "pool_timeout")
    for method in (BaseRequest.post, BaseRequest.retrieve, BaseRequest.do_request):
        parameters = inspect.signature(method).parameters
        for name in timeouts:
            assert parameters[name].default is BaseRequest.DEFAULT_NONE, (method, name)


def test_do_request_and_the_abstract_hooks_are_as_we_override_them() -> None:
    """AiohttpRequest overrides do_request(url, method, request_data=None, read_timeout=…,
    write_timeout=…, connect_timeout=…, pool_timeout=…), PTB calls it with these keywords;
    it implements every abstract member of BaseRequest and overrides the static
    parse_json_payload, which PTB calls as `self.parse_json_payload(payload)`."""
    expected = [
        ("self", P.POSITIONAL_OR_KEYWORD, P.empty),
        ("url", P.POSITIONAL_OR_KEYWORD, P.empty),
        ("method", P.POSITIONAL_OR_KEYWORD, P.empty),
        ("request_data", P.POSITIONAL_OR_KEYWORD, None),
        ("read_timeout", P.POSITIONAL_OR_KEYWORD, BaseRequest.DEFAULT_NONE),
        ("write_timeout", P.POSITIONAL_OR_KEYWORD, BaseRequest.DEFAULT_NONE),
        ("connect_timeout", P.POSITIONAL_OR_KEYWORD, BaseRequest.DEFAULT_NONE),
        ("pool_timeout", P.POSITIONAL_OR_KEYWORD, BaseRequest.DEFAULT_NONE),
    ]
    assert shape(BaseRequest.do_request) == expected
    assert shape(AiohttpRequest.do_request) == expected
    assert BaseRequest.__abstractmethods__ == {
        "do_request",
        "initialize",
        "shutdown",
        "read_timeout",
    }
    assert not AiohttpRequest.__abstractmethods__
    assert isinstance(inspect.getattr_static(BaseRequest, "parse_json_payload"), staticmethod)
    assert isinstance(inspect.getattr_static(AiohttpRequest, "parse_json_payload"), staticmethod)
    assert isinstance(BaseRequest.USER_AGENT, str) and BaseRequest.USER_AGENT


class Recording(BaseRequest):
    """PTB's own BaseRequest.post, with a do_request that only notes what it was given."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    @property
    def read_timeout(self) -> float | None:
        return 1.0

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    async def do_request(self, url: str, method: str, **given: Any) -> tuple[int, bytes]:
        self.seen.append(given)
        return 200, b'{"ok": true, "result": "fine"}'


async def test_post_hands_unset_timeouts_to_do_request_as_default_values() -> None:
    """The `isinstance(…, DefaultValue)` tests in AiohttpRequest.do_request see what
    BaseRequest.post forwards: DEFAULT_NONE when the caller set nothing, the number or None
    when it did."""
    recording = Recording()
    assert await recording.post("http://127.0.0.1/botT/getMe") == "fine"
    await recording.post("http://127.0.0.1/botT/getMe", read_timeout=3.0, write_timeout=None)
    unset, some = recording.seen
    for name in ("read_timeout", "write_timeout", "connect_timeout", "pool_timeout"):
        assert unset[name] is BaseRequest.DEFAULT_NONE, name
        assert isinstance(unset[name], DefaultValue)
    assert (some["read_timeout"], some["write_timeout"]) == (3.0, None)
    assert some["connect_timeout"] is BaseRequest.DEFAULT_NONE


def test_ptb_decodes_invalid_utf8_by_replacing_it_and_so_do_we() -> None:
    """AiohttpRequest.parse_json_payload falls back to BaseRequest.parse_json_payload(payload)
    when orjson refuses the bytes, "to decode as PTB does": invalid UTF-8 becomes U+FFFD."""
    payload = b'{"ok": true, "result": {"text": "a\xffb"}}'
    assert BaseRequest.parse_json_payload(payload) == {"ok": True, "result": {"text": "a\ufffdb"}}
    assert AiohttpRequest.parse_json_payload(payload) == {
        "ok": True,
        "result": {"text": "a\ufffdb"},
    }
    assert AiohttpRequest.parse_json_payload(b'{"n": [1, "\xe5\xa5\xbd"]}') == {"n": [1, "好"]}


async def test_request_data_shapes_do_request_relies_on(stub: BotApiStub) -> None:
    """AiohttpRequest.do_request reads `request_data.json_parameters` (name → str) and
    `request_data.multipart_data` (name → (filename, bytes or file, mime type)); a real Bot
    sends a document and a caption through it, and the stub receives both."""
    sent: list[RequestData] = []

    class Noting(AiohttpRequest):
        async def do_request(self, url: str, method: str, request_data: Any = None, **kw: Any):  # type: ignore[override]
            if request_data is not None and request_data.contains_files:
                sent.append(request_data)
            return await super().do_request(url, method, request_data, **kw)

    bot = Bot(
        stub.token, base_url=stub.api_base_url, request=Noting(), get_updates_request=Noting()
    )
    async with bot:
        await bot.send_document(5, b"%PDF-1.4 fake", filename="plan.pdf", caption="好")
    [data] = sent
    assert data.multipart_data == {"document": ("plan.pdf", b"%PDF-1.4 fake", "application/pdf")}
    assert data.json_parameters == {"chat_id": "5", "caption": "好"}
    [call] = stub.calls_to("sendDocument")
    assert call["caption"] == "好" and call["chat_id"] == 5
    upload = call["document"]
    assert isinstance(upload, UploadedFile)
    assert (upload.filename, upload.content_type, upload.content) == (
        "plan.pdf",
        "application/pdf",
        b"%PDF-1.4 fake",
    )

"""PostgreSQL source: `COPY (SELECT …) TO STDOUT (FORMAT BINARY)` decoded into Arrow in C++.

Why this transport: a server-side cursor hands Python one tuple per row, and psycopg's
COPY API one message per row; at a million rows either costs seconds of Python per
run. The ADBC PostgreSQL driver runs the same `COPY (SELECT …) TO STDOUT` and decodes
the binary rows straight into Arrow buffers in C++, with the GIL released, so the next
batch is read while the writer appends the previous one (`arrowstream.prefetch`).
Measured on the benchmark table (1M rows, `benchmarks/extract_load.py`, 2 cores):
the cursor path took ~50 s; `COPY … (FORMAT CSV)` drained with psycopg's lowest-level
loop and parsed by pyarrow's streaming CSV reader ~2.7 s of client CPU before parsing
(one Python call per row message) and the server's CSV output is ~25% slower than
binary; this path reads it in 1.6-2.0 s of CPU, imports included.

Exactness: the SELECT is the one `statement()` builds (selected columns and the load's
WHERE), with each column's expression chosen so the binary value maps to our Arrow type
without interpretation (`_select_expression`): types bronze keeps as text are cast to
text *by the server* (its own exact text output), numerics are checked casts from the
driver's exact decimal text, and timestamps/dates are range-checked because the driver
wraps ±infinity and years past 294,246 into garbage instead of failing
(`datakits.types.resolve_infinity`). The statement is rendered with psycopg's own
client-side literal quoting (`ClientCursor.mogrify`), never with string formatting.

Fallback: without the `adbc-driver-postgresql` package, with a `postgresql+psycopg2://` URL,
or with `DATAKITS_POSTGRES_COPY=0`, the reader uses the shared server-side-cursor path
(`SqlTableReader.batches`) with the same SELECT expressions (`cursor_statement`), except
that timestamps, dates and times travel as exact integers the server computes (Python's
`datetime` holds no BC date, no year past 9999, no `24:00`) and ±infinity as the values
the driver produces. Both paths then share `arrow_to_mapping`, so the bronze they write
is the same, value for value (`tests/datakits/test_type_fidelity.py`).

Commit horizon (`commit_horizon`): see `datakits.modes` and README "Load modes".
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from importlib import import_module
from types import ModuleType
from typing import Any, ClassVar, Self

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from psycopg.types.string import TextLoader
from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    Select,
    Text,
    case,
    cast,
    extract,
    func,
    literal,
    or_,
    select,
    text,
)
from sqlalchemy import types as sat
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import DBAPIError

from datakits.errors import ConfigError, LoadFailed, SourceUnavailable
from datakits.messages import one_line, reason, redact
from datakits.sources.arrowstream import prefetch, rebatch
from datakits.sources.base import SqlTableReader
from datakits.types import (
    PG_INFINITY_DAYS,
    PG_INFINITY_US,
    PG_NEG_INFINITY_DAYS,
    PG_NEG_INFINITY_US,
    ColumnMapping,
    array_items_as_text,
    arrow_to_mapping,
    rows_to_batch,
)
from datakits.urls import CONNECT_TIMEOUT, safe
from datakits.watermarks import Horizon, Sighting, encode

#: Set to 0 to read through the server-side cursor instead of COPY (e.g. to compare).
COPY_ENV = "DATAKITS_POSTGRES_COPY"
#: Bytes per batch the driver decodes before handing it over (then re-cut to batch_size).
_DRIVER_BATCH_BYTES = 4 * 1024 * 1024
#: Bytes per batch handed to the writer: `batch_size` rows, fewer when rows are wide.
#: Measured on the benchmark table into DuckDB: 4 MB batches peak 60 MB lower than
#: 50,000-row (10 MB) ones, and are no slower.
_BATCH_BYTES = 4 * 1024 * 1024
_BATCH_HINT = "adbc.postgresql.batch_size_hint_bytes"
#: What libpq says when the session is gone (see `_connection_lost`).
_LOST_MARKS = ("FATAL:", "server closed the connection", "could not receive data", "no connection")
#: When the oldest transaction still open in this database began (or now): its own role
#: is visible only with `pg_read_all_stats` (superusers have it); `hidden` counts the
#: sessions this role cannot see. Autovacuum writes no rows; this session is the reader.
_HORIZON = text(
    """
    SELECT h.at, h.at AT TIME ZONE current_setting('TimeZone') AS local,
           (h.at AT TIME ZONE current_setting('TimeZone'))::date AS day, h.oldest,
           h.hidden, current_user AS role, current_database() AS db
    FROM (
        SELECT least(now(), min(a.xact_start)) AS at, min(a.xact_start) AS oldest,
               count(*) FILTER (WHERE a.backend_type IS NULL) AS hidden
        FROM pg_stat_activity AS a
        WHERE a.datid = (SELECT oid FROM pg_database WHERE datname = current_database())
          AND a.pid <> pg_backend_pid()
          AND a.backend_type IS DISTINCT FROM 'autovacuum worker'
    ) AS h
    """
)
#: How many not-yet-final sightings a watermark keeps (the newest): one per load while
#: a transaction stays open; dropping older ones only delays the bound, never breaks it.
_SIGHTINGS_KEPT = 16
#: The last timestamp Arrow's int64 µs holds; later PostgreSQL values are refused.
_ARROW_END = "294247-01-10 04:00:54.775807"
#: What the cursor path selects for a timestamp past `_ARROW_END` (below every real one).
_BEYOND_US = -(2**63)
#: The name of the extra column that flags arrays a list cannot carry (`_array_check`).
_ARRAY_CHECK = "_datakits_array_check"
#: Source types the driver decodes to exactly our Arrow type (or a checked cast of it).
_NATIVE = (
    sat.Boolean,
    sat.Integer,
    sat.Float,
    sat.Numeric,
    sat.DateTime,
    sat.Date,
    sat.Time,
    sat._Binary,
)


#: The planner's row estimate of one table (schema None: the search path's first).
_RELTUPLES = text(
    "SELECT c.reltuples FROM pg_catalog.pg_class c "
    "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relname = :table AND n.nspname = coalesce(:schema, current_schema())"
)


def _driver() -> tuple[ModuleType, ModuleType] | None:
    """The ADBC PostgreSQL driver and driver manager, or None when not installed.

    The low-level API, not the DB-API module: that one imports `pyarrow.dataset`, which
    imports pandas when it is installed (a second of start-up on a busy machine).
    """
    try:
        return import_module("adbc_driver_postgresql"), import_module("adbc_driver_manager")
    except ImportError:
        return None


class _Connection:
    """An ADBC database + connection pair (closed together)."""

    def __init__(self, postgres: ModuleType, manager: ModuleType, uri: str) -> None:
        self.manager = manager
        self.database = postgres.connect(uri)
        try:
            self.connection = manager.AdbcConnection(self.database)
        except BaseException:
            self.database.close()
            raise

    def close(self) -> None:
        try:
            self.connection.close()
        finally:
            self.database.close()


class _Opening:
    """The COPY connection, opened in a thread while the load plans against the warehouse.

    The driver logs in and reads the server's type catalog (~60 ms on a local server);
    nothing needs it before the first batch, so it need not be waited for.
    """

    def __init__(self, open_connection: Callable[[], _Connection]) -> None:
        self._connection: _Connection | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(open_connection,), name="datakits-copy-connect", daemon=True
        )
        self._thread.start()

    def _run(self, open_connection: Callable[[], _Connection]) -> None:
        try:
            self._connection = open_connection()
        except BaseException as exc:  # re-raised by `take`, in the load's thread
            self._error = exc

    def take(self) -> _Connection:
        """The open connection (the caller closes it); its error if it could not open."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._connection is not None
        connection, self._connection = self._connection, None
        return connection

    def discard(self) -> None:
        """Close the connection if nobody took it (the load stopped before reading)."""
        self._thread.join()
        if self._connection is not None:
            with contextlib.suppress(Exception):
                self._connection.close()
            self._connection = None


def _connection_lost(exc: BaseException) -> bool:
    """Whether a driver error says the session is gone (not that the query is wrong).

    libpq reports a terminated backend as `FATAL`, a broken socket as "server closed the
    connection" / "could not receive data"; SQLSTATE class 08 is a connection exception.
    """
    text = str(exc)
    sqlstate = str(getattr(exc, "sqlstate", "") or "")
    return (
        sqlstate.startswith("08")
        or sqlstate in ("57P01", "57P02", "57P03")
        or any(mark in text for mark in _LOST_MARKS)
    )


def _select_expression(column: Column[Any], mapping: ColumnMapping) -> ColumnElement[Any]:
    """What to SELECT for `column` so COPY's binary value is exactly `mapping`'s type.

    Columns bronze keeps as text (JSON, UUID, intervals, unconstrained numerics, char(n)
    without its padding, ...) are cast to text by PostgreSQL itself: its text output is
    the exact value, and the same for every client. `money` is cast to numeric (exact),
    arrays keep their items (cast to text[] when the items are kept as text).
    """
    source = column.type
    if isinstance(source, sat.ARRAY):
        if array_items_as_text(mapping, source.item_type):
            return cast(column, postgresql.ARRAY(Text)).label(mapping.name)
        return column.label(mapping.name)
    if pa.types.is_string(mapping.arrow_type):
        plain = isinstance(source, sat.String) and not isinstance(source, sat.Enum | sat.CHAR)
        if plain:
            return column.label(mapping.name)
        return cast(column, Text).label(mapping.name)
    if isinstance(source, _NATIVE):
        return column.label(mapping.name)
    if pa.types.is_decimal(mapping.arrow_type):  # money
        return cast(column, sat.Numeric()).label(mapping.name)
    return cast(column, Text).label(mapping.name)  # not reached with today's mapping


def _epoch_units(column: ColumnElement[Any], factor: int) -> ColumnElement[Any]:
    return cast(extract("epoch", column) * literal(factor), sat.BigInteger)


def _cursor_expression(
    column: Column[Any], mapping: ColumnMapping
) -> tuple[ColumnElement[Any], pa.DataType]:
    """The cursor path's SELECT for `column`, and the Arrow type of what it returns.

    Python's `datetime` holds neither BC dates, years past 9999, `24:00` nor ±infinity,
    so temporal values travel as the integers Arrow stores (µs or days since 1970, µs
    since midnight), computed exactly by the server; ±infinity as the values the COPY
    path's driver produces, so both paths share `arrow_to_mapping`. `real` travels as
    float8 (exact) rather than as text parsed into a double. Everything else is the
    COPY path's expression.
    """
    target = mapping.arrow_type
    if pa.types.is_timestamp(target):
        kind = postgresql.TIMESTAMP(timezone=target.tz is not None)
        value = case(
            (column == cast(literal("infinity"), kind), literal(PG_INFINITY_US)),
            (column == cast(literal("-infinity"), kind), literal(PG_NEG_INFINITY_US)),
            (column > cast(literal(_ARROW_END), kind), literal(_BEYOND_US)),
            else_=_epoch_units(column, 1_000_000),
        )
        return cast(value, sat.BigInteger).label(mapping.name), pa.int64()
    if pa.types.is_date32(target):
        value = case(
            (column == cast(literal("infinity"), sat.Date), literal(PG_INFINITY_DAYS)),
            (column == cast(literal("-infinity"), sat.Date), literal(PG_NEG_INFINITY_DAYS)),
            else_=column - cast(literal("1970-01-01"), sat.Date),
        )
        return cast(value, sat.Integer).label(mapping.name), pa.int32()
    if pa.types.is_time64(target):
        return _epoch_units(column, 1_000_000).label(mapping.name), pa.int64()
    if pa.types.is_float32(target):
        return cast(column, postgresql.DOUBLE_PRECISION).label(mapping.name), pa.float64()
    if pa.types.is_list(target) and pa.types.is_float32(target.value_type):
        doubles = postgresql.ARRAY(postgresql.DOUBLE_PRECISION)
        return cast(column, doubles).label(mapping.name), pa.list_(pa.float64())
    return _select_expression(column, mapping), target


def _array_check(
    columns: list[Column[Any]], mappings: list[ColumnMapping]
) -> ColumnElement[bool] | None:
    """True for a row holding an array a list cannot carry: several dimensions, or a lower
    bound other than 1 (`'[0:1]={5,6}'`). The driver would flatten them silently."""
    arrays = [c for c, m in zip(columns, mappings, strict=True) if pa.types.is_list(m.arrow_type)]
    if not arrays:
        return None
    tests = [or_(func.array_ndims(c) > 1, func.array_lower(c, 1) != 1).is_(True) for c in arrays]
    return or_(*tests).label(_ARRAY_CHECK)


class PostgresReader(SqlTableReader):
    backend = "postgresql"
    loose_types = False
    real_is_float4 = True
    _cursor_mappings: list[ColumnMapping]
    #: Read through COPY when the driver is installed (see the module docstring).
    use_copy: ClassVar[bool] = True

    _opening: _Opening | None = None

    def __enter__(self) -> Self:
        super().__enter__()
        driver = self._copy_driver()
        if driver is not None:
            self._opening = _Opening(lambda: self._driver_connect(*driver))
        return self

    def close(self) -> None:
        if self._opening is not None:
            self._opening.discard()
            self._opening = None
        super().close()

    def commit_horizon(
        self, cursor: str, arrow_type: pa.DataType, pending: tuple[Sighting, ...]
    ) -> Horizon:
        """Timestamp and date cursors: the start of the oldest transaction open now (or
        now), in the cursor's type. Integer cursors: see `_integer_horizon`.

        Sound because it is taken *before* the read's snapshot: a row the read cannot
        see comes from a transaction open now or started later, and (the assumption,
        see README "Load modes") its cursor is at least that transaction's start. Rows
        below the horizon are therefore all visible to the read.
        """
        if pa.types.is_integer(arrow_type):
            return self._integer_horizon(cursor, pending)
        temporal = pa.types.is_timestamp(arrow_type) or pa.types.is_date32(arrow_type)
        if not temporal:
            return Horizon()
        row = self._open_transactions()
        if pa.types.is_date32(arrow_type):
            return Horizon(row.day)
        if arrow_type.tz is None:
            return Horizon(row.local)
        return Horizon(row.at.astimezone(dt.UTC))

    def _integer_horizon(self, cursor: str, pending: tuple[Sighting, ...]) -> Horizon:
        """The bound for a cursor drawn from a sequence when the row is written.

        A *sighting* is one snapshot's largest cursor `top` and the clock just after
        that snapshot (`taken_at`). Every value up to `top` was drawn before the
        snapshot, so by a transaction open at `taken_at` or committed before it. Once no
        transaction that started before `taken_at` is open any more, each of those rows
        is committed (visible to this read) or gone: the rows up to `top` are final.

        Why transaction start times and not xids (`pg_snapshot_xmin`/`xmax`): a
        transaction gets its xid at its first write, *after* `nextval` drew the value
        it writes, so a transaction with an xid newer than a snapshot can still hold a
        value below that snapshot's maximum. `pg_stat_activity.xact_start` covers
        transactions that have no xid yet.

        This load's sighting is taken first, then the open transactions, in the same
        transaction (pg_stat_activity is read at its first access, after the sighting's
        snapshot). The bound is the largest `top` of the final sightings (this load's
        and the stored ones), exclusive: `top + 1`. None final: `hold`, the watermark
        stays. Kept for later: the best final sighting and the newest others.
        """
        assert self._conn is not None, "use the reader as a context manager first"
        self._conn.rollback()  # a fresh transaction: pg_stat_activity is read anew
        column = self.source_table.columns[cursor]
        try:
            seen = self._conn.execute(
                select(func.clock_timestamp(), func.max(column)).select_from(self.source_table)
            ).one()
        except DBAPIError as exc:
            raise LoadFailed(
                one_line(f"reading the largest {cursor} failed: {reason(exc, self.url.password)}")
            ) from None
        row = self._open_transactions(rollback=False)
        # The read must see every commit up to now: a new transaction gets a new snapshot
        # even where the server's default isolation is REPEATABLE READ.
        self._conn.rollback()
        taken_at, top = seen
        sightings = (*pending, Sighting(taken_at, encode(top))) if top is not None else pending
        final = [s for s in sightings if row.oldest is None or s.taken_at < row.oldest]
        waiting = [s for s in sightings if s not in final][-_SIGHTINGS_KEPT:]
        if not final:
            return Horizon(hold=True, pending=tuple(waiting))
        best = max(final, key=lambda s: int(s.top))
        return Horizon(int(best.top) + 1, pending=(best, *waiting))

    def _open_transactions(self, *, rollback: bool = True) -> Any:
        """The `_HORIZON` row: the oldest open transaction of the source database."""
        assert self._conn is not None, "use the reader as a context manager first"
        if rollback:
            self._conn.rollback()  # a fresh transaction: pg_stat_activity is read anew
        try:
            row = self._conn.execute(_HORIZON).one()
        except DBAPIError as exc:
            raise LoadFailed(
                one_line(f"reading open transactions failed: {reason(exc, self.url.password)}")
            ) from None
        if row.hidden:
            raise ConfigError(
                f"source role {row.role} cannot see {row.hidden} other session(s) of database "
                f"{row.db} in pg_stat_activity, so the load cannot keep its watermark below "
                f"transactions still open: GRANT pg_read_all_stats TO {row.role} (it shows "
                "activity, no table data)"
            )
        return row

    def _copy_driver(self) -> tuple[ModuleType, ModuleType] | None:
        """The ADBC modules when this read goes through COPY; None for the cursor path.

        The cursor path: no driver installed, COPY switched off, or a psycopg2 URL (its
        quoting is not the one `_copy_query` uses).
        """
        if not self.use_copy or os.environ.get(COPY_ENV, "1") == "0":
            return None
        assert self._conn is not None, "use the reader as a context manager first"
        if not isinstance(self._conn.connection.driver_connection, psycopg.Connection):
            return None
        return _driver()

    @classmethod
    def estimate_rows(cls, conn: Connection, table: str, schema: str | None) -> int | None:
        """`pg_class.reltuples`, kept by VACUUM/ANALYZE (autovacuum); -1 before the first
        one (PostgreSQL 14+), then None. Names are bound parameters, not SQL text."""
        value = conn.execute(_RELTUPLES, {"table": table, "schema": schema}).scalar()
        return int(value) if value is not None and value >= 0 else None

    def batches(self) -> Iterator[pa.RecordBatch]:
        driver = self._copy_driver()
        if driver is None:
            self._json_as_text()
            yield from super().batches()  # `cursor_statement` + `rows_to_batch` below
            return
        query = self._copy_query()
        opening, self._opening = self._opening, None
        conn = opening.take() if opening is not None else self._driver_connect(*driver)
        try:
            # Decoding, checking and re-cutting all happen in the prefetch thread.
            decoded = rebatch(
                self._decode(conn, query), self.table_spec.batch_size, max_bytes=_BATCH_BYTES
            )
            yield from prefetch(decoded, depth=2)
        finally:
            conn.close()

    def _json_as_text(self) -> None:
        """Cursor path: take json/jsonb as the server's text, like COPY does.

        psycopg would parse them into Python objects, and dumping those again changes
        the text (`1.10` → `1.1`, a huge number → `Infinity`, which is not JSON).
        """
        assert self._conn is not None
        raw = self._conn.connection.driver_connection
        if isinstance(raw, psycopg.Connection):
            for name in ("json", "jsonb"):
                raw.adapters.register_loader(name, TextLoader)
        elif type(raw).__module__.startswith("psycopg2"):
            extras = import_module("psycopg2.extras")
            extras.register_default_json(raw, loads=str)
            extras.register_default_jsonb(raw, loads=str)

    # --- the statement --------------------------------------------------------------------

    def copy_statement(self) -> Select[Any]:
        """`statement()` (the rows the load selected) with the COPY-exact column expressions."""
        columns = [
            _select_expression(c, m) for c, m in zip(self.columns, self.mappings, strict=True)
        ]
        return self._with_columns(columns)

    def cursor_statement(self) -> Select[Any]:
        """The same rows and values as `copy_statement`, in types psycopg returns exactly."""
        pairs = [_cursor_expression(c, m) for c, m in zip(self.columns, self.mappings, strict=True)]
        self._cursor_mappings = [
            ColumnMapping(m.name, arrow, None if arrow != m.arrow_type else m.convert)
            for m, (_, arrow) in zip(self.mappings, pairs, strict=True)
        ]
        if _array_check(self.columns, self.mappings) is not None:
            self._cursor_mappings.append(ColumnMapping(_ARRAY_CHECK, pa.bool_()))
        return self._with_columns([expression for expression, _ in pairs])

    def _with_columns(self, columns: list[ColumnElement[Any]]) -> Select[Any]:
        check = _array_check(self.columns, self.mappings)
        if check is not None:
            columns = [*columns, check]
        return self.statement().with_only_columns(*columns, maintain_column_froms=True)

    def rows_to_batch(self, rows: Sequence[Any], where: str) -> pa.RecordBatch:
        """Cursor-path rows → the batch the COPY path would produce from the same rows."""
        mappings = self._cursor_mappings
        if len(mappings) > len(self.mappings) and any(row[-1] for row in rows):
            raise self._bad_arrays(where)  # before the items are converted
        raw = rows_to_batch(rows, mappings, pa.schema([m.field for m in mappings]), where)
        return self._final_batch(raw, where)

    def _bad_arrays(self, where: str) -> LoadFailed:
        names = [m.name for m in self.mappings if pa.types.is_list(m.arrow_type)]
        return LoadFailed(
            one_line(
                f"{where}: an array in column(s) {', '.join(names)} has several dimensions "
                "or a lower bound other than 1, which a list cannot carry: refusing to load "
                "it (convert it in a view, e.g. to jsonb)"
            )
        )

    def _final_batch(self, batch: pa.RecordBatch, where: str) -> pa.RecordBatch:
        """Decoded columns → `self.schema`: checked casts, ±infinity, refused arrays."""
        if batch.num_columns > len(self.mappings):
            flags = batch.column(len(self.mappings))
            if pc.any(flags).as_py():
                raise self._bad_arrays(where)
        policy = str(self.table_spec.infinity)
        arrays = [
            arrow_to_mapping(batch.column(i), m, where, policy, self.bounds)
            for i, m in enumerate(self.mappings)
        ]
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)

    def _copy_query(self) -> str:
        """The SELECT as text, literals quoted by psycopg (the driver takes no parameters).

        Values in the WHERE (watermarks, filter values) are bound parameters of the Core
        statement; psycopg renders each with its own adapter, exactly as it would send it.
        """
        assert self._conn is not None
        compiled = self.copy_statement().compile(
            dialect=postgresql.psycopg.dialect(), compile_kwargs={"render_postcompile": True}
        )
        raw = self._conn.connection.driver_connection
        return psycopg.ClientCursor(raw).mogrify(str(compiled), dict(compiled.params))

    # --- the transport --------------------------------------------------------------------

    def _driver_connect(self, postgres: ModuleType, manager: ModuleType) -> _Connection:
        query = dict(self.url.query)
        query.setdefault("connect_timeout", str(CONNECT_TIMEOUT))
        uri = self.url.set(drivername="postgresql", query=query)
        try:
            return _Connection(postgres, manager, uri.render_as_string(hide_password=False))
        except manager.Error as exc:
            raise SourceUnavailable(
                f"cannot connect to the source {safe(self.url)}: {self._reason(exc)}"
            ) from None

    def _decode(self, conn: _Connection, query: str) -> Iterator[pa.RecordBatch]:
        """Driver batches → batches of `self.schema` (runs in the prefetch thread).

        An error while the stream is read means the COPY's connection broke (a backend
        terminated, a server restart, a dropped network): the driver raises it as a plain
        `OSError` or as one of its own errors. That is `SourceUnavailable` (exit 3, a
        retry may succeed), never an unexpected crash; the load's transaction rolls back.
        """
        where = f"source table {self.qualified_name}"
        read = 0
        statement = conn.manager.AdbcStatement(conn.connection)
        try:
            try:
                statement.set_options(**{_BATCH_HINT: str(_DRIVER_BATCH_BYTES)})
                statement.set_sql_query(query)
                handle, _ = statement.execute_query()
                stream = pa.RecordBatchReader.from_stream(handle)
            except (conn.manager.Error, OSError) as exc:
                if _connection_lost(exc):
                    raise self._lost(read, exc) from None
                raise LoadFailed(one_line(f"reading {where} failed: {self._reason(exc)}")) from None
            with stream:
                while True:
                    try:
                        batch = stream.read_next_batch()
                    except StopIteration:
                        return
                    except (conn.manager.Error, OSError) as exc:
                        raise self._lost(read, exc) from None
                    except pa.ArrowException as exc:
                        raise LoadFailed(
                            one_line(f"reading {where} failed: {self._reason(exc)}")
                        ) from None
                    read += batch.num_rows
                    yield self._final_batch(batch, where)
        finally:
            with contextlib.suppress(Exception):  # a dead connection must not hide why
                statement.close()

    def _lost(self, rows: int, exc: BaseException) -> SourceUnavailable:
        return SourceUnavailable(
            one_line(
                f"reading source table {self.qualified_name}: source connection lost after "
                f"{rows:,} rows: {self._reason(exc)}; bronze unchanged"
            )
        )

    def _reason(self, exc: BaseException) -> str:
        text = str(exc) or type(exc).__name__
        first = next((line for line in text.splitlines() if line.strip()), text)
        return one_line(redact(first, self.url.password))

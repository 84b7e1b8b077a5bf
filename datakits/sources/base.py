"""The source reader: reflect one table, then stream it as Arrow record batches.

Every SQL source shares this implementation; a source module only states how its
driver behaves (`loose_types`, how to open the connection). The table is reflected with
SQLAlchemy, so identifiers are quoted by the dialect and never formatted into SQL here.

Rows are read through a server-side cursor (`stream_results` + `yield_per`), so the
runner holds one batch at a time whatever the table's size.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import logging
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import Any, ClassVar, Protocol, Self

import pyarrow as pa
from sqlalchemy import (
    URL,
    Column,
    ColumnElement,
    Connection,
    Engine,
    MetaData,
    Select,
    Table,
    inspect,
    literal_column,
    select,
    type_coerce,
)
from sqlalchemy.exc import DBAPIError, NoSuchTableError
from sqlalchemy.types import NullType

from datakits.errors import ConfigError, LoadFailed, SourceUnavailable
from datakits.messages import one_line, reason
from datakits.naming import column_names
from datakits.spec import TableSpec
from datakits.types import ColumnMapping, TemporalBounds, bounds_for, map_column, rows_to_batch
from datakits.urls import make_engine, parse_url, require_backend, safe
from datakits.watermarks import Horizon, Sighting

#: Driver codes of "this database does not exist": PostgreSQL's SQLSTATE, MySQL's errno.
_NO_DATABASE_SQLSTATE = "3D000"
_NO_DATABASE_ERRNO = 1049

#: How many names an error lists before it says "and N more".
_LISTED = 30


class SourceReader(Protocol):
    """What the load needs from a source: a schema, then batches; a context manager.

    Between `__enter__` and `batches`, the load may narrow the rows read by setting
    `where` (Core conditions on `source_table`'s columns, AND-ed: the filter and the
    watermark range, see `datakits.modes`) and ask `exists` whether rows match.
    """

    schema: pa.Schema
    mappings: list[ColumnMapping]
    #: Bronze column name by source column name, for the selected columns.
    bronze_names: dict[str, str]
    where: tuple[ColumnElement[bool], ...]
    bounds: TemporalBounds
    default_lookback: dt.timedelta

    @property
    def source_table(self) -> Table: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...

    def row_estimate(self) -> int | None: ...

    def exists(self, *conditions: ColumnElement[bool]) -> bool: ...

    def cursor_order(self, column: Column[Any], value: Any) -> tuple[Any, Any]: ...

    def commit_horizon(
        self, cursor: str, arrow_type: pa.DataType, pending: tuple[Sighting, ...]
    ) -> Horizon: ...

    def batches(self) -> Iterator[pa.RecordBatch]: ...

    def key_batches(
        self, keys: Sequence[str], where: Sequence[ColumnElement[bool]]
    ) -> Iterator[pa.RecordBatch]: ...


def _missing_database(exc: DBAPIError, database: str | None) -> bool:
    """Whether the server said the database in the URL does not exist."""
    orig = exc.orig
    if getattr(orig, "sqlstate", None) == _NO_DATABASE_SQLSTATE:
        return True
    # psycopg reports a refused login without a SQLSTATE: the server's FATAL text it is.
    if database and f'database "{database}" does not exist' in str(orig):
        return True
    args = getattr(orig, "args", ())
    return bool(args) and args[0] == _NO_DATABASE_ERRNO


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:_LISTED]) or "none"
    more = len(names) - _LISTED
    return f"{shown}, and {more} more" if more > 0 else shown


class SqlTableReader:
    """Reads one table of a SQLAlchemy-reachable source. Use as a context manager."""

    #: The backend name this reader accepts (`url.get_backend_name()`).
    backend: ClassVar[str]
    #: True when the database does not enforce declared types (see `datakits.types`).
    loose_types: ClassVar[bool] = False
    #: True when the source's REAL is a 4-byte float (PostgreSQL): bronze keeps float4.
    real_is_float4: ClassVar[bool] = False
    #: The re-read window behind the watermark for timestamp/date cursors when the spec
    #: sets a smaller `lookback` (see `datakits.modes`; MySQL/MariaDB set one).
    default_lookback: ClassVar[dt.timedelta] = dt.timedelta(0)
    #: The clamp range of `infinity: clamp` (PostgreSQL): the warehouse's; the load sets it.
    bounds: TemporalBounds = bounds_for("")

    def __init__(self, url: str | URL, table: TableSpec, schema: str | None = None) -> None:
        self.url = parse_url(url)
        self.table_spec = table
        self.source_schema = table.source_schema if table.source_schema is not None else schema
        #: The selected source columns, in the order of `mappings` (named as in the source).
        self.columns: list[Column[Any]] = []
        #: The bronze column name of each selected source column (`datakits.naming`).
        self.bronze_names: dict[str, str] = {}
        self.mappings: list[ColumnMapping] = []
        self.schema = pa.schema([])
        #: Conditions on `source_table` the rows read must meet (set by the load).
        self.where: tuple[ColumnElement[bool], ...] = ()
        self._engine: Engine | None = None
        self._conn: Connection | None = None
        self._table: Table | None = None

    @property
    def source_table(self) -> Table:
        """The reflected source table (all its columns, not only the selected ones)."""
        if self._table is None:
            raise RuntimeError("use the reader as a context manager first")
        return self._table

    @property
    def qualified_name(self) -> str:
        name = self.table_spec.source_table
        return f"{self.source_schema}.{name}" if self.source_schema else name

    def _make_engine(self) -> Engine:
        return make_engine(self.url)

    @classmethod
    def estimate_rows(cls, conn: Connection, table: str, schema: str | None) -> int | None:
        """The database's own estimate of `table`'s row count from its statistics, or None.

        Only catalog reads, never `count(*)` (a full scan of a large table just to print a
        percentage). The base answer is None: no estimate."""
        return None

    def row_estimate(self) -> int | None:
        """`estimate_rows` on the open reader's own connection, or None (unknown).

        What `datakits.sources.row_estimate` answers, without a connection of its own (a
        login and SQLAlchemy's first-connect queries before the first row). A failure is
        None, as there, and is rolled back so the read's connection stays usable."""
        assert self._conn is not None, "use the reader as a context manager first"
        try:
            return self.estimate_rows(self._conn, self.table_spec.source_table, self.source_schema)
        except Exception as exc:
            with contextlib.suppress(Exception):
                self._conn.rollback()  # PostgreSQL: the failed query aborted the transaction
            # the type only: a driver message may quote the URL
            logging.getLogger(__name__).debug(
                "no row estimate for %s: %s", self.table_spec.name, type(exc)
            )
            return None

    def __enter__(self) -> Self:
        require_backend(self.url, self.backend, "source")
        self._engine = self._make_engine()
        try:
            self._conn = self._connect(self._engine)
            self._table = self._reflect(self._conn)
            self.columns = self._select_columns(self._table)
            selected = {c.name for c in self.columns}
            ordinal = [c.name for c in self._table.columns if c.name in selected]
            self.bronze_names = column_names(ordinal, self.table_spec.given_names)
            self.mappings = [
                map_column(
                    self.bronze_names[c.name],
                    c.type,
                    loose=self.loose_types,
                    float4=self.real_is_float4,
                )
                for c in self.columns
            ]
            self.schema = pa.schema([m.field for m in self.mappings])
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._conn is not None:
            # Closing a broken connection must not hide the original error.
            with contextlib.suppress(DBAPIError):
                self._conn.close()
            self._conn = None
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def _connect(self, engine: Engine) -> Connection:
        """Open the source; a database that does not exist is the URL's fault (exit 2)."""
        try:
            return engine.connect()
        except DBAPIError as exc:
            why = reason(exc, self.url.password)
            if _missing_database(exc, self.url.database):
                raise ConfigError(
                    f"the source database {self.url.database} does not exist on "
                    f"{safe(self.url)} ({why}): fix the database name in the source connection"
                ) from None
            # Worded as `datakits.urls.connect` words it for every other connection.
            raise SourceUnavailable(
                f"cannot connect to the source {safe(engine.url)}: {why}"
            ) from None

    def _reflect(self, conn: Connection) -> Table:
        """The source table's columns (name, type, nullability) as a Core `Table`.

        Only the columns: full reflection (`autoload_with`) also reads the keys, indexes,
        constraints and comments, which the load never uses: one query instead of eight
        (measured on PostgreSQL: 15 ms instead of 75 ms of every run).

        A missing schema (PostgreSQL: no table found; MySQL/MariaDB: `unknown database`;
        SQLite: `unknown database`) and a missing table are `ConfigError`: exit 2, never
        retried, with what exists so the spec can be fixed.
        """
        try:
            name = self.table_spec.source_table
            found = inspect(conn).get_columns(name, schema=self.source_schema)
            if not found:  # some dialects answer an empty list for a missing table
                raise NoSuchTableError(name)
            # `quote=True`: the exact reflected spelling, also for a lower-case name a
            # dialect would otherwise fold (Oracle-style) or a reserved word.
            columns = [
                Column(c["name"], c["type"], nullable=c["nullable"], quote=True) for c in found
            ]
            return Table(name, MetaData(), *columns, schema=self.source_schema, quote=True)
        except NoSuchTableError:
            self._check_schema(conn)
            existing = sorted(inspect(conn).get_table_names(schema=self.source_schema))
            raise ConfigError(
                f"source table {self.qualified_name} does not exist in {safe(self.url)} "
                f"(tables: {_names(existing)})"
            ) from None
        except DBAPIError as exc:
            conn.rollback()  # PostgreSQL: the failed query aborted the transaction
            self._check_schema(conn)
            raise LoadFailed(
                f"cannot read the definition of source table {self.qualified_name}: "
                f"{reason(exc, self.url.password)}"
            ) from None

    def _check_schema(self, conn: Connection) -> None:
        """ConfigError when `source.schema` names a schema (database) the source lacks."""
        if self.source_schema is None:
            return
        try:
            schemas = sorted(inspect(conn).get_schema_names())
        except DBAPIError:
            conn.rollback()
            return  # cannot list them: the caller's error stands
        if self.source_schema not in schemas:
            raise ConfigError(
                f"source schema {self.source_schema} does not exist in {safe(self.url)} "
                f"(schemas: {_names(schemas)}): fix `source.schema` in the tenant's spec"
            )

    def _select_columns(self, table: Table) -> list[Column[Any]]:
        available = [c.name for c in table.columns]
        wanted = list(self.table_spec.column_sources or available)
        missing = [name for name in wanted if name not in table.columns]
        if missing:
            raise ConfigError(
                f"source table {self.qualified_name} has no column {', '.join(missing)} "
                f"(columns: {_names(available)})"
            )
        return [table.columns[name] for name in wanted]

    def statement(self) -> Select[Any]:
        """The SELECT of the rows to load: the selected columns, restricted by `where`.

        A reader with another transport (e.g. COPY) must read exactly these rows.
        """
        # Raw driver values (no SQLAlchemy result processing): our converters handle every
        # representation, while SQLAlchemy's would reject e.g. SQLite timestamps with a `T`.
        stmt = select(
            *(
                type_coerce(column, NullType()).label(m.name)
                for column, m in zip(self.columns, self.mappings, strict=True)
            )
        )
        return stmt.where(*self.where) if self.where else stmt

    def commit_horizon(
        self, cursor: str, arrow_type: pa.DataType, pending: tuple[Sighting, ...]
    ) -> Horizon:
        """A cursor value below which no transaction still open can add or change a row.

        Called by the load before the rows are read; the watermark never passes it
        (`LoadPlan.with_horizon`). `pending`: the sightings stored with the watermark.
        No bound: none is needed (SQLite: one writer at a time, so no commit can land
        behind a read) or none is known (MySQL/MariaDB: the `default_lookback` window
        covers late commits instead).
        """
        return Horizon()

    def cursor_statement(self) -> Select[Any]:
        """The statement the server-side cursor path runs (a reader may refine it)."""
        return self.statement()

    def rows_to_batch(self, rows: Sequence[Any], where: str) -> pa.RecordBatch:
        """Rows of `cursor_statement()` as a batch of `self.schema`."""
        return rows_to_batch(rows, self.mappings, self.schema, where)

    def cursor_order(self, column: Column[Any], value: Any) -> tuple[Any, Any]:
        """(expression, bound) to compare a cursor column with a watermark value in SQL.

        The column itself and the value as a parameter of its type, for a database that
        enforces its types; SQLite overrides it (its timestamps are text).
        """
        return column, value

    def exists(self, *conditions: ColumnElement[bool]) -> bool:
        """Whether a source row meets all `conditions` (e.g. a NULL cursor); one query."""
        if self._conn is None:
            raise RuntimeError("use the reader as a context manager first")
        probe = select(literal_column("1")).select_from(self.source_table).where(*conditions)
        try:
            return self._conn.execute(select(probe.exists())).scalar_one()
        except DBAPIError as exc:
            raise LoadFailed(
                one_line(
                    f"querying source table {self.qualified_name} failed: "
                    f"{reason(exc, self.url.password)}"
                )
            ) from None

    def key_batches(
        self, keys: Sequence[str], where: Sequence[ColumnElement[bool]]
    ) -> Iterator[pa.RecordBatch]:
        """Stream only the `keys` columns of the rows matching `where` (the key scan of
        `deletes`): a copy of this reader narrowed to them reads through the very path
        `batches` takes (PostgreSQL: COPY via ADBC, else the server-side cursor), so the
        keys have exactly the types and values the data read gives bronze.

        Called after the data read, as its own statement: a snapshot at or after the
        data read's is what makes the anti-join safe (a row added in between is in the
        keys, so never taken for deleted; one deleted in between is merged, then
        removed). An earlier snapshot would not be, so it is never taken before.
        """
        narrowed = copy.copy(self)
        position = {column.name: i for i, column in enumerate(self.columns)}
        chosen = [position[name] for name in keys]  # `keys` are source column names
        narrowed.columns = [self.columns[i] for i in chosen]
        narrowed.mappings = [self.mappings[i] for i in chosen]
        narrowed.schema = pa.schema([m.field for m in narrowed.mappings])
        narrowed.where = tuple(where)
        return narrowed.batches()

    def batches(self) -> Iterator[pa.RecordBatch]:
        """Stream the selected columns, `batch_size` rows per Arrow batch."""
        if self._conn is None or self._table is None:
            raise RuntimeError("use the reader as a context manager before reading batches")
        stmt = self.cursor_statement()
        size = self.table_spec.batch_size
        conn = self._conn.execution_options(stream_results=True, yield_per=size)
        where = f"source table {self.qualified_name}"
        read = 0
        try:
            result = conn.execute(stmt)
            try:
                for rows in result.partitions(size):
                    batch = self.rows_to_batch(rows, where)
                    read += batch.num_rows
                    yield batch
            finally:
                result.close()  # also when the consumer stops early: frees the cursor
        except DBAPIError as exc:
            why = reason(exc, self.url.password)
            if exc.connection_invalidated:  # the session is gone: a retry may succeed
                raise SourceUnavailable(
                    one_line(
                        f"reading {where}: source connection lost after {read:,} rows: "
                        f"{why}; bronze unchanged"
                    )
                ) from None
            raise LoadFailed(one_line(f"reading {where} failed: {why}")) from None

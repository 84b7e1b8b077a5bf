"""Load modes: which source rows a load reads, and how they reach bronze.

`plan_load` decides from the table spec, the cursor column, and what the warehouse
holds (the bronze table, the stored watermark):

full_refresh
    Every row (after `filter`), into a staging table swapped in for bronze.
first load of append / incremental
    (no watermark, or no bronze table) The same rebuild, and the watermark is saved.
    Deleting a table's watermark row therefore reloads it from scratch.
append, later loads
    With a primary key: rows with `cursor >= watermark - lookback`, inserted only if
    their key is not in bronze yet. Without one: rows with `cursor > watermark`, all
    inserted (the cursor must then grow in commit order, e.g. an insert-only table).
incremental, later loads
    Rows with `cursor >= watermark - lookback`, merged by primary key.

Why these bounds guarantee "no row lost, none doubled", including ties and batch edges:

* The watermark is the largest cursor among the rows the load *read*, all from one
  statement (one snapshot), and commits with the data. Batch boundaries play no part:
  the value is taken over all batches, and a failed load commits nothing.
* `>=` re-reads the rows sitting exactly on the watermark, so a row committed later
  with the same cursor value (a tie) is still picked up; the merge by key makes the
  re-read rows replace themselves instead of doubling.
* A row that commits late with a cursor *below* the watermark: the source bounds it.
  Before the read, the reader gives a *commit horizon* (`commit_horizon`): PostgreSQL,
  the start of the oldest transaction open in the source database (or now). Every row
  the read cannot see belongs to a transaction open then or started later, so (if its
  cursor is set at write time, see README) its cursor is at or past the horizon; the
  watermark never passes it (`with_horizon`), and such rows are re-read and merged.
  Integer cursors (sequences): one past the largest cursor of a *sighting* taken before
  every transaction still open began (`PostgresReader._integer_horizon`); none such:
  `hold`, the watermark stays where it is.
  Append without a key reads only rows below the horizon (a re-read would double).
  MySQL/MariaDB have no horizon: a default window (`default_lookback`, 1 h) re-reads
  behind the watermark. SQLite has one writer at a time: none is needed.
* `lookback` widens the re-read window on top of that, e.g. for a cursor set to an
  older value by the application.
* NULL cursors never satisfy a comparison: `null_cursor` decides (`NullCursor`).
  `include` re-reads them every run (OR cursor IS NULL) and merges them by key.

The watermark never moves back: it is the larger of the stored one and the new maximum.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import pyarrow as pa
from sqlalchemy import Column, ColumnElement, Table, false, or_

from datakits.errors import ConfigError
from datakits.spec import LoadMode, NullCursor, TableSpec
from datakits.watermarks import Horizon, Sighting, StoredWatermark, encode

#: (cursor column, watermark value) → (SQL expression, bound) compared with >= or >.
CursorOrder = Callable[[Column[Any], Any], tuple[Any, Any]]


def _plain(column: Column[Any], value: Any) -> tuple[Any, Any]:
    return column, value


@dataclass(frozen=True)
class Cursor:
    """The cursor column as the source has it."""

    #: The source column's name (what the WHERE compares).
    column: str
    arrow_type: pa.DataType
    #: False when the source declares the column NOT NULL (no NULL check needed).
    nullable: bool
    #: Its bronze column name, when it differs from `column` (`datakits.naming`).
    bronze: str | None = None

    @property
    def bronze_column(self) -> str:
        """The bronze name: what the batches carry and the watermark row records.

        Bronze, not source: the watermark describes bronze's content, and every table
        loaded before source names existed has the same name on both sides, so its stored
        watermark still matches."""
        return self.bronze or self.column


@dataclass(frozen=True)
class LoadPlan:
    mode: LoadMode
    #: Staging + swap (full refresh, first load); otherwise staging + merge/insert.
    rebuild: bool
    cursor: Cursor | None
    null_cursor: NullCursor
    keys: tuple[str, ...]
    #: The stored watermark in the cursor's type (None: no row with a cursor read yet).
    previous: Any = None
    #: Read rows with cursor >= lower (`> lower` when `strict`); None: no lower bound.
    lower: Any = None
    strict: bool = False
    #: Why this plan, in words, for the progress line.
    why: str = ""
    #: Rows whose cursor is below this are final at the source (`with_horizon`): the
    #: watermark never passes it. None: no bound known, or none needed.
    horizon: Any = None
    #: Read only rows with cursor < upper (append without a key, `with_horizon`).
    upper: Any = None
    #: No row is known final past `previous`: the watermark stays where it is.
    hold: bool = False
    #: The source's sightings to store with the watermark (`Horizon.pending`).
    pending: tuple[Sighting, ...] = ()

    def with_horizon(self, horizon: Horizon) -> LoadPlan:
        """This plan, kept below the source's commit horizon (see the module docstring).

        With a key, rows at or past the horizon are loaded now and the watermark stops
        at the horizon, so they are read again (and merged) next time. Without a key a
        re-read would double rows: the load reads only rows below the horizon instead.
        `hold` (nothing known final): with a key the watermark stays; without one the
        load reads nothing past it (the stored watermark is the last bound still safe).
        """
        if self.cursor is None:
            return self
        plan = replace(self, pending=horizon.pending)
        keyless_append = self.mode is LoadMode.append and not self.keys
        if horizon.hold:
            if keyless_append:
                return replace(plan, hold=True, upper=self.previous)
            return replace(plan, hold=True)
        if horizon.below is None:
            return plan
        if keyless_append:
            return replace(plan, upper=horizon.below)
        return replace(plan, horizon=horizon.below)

    def conditions(
        self, source: Table, order: CursorOrder | None = None
    ) -> list[ColumnElement[bool]]:
        """The cursor part of the WHERE clause (the caller adds the filters).

        `order(column, value)` gives the SQL expression and bound to compare (the
        reader's `cursor_order`; default: the column and the value as a parameter).
        """
        if self.cursor is None:
            return []
        col = source.columns[self.cursor.column]
        below: list[ColumnElement[bool]] = []
        if self.hold and self.upper is None and self.mode is LoadMode.append and not self.keys:
            below = [false()]  # keyless, nothing final yet and no watermark: wait
        if self.upper is not None:
            key, upper = (order or _plain)(col, self.upper)
            below = [key < upper]
        if self.lower is None:
            if self.null_cursor is NullCursor.include:
                return below
            return [col.is_not(None), *below]
        key, lower = (order or _plain)(col, self.lower)
        bound = key > lower if self.strict else key >= lower
        if self.null_cursor is NullCursor.include:
            return [or_(bound, col.is_(None)), *below]
        return [bound, *below]

    def null_rows(self, source: Table) -> ColumnElement[bool] | None:
        """The condition for rows the `fail` policy must refuse; None if nothing to check."""
        if self.cursor is None or self.null_cursor is not NullCursor.fail:
            return None
        if not self.cursor.nullable:
            return None
        return source.columns[self.cursor.column].is_(None)

    def describe(self) -> str:
        if self.cursor is None:
            return str(self.mode)
        name = self.cursor.column
        below = f" below {encode(self.upper)}" if self.upper is not None else ""
        if self.hold:
            below += " (watermark held: a transaction older than every sighting is open)"
        if self.lower is None:
            return f"{self.mode}, {self.why}{below}"
        op = ">" if self.strict else ">="
        return f"{self.mode}, rows with {name} {op} {encode(self.lower)}{below}"

    def next_watermark(self, read_max: Any) -> Any:
        """The watermark to commit: never behind the stored one, never past the horizon."""
        if self.hold:
            return self.previous
        if read_max is not None and self.horizon is not None:
            read_max = min(read_max, self.horizon)
        if self.previous is None:
            return read_max
        if read_max is None:
            return self.previous
        return max(self.previous, read_max)


def _check_lookback(lookback: int | dt.timedelta, cursor: Cursor, table: str) -> None:
    column, arrow_type = cursor.column, cursor.arrow_type
    temporal = pa.types.is_timestamp(arrow_type) or pa.types.is_date(arrow_type)
    if isinstance(lookback, dt.timedelta) and lookback and not temporal:
        raise ConfigError(
            f"table {table}: lookback is a duration ({lookback.total_seconds():.0f} s), but "
            f"cursor {column} is loaded as {arrow_type}: give the window as a number in the "
            "cursor's units"
        )


def _back(value: Any, lookback: int | dt.timedelta, arrow_type: pa.DataType) -> Any:
    """`value - lookback` in the cursor's type; None when it falls before the type's range."""
    if not lookback:
        return value
    t = arrow_type
    try:
        if pa.types.is_timestamp(t):
            window = (
                lookback if isinstance(lookback, dt.timedelta) else dt.timedelta(seconds=lookback)
            )
            return value - window
        if pa.types.is_date(t):
            seconds = lookback.total_seconds() if isinstance(lookback, dt.timedelta) else lookback
            return value - dt.timedelta(days=math.ceil(seconds / 86400))
    except OverflowError:
        return None  # the window reaches before year 1: read everything
    assert isinstance(lookback, int)  # `_check_lookback` refused durations
    if pa.types.is_decimal(t):
        return value - decimal.Decimal(lookback)
    return value - lookback


def _effective_lookback(
    lookback: int | dt.timedelta, default: dt.timedelta, arrow_type: pa.DataType
) -> int | dt.timedelta:
    """The spec's window, or the source's default one for a temporal cursor if larger."""
    temporal = pa.types.is_timestamp(arrow_type) or pa.types.is_date(arrow_type)
    if not default or not temporal:
        return lookback
    spec = lookback if isinstance(lookback, dt.timedelta) else dt.timedelta(seconds=lookback)
    return max(spec, default)


def plan_load(
    spec: TableSpec,
    cursor: Cursor | None,
    *,
    bronze_exists: bool,
    stored: StoredWatermark | None,
    target: str,
    full_reload: bool = False,
    default_lookback: dt.timedelta = dt.timedelta(0),
    keys: tuple[str, ...] | None = None,
) -> LoadPlan:
    """What this load reads and how it writes; see the module docstring.

    `full_reload` (an operator's request, e.g. from the DAG's trigger form) rebuilds an
    append or incremental table as on its first load: every row, swapped in, and the
    watermark replaced in the same transaction by the largest cursor read.
    `default_lookback`: the source's own re-read window for timestamp and date cursors
    (MySQL/MariaDB: `datakits.sources.mysql`); the spec's `lookback`, when larger, wins.
    `keys`: the primary key's bronze column names (default: the spec's, unrenamed).
    """
    keys = keys if keys is not None else spec.primary_key or ()
    base = {"mode": spec.mode, "null_cursor": spec.null_cursor, "keys": keys}
    if spec.mode is LoadMode.full_refresh or cursor is None:
        return LoadPlan(rebuild=True, cursor=None, why="whole table", **base)
    _check_lookback(spec.lookback, cursor, target)
    if full_reload:
        return LoadPlan(rebuild=True, cursor=cursor, why="full reload requested", **base)
    if not bronze_exists:
        return LoadPlan(rebuild=True, cursor=cursor, why="first load (no bronze table)", **base)
    if stored is None:
        return LoadPlan(rebuild=True, cursor=cursor, why="first load (no watermark)", **base)
    if stored.cursor_column != cursor.bronze_column:
        if not keys:
            raise ConfigError(
                f"the watermark of {target} follows column {stored.cursor_column}, the spec "
                f"now says cursor {cursor.column}: append without primary_key cannot re-read "
                "rows without doubling them; delete the table's row from the meta schema's "
                "watermarks table to reload it from scratch"
            )
        # Re-read every row: the merge (or insert-if-absent) keeps bronze's history.
        why = f"cursor changed from {stored.cursor_column}: every row re-read"
        return LoadPlan(rebuild=False, cursor=cursor, why=why, **base)
    previous = stored.decoded(target, cursor.arrow_type)
    if previous is None:
        return LoadPlan(rebuild=False, cursor=cursor, why="no cursor value yet", **base)
    strict = spec.mode is LoadMode.append and not keys
    lookback = _effective_lookback(spec.lookback, default_lookback, cursor.arrow_type)
    lower = previous if strict else _back(previous, lookback, cursor.arrow_type)
    why = "window reaches the start" if lower is None else ""
    return LoadPlan(
        rebuild=False,
        cursor=cursor,
        previous=previous,
        lower=lower,
        strict=strict,
        why=why,
        **base,
    )

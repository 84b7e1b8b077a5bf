"""Watermarks: the highest cursor value an append or incremental load has read.

A watermark is stored as text in the tenant's `meta.watermarks` (one column serves every
cursor type) and read back into the cursor column's type, so the next load can bind it
in `cursor >= :watermark`. It is written by `save_watermark` in the load's own
transaction: data and watermark commit together or not at all (DESIGN.md, contract 5).

The value saved is the maximum cursor of the rows *actually read* (`CursorMax`), never
"now" or a value computed by the source after the read, and never past the source's
commit horizon taken before the read: a row the read did not see can then never sit
below a watermark that claims to include it, even when it commits late
(`datakits.modes`).
"""

from __future__ import annotations

import datetime as dt
import decimal
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Connection, delete, insert, select

from datakits.errors import ConfigError, LoadFailed
from datakits.metadata import MetaTables

#: What a cursor may be: types whose order is the same in Python and in every database.
#: Text is refused: the source's collation and Python's code-point order differ.
CURSOR_KINDS = "an integer, decimal, float, timestamp or date column"


def check_cursor_type(table: str, column: str, arrow_type: pa.DataType) -> None:
    """Refuse a cursor whose values cannot be compared the same way here and at the source."""
    t = arrow_type
    if (
        pa.types.is_integer(t)
        or pa.types.is_floating(t)
        or pa.types.is_decimal(t)
        or pa.types.is_timestamp(t)
        or pa.types.is_date(t)
    ):
        return
    raise ConfigError(
        f"cursor column {column} of source table {table} is loaded as {t}: a cursor must be "
        f"{CURSOR_KINDS} (text, JSON, UUID and unconstrained numeric are not ordered the same "
        "way everywhere)"
    )


def encode(value: Any) -> str:
    """The text stored for a cursor value (ISO 8601 for dates and timestamps)."""
    if isinstance(value, dt.date):  # datetime too
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)
    return str(value)


def decode(text: str, arrow_type: pa.DataType) -> Any:
    """The stored text back as the cursor column's Python type; ValueError if it does not fit."""
    t = arrow_type
    if pa.types.is_integer(t):
        return int(text)
    if pa.types.is_floating(t):
        return float(text)
    if pa.types.is_decimal(t):
        try:
            return decimal.Decimal(text)
        except decimal.InvalidOperation:
            raise ValueError(f"{text!r} is not a decimal") from None
    if pa.types.is_timestamp(t):
        moment = dt.datetime.fromisoformat(text)
        if t.tz is None:
            if moment.tzinfo is not None:
                raise ValueError(f"{text!r} has a time zone, the cursor has none")
            return moment
        if moment.tzinfo is None:
            raise ValueError(f"{text!r} has no time zone, the cursor has one")
        return moment.astimezone(dt.UTC)
    if pa.types.is_date(t):
        if "T" in text or " " in text:
            raise ValueError(f"{text!r} is a timestamp, the cursor is a date")
        return dt.date.fromisoformat(text)
    raise ValueError(f"{t} is not a cursor type")


def to_json(value: Any) -> Any:
    """How the runner's result line shows a watermark: integers as numbers, else ISO text."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    return encode(value)


def scalar_value(scalar: pa.Scalar) -> Any:
    """A cursor scalar as a Python value; a zoned timestamp as a UTC `datetime`.

    Why not `as_py()` alone: for a zoned timestamp pyarrow asks whether pandas is
    installed, and so imports it (0.3-0.6 s of a runner's start-up, for one value).
    A zoned Arrow timestamp holds the UTC instant; the cast to a naive one keeps it.
    """
    t = scalar.type
    if pa.types.is_timestamp(t) and t.tz is not None:
        naive = scalar.cast(pa.timestamp(t.unit)).as_py()
        return None if naive is None else naive.replace(tzinfo=dt.UTC)
    return scalar.as_py()


class CursorMax:
    """The running maximum of the cursor column over the batches of one load."""

    def __init__(self, column: str) -> None:
        self.column = column
        self.value: Any = None

    def update(self, batch: pa.RecordBatch) -> None:
        batch_max = scalar_value(pc.max(batch.column(self.column)))  # NULLs are ignored
        if batch_max is not None and (self.value is None or batch_max > self.value):
            self.value = batch_max


@dataclass(frozen=True)
class StoredWatermark:
    """A table's row in `meta.watermarks`."""

    cursor_column: str
    #: The encoded value; None when the loads so far read no row with a non-NULL cursor.
    value: str | None

    def decoded(self, table: str, arrow_type: pa.DataType) -> Any:
        """The value in the cursor's type; a clear failure if the column's type changed."""
        if self.value is None:
            return None
        try:
            return decode(self.value, arrow_type)
        except ValueError as exc:
            raise LoadFailed(
                f"the watermark {self.value!r} of {table} does not fit its cursor column "
                f"{self.cursor_column}, now loaded as {arrow_type} ({exc}): delete the table's "
                "row from the meta schema's watermarks table to reload it from scratch"
            ) from None


def read_watermark(
    conn: Connection, tables: MetaTables, tenant: str, table: str
) -> StoredWatermark | None:
    w = tables.watermarks
    row = conn.execute(
        select(w.c.cursor_column, w.c.value).where(w.c.tenant == tenant, w.c.table_name == table)
    ).first()
    return None if row is None else StoredWatermark(row.cursor_column, row.value)


def clear_watermark(conn: Connection, tables: MetaTables, tenant: str, table: str) -> None:
    w = tables.watermarks
    conn.execute(delete(w).where(w.c.tenant == tenant, w.c.table_name == table))


def save_watermark(
    conn: Connection,
    tables: MetaTables,
    *,
    tenant: str,
    table: str,
    cursor_column: str,
    value: str | None,
    batch_id: str,
) -> None:
    """Replace the table's watermark, in the caller's (the load's) transaction."""
    clear_watermark(conn, tables, tenant, table)
    conn.execute(
        insert(tables.watermarks).values(
            tenant=tenant,
            table_name=table,
            cursor_column=cursor_column,
            value=value,
            updated_at=dt.datetime.now(dt.UTC),
            batch_id=batch_id,
        )
    )

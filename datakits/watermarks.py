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
import json
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Connection, delete, insert, literal_column, select

from datakits.bronze import add_column, has_column
from datakits.errors import ConfigError, LoadFailed
from datakits.metadata import PENDING, MetaTables

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
class Sighting:
    """One look at the source, in one snapshot: when it was taken and the cursor's maximum.

    Kept with the watermark (`StoredWatermark.pending`) until every transaction open at
    `taken_at` has ended: from then on each row with a cursor up to `top` is committed
    and visible (the integer commit horizon, `datakits.sources.postgres`).
    """

    #: The source's clock just after the snapshot was taken (`clock_timestamp()`).
    taken_at: dt.datetime
    #: The largest cursor value in that snapshot, encoded (`encode`).
    top: str

    def to_json(self) -> list[str]:
        return [self.taken_at.isoformat(), self.top]

    @classmethod
    def from_json(cls, item: Any) -> Sighting:
        taken_at, top = item
        return cls(dt.datetime.fromisoformat(taken_at), str(top))


def encode_pending(pending: tuple[Sighting, ...]) -> str | None:
    """The stored form of the sightings (JSON); None when there are none."""
    return json.dumps([s.to_json() for s in pending]) if pending else None


def decode_pending(raw: str | None) -> tuple[Sighting, ...]:
    """Sightings back from their stored form; () for a watermark stored without any."""
    if not raw:
        return ()
    return tuple(Sighting.from_json(item) for item in json.loads(raw))


@dataclass(frozen=True)
class Horizon:
    """What the source says before the read about rows a commit still to come may add.

    `below`: rows with a cursor below it are final (committed, visible to the read);
    None with `hold` False: no bound needed (SQLite) or known (MySQL: a default window).
    `hold`: no row is known final past the stored watermark (an integer cursor while a
    transaction that may hold a lower value is still open): the watermark stays.
    `pending`: the sightings to store with the watermark, for the next loads.
    """

    below: Any = None
    hold: bool = False
    pending: tuple[Sighting, ...] = ()


@dataclass(frozen=True)
class StoredWatermark:
    """A table's row in `meta.watermarks`."""

    cursor_column: str
    #: The encoded value; None when the loads so far read no row with a non-NULL cursor.
    value: str | None
    #: Sightings not yet known final (integer horizon); () in watermarks stored before it.
    pending: tuple[Sighting, ...] = ()

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
    """The table's watermark, from a watermarks table with or without `pending`.

    `*` rather than the named columns: a watermarks table made before `pending` existed
    lacks it, and is read as it is (no catalog query first, no column added by a read).
    """
    w = tables.watermarks
    row = conn.execute(
        select(literal_column("*"))
        .select_from(w)
        .where(w.c.tenant == tenant, w.c.table_name == table)
    ).first()
    if row is None:
        return None
    fields = row._mapping
    pending = decode_pending(fields[PENDING]) if PENDING in fields else ()
    return StoredWatermark(fields["cursor_column"], fields["value"], pending)


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
    pending: tuple[Sighting, ...] = (),
) -> None:
    """Replace the table's watermark, in the caller's (the load's) transaction.

    `pending` is written only when there is some, so other loads never need the column a
    watermarks table made before it lacks; the first load with some adds it (once).
    """
    clear_watermark(conn, tables, tenant, table)
    extra: dict[str, str] = {}
    stored = encode_pending(pending)
    if stored is not None:
        extra[PENDING] = stored
        w = tables.watermarks
        assert w.schema is not None
        if not has_column(conn, w.schema, w.name, PENDING):
            add_column(conn, w.schema, w.name, PENDING, w.c[PENDING].type)
    conn.execute(
        insert(tables.watermarks).values(
            **extra,
            tenant=tenant,
            table_name=table,
            cursor_column=cursor_column,
            value=value,
            updated_at=dt.datetime.now(dt.UTC),
            batch_id=batch_id,
        )
    )

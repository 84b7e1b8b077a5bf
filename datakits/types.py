"""Type mapping: reflected source column types → Arrow types → bronze column types.

Bronze keeps the source's values with the least interpretation that still gives typed
columns, so the same table looks the same in every warehouse. Arrow is the pivot: a
source reader produces Arrow batches, and a writer derives its DDL from the Arrow schema
(`bronze_type`), so readers and writers never need to know about each other.

Decisions worth knowing:

* Integers of every width become int64: widening is lossless and bronze need not track it.
* NUMERIC(p, s) with 0 <= s <= p <= 38 becomes decimal128(p, s). NUMERIC without a
  precision (PostgreSQL's unconstrained `numeric`, SQLite's NUMERIC affinity), with
  p > 38 (DuckDB's limit) or a negative scale becomes **string**: any fixed decimal would
  round or overflow some legal values, and bronze must not change data. Silver casts.
* JSON, UUID and every type we do not know (intervals, arrays, network types, SQLite
  columns declared without a type) become string: lossless and always loadable.
* Timestamps keep microseconds; `with time zone` columns are normalised to UTC. A time
  of day `with time zone` becomes string (an Arrow time cannot carry the offset).

SQLite declares types loosely and stores whatever it is given, so its reader is built
with `loose=True`: every value goes through a tolerant converter (ISO-8601 text →
timestamp, 0/1 → bool, float → decimal at the declared scale, ...). A value that still
does not fit the declared type fails the load with a clear message instead of being
silently changed. Strict sources (PostgreSQL, MySQL/MariaDB) already return the right
Python types, so only the columns that need it pay for a conversion.

What cannot be carried exactly fails the load, naming the column and the value; nothing
is rounded or clamped:

| value | bronze | otherwise |
|---|---|---|
| integers of any width (MySQL `BIGINT UNSIGNED`: decimal(20, 0)) | int64 | — |
| `NUMERIC(p, s)`, p ≤ 38, 0 ≤ s ≤ p | decimal(p, s), exact | NaN fails the load |
| other numerics (no precision, p > 38, s < 0; MySQL `DECIMAL(65, 30)`) | text, exact | — |
| float / double | float64, bit-exact | — |
| timestamp with / without time zone | timestamp(µs, UTC) / (µs) | ±infinity fails |
| date | date32 | ±infinity fails |
| time of day (MySQL `TIME` outside 00:00 to 24:00 fails: it is a duration) | time64(µs) | — |
| boolean (MySQL `BOOLEAN` is `TINYINT(1)`: stays an integer, it may hold 2) | bool | — |
| json / jsonb, uuid, interval, arrays (as JSON), enums, unknown types | text | — |
| bytea / blob / binary (MySQL `BIT(n)`: int64) | binary | — |

The PostgreSQL COPY path (`datakits.sources.postgres`) reaches the same Arrow types
through the driver's binary decoding (`arrow_to_mapping`): text columns are cast to text
by the server (its own exact output: `0.00000001`, not `1E-8`; jsonb in its canonical
form; arrays as JSON), and years before 1 AD, which Python's `datetime` cannot hold and
the cursor path therefore refuses, load exactly.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import types as sat

from datakits.errors import LoadFailed
from datakits.messages import one_line

Converter = Callable[[Any], Any]

#: Largest decimal precision every supported warehouse stores (DuckDB's DECIMAL limit).
MAX_DECIMAL_PRECISION = 38

UTC = dt.UTC
_TRUE = frozenset({"1", "t", "true", "y", "yes", "on"})
_FALSE = frozenset({"0", "f", "false", "n", "no", "off"})
_DECIMAL_CONTEXT = decimal.Context(prec=100)


@dataclass(frozen=True)
class ColumnMapping:
    """How one source column becomes one Arrow column.

    `convert` is applied to each non-NULL value before Arrow sees it; None passes values
    through (the driver already returns what Arrow expects).
    """

    name: str
    arrow_type: pa.DataType
    convert: Converter | None = None

    @property
    def field(self) -> pa.Field:
        return pa.field(self.name, self.arrow_type, nullable=True)


# --- converters: each takes one non-NULL value and returns it as Arrow expects ----------


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, decimal.Decimal) and value == value.to_integral_value():
        return int(value)
    if isinstance(value, str):
        return int(value.strip())
    raise ValueError(f"{value!r} is not an integer")


def _to_float(value: Any) -> float:
    if isinstance(value, bool | bytes):
        raise ValueError(f"{value!r} is not a number")
    return float(value)


def _decimal_converter(scale: int) -> Converter:
    quantum = decimal.Decimal(1).scaleb(-scale)

    def convert(value: Any) -> decimal.Decimal:
        if isinstance(value, decimal.Decimal):
            number = value
        elif isinstance(value, bool):
            raise ValueError(f"{value!r} is not a number")
        elif isinstance(value, int):
            number = decimal.Decimal(value)
        elif isinstance(value, float):
            number = decimal.Decimal(repr(value))  # the shortest repr: 19.99, not 19.98999…
        elif isinstance(value, str):
            number = decimal.Decimal(value.strip())
        else:
            raise ValueError(f"{value!r} is not a number")
        if not number.is_finite():
            raise ValueError(f"{value!r} is not a finite number")
        # SQLite does not enforce the declared scale; the column's contract is that scale.
        return number.quantize(quantum, context=_DECIMAL_CONTEXT)

    return convert


def _decimal_text(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, decimal.Decimal) and value.is_finite():
        return format(value, "f")  # plain digits: `0.00000001`, never `1E-8`
    return str(value)


def _to_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, dict | list):
        return json.dumps(value, default=str, ensure_ascii=False)
    return str(value)


def _to_json_text(value: Any) -> str:
    if isinstance(value, str):
        return value  # already JSON text (SQLite, or a driver that does not parse JSON)
    return json.dumps(value, default=str, ensure_ascii=False)


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float | decimal.Decimal):
        return value != 0
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise ValueError(f"{value!r} is not a boolean")


def _parse_datetime(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time())
    if isinstance(value, str):
        return dt.datetime.fromisoformat(value.strip())
    if isinstance(value, int | float) and not isinstance(value, bool):
        return dt.datetime.fromtimestamp(value, UTC)  # SQLite's unixepoch storage
    raise ValueError(f"{value!r} is not a timestamp")


def _timestamp_converter(with_tz: bool) -> Converter:
    def convert(value: Any) -> dt.datetime:
        moment = _parse_datetime(value)
        if with_tz:
            # A naive value in a `with time zone` column is taken as UTC.
            return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
        if moment.tzinfo is not None:
            return moment.astimezone(UTC).replace(tzinfo=None)
        return moment

    return convert


def _to_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        text = value.strip()
        return dt.date.fromisoformat(text) if len(text) == 10 else _parse_datetime(text).date()
    raise ValueError(f"{value!r} is not a date")


def _to_time(value: Any) -> dt.time:
    if isinstance(value, dt.datetime):
        return value.time()
    if isinstance(value, dt.time):
        return value
    if isinstance(value, str):
        return dt.time.fromisoformat(value.strip())
    raise ValueError(f"{value!r} is not a time of day")


def _bits_to_int(value: Any) -> int:
    """MySQL `BIT(n)` arrives as big-endian bytes."""
    if isinstance(value, bytes | bytearray):
        return int.from_bytes(value, "big")
    return _to_int(value)


def _duration_to_time(value: Any) -> dt.time:
    """MySQL `TIME` arrives as a timedelta (it is a duration, -838:59:59 to 838:59:59)."""
    if isinstance(value, dt.timedelta):
        if not dt.timedelta(0) <= value < dt.timedelta(days=1):
            raise ValueError(f"{value} is a duration, not a time of day (00:00 to 24:00)")
        return (dt.datetime.min + value).time()
    return _to_time(value)


def _to_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    raise ValueError(f"{value!r} is not binary")


# --- mapping ------------------------------------------------------------------------------


def map_column(name: str, source_type: sat.TypeEngine[Any], *, loose: bool) -> ColumnMapping:
    """Map one reflected column type. `loose`: convert every value (SQLite), see module doc."""

    def mapped(arrow_type: pa.DataType, tolerant: Converter | None, strict: Converter | None):
        return ColumnMapping(name, arrow_type, tolerant if loose else strict)

    t = source_type
    special = _mysql_mapping(name, t)
    if special is not None:
        return special
    if isinstance(t, sat.NullType):
        return ColumnMapping(name, pa.string(), _to_text)
    if isinstance(t, sat.Boolean):
        return mapped(pa.bool_(), _to_bool, None)
    if isinstance(t, sat.Integer):
        return mapped(pa.int64(), _to_int, None)
    if isinstance(t, sat.Float):  # before Numeric: Float is a Numeric subclass
        return mapped(pa.float64(), _to_float, None)
    if isinstance(t, sat.Numeric):
        precision, scale = t.precision, t.scale if t.scale is not None else 0
        if precision is None or precision > MAX_DECIMAL_PRECISION or not 0 <= scale <= precision:
            return ColumnMapping(name, pa.string(), _decimal_text)
        return mapped(pa.decimal128(precision, scale), _decimal_converter(scale), None)
    if isinstance(t, sat.DateTime):
        with_tz = bool(getattr(t, "timezone", False))
        arrow = pa.timestamp("us", tz="UTC" if with_tz else None)
        return mapped(arrow, _timestamp_converter(with_tz), None)
    if isinstance(t, sat.Date):
        return mapped(pa.date32(), _to_date, None)
    if isinstance(t, sat.Time):
        if getattr(t, "timezone", False):  # Arrow's time has no offset: keep the text
            return ColumnMapping(name, pa.string(), _to_text)
        return mapped(pa.time64("us"), _to_time, None)
    if isinstance(t, sat.JSON):
        return ColumnMapping(name, pa.string(), _to_json_text)
    if isinstance(t, sat.Uuid):
        return ColumnMapping(name, pa.string(), _to_text)
    if isinstance(t, sat._Binary):
        return mapped(pa.binary(), _to_bytes, _to_bytes)
    if isinstance(t, sat.String):
        return mapped(pa.string(), _to_text, None)
    return ColumnMapping(name, pa.string(), _to_text)


def _mysql_mapping(name: str, t: sat.TypeEngine[Any]) -> ColumnMapping | None:
    """MySQL/MariaDB types whose driver values need their own rule (None: the generic one).

    The dialect is imported here, not at the top: only a MySQL source has these types,
    and every other runner starts without importing it.
    """
    if not type(t).__module__.startswith("sqlalchemy.dialects.mysql"):
        return None
    from sqlalchemy.dialects import mysql

    if isinstance(t, mysql.BIT):
        return ColumnMapping(name, pa.int64(), _bits_to_int)
    if isinstance(t, mysql.YEAR):
        return ColumnMapping(name, pa.int64(), _to_int)
    if isinstance(t, mysql.BIGINT) and t.unsigned:
        # Up to 18446744073709551615: beyond int64, exact as a 20-digit decimal.
        return ColumnMapping(name, pa.decimal128(20, 0), _decimal_converter(0))
    if isinstance(t, mysql.TIMESTAMP):
        # An instant (stored in UTC); the MySQL reader sets the session time zone to UTC.
        return ColumnMapping(name, pa.timestamp("us", tz="UTC"), _timestamp_converter(True))
    if isinstance(t, mysql.TIME):
        return ColumnMapping(name, pa.time64("us"), _duration_to_time)
    return None


def bronze_type(arrow_type: pa.DataType) -> sat.TypeEngine[Any]:
    """The generic SQLAlchemy type of a bronze column; each dialect renders its own DDL."""
    if pa.types.is_boolean(arrow_type):
        return sat.Boolean(create_constraint=False)
    if pa.types.is_integer(arrow_type):
        return sat.BigInteger()
    if pa.types.is_floating(arrow_type):
        return sat.Double()
    if pa.types.is_decimal(arrow_type):
        return sat.Numeric(arrow_type.precision, arrow_type.scale)
    if pa.types.is_timestamp(arrow_type):
        return sat.DateTime(timezone=arrow_type.tz is not None)
    if pa.types.is_date(arrow_type):
        return sat.Date()
    if pa.types.is_time(arrow_type):
        return sat.Time()
    if pa.types.is_binary(arrow_type) or pa.types.is_large_binary(arrow_type):
        return sat.LargeBinary()
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return sat.Text()
    raise TypeError(f"no bronze column type for Arrow type {arrow_type}")


# --- rows → Arrow -------------------------------------------------------------------------


def to_array(values: Sequence[Any], mapping: ColumnMapping, where: str) -> pa.Array:
    """Convert one column of a batch; a value that does not fit fails the load."""
    convert = mapping.convert
    try:
        converted = (
            values if convert is None else [None if v is None else convert(v) for v in values]
        )
        return pa.array(converted, type=mapping.arrow_type)
    except (ValueError, TypeError, ArithmeticError, OverflowError, pa.ArrowException) as exc:
        bad = _first_bad(values, mapping)
        shown = f" (value {bad!r:.80})" if bad is not None else ""
        raise LoadFailed(
            one_line(
                f"{where}: column {mapping.name!r} cannot be loaded as {mapping.arrow_type}"
                f"{shown}: {exc}"
            )
        ) from None


def _first_bad(values: Sequence[Any], mapping: ColumnMapping) -> Any:
    """The first value that fails conversion, to name it in the error (slow path only)."""
    for value in values:
        if value is None:
            continue
        try:
            converted = mapping.convert(value) if mapping.convert else value
            pa.array([converted], type=mapping.arrow_type)
        except Exception:
            return value
    return None


def rows_to_batch(
    rows: Sequence[Sequence[Any]], mappings: Sequence[ColumnMapping], schema: pa.Schema, where: str
) -> pa.RecordBatch:
    """Transpose a list of row tuples into a typed Arrow record batch."""
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in mappings]
    arrays = [to_array(col, m, where) for col, m in zip(columns, mappings, strict=True)]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


# --- Arrow → Arrow (fast readers that decode in C++) -------------------------------------

#: The earliest timestamp and date PostgreSQL stores (4714-11-24 BC), in µs and days since
#: 1970. The ADBC driver turns ±infinity and years past Arrow's range (294,246 AD) into
#: wrapped values below these; a real value is never below them.
PG_MIN_TIMESTAMP_US = -210_866_803_200_000_000
PG_MIN_DATE_DAYS = -2_440_588


def check_temporal_range(array: pa.Array, mapping: ColumnMapping, where: str) -> None:
    """Fail the load when a decoded timestamp or date column holds an impossible value."""
    if pa.types.is_timestamp(array.type):
        floor, raw = PG_MIN_TIMESTAMP_US, array.cast(pa.int64())
    elif pa.types.is_date32(array.type):
        floor, raw = PG_MIN_DATE_DAYS, array.cast(pa.int32())
    else:
        return
    if array.null_count == len(array):
        return
    low = pc.min(raw).as_py()
    if low is not None and low < floor:
        raise LoadFailed(
            one_line(
                f"{where}: column {mapping.name!r} holds infinity or a value beyond year "
                f"294246, which {mapping.arrow_type} cannot carry: refusing to load it "
                "(filter those rows out, or map them to NULL in a view)"
            )
        )


def arrow_to_mapping(array: pa.Array, mapping: ColumnMapping, where: str) -> pa.Array:
    """A driver-decoded Arrow column as `mapping`'s type: checked casts only, never rounding.

    Extension types (ADBC's opaque numeric, json, uuid) are read through their storage;
    narrower integers and floats widen; a decimal's exact text becomes decimal(p, s), and
    any digit the scale cannot hold (or NaN) fails the load instead of rounding.
    """
    if isinstance(array.type, pa.ExtensionType):
        array = array.storage
    target = mapping.arrow_type
    if not array.type.equals(target):
        try:
            array = pc.cast(array, target, safe=True)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            raise LoadFailed(
                one_line(f"{where}: column {mapping.name!r} cannot be loaded as {target}: {exc}")
            ) from None
    check_temporal_range(array, mapping, where)
    return array

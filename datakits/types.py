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
is rounded, and only ±infinity is clamped (the table's `infinity` policy says so):

| value | bronze | otherwise |
|---|---|---|
| integers of any width (MySQL `BIGINT UNSIGNED`: decimal(20, 0)) | int64 | — |
| `NUMERIC(p, s)`, p ≤ 38, 0 ≤ s ≤ p | decimal(p, s), exact | NaN fails the load |
| other numerics (no precision, p > 38, s < 0; MySQL `DECIMAL(65, 30)`) | text, exact | — |
| float / double (PostgreSQL `real`: float32, bronze `real`) | float64, bit-exact | — |
| timestamp with / without time zone | timestamp(µs, UTC) / (µs) | past 294246 AD fails |
| date | date32 | — |
| ±infinity (PostgreSQL timestamps, dates) | the table's `infinity`: clamp / NULL / fail | — |
| time of day (MySQL `TIME` outside 00:00 to 24:00 fails: it is a duration) | time64(µs) | — |
| boolean (MySQL `BOOLEAN` is `TINYINT(1)`: stays an integer, it may hold 2) | bool | — |
| MySQL zero date / datetime `0000-00-00` (also as SQLite text) | NULL | `2024-00-00` fails |
| MySQL `BIT(n)`, n ≤ 63 / `BIT(64)`; `YEAR` | int64 / decimal(20, 0); int64 | — |
| SQLite `BIGINT UNSIGNED` (SQLite has none: values past 2^63 are stored as REAL) | int64 | fails |
| SQLite `YEAR`, `BIT(n)` (NUMERIC affinity) | text / decimal(n, 0) | — |
| json / jsonb, uuid, interval, enums, char(n) (as `::text`: no padding), unknown types | text | — |
| PostgreSQL arrays (bool/int/float/numeric/text/bytea items; others as text) | list | † |
| PostgreSQL `money` | decimal(19, 2) | more than 2 fraction digits fail |
| bytea / blob / binary | binary | — |

† An array with several dimensions or a lower bound other than 1 fails the load. Lists
are `T[]` columns in DuckDB and in PostgreSQL bronze.

The PostgreSQL COPY path (`datakits.sources.postgres`) reaches the same Arrow types
through the driver's binary decoding (`arrow_to_mapping`): text columns are cast to text
by the server (its own exact output: `0.00000001`, not `1E-8`; jsonb in its canonical
form). Its cursor fallback selects the same expressions, with timestamps, dates and
times as exact integers computed by the server, so years before 1 AD, `24:00` and
intervals with months load the same on both paths.
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


def _zero_date(value: Any) -> bool:
    """MySQL's "no date" (`0000-00-00`, also as text in a SQLite copy of MySQL data).

    It is not a date (there is no year 0, month 0 or day 0) and MySQL itself treats it as
    NULL (`WHERE d IS NULL` finds it): bronze stores NULL. A partial zero date
    (`2024-00-00`) is not a NULL stand-in: it fails the load, naming the value.
    """
    return isinstance(value, str) and value.strip() in _ZERO_DATES


_ZERO_DATES = frozenset(
    {"0000-00-00", "0000-00-00 00:00:00"} | {f"0000-00-00 00:00:00.{'0' * n}" for n in range(1, 7)}
)


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
    def convert(value: Any) -> dt.datetime | None:
        if _zero_date(value):
            return None
        moment = _parse_datetime(value)
        if with_tz:
            # A naive value in a `with time zone` column is taken as UTC.
            return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
        if moment.tzinfo is not None:
            return moment.astimezone(UTC).replace(tzinfo=None)
        return moment

    return convert


def _to_date(value: Any) -> dt.date | None:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if _zero_date(value):
        return None
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


def _bits_to_decimal(value: Any) -> decimal.Decimal:
    return decimal.Decimal(_bits_to_int(value))


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


def map_column(
    name: str, source_type: sat.TypeEngine[Any], *, loose: bool, float4: bool = False
) -> ColumnMapping:
    """Map one reflected column type. `loose`: convert every value (SQLite), see module doc.

    `float4`: the source's `REAL` is a 4-byte float (PostgreSQL) and stays one; SQLite's
    REAL is an 8-byte double, and reflects as the same SQLAlchemy type.
    """

    def mapped(arrow_type: pa.DataType, tolerant: Converter | None, strict: Converter | None):
        return ColumnMapping(name, arrow_type, tolerant if loose else strict)

    t = source_type
    special = _mysql_mapping(name, t)
    if special is not None:
        return special
    if isinstance(t, sat.NullType):
        return ColumnMapping(name, pa.string(), _to_text)
    if isinstance(t, sat.ARRAY):
        return _array_mapping(name, t, float4=float4)
    if _is_money(t):
        # PostgreSQL's money is an int64 count of cents: decimal(19, 2) holds every value
        # (a locale with more than 2 fraction digits fails the checked cast, never rounds).
        return ColumnMapping(name, MONEY_TYPE, _decimal_converter(2))
    if isinstance(t, sat.Boolean):
        return mapped(pa.bool_(), _to_bool, None)
    if isinstance(t, sat.Integer):
        return mapped(pa.int64(), _to_int, None)
    if isinstance(t, sat.Float):  # before Numeric: Float is a Numeric subclass
        if float4 and not loose and type(t) is sat.REAL:
            return ColumnMapping(name, pa.float32(), None)
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
    if isinstance(t, sat.Date):  # strict too: MySQL's zero date arrives as text
        return mapped(pa.date32(), _to_date, _to_date)
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


#: Arrow type of PostgreSQL's `money` (see `map_column`).
MONEY_TYPE = pa.decimal128(19, 2)
#: Array items kept as their own Arrow type inside a list; any other item type (dates,
#: timestamps, intervals, ...) travels as the server's text of each item.
_NATIVE_ITEMS = (pa.types.is_boolean, pa.types.is_integer, pa.types.is_floating,
                 pa.types.is_decimal, pa.types.is_string, pa.types.is_binary)  # fmt: skip


def _is_money(t: sat.TypeEngine[Any]) -> bool:
    return type(t).__module__.startswith("sqlalchemy.dialects.postgresql") and (
        type(t).__name__ == "MONEY"
    )


def _array_mapping(name: str, t: sat.ARRAY[Any], *, float4: bool) -> ColumnMapping:
    """A PostgreSQL array as an Arrow list: native items where exact, else their text.

    Only one-dimensional arrays with the default lower bound 1 are loaded; the reader
    refuses others (a list cannot say `[0:2]` or `{{1,2},{3,4}}`, see the PG reader).
    """
    item = map_column(name, t.item_type, loose=False, float4=float4)
    if any(test(item.arrow_type) for test in _NATIVE_ITEMS):
        return ColumnMapping(name, pa.list_(item.arrow_type), None)
    return ColumnMapping(name, pa.list_(pa.string()), None)


def array_items_as_text(mapping: ColumnMapping, item_type: sat.TypeEngine[Any]) -> bool:
    """Whether an array column's items must be cast to text by the server (not plain text)."""
    value_type = mapping.arrow_type.value_type
    plain = type(item_type) in (sat.String, sat.Text, sat.VARCHAR, sat.TEXT)
    return pa.types.is_string(value_type) and not plain


def _mysql_mapping(name: str, t: sat.TypeEngine[Any]) -> ColumnMapping | None:
    """MySQL/MariaDB types whose driver values need their own rule (None: the generic one).

    The dialect is imported here, not at the top: only a MySQL source has these types,
    and every other runner starts without importing it.
    """
    if not type(t).__module__.startswith("sqlalchemy.dialects.mysql"):
        return None
    from sqlalchemy.dialects import mysql

    if isinstance(t, mysql.BIT):
        if (t.length or 1) > 63:  # BIT(64) with the top bit set is beyond int64
            return ColumnMapping(name, pa.decimal128(20, 0), _bits_to_decimal)
        return ColumnMapping(name, pa.int64(), _bits_to_int)
    if isinstance(t, mysql.DATETIME):
        # pymysql hands a zero date over as text: NULL (see `_zero_date`).
        return ColumnMapping(name, pa.timestamp("us"), _timestamp_converter(False))
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
    if pa.types.is_float32(arrow_type):
        return sat.REAL()
    if pa.types.is_floating(arrow_type):
        return sat.Double()
    if pa.types.is_list(arrow_type):
        return sat.ARRAY(bronze_type(arrow_type.value_type))
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


def _beyond(mapping: ColumnMapping, where: str) -> LoadFailed:
    return LoadFailed(
        one_line(
            f"{where}: column {mapping.name!r} holds a value beyond year 294246, which "
            f"{mapping.arrow_type} cannot carry: refusing to load it (filter those rows out, "
            "or map them to NULL in a view)"
        )
    )


def arrow_to_mapping(
    array: pa.Array,
    mapping: ColumnMapping,
    where: str,
    infinity: str = "fail",
    bounds: TemporalBounds | None = None,
) -> pa.Array:
    """A driver-decoded Arrow column as `mapping`'s type: checked casts only, never rounding.

    Extension types (ADBC's opaque numeric, json, uuid) are read through their storage,
    inside lists too; narrower integers and floats widen; a decimal's exact text becomes
    decimal(p, s), and any digit the scale cannot hold (or NaN) fails the load instead
    of rounding. ±infinity (PostgreSQL's sentinels, `PG_INFINITY_*`) becomes what the
    table's `infinity` policy says, within `bounds` (`resolve_infinity`).
    """
    array = _storage(array)
    target = mapping.arrow_type
    if not array.type.equals(target):
        try:
            array = pc.cast(array, target, safe=True)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            raise LoadFailed(
                one_line(f"{where}: column {mapping.name!r} cannot be loaded as {target}: {exc}")
            ) from None
    return resolve_infinity(array, mapping, where, infinity, bounds or bounds_for(""))


def _storage(array: pa.Array) -> pa.Array:
    """An array without extension types (ADBC's opaque numeric, also as list items)."""
    if isinstance(array.type, pa.ExtensionType):
        return array.storage
    if pa.types.is_list(array.type) and isinstance(array.type.value_type, pa.ExtensionType):
        mask = array.is_null() if array.null_count else None
        return pa.ListArray.from_arrays(array.offsets, array.values.storage, mask=mask)
    return array


# --- ±infinity (PostgreSQL timestamps and dates) -----------------------------------------


@dataclass(frozen=True)
class TemporalBounds:
    """The finite range a warehouse stores through Arrow: µs since 1970 and days since 1970.

    `infinity: clamp` loads `'infinity'` as the max and `'-infinity'` as the min of the
    warehouse the load writes to (`bounds_for`).
    """

    min_us: int
    max_us: int
    min_days: int
    max_days: int


#: DuckDB keeps int64/int32 max and -max for its own ±infinity: one step inside them.
DUCKDB_BOUNDS = TemporalBounds(
    min_us=-9_223_372_022_400_000_000,  # 290309-12-22 BC 00:00:00
    max_us=9_223_372_036_854_775_806,  # 294247-01-10 04:00:54.775806
    min_days=-2_147_483_646,  # 5877642-06-25 BC
    max_days=2_147_483_646,  # 5881580-07-10
)
#: PostgreSQL: 4714-11-24 BC to 294276 AD for timestamps (Arrow's int64 µs ends first, at
#: 294247-01-10 04:00:54.775807) and to 5874897-12-31 for dates.
POSTGRES_BOUNDS = TemporalBounds(
    min_us=-210_866_803_200_000_000,
    max_us=9_223_372_036_854_775_807,
    min_days=-2_440_588,
    max_days=2_145_042_905,
)
_KNOWN_BOUNDS = (DUCKDB_BOUNDS, POSTGRES_BOUNDS)


def common_bounds() -> TemporalBounds:
    """The range every warehouse stores: the clamp range of a kind that declares none."""
    return TemporalBounds(
        min_us=max(b.min_us for b in _KNOWN_BOUNDS),
        max_us=min(b.max_us for b in _KNOWN_BOUNDS),
        min_days=max(b.min_days for b in _KNOWN_BOUNDS),
        max_days=min(b.max_days for b in _KNOWN_BOUNDS),
    )


def bounds_for(warehouse_kind: str) -> TemporalBounds:
    """The clamp range of a warehouse kind (its registry entry, `datakits.kinds`); the
    range every warehouse stores when the kind is unknown or declares none."""
    from datakits.kinds import WAREHOUSES

    entry = WAREHOUSES.get(warehouse_kind)
    return entry.bounds() if entry is not None else common_bounds()


#: How PostgreSQL's ±infinity arrive as Arrow values: the ADBC driver adds the 2000→1970
#: epoch offset to PostgreSQL's int64/int32 sentinels, and the sum wraps around. No real
#: value decodes to these (real ones stay above `PG_MIN_*`, or wrap to below these).
#: The cursor path selects the same values for ±infinity (`datakits.sources.postgres`).
PG_INFINITY_US = -9_222_425_352_054_775_809
PG_NEG_INFINITY_US = -9_222_425_352_054_775_808
PG_INFINITY_DAYS = -2_147_472_692
PG_NEG_INFINITY_DAYS = -2_147_472_691


def resolve_infinity(
    array: pa.Array, mapping: ColumnMapping, where: str, policy: str, bounds: TemporalBounds
) -> pa.Array:
    """±infinity as the `infinity` policy says: the warehouse's max/min, NULL, or a failure.

    Any other value below PostgreSQL's first day is a year past Arrow's range that the
    driver wrapped around: the load fails. Costs one `min` per timestamp/date column and
    batch when neither is present.
    """
    if pa.types.is_timestamp(array.type):
        raw = array.cast(pa.int64())
        pos, neg, high, low = PG_INFINITY_US, PG_NEG_INFINITY_US, bounds.max_us, bounds.min_us
        floor = PG_MIN_TIMESTAMP_US
    elif pa.types.is_date32(array.type):
        raw = array.cast(pa.int32())
        pos, neg, high, low = (
            PG_INFINITY_DAYS,
            PG_NEG_INFINITY_DAYS,
            bounds.max_days,
            bounds.min_days,
        )
        floor = PG_MIN_DATE_DAYS
    else:
        return array
    if array.null_count == len(array) or pc.min(raw).as_py() >= floor:
        return array
    is_pos, is_neg = pc.equal(raw, pos), pc.equal(raw, neg)
    infinite = pc.or_(is_pos, is_neg)
    rest = pc.min(pc.if_else(infinite, pa.scalar(None, raw.type), raw)).as_py()
    if rest is not None and rest < floor:
        raise _beyond(mapping, where)
    if policy == "fail":
        raise LoadFailed(
            one_line(
                f"{where}: column {mapping.name!r} holds infinity and the table's `infinity` "
                "policy is fail (bronze unchanged): set infinity to clamp or null"
            )
        )
    if policy == "null":
        resolved = pc.if_else(infinite, pa.scalar(None, raw.type), raw)
    else:
        resolved = pc.if_else(
            is_pos, pa.scalar(high, raw.type), pc.if_else(is_neg, pa.scalar(low, raw.type), raw)
        )
    return resolved.cast(array.type)

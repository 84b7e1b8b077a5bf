"""Type mapping, including SQLite's loose storage: what each value becomes in Arrow."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pytest
from sqlalchemy import types as sat
from sqlalchemy.dialects import postgresql, sqlite

from datakits.errors import LoadFailed
from datakits.types import bronze_type, map_column, to_array

UTC = dt.UTC


@pytest.mark.parametrize(
    ("source_type", "arrow_type"),
    [
        (sat.Integer(), pa.int64()),
        (sat.SmallInteger(), pa.int64()),
        (sat.BigInteger(), pa.int64()),
        (sat.Numeric(12, 3), pa.decimal128(12, 3)),
        (sat.Numeric(), pa.string()),  # unconstrained: exact text, see datakits.types
        (sat.Numeric(50, 2), pa.string()),  # wider than DuckDB's DECIMAL(38)
        (postgresql.DOUBLE_PRECISION(), pa.float64()),
        (sqlite.REAL(), pa.float64()),
        (sat.String(20), pa.string()),
        (sat.Text(), pa.string()),
        (sat.Boolean(), pa.bool_()),
        (sat.Date(), pa.date32()),
        (sat.DateTime(), pa.timestamp("us")),
        (postgresql.TIMESTAMP(timezone=True), pa.timestamp("us", tz="UTC")),
        (sat.Time(), pa.time64("us")),
        (postgresql.TIME(timezone=True), pa.string()),
        (postgresql.BYTEA(), pa.binary()),
        (postgresql.JSONB(), pa.string()),
        (postgresql.UUID(), pa.string()),
        (postgresql.INTERVAL(), pa.string()),
        (sat.NullType(), pa.string()),
    ],
)
def test_mapping(source_type: sat.TypeEngine[object], arrow_type: pa.DataType) -> None:
    assert map_column("c", source_type, loose=False).arrow_type == arrow_type
    assert map_column("c", source_type, loose=True).arrow_type == arrow_type


def test_bronze_types_round_trip_the_mapping() -> None:
    assert isinstance(bronze_type(pa.int64()), sat.BigInteger)
    decimal = bronze_type(pa.decimal128(12, 3))
    assert isinstance(decimal, sat.Numeric)
    assert (decimal.precision, decimal.scale) == (12, 3)
    assert bronze_type(pa.timestamp("us", tz="UTC")).timezone is True
    assert bronze_type(pa.timestamp("us")).timezone is False
    assert isinstance(bronze_type(pa.string()), sat.Text)


def _loose(source_type: sat.TypeEngine[object], values: list[object]) -> list[object]:
    return to_array(values, map_column("c", source_type, loose=True), "test").to_pylist()


def test_sqlite_timestamps_from_iso_text_and_epoch() -> None:
    values = [
        "2024-01-02 03:04:05",
        "2024-01-02T03:04:05.123Z",
        "2024-01-02 05:04:05+02:00",
        1704164645,
        None,
    ]
    assert _loose(sat.DateTime(), values) == [
        dt.datetime(2024, 1, 2, 3, 4, 5),
        dt.datetime(2024, 1, 2, 3, 4, 5, 123000),
        dt.datetime(2024, 1, 2, 3, 4, 5),
        dt.datetime(2024, 1, 2, 3, 4, 5),
        None,
    ]
    aware = _loose(sat.DateTime(timezone=True), ["2024-01-02 03:04:05"])
    assert aware == [dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)]


def test_sqlite_decimals_from_floats_ints_and_text() -> None:
    got = _loose(sat.Numeric(10, 2), [19.99, 3, "4.5", 0.1 + 0.2, Decimal("1.005")])
    assert got == [Decimal("19.99"), Decimal("3.00"), Decimal("4.50"), Decimal("0.30"),
                   Decimal("1.00")]  # fmt: skip


def test_sqlite_unconstrained_numeric_keeps_any_value_as_text() -> None:
    assert _loose(sat.Numeric(), [1.5, 2, "abc", Decimal("1.10")]) == ["1.5", "2", "abc", "1.10"]


def test_sqlite_booleans_integers_dates() -> None:
    assert _loose(sat.Boolean(), [1, 0, "true", "F"]) == [True, False, True, False]
    assert _loose(sat.Integer(), [1, 2.0, "3", True]) == [1, 2, 3, 1]
    assert _loose(sat.Date(), ["2024-01-02", "2024-01-02 10:00:00"]) == [dt.date(2024, 1, 2)] * 2
    assert _loose(sat.Text(), [12, 1.5, b"caf\xc3\xa9"]) == ["12", "1.5", "café"]


@pytest.mark.parametrize(
    ("source_type", "bad"),
    [
        (sat.Integer(), "twelve"),
        (sat.Integer(), 1.5),
        (sat.Numeric(4, 2), 123.45),  # exceeds the declared precision
        (sat.Boolean(), "maybe"),
        (sat.DateTime(), "yesterday"),
    ],
)
def test_values_that_do_not_fit_fail_the_load(
    source_type: sat.TypeEngine[object], bad: object
) -> None:
    with pytest.raises(LoadFailed, match=rf"column 'c' cannot be loaded as .*\(value {bad!r}\)"):
        _loose(source_type, [None, bad])

"""The pure parts of a load's plan: bounds, watermark codec, drift decisions (no database)."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest
from sqlalchemy import BigInteger, Column, DateTime, MetaData, Table
from sqlalchemy.dialects import postgresql

from datakits.bronze import CatalogType
from datakits.drift import compare, decide
from datakits.errors import ConfigError, LoadFailed
from datakits.modes import Cursor, plan_load
from datakits.spec import SchemaDrift, TableSpec
from datakits.watermarks import (
    CursorMax,
    Horizon,
    Sighting,
    StoredWatermark,
    decode,
    decode_pending,
    encode,
    encode_pending,
)

TS = pa.timestamp("us", tz="UTC")
SOURCE = Table("ev", MetaData(), Column("id", BigInteger), Column("at", DateTime(timezone=True)))


def _table(**settings: Any) -> TableSpec:
    return TableSpec.model_validate({"name": "ev", **settings})


def _sql(conditions: list[Any]) -> list[str]:
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    return [
        str(c.compile(dialect=dialect, compile_kwargs={"literal_binds": True})) for c in conditions
    ]


INCREMENTAL = {"mode": "incremental", "cursor": "at", "primary_key": ["id"]}
AT = Cursor("at", TS, nullable=True)
STORED = StoredWatermark("at", "2024-05-01T12:00:00+00:00")


def test_first_load_rebuilds_and_reads_non_null_cursors() -> None:
    plan = plan_load(_table(**INCREMENTAL), AT, bronze_exists=False, stored=STORED, target="t")
    assert plan.rebuild and plan.lower is None
    assert _sql(plan.conditions(SOURCE)) == ["ev.at IS NOT NULL"]
    assert plan.null_rows(SOURCE) is not None  # `fail` checks first


def test_incremental_reads_from_watermark_minus_lookback_inclusive() -> None:
    table = _table(**INCREMENTAL, lookback="15m")
    plan = plan_load(table, AT, bronze_exists=True, stored=STORED, target="t")
    assert not plan.rebuild
    assert _sql(plan.conditions(SOURCE)) == ["ev.at >= '2024-05-01 11:45:00+00:00'"]


def test_include_policy_adds_null_cursors() -> None:
    table = _table(**INCREMENTAL, null_cursor="include")
    plan = plan_load(table, AT, bronze_exists=True, stored=STORED, target="t")
    assert _sql(plan.conditions(SOURCE)) == [
        "ev.at >= '2024-05-01 12:00:00+00:00' OR ev.at IS NULL"
    ]
    assert plan.null_rows(SOURCE) is None


def test_append_without_key_is_strictly_after() -> None:
    cursor = Cursor("id", pa.int64(), nullable=False)
    table = _table(mode="append", cursor="id")
    plan = plan_load(
        table, cursor, bronze_exists=True, stored=StoredWatermark("id", "41"), target="t"
    )
    assert _sql(plan.conditions(SOURCE)) == ["ev.id > 41"]
    assert plan.null_rows(SOURCE) is None  # NOT NULL at the source: no check query


def test_watermark_never_moves_back() -> None:
    plan = plan_load(_table(**INCREMENTAL), AT, bronze_exists=True, stored=STORED, target="t")
    earlier = dt.datetime(2024, 4, 1, tzinfo=dt.UTC)
    assert plan.next_watermark(earlier) == plan.previous
    assert plan.next_watermark(None) == plan.previous


def test_lookback_before_the_start_of_time_reads_everything() -> None:
    stored = StoredWatermark("at", "0001-01-01T00:10:00+00:00")
    table = _table(**INCREMENTAL, lookback="1d")
    plan = plan_load(table, AT, bronze_exists=True, stored=stored, target="t")
    assert plan.lower is None


def test_date_cursor_rounds_the_window_up_to_days() -> None:
    cursor = Cursor("day", pa.date32(), nullable=False)
    table = _table(mode="incremental", cursor="day", primary_key=["id"], lookback="90m")
    plan = plan_load(
        table, cursor, bronze_exists=True, stored=StoredWatermark("day", "2024-05-02"), target="t"
    )
    assert plan.lower == dt.date(2024, 5, 1)


def test_duration_lookback_needs_a_time_cursor() -> None:
    cursor = Cursor("id", pa.int64(), nullable=False)
    table = _table(mode="incremental", cursor="id", primary_key=["id"], lookback="1h")
    with pytest.raises(ConfigError, match=r"lookback is a duration \(3600 s\)"):
        plan_load(table, cursor, bronze_exists=False, stored=None, target="t")


def test_changed_cursor_column_rereads_everything_with_a_key() -> None:
    stored = StoredWatermark("updated_at", "2024-01-01T00:00:00+00:00")
    plan = plan_load(_table(**INCREMENTAL), AT, bronze_exists=True, stored=stored, target="t")
    assert not plan.rebuild and plan.lower is None


def test_stored_watermark_of_another_type_is_a_clear_failure() -> None:
    plan_args = {"bronze_exists": True, "target": "bronze.ev"}
    stored = StoredWatermark("at", "12345")
    with pytest.raises(LoadFailed, match=r"watermark '12345' of bronze\.ev does not fit"):
        plan_load(_table(**INCREMENTAL), AT, stored=stored, **plan_args)


@pytest.mark.parametrize(
    ("value", "arrow_type"),
    [
        (2**62, pa.int64()),
        (Decimal("-12.3400"), pa.decimal128(12, 4)),
        (0.1, pa.float64()),
        (dt.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=dt.UTC), TS),
        (dt.datetime(2024, 5, 6, 7, 8, 9, 500000), pa.timestamp("us")),
        (dt.date(2024, 2, 29), pa.date32()),
    ],
)
def test_watermark_text_round_trips_exactly(value: Any, arrow_type: pa.DataType) -> None:
    assert decode(encode(value), arrow_type) == value


def test_cursor_max_spans_batches_and_ignores_nulls() -> None:
    tracker = CursorMax("v")
    for values in ([3, None, 7], [None], [7, 5]):
        tracker.update(pa.record_batch([pa.array(values, pa.int64())], names=["v"]))
    assert tracker.value == 7


@pytest.mark.parametrize("zone", ["UTC", "Europe/Paris", "+05:30"])
def test_cursor_max_of_zoned_timestamps_is_the_instant_in_utc(zone: str) -> None:
    instants = [
        dt.datetime(2024, 3, 31, 0, 59, 59, 999999, tzinfo=dt.UTC),  # the night Paris moves
        dt.datetime(2024, 3, 31, 1, 0, 0, 1, tzinfo=dt.UTC),
        None,
    ]
    tracker = CursorMax("v")
    tracker.update(pa.record_batch([pa.array(instants, pa.timestamp("us", tz=zone))], ["v"]))
    assert tracker.value == instants[1]
    assert tracker.value.tzinfo is dt.UTC


def test_cursor_max_does_not_import_pandas() -> None:
    """pyarrow's `as_py()` of a zoned timestamp imports pandas (0.3-0.6 s of a runner's
    start-up) when it is installed, as it is next to Airflow; `CursorMax` avoids it."""
    code = (
        "import sys, pyarrow as pa\n"
        "from datakits.watermarks import CursorMax\n"
        "micros = (1_704_067_200 * 10**6).to_bytes(8, 'little')  # 2024-01-01\n"
        "utc = pa.timestamp('us', tz='UTC')\n"
        "ts = pa.Array.from_buffers(utc, 1, [None, pa.py_buffer(micros)])\n"
        "t = CursorMax('v')\n"
        "t.update(pa.RecordBatch.from_arrays([ts], ['v']))\n"
        "print(t.value.year, 'pandas' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.split() == ["2024", "False"], done.stderr


def _decimal(p: int, s: int) -> CatalogType:
    return CatalogType("decimal", p, s)


def test_drift_widens_decimals_losslessly() -> None:
    drift = compare({"a": _decimal(10, 2)}, {"a": _decimal(10, 4)})
    evolution = decide(drift, SchemaDrift.evolve, target="t", rebuild=False)
    assert evolution.widen == {"a": _decimal(12, 4)}  # 8 integer digits, 4 decimals


def test_drift_narrower_source_decimal_needs_no_change() -> None:
    drift = compare({"a": _decimal(12, 2)}, {"a": _decimal(10, 2)})
    assert decide(drift, SchemaDrift.evolve, target="t", rebuild=False).widen == {}


def test_drift_refuses_what_no_type_holds() -> None:
    drift = compare({"a": _decimal(38, 0)}, {"a": _decimal(38, 10)})
    with pytest.raises(LoadFailed, match="incompatible type change in t"):
        decide(drift, SchemaDrift.evolve, target="t", rebuild=False)
    rebuilt = decide(drift, SchemaDrift.evolve, target="t", rebuild=True)
    assert rebuilt.widen == {} and rebuilt.keep == {}


# --- the integer horizon: hold, bound, sightings codec -------------------------------------

ID = Cursor("id", pa.int64(), nullable=False)
BY_ID = StoredWatermark("id", "10")


@pytest.mark.parametrize(
    ("table", "sql", "watermark"),
    [
        ({"mode": "incremental", "cursor": "id", "primary_key": ["id"]}, ["ev.id >= 10"], 10),
        ({"mode": "append", "cursor": "id"}, ["ev.id > 10", "ev.id < 10"], 10),
    ],
    ids=["keyed", "keyless"],
)
def test_hold_keeps_the_watermark_and_keyless_reads_nothing_past_it(
    table: dict[str, Any], sql: list[str], watermark: int
) -> None:
    plan = plan_load(_table(**table), ID, bronze_exists=True, stored=BY_ID, target="t")
    held = plan.with_horizon(Horizon(hold=True))
    assert _sql(held.conditions(SOURCE)) == sql
    assert held.next_watermark(25) == watermark


def test_hold_on_a_first_keyless_load_reads_nothing_and_saves_no_watermark() -> None:
    plan = plan_load(_table(mode="append", cursor="id"), ID, bronze_exists=False, stored=None,
                     target="t")  # fmt: skip
    held = plan.with_horizon(Horizon(hold=True))
    assert _sql(held.conditions(SOURCE)) == ["ev.id IS NOT NULL", "false"]
    assert held.next_watermark(None) is None


def test_integer_bound_stops_the_watermark_and_sightings_round_trip() -> None:
    table = _table(mode="incremental", cursor="id", primary_key=["id"])
    seen = Sighting(dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC), "17")
    plan = plan_load(table, ID, bronze_exists=True, stored=BY_ID, target="t")
    bounded = plan.with_horizon(Horizon(18, pending=(seen,)))
    assert bounded.next_watermark(25) == 18 and bounded.next_watermark(12) == 12
    assert bounded.pending == (seen,)
    assert decode_pending(encode_pending((seen,))) == (seen,)
    assert decode_pending(None) == () and encode_pending(()) is None


def test_drift_keeps_what_bronze_holds_and_takes_any_type_into_text() -> None:
    bronze = {
        "f": CatalogType("double precision"),
        "a": CatalogType("text"),
        "m": CatalogType("varchar"),
        "r": CatalogType("real"),
        "n": CatalogType("bigint"),
    }
    now = {"f": CatalogType("real"), "a": CatalogType("array"),
           "m": CatalogType("decimal", 19, 2), "r": CatalogType("double precision"),
           "n": CatalogType("text")}  # fmt: skip
    with pytest.raises(LoadFailed, match=r"incompatible type change in t .*: n \(bigint in"):
        decide(compare(bronze, now), SchemaDrift.evolve, target="t", rebuild=False)
    del now["n"], bronze["n"]
    evolution = decide(compare(bronze, now), SchemaDrift.evolve, target="t", rebuild=False)
    assert evolution.widen == {"r": CatalogType("double precision")}
    assert evolution.as_text == {"a": True, "m": False}
    assert len(evolution.notes) == 4 and "t.f stays double precision" in evolution.notes[0]

"""Append and incremental loads: watermarks, ties, late rows, NULL cursors, filters.

Every test runs on a real PostgreSQL source (or SQLite) into both warehouse kinds and
compares bronze with the source row by row: "no row lost, none doubled" is checked on
the data, not on counters.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from datakits.errors import ConfigError, LoadFailed
from datakits.load import LoadResult, load_table
from datakits.spec import LoadSpec
from devtools.postgres import PostgresCluster
from tests.datakits.bronze_state import audit_count, execute, watermark
from tests.datakits.conftest import _db_name, make_spec, query, sqlite_table

WAREHOUSES = ["duckdb", "postgres"]
T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def _spec(kind: str, **table: Any) -> LoadSpec:
    return make_spec("postgres", kind, {"name": "ev", "batch_size": 100, **table})


def _load(spec: LoadSpec, source: str, warehouse: str) -> LoadResult:
    return load_table(spec, spec.tables[0], source, warehouse)


def _ev(source: str, n: int, ver: str = "g / 250") -> None:
    """`ev(id, v, ver)`: `ver` is the cursor, shared by 250 rows each (ties on purpose)."""
    execute(
        source,
        "CREATE TABLE ev (id bigint PRIMARY KEY, v text NOT NULL, ver bigint)",
        f"INSERT INTO ev SELECT g, 'v' || g, {ver} FROM generate_series(0, {n - 1}) g",
    )


def _source_rows(source: str) -> list[tuple[Any, ...]]:
    return query(source, "SELECT id, v, ver FROM ev ORDER BY id")


def _bronze_rows(warehouse: str) -> list[tuple[Any, ...]]:
    return query(warehouse, "SELECT id, v, ver FROM bronze.ev ORDER BY id")


# --- incremental -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", WAREHOUSES)
def test_incremental_ties_across_batch_boundaries(
    kind: str, pg_source: str, make_warehouse: Callable[[str], str]
) -> None:
    """Ties on the watermark value, spread over several 100-row batches, are never lost
    nor doubled: `>=` re-reads them and the merge by key replaces them."""
    warehouse = make_warehouse(kind)
    _ev(pg_source, 1000)  # ver 0..3, 250 rows each: every value spans 2.5 batches
    spec = _spec(kind, mode="incremental", cursor="ver", primary_key=["id"])

    first = _load(spec, pg_source, warehouse)
    assert (first.rows, first.watermark) == (1000, 3)
    assert watermark(warehouse, "ev") == ("ver", "3")

    # Rows that commit after the load with the watermark's own value (ties), changed rows
    # moved onto it, and newer rows.
    execute(
        pg_source,
        "INSERT INTO ev SELECT g, 'late tie ' || g, 3 FROM generate_series(1000, 1299) g",
        "UPDATE ev SET v = 'changed', ver = 3 WHERE id < 50",
        "INSERT INTO ev SELECT g, 'new ' || g, 4 FROM generate_series(1300, 1399) g",
    )
    second = _load(spec, pg_source, warehouse)

    assert second.rows == 250 + 300 + 50 + 100  # every row with ver >= 3, nothing else
    assert second.watermark == 4
    assert _bronze_rows(warehouse) == _source_rows(pg_source)

    third = _load(spec, pg_source, warehouse)  # nothing changed: the same bronze
    assert third.rows == 100  # the tie group on the watermark, re-read and replaced
    assert _bronze_rows(warehouse) == _source_rows(pg_source)
    assert query(warehouse, "SELECT count(*), count(DISTINCT id) FROM bronze.ev") == [(1400, 1400)]
    assert audit_count(warehouse, "ev") == 3


@pytest.mark.parametrize("kind", WAREHOUSES)
def test_incremental_late_commit_inside_lookback(
    kind: str,
    pg_source: str,
    make_warehouse: Callable[[str], str],
    pg_cluster: PostgresCluster,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    """A row whose transaction started before a load but committed after it carries an
    older cursor than the watermark: the lookback window re-reads it."""
    warehouse = make_warehouse(kind)
    if kind == "duckdb":
        missed_warehouse = f"duckdb:///{tmp_path / 'no_window.duckdb'}"
    else:
        missed_warehouse = pg_cluster.create_database(_db_name(request, "nowin"))
    execute(
        pg_source,
        "CREATE TABLE ev (id bigint PRIMARY KEY, v text, "
        "updated_at timestamptz NOT NULL DEFAULT clock_timestamp())",
        "INSERT INTO ev (id, v) SELECT g, 'v' || g FROM generate_series(1, 500) g",
    )
    with_window = _spec(
        kind, mode="incremental", cursor="updated_at", primary_key=["id"], lookback="10m"
    )
    no_window = _spec(kind, mode="incremental", cursor="updated_at", primary_key=["id"])
    _load(with_window, pg_source, warehouse)
    _load(no_window, pg_source, missed_warehouse)

    engine = create_engine(pg_source, poolclass=NullPool)
    try:
        with engine.connect() as late:
            late.begin()
            late.execute(text("INSERT INTO ev (id, v) VALUES (9001, 'late')"))  # cursor = now
            execute(pg_source, "INSERT INTO ev (id, v) VALUES (9002, 'on time')")  # later
            _load(with_window, pg_source, warehouse)  # sees 9002 only: watermark > late's
            _load(no_window, pg_source, missed_warehouse)
            late.commit()
    finally:
        engine.dispose()
    _load(with_window, pg_source, warehouse)
    _load(no_window, pg_source, missed_warehouse)

    ids = "SELECT id FROM bronze.ev WHERE id > 9000 ORDER BY id"
    assert query(warehouse, ids) == [(9001,), (9002,)]
    # Without a window too: the watermark stopped at the open transaction's start.
    assert query(missed_warehouse, ids) == [(9001,), (9002,)]


@pytest.mark.parametrize("kind", WAREHOUSES)
def test_incremental_lookback_window_bounds(
    kind: str, pg_source: str, make_warehouse: Callable[[str], str]
) -> None:
    """An integer cursor's window is in its own units: 10 re-reads ver >= wm - 10."""
    warehouse = make_warehouse(kind)
    _ev(pg_source, 100, ver="g")
    spec = _spec(kind, mode="incremental", cursor="ver", primary_key=["id"], lookback=10)
    _load(spec, pg_source, warehouse)
    execute(
        pg_source,
        "INSERT INTO ev VALUES (1001, 'inside', 95), (1002, 'outside', 80), (1003, 'new', 120)",
    )
    result = _load(spec, pg_source, warehouse)
    assert result.rows == 11 + 1 + 1  # ver 89..99, then 95 (late, inside) and 120
    assert result.watermark == 120
    ids = {r[0] for r in query(warehouse, "SELECT id FROM bronze.ev")}
    assert {1001, 1003} <= ids and 1002 not in ids


@pytest.mark.parametrize("kind", WAREHOUSES)
def test_failed_load_keeps_data_and_watermark(
    kind: str, pg_source: str, make_warehouse: Callable[[str], str]
) -> None:
    """The watermark commits with the data: a load that fails late changes neither."""
    warehouse = make_warehouse(kind)
    execute(
        pg_source,
        "CREATE TABLE ev (id bigint, v text, ver bigint)",  # no key constraint at the source
        "INSERT INTO ev SELECT g, 'v' || g, g FROM generate_series(1, 300) g",
    )
    spec = _spec(kind, mode="incremental", cursor="ver", primary_key=["id"])
    _load(spec, pg_source, warehouse)
    before = (_bronze_rows(warehouse), watermark(warehouse, "ev"), audit_count(warehouse, "ev"))
    execute(pg_source, "INSERT INTO ev VALUES (301, 'a', 301), (302, 'b', 302), (301, 'c', 303)")

    with pytest.raises(LoadFailed, match=r"primary key \(id\) is not unique.*id=301 appears 2"):
        _load(spec, pg_source, warehouse)

    after = (_bronze_rows(warehouse), watermark(warehouse, "ev"), audit_count(warehouse, "ev"))
    assert after == before
    assert query(
        warehouse, "SELECT count(*) FROM information_schema.tables WHERE table_name LIKE '__stg%'"
    ) == [(0,)]


@pytest.mark.parametrize("kind", WAREHOUSES)
def test_deleted_watermark_reloads_from_scratch(
    kind: str, pg_source: str, make_warehouse: Callable[[str], str]
) -> None:
    warehouse = make_warehouse(kind)
    _ev(pg_source, 300, ver="g")
    spec = _spec(kind, mode="incremental", cursor="ver", primary_key=["id"])
    _load(spec, pg_source, warehouse)
    execute(pg_source, "DELETE FROM ev WHERE id < 100")
    execute(warehouse, "DELETE FROM meta.watermarks")

    result = _load(spec, pg_source, warehouse)

    assert result.rows == 200
    assert _bronze_rows(warehouse) == _source_rows(pg_source)  # a rebuild: deletes show


# --- append ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", WAREHOUSES)
def test_append_with_key_inserts_new_rows_never_updates(
    kind: str, pg_source: str, make_warehouse: Callable[[str], str]
) -> None:
    warehouse = make_warehouse(kind)
    _ev(pg_source, 1000)
    spec = _spec(kind, mode="append", cursor="ver", primary_key=["id"])
    _load(spec, pg_source, warehouse)
    execute(
        pg_source,
        "INSERT INTO ev SELECT g, 'late tie ' || g, 3 FROM generate_series(1000, 1299) g",
        "UPDATE ev SET v = 'changed', ver = 3 WHERE id < 50",
    )

    result = _load(spec, pg_source, warehouse)
    again = _load(spec, pg_source, warehouse)

    assert result.rows == again.rows == 600  # the ver = 3 rows, re-read each run
    loaded = dict(query(warehouse, "SELECT id, v FROM bronze.ev"))
    assert len(loaded) == 1300
    assert query(warehouse, "SELECT count(*) FROM bronze.ev") == [(1300,)]  # no doubles
    assert loaded[1299] == "late tie 1299"  # ties on the watermark are picked up
    assert loaded[0] == "v0"  # and existing rows are never updated


@pytest.mark.parametrize("kind", WAREHOUSES)
def test_append_without_key_reads_strictly_after_watermark(
    kind: str, pg_source: str, make_warehouse: Callable[[str], str]
) -> None:
    warehouse = make_warehouse(kind)
    _ev(pg_source, 250, ver="g")
    spec = _spec(kind, mode="append", cursor="ver")
    assert _load(spec, pg_source, warehouse).watermark == 249
    execute(pg_source, "INSERT INTO ev SELECT g, 'new', g FROM generate_series(250, 299) g")

    assert _load(spec, pg_source, warehouse).rows == 50
    assert _load(spec, pg_source, warehouse).rows == 0
    assert query(warehouse, "SELECT count(*), count(DISTINCT id) FROM bronze.ev") == [(300, 300)]
    assert watermark(warehouse, "ev") == ("ver", "299")


def test_append_cursor_change_without_key_is_refused(
    pg_source: str, make_warehouse: Callable[[str], str]
) -> None:
    warehouse = make_warehouse("duckdb")
    _ev(pg_source, 100, ver="g")
    _load(_spec("duckdb", mode="append", cursor="ver"), pg_source, warehouse)
    with pytest.raises(ConfigError, match=r"watermark of bronze\.ev follows column ver"):
        _load(_spec("duckdb", mode="append", cursor="id"), pg_source, warehouse)


# --- NULL cursors ------------------------------------------------------------------------


def _nullable_ev(source: str) -> None:
    _ev(source, 300, ver="CASE WHEN g % 100 = 0 THEN NULL ELSE g END")


@pytest.mark.parametrize("kind", WAREHOUSES)
def test_null_cursor_fail_stops_before_writing(
    kind: str, pg_source: str, make_warehouse: Callable[[str], str]
) -> None:
    warehouse = make_warehouse(kind)
    _ev(pg_source, 300, ver="g")
    spec = _spec(kind, mode="incremental", cursor="ver", primary_key=["id"])
    _load(spec, pg_source, warehouse)
    before = (_bronze_rows(warehouse), watermark(warehouse, "ev"))
    execute(pg_source, "INSERT INTO ev VALUES (1000, 'no cursor', NULL), (1001, 'x', 1001)")

    with pytest.raises(LoadFailed, match="cursor ver is NULL, and null_cursor is `fail`"):
        _load(spec, pg_source, warehouse)
    assert (_bronze_rows(warehouse), watermark(warehouse, "ev")) == before


@pytest.mark.parametrize("kind", WAREHOUSES)
def test_null_cursor_include_rereads_and_merges(
    kind: str, pg_source: str, make_warehouse: Callable[[str], str]
) -> None:
    warehouse = make_warehouse(kind)
    _nullable_ev(pg_source)
    spec = _spec(kind, mode="incremental", cursor="ver", primary_key=["id"], null_cursor="include")
    first = _load(spec, pg_source, warehouse)
    assert first.rows == 300 and first.watermark == 299
    execute(pg_source, "UPDATE ev SET v = 'changed while NULL' WHERE id = 100")

    second = _load(spec, pg_source, warehouse)

    assert second.rows == 3 + 1  # the three NULL-cursor rows, and the tie on 299
    assert second.watermark == 299  # NULLs never move the watermark
    assert _bronze_rows(warehouse) == _source_rows(pg_source)


@pytest.mark.parametrize("kind", WAREHOUSES)
def test_null_cursor_skip_never_loads_them(
    kind: str, pg_source: str, make_warehouse: Callable[[str], str]
) -> None:
    warehouse = make_warehouse(kind)
    _nullable_ev(pg_source)
    spec = _spec(kind, mode="append", cursor="ver", null_cursor="skip")
    assert _load(spec, pg_source, warehouse).rows == 297
    execute(pg_source, "INSERT INTO ev VALUES (1000, 'x', NULL), (1001, 'y', 1001)")
    assert _load(spec, pg_source, warehouse).rows == 1
    assert query(warehouse, "SELECT count(*) FROM bronze.ev WHERE ver IS NULL") == [(0,)]


def test_not_null_cursor_skips_the_null_check(
    pg_source: str, make_warehouse: Callable[[str], str]
) -> None:
    """A NOT NULL cursor needs no extra query; the first load reads every row."""
    warehouse = make_warehouse("duckdb")
    execute(
        pg_source,
        "CREATE TABLE ev (id bigint PRIMARY KEY, v text, ver bigint NOT NULL)",
        "INSERT INTO ev SELECT g, 'v', g FROM generate_series(1, 10) g",
    )
    assert _load(_spec("duckdb", mode="append", cursor="ver"), pg_source, warehouse).rows == 10


# --- filter ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", WAREHOUSES)
def test_structured_filter(kind: str, pg_source: str, make_warehouse: Callable[[str], str]) -> None:
    warehouse = make_warehouse(kind)
    execute(
        pg_source,
        "CREATE TABLE ev (id bigint PRIMARY KEY, status text, day date, at timestamptz, note text)",
        "INSERT INTO ev SELECT g, CASE WHEN g % 3 = 0 THEN 'open' WHEN g % 3 = 1 THEN 'done' "
        "ELSE 'void' END, DATE '2024-01-01' + g, TIMESTAMPTZ '2024-01-01' + g * interval '1h',"
        " CASE WHEN g % 2 = 0 THEN 'n' END FROM generate_series(1, 100) g",
    )
    rules = [
        {"column": "status", "op": "in", "value": ["open", "done"]},
        {"column": "day", "op": ">=", "value": "2024-01-11"},
        {"column": "at", "op": "<", "value": "2024-01-04T00:00:00Z"},
        {"column": "note", "op": "is_null"},
        {"column": "id", "op": "!=", "value": 13},
    ]
    spec = make_spec("postgres", kind, {"name": "ev", "filter": rules})

    _load(spec, pg_source, warehouse)

    expected = [(i,) for i in range(10, 72) if i % 3 in (0, 1) and i % 2 == 1 and i != 13]
    assert query(warehouse, "SELECT id FROM bronze.ev ORDER BY id") == expected


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"column": "nope", "op": "=", "value": 1}, r"filter on source table ev: no column nope"),
        (
            {"column": "id", "op": "=", "value": "1; DROP TABLE ev"},
            r"filter on ev.id: value '1; DROP TABLE ev' does not fit the column",
        ),
        ({"column": "ver", "op": ">", "value": "yesterday"}, r"does not fit the column"),
    ],
)
def test_bad_filter_is_a_config_error(
    rule: dict[str, Any], message: str, pg_source: str, make_warehouse: Callable[[str], str]
) -> None:
    _ev(pg_source, 10)
    spec = make_spec("postgres", "duckdb", {"name": "ev", "filter": [rule]})
    with pytest.raises(ConfigError, match=message):
        _load(spec, pg_source, make_warehouse("duckdb"))
    assert query(pg_source, "SELECT count(*) FROM ev") == [(10,)]


# --- the spec against the source ---------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"cursor": "v"}, r"cursor column v of source table ev is loaded as string"),
        ({"cursor": "gone"}, r"source table ev has no cursor column gone \(columns: id, v, ver"),
        (
            {"cursor": "ver", "primary_key": ["gone"]},
            r"source table ev has no primary_key column gone",
        ),
        (
            {"cursor": "ver", "lookback": "1h"},
            r"lookback is a duration \(3600 s\), but cursor ver is loaded as int64",
        ),
    ],
)
def test_cursor_and_key_are_checked_against_the_source(
    table: dict[str, Any], message: str, pg_source: str, make_warehouse: Callable[[str], str]
) -> None:
    _ev(pg_source, 10)
    spec = _spec("duckdb", mode="incremental", **{"primary_key": ["id"], **table})
    with pytest.raises(ConfigError, match=message):
        _load(spec, pg_source, make_warehouse("duckdb"))


def test_sqlite_source_incremental(tmp_path: Path, make_warehouse: Callable[[str], str]) -> None:
    path = tmp_path / "s.db"
    source = sqlite_table(
        path,
        "CREATE TABLE ev (id INTEGER PRIMARY KEY, v TEXT, ver INTEGER)",
        [(i, f"v{i}", i // 10) for i in range(200)],
    )
    warehouse = make_warehouse("postgres")
    spec = make_spec(
        "sqlite",
        "postgres",
        {"name": "ev", "mode": "incremental", "cursor": "ver", "primary_key": ["id"]},
    )
    load_table(spec, spec.tables[0], source, warehouse)
    import sqlite3

    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE ev SET v = 'changed', ver = 19 WHERE id = 3")
        conn.execute("INSERT INTO ev VALUES (500, 'new', 25)")
    conn.close()

    result = load_table(spec, spec.tables[0], source, warehouse)

    assert result.rows == 12 and result.watermark == 25
    assert query(warehouse, "SELECT v FROM bronze.ev WHERE id IN (3, 500) ORDER BY id") == [
        ("changed",),
        ("new",),
    ]
    assert query(warehouse, "SELECT count(*) FROM bronze.ev") == [(201,)]
    indexes = query(warehouse, "SELECT indexname FROM pg_indexes WHERE tablename = 'ev'")
    assert indexes == [("ev__key",)]


@pytest.mark.parametrize("kind", WAREHOUSES)
def test_timestamp_and_decimal_watermarks_round_trip(
    kind: str, pg_source: str, make_warehouse: Callable[[str], str]
) -> None:
    warehouse = make_warehouse(kind)
    execute(
        pg_source,
        "CREATE TABLE ev (id bigint PRIMARY KEY, at timestamptz, naive timestamp, "
        "day date, amount numeric(12, 3))",
        "INSERT INTO ev VALUES (1, '2024-05-06 07:08:09.123456+02', '2024-05-06 07:08:09.5', "
        "'2024-05-06', 12.345)",
    )
    expected = {
        "at": "2024-05-06T05:08:09.123456+00:00",
        "naive": "2024-05-06T07:08:09.500000",
        "day": "2024-05-06",
        "amount": "12.345",
    }
    for cursor, value in expected.items():
        spec = make_spec(
            "postgres",
            kind,
            {"name": "ev", "mode": "incremental", "cursor": cursor, "primary_key": ["id"]},
        )
        assert _load(spec, pg_source, warehouse).watermark == value
        again = _load(spec, pg_source, warehouse)  # binds the stored value back: >= finds it
        assert (again.rows, again.watermark) == (1, value)


def test_sqlite_text_timestamps_compare_as_times(
    tmp_path: Path, make_warehouse: Callable[[str], str]
) -> None:
    """SQLite keeps timestamps as text in any ISO spelling; as text, `T` sorts after a
    space and every `T` row would be re-read (and, without a key, appended again)."""
    import sqlite3

    path = tmp_path / "s.db"
    source = sqlite_table(
        path,
        "CREATE TABLE ev (id INTEGER, at TIMESTAMP NOT NULL)",
        [
            (1, "2024-01-01 10:00:00"),
            (2, "2024-01-01T10:00:01Z"),
            (3, "2024-01-01 12:00:02+02:00"),  # 10:00:02 UTC
            (4, "2024-01-01T10:00:03.250"),
        ],
    )
    warehouse = make_warehouse("duckdb")
    spec = make_spec("sqlite", "duckdb", {"name": "ev", "mode": "append", "cursor": "at"})

    first = load_table(spec, spec.tables[0], source, warehouse)
    again = load_table(spec, spec.tables[0], source, warehouse)
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO ev VALUES (5, '2024-01-01T10:00:04Z')")
    conn.close()
    third = load_table(spec, spec.tables[0], source, warehouse)

    assert (first.rows, first.watermark) == (4, "2024-01-01T10:00:03.250000")
    assert again.rows == 0
    assert (third.rows, third.watermark) == (1, "2024-01-01T10:00:04")
    assert query(warehouse, "SELECT count(*), count(DISTINCT id) FROM bronze.ev") == [(5, 5)]

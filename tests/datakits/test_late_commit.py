"""Late commits: a row whose transaction commits after a load that could not see it.

Transaction A changes a row (its cursor is A's statement time) and stays open; B changes
another row later and commits; a load runs and sees B only, whose cursor is past A's.
With a watermark at B's cursor, A's row — committed afterwards, below it — was lost
for good. These tests run with NO `lookback` in the spec: the default must catch it
(PostgreSQL: the commit horizon; MySQL/MariaDB: the default re-read window).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.pool import NullPool

from datakits.errors import ConfigError
from datakits.load import load_table
from datakits.spec import LoadSpec
from devtools.mariadb import MariaDBServer
from tests.datakits.bronze_state import execute
from tests.datakits.conftest import make_spec, query

PATHS = pytest.mark.parametrize("copy", [True, False], ids=["copy", "cursor"])


def _spec(source: str, warehouse: str, **table: Any) -> LoadSpec:
    return make_spec(source, warehouse, {"name": "ev", **table})


def _load(spec: LoadSpec, source_url: str, warehouse_url: str) -> Any:
    return load_table(spec, spec.tables[0], source_url, warehouse_url)


@contextmanager
def _open_transaction(url: str) -> Iterator[Connection]:
    """A session whose transaction stays open until the block commits it."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            conn.begin()
            yield conn
    finally:
        engine.dispose()


def _pg_events(url: str) -> None:
    execute(
        url,
        "CREATE TABLE ev (id bigint PRIMARY KEY, v text, updated_at timestamptz NOT NULL)",
        "INSERT INTO ev SELECT g, 'old', timestamptz '2024-01-01 00:00:00+00' + g * "
        "interval '1 second' FROM generate_series(1, 3) g",
    )


@PATHS
@pytest.mark.parametrize("warehouse", ["duckdb", "postgres"])
def test_postgres_row_committed_after_a_load_is_picked_up_by_the_next(
    copy: bool,
    warehouse: str,
    pg_source: str,
    make_warehouse: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if not copy:
        monkeypatch.setenv("DATAKITS_POSTGRES_COPY", "0")
    _pg_events(pg_source)
    warehouse_url = make_warehouse(warehouse)
    spec = _spec("postgres", warehouse, mode="incremental", cursor="updated_at",
                 primary_key=["id"])  # fmt: skip
    _load(spec, pg_source, warehouse_url)

    with _open_transaction(pg_source) as a:
        a.execute(text("UPDATE ev SET v = 'A', updated_at = statement_timestamp() WHERE id = 1"))
        execute(pg_source, "UPDATE ev SET v = 'B', updated_at = statement_timestamp() "
                "WHERE id = 2")  # fmt: skip
        first = _load(spec, pg_source, warehouse_url)  # sees B, not A
        a.commit()
    assert query(warehouse_url, "SELECT v FROM bronze.ev ORDER BY id") == [
        ("old",),
        ("B",),
        ("old",),
    ]
    a_cursor, b_cursor = (
        row[0]
        for row in query(pg_source, "SELECT updated_at FROM ev WHERE id IN (1, 2) ORDER BY id")
    )
    assert a_cursor < b_cursor  # the late row sits below the maximum the load read
    assert dt.datetime.fromisoformat(first.watermark) <= a_cursor  # held back by A

    _load(spec, pg_source, warehouse_url)

    assert query(warehouse_url, "SELECT v FROM bronze.ev ORDER BY id") == [("A",), ("B",), ("old",)]


@pytest.mark.parametrize("warehouse", ["duckdb", "postgres"])
def test_postgres_keyless_append_reads_only_below_open_transactions(
    warehouse: str, pg_source: str, make_warehouse: Callable[[str], str]
) -> None:
    """Without a key a re-read would double rows: the load waits for A instead."""
    execute(pg_source, "CREATE TABLE ev (v text, at timestamptz NOT NULL)",
            "INSERT INTO ev VALUES ('old', '2024-01-01 00:00:00+00')")  # fmt: skip
    warehouse_url = make_warehouse(warehouse)
    spec = _spec("postgres", warehouse, mode="append", cursor="at")
    _load(spec, pg_source, warehouse_url)

    with _open_transaction(pg_source) as a:
        a.execute(text("INSERT INTO ev VALUES ('A', statement_timestamp())"))
        execute(pg_source, "INSERT INTO ev VALUES ('B', statement_timestamp())")
        _load(spec, pg_source, warehouse_url)
        assert query(warehouse_url, "SELECT v FROM bronze.ev ORDER BY v") == [("old",)]
        a.commit()
    _load(spec, pg_source, warehouse_url)
    _load(spec, pg_source, warehouse_url)  # and nothing doubles on a further run

    got = query(warehouse_url, "SELECT v FROM bronze.ev ORDER BY v")
    assert got == [("A",), ("B",), ("old",)]


def test_postgres_lookback_is_an_extra_window_on_top_of_the_horizon(
    pg_source: str, make_warehouse: Callable[[str], str]
) -> None:
    """A cursor set in the past (not by the writer's clock) needs `lookback`: it still works."""
    _pg_events(pg_source)
    warehouse_url = make_warehouse("duckdb")
    table = {"mode": "incremental", "cursor": "updated_at", "primary_key": ["id"]}
    with_window = _spec("postgres", "duckdb", **table, lookback="1h")
    _load(with_window, pg_source, warehouse_url)
    # A backfill with a cursor 30 minutes behind the newest row: inside the window.
    execute(pg_source, "INSERT INTO ev VALUES (9, 'backfill', "
            "timestamptz '2024-01-01 00:00:03+00' - interval '30 minutes')")  # fmt: skip
    _load(with_window, pg_source, warehouse_url)
    assert query(warehouse_url, "SELECT v FROM bronze.ev WHERE id = 9") == [("backfill",)]


def test_postgres_source_role_that_cannot_see_other_sessions_is_told_what_to_grant(
    pg_source: str, make_warehouse: Callable[[str], str]
) -> None:
    _pg_events(pg_source)
    database = pg_source.rsplit("/", 1)[1]
    role = "reader_" + hashlib.sha1(database.encode(), usedforsecurity=False).hexdigest()[:8]
    execute(pg_source, f"CREATE ROLE {role} LOGIN", f"GRANT SELECT ON ev TO {role}")
    reader_url = pg_source.replace("postgres@", f"{role}@", 1)
    warehouse_url = make_warehouse("duckdb")
    spec = _spec("postgres", "duckdb", mode="incremental", cursor="updated_at", primary_key=["id"])

    with _open_transaction(pg_source) as other:  # another role's session
        other.execute(text("SELECT 1"))
        with pytest.raises(ConfigError, match=rf"GRANT pg_read_all_stats TO {role}"):
            _load(spec, reader_url, warehouse_url)
        execute(pg_source, f"GRANT pg_read_all_stats TO {role}")
        _load(spec, reader_url, warehouse_url)
    assert query(warehouse_url, "SELECT count(*) FROM bronze.ev") == [(3,)]


def test_mariadb_row_committed_after_a_load_is_picked_up_by_the_default_window(
    mariadb_server: MariaDBServer,
    make_warehouse: Callable[[str], str],
    request: pytest.FixtureRequest,
) -> None:
    name = (
        "late_" + hashlib.sha1(request.node.nodeid.encode(), usedforsecurity=False).hexdigest()[:8]
    )
    source_url = mariadb_server.create_database(name)
    execute(
        source_url,
        "CREATE TABLE ev (id INT PRIMARY KEY, v VARCHAR(10), updated_at DATETIME(6) NOT NULL)",
        "INSERT INTO ev VALUES (1, 'old', '2024-01-01'), (2, 'old', '2024-01-01')",
    )
    warehouse_url = make_warehouse("duckdb")
    spec = _spec("mysql", "duckdb", mode="incremental", cursor="updated_at", primary_key=["id"])
    _load(spec, source_url, warehouse_url)

    with _open_transaction(source_url) as a:
        a.execute(text("UPDATE ev SET v = 'A', updated_at = NOW(6) WHERE id = 1"))
        execute(source_url, "UPDATE ev SET v = 'B', updated_at = NOW(6) + INTERVAL 1 SECOND "
                "WHERE id = 2")  # fmt: skip
        _load(spec, source_url, warehouse_url)
        a.commit()
    _load(spec, source_url, warehouse_url)

    assert query(warehouse_url, "SELECT v FROM bronze.ev ORDER BY id") == [("A",), ("B",)]


# --- integer (sequence) cursors: the sightings horizon ------------------------------------


def _serial_events(url: str) -> None:
    execute(url, "CREATE TABLE ev (id bigserial PRIMARY KEY, v text)",
            "INSERT INTO ev (v) SELECT 'old' FROM generate_series(1, 3)")  # fmt: skip


@PATHS
@pytest.mark.parametrize("warehouse", ["duckdb", "postgres"])
@pytest.mark.parametrize("mode", ["incremental", "append"])
def test_postgres_serial_id_taken_early_and_committed_late_is_picked_up(
    copy: bool,
    warehouse: str,
    mode: str,
    pg_source: str,
    make_warehouse: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A takes id 4 and stays open, B takes 5 and commits: the load sees 5 only. With
    the watermark at 5, row 4 (committed after) was lost; the sightings hold it back."""
    if not copy:
        monkeypatch.setenv("DATAKITS_POSTGRES_COPY", "0")
    _serial_events(pg_source)
    warehouse_url = make_warehouse(warehouse)
    spec = _spec("postgres", warehouse, mode=mode, cursor="id", primary_key=["id"])
    _load(spec, pg_source, warehouse_url)

    with _open_transaction(pg_source) as a:
        a.execute(text("INSERT INTO ev (v) VALUES ('A')"))  # takes id 4
        execute(pg_source, "INSERT INTO ev (v) VALUES ('B')")  # takes id 5, commits
        first = _load(spec, pg_source, warehouse_url)  # sees 5, not 4
        a.commit()
    assert query(warehouse_url, "SELECT id, v FROM bronze.ev ORDER BY id")[-1] == (5, "B")
    # Held back: A, open since before id 5 was seen, may still add below it. Only the
    # first load's sighting (top 3) is final: the next load reads from 4 on.
    assert first.watermark == 4

    _load(spec, pg_source, warehouse_url)

    got = query(warehouse_url, "SELECT id, v FROM bronze.ev ORDER BY id")
    assert got == [(1, "old"), (2, "old"), (3, "old"), (4, "A"), (5, "B")]


@pytest.mark.parametrize("warehouse", ["duckdb", "postgres"])
def test_postgres_keyless_append_on_a_serial_id_waits_for_the_open_transaction(
    warehouse: str, pg_source: str, make_warehouse: Callable[[str], str]
) -> None:
    _serial_events(pg_source)
    warehouse_url = make_warehouse(warehouse)
    spec = _spec("postgres", warehouse, mode="append", cursor="id")
    _load(spec, pg_source, warehouse_url)

    with _open_transaction(pg_source) as a:
        a.execute(text("INSERT INTO ev (v) VALUES ('A')"))
        execute(pg_source, "INSERT INTO ev (v) VALUES ('B')")
        held = _load(spec, pg_source, warehouse_url)
        a.commit()
    assert held.rows == 0  # 5 is visible, but 4 may still come: nothing past 3 is read
    _load(spec, pg_source, warehouse_url)
    _load(spec, pg_source, warehouse_url)  # and nothing doubles on a further run

    got = query(warehouse_url, "SELECT id, v FROM bronze.ev ORDER BY id")
    assert got == [(1, "old"), (2, "old"), (3, "old"), (4, "A"), (5, "B")]


@pytest.mark.parametrize("warehouse", ["duckdb", "postgres"])
def test_postgres_serial_id_on_a_quiet_database_rereads_nothing(
    warehouse: str, pg_source: str, make_warehouse: Callable[[str], str]
) -> None:
    """No transaction open: this load's own sighting is final, the watermark is its maximum."""
    _serial_events(pg_source)
    warehouse_url = make_warehouse(warehouse)
    keyless = _spec("postgres", warehouse, mode="append", cursor="id")
    first = _load(keyless, pg_source, warehouse_url)
    execute(pg_source, "INSERT INTO ev (v) VALUES ('new')")
    second = _load(keyless, pg_source, warehouse_url)
    third = _load(keyless, pg_source, warehouse_url)

    assert (first.rows, first.watermark) == (3, 3)
    assert (second.rows, second.watermark) == (1, 4)  # only the new row
    assert (third.rows, third.watermark) == (0, 4)  # nothing re-read
    pending = query(warehouse_url, "SELECT pending FROM meta.watermarks")[0][0]
    assert pending is not None and '"4"' in pending  # the final sighting, kept


@pytest.mark.parametrize("warehouse", ["duckdb", "postgres"])
def test_postgres_serial_id_watermark_stored_before_sightings_is_read(
    warehouse: str, pg_source: str, make_warehouse: Callable[[str], str]
) -> None:
    """A meta.watermarks table made before `pending` existed: read, then extended."""
    _serial_events(pg_source)
    warehouse_url = make_warehouse(warehouse)
    spec = _spec("postgres", warehouse, mode="incremental", cursor="id", primary_key=["id"])
    _load(spec, pg_source, warehouse_url)
    execute(warehouse_url, "ALTER TABLE meta.watermarks DROP COLUMN pending",
            "UPDATE meta.watermarks SET value = '2'")  # fmt: skip
    execute(pg_source, "UPDATE ev SET v = 'changed' WHERE id = 3")

    result = _load(spec, pg_source, warehouse_url)

    assert result.rows == 2  # ids 2 and 3: from the old watermark on
    assert result.watermark == 3
    assert query(warehouse_url, "SELECT v FROM bronze.ev WHERE id = 3") == [("changed",)]
    assert query(warehouse_url, "SELECT pending IS NOT NULL FROM meta.watermarks") == [(True,)]


@pytest.mark.parametrize("warehouse", ["duckdb"])
def test_postgres_serial_id_drawn_before_the_transaction_first_writes_is_picked_up(
    warehouse: str, pg_source: str, make_warehouse: Callable[[str], str]
) -> None:
    """Why open transactions' start times and not xids: A draws id 4 (`nextval`, no xid
    yet), B writes 5 and commits, a load runs, and only then A writes (taking an xid
    newer than the load's snapshot) and commits. An xid bound would take 4 for final."""
    _serial_events(pg_source)
    warehouse_url = make_warehouse(warehouse)
    spec = _spec("postgres", warehouse, mode="incremental", cursor="id", primary_key=["id"])
    _load(spec, pg_source, warehouse_url)

    with _open_transaction(pg_source) as a:
        drawn = a.execute(text("SELECT nextval('ev_id_seq')")).scalar_one()
        execute(pg_source, "INSERT INTO ev (v) VALUES ('B')")
        _load(spec, pg_source, warehouse_url)
        a.execute(text("INSERT INTO ev (id, v) VALUES (:id, 'A')"), {"id": drawn})
        a.commit()
    _load(spec, pg_source, warehouse_url)

    got = query(warehouse_url, "SELECT id, v FROM bronze.ev ORDER BY id")
    assert got == [(1, "old"), (2, "old"), (3, "old"), (4, "A"), (5, "B")]

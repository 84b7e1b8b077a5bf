"""Parallel loads of one tenant: the warehouse serialises what must not interleave."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, literal, select, text
from sqlalchemy.pool import NullPool

from datakits.errors import WarehouseBusy
from datakits.load import LoadResult, load_table
from tests.datakits.bronze_state import execute
from tests.datakits.conftest import make_spec, query, sqlite_table, table_names
from tests.datakits.runner_proc import run_extract, start_extract

TABLES = ["t1", "t2", "t3", "t4"]


def _source(tmp_path: Path) -> str:
    url = ""
    for name in TABLES:
        url = sqlite_table(
            tmp_path / "many.db",
            f"CREATE TABLE {name} (id INTEGER)",
            [(i,) for i in range(500)],
        )
    return url


def test_parallel_first_loads_into_postgres(
    tmp_path: Path, make_warehouse: Callable[[str], str]
) -> None:
    """Four tables at once into an empty warehouse: schema creation must not race."""
    source_url, warehouse_url = _source(tmp_path), make_warehouse("postgres")
    spec = make_spec("sqlite", "postgres", *({"name": n, "batch_size": 100} for n in TABLES))

    def load(name: str) -> LoadResult:
        return load_table(spec, spec.table(name), source_url, warehouse_url)

    with ThreadPoolExecutor(len(TABLES)) as pool:
        results = list(pool.map(load, TABLES))

    assert [r.rows for r in results] == [500] * 4
    audit = query(warehouse_url, "SELECT table_name FROM meta.load_audit ORDER BY table_name")
    assert audit == [(n,) for n in TABLES]


def _hold_duckdb(path: Path, seconds: float) -> subprocess.Popen[str]:
    """Another process with the DuckDB file open, as a parallel runner would have it."""
    code = (
        "import duckdb, sys, time\n"
        f"con = duckdb.connect({str(path)!r})\n"
        "print('open', flush=True)\n"
        f"time.sleep({seconds})\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "open"
    return proc


def _hold_duckdb_until_told(path: Path) -> subprocess.Popen[str]:
    """Another process with the DuckDB file open until the test writes a line to it."""
    code = (
        "import duckdb, sys\n"
        f"con = duckdb.connect({str(path)!r})\n"
        "print('open', flush=True)\n"
        "sys.stdin.readline()\n"
        "con.close()\n"
        "print('closed', flush=True)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "open"
    return proc


def test_duckdb_load_waits_for_another_process(tmp_path: Path) -> None:
    """An ordering, not a wall-clock window: held, the load is still waiting after several
    times what the same load takes on a free file; it finishes once the holder lets go."""
    source_url = _source(tmp_path)
    spec = make_spec("sqlite", "duckdb", {"name": "t1"})
    started = time.monotonic()
    load_table(spec, spec.tables[0], source_url, f"duckdb:///{tmp_path / 'free.duckdb'}")
    baseline = time.monotonic() - started

    warehouse = tmp_path / "busy.duckdb"
    holder = _hold_duckdb_until_told(warehouse)
    assert holder.stdin is not None and holder.stdout is not None
    try:
        with ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(
                load_table, spec, spec.tables[0], source_url, f"duckdb:///{warehouse}"
            )
            done, _ = futures_wait([waiting], timeout=max(0.5, 4 * baseline))
            assert not done, waiting.exception() or "loaded while another process held the file"
            holder.stdin.write("let go\n")
            holder.stdin.flush()
            assert holder.stdout.readline().strip() == "closed"
            result = waiting.result(timeout=60)
        assert result.rows == 500
        assert holder.wait(timeout=10) == 0
    finally:
        holder.kill()
        holder.wait()


def test_duckdb_busy_too_long_is_busy(tmp_path: Path) -> None:
    source_url = _source(tmp_path)
    warehouse = tmp_path / "busy.duckdb"
    spec = make_spec("sqlite", "duckdb", {"name": "t1"})
    holder = _hold_duckdb(warehouse, 10)
    try:
        with pytest.raises(WarehouseBusy, match=r"Could not set lock on file.*lock timeout 0\.3 s"):
            load_table(spec, spec.tables[0], source_url, f"duckdb:///{warehouse}", lock_timeout=0.3)
    finally:
        holder.kill()
        holder.wait()


# --- two runs of one table, as two runner processes would be ------------------------------


class _Recorder:
    """Progress that notes (wall clock) when the load got its lock and began streaming."""

    def __init__(self) -> None:
        self.started: dt.datetime | None = None

    def start(self, label: str) -> None:
        self.started = dt.datetime.now(dt.UTC)

    def advance(self, rows: int, nbytes: int) -> None:
        pass

    def finish(self, summary: str) -> None:
        pass


def _rows_source(source: str, n: int) -> None:
    execute(
        source,
        "CREATE TABLE t1 (id bigint PRIMARY KEY, label text)",
        f"INSERT INTO t1 SELECT g, repeat('x', 40) FROM generate_series(1, {n}) g",
    )


def _waiting_locks(url: str, locktype: str) -> int:
    rows = query(
        url, f"SELECT count(*) FROM pg_locks WHERE locktype = '{locktype}' AND NOT granted"
    )
    return rows[0][0]


def _wait_for(condition: Callable[[], bool], what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.parametrize("kind", ["postgres", "duckdb"])
def test_second_load_of_a_table_waits_for_the_first(
    kind: str, pg_source: str, make_warehouse: Callable[[str], str]
) -> None:
    """A runner is inside its load; a second load of the same table begins only after the
    first commits. The first is held mid-load deterministically: the test locks the source
    table, so the runner (which takes the warehouse lock before it reads) waits there."""
    warehouse = make_warehouse(kind)
    _rows_source(pg_source, 1_000)
    spec = make_spec("postgres", kind, {"name": "t1", "batch_size": 100})
    source = create_engine(pg_source, poolclass=NullPool)
    try:
        with source.connect() as blocker:
            blocker.execute(text("LOCK TABLE t1 IN ACCESS EXCLUSIVE MODE"))
            first = start_extract(spec, "t1", pg_source, warehouse)
            _wait_for(lambda: _waiting_locks(pg_source, "relation") > 0, "the runner's read")
            second = _Recorder()
            with ThreadPoolExecutor(1) as pool:
                called = dt.datetime.now(dt.UTC)
                waiting = pool.submit(
                    load_table, spec, spec.tables[0], pg_source, warehouse, second
                )
                time.sleep(1.0)
                assert not waiting.done() and second.started is None  # it waits
                blocker.rollback()  # the runner reads, loads and commits
                result = waiting.result(timeout=60)
            assert first.wait(timeout=60) == 0, first.communicate()[1]
            first.communicate()
    finally:
        source.dispose()

    audit = query(warehouse, "SELECT batch_id, finished_at FROM meta.load_audit ORDER BY 2")
    assert len(audit) == 2 and audit[1][0] == result.batch_id
    first_committed = audit[0][1]
    assert second.started is not None
    assert called < first_committed < second.started  # it waited, then ran
    assert query(warehouse, "SELECT DISTINCT _batch_id FROM bronze.t1") == [(result.batch_id,)]


def test_postgres_lock_wait_shows_in_pg_locks(
    pg_source: str, make_warehouse: Callable[[str], str]
) -> None:
    """The wait is PostgreSQL's advisory lock: visible to operators in pg_locks."""
    warehouse = make_warehouse("postgres")
    _rows_source(pg_source, 10)
    spec = make_spec("postgres", "postgres", {"name": "t1"})
    engine = create_engine(warehouse, poolclass=NullPool)
    try:
        with engine.connect() as holder:
            holder.execute(
                select(func.pg_advisory_lock(func.hashtext(literal("datakits:load:bronze.t1"))))
            )
            with ThreadPoolExecutor(1) as pool:
                waiting = pool.submit(load_table, spec, spec.tables[0], pg_source, warehouse)
                deadline = time.monotonic() + 20
                while not _waiting_locks(warehouse, "advisory") and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert _waiting_locks(warehouse, "advisory") == 1
                assert not waiting.done()
                holder.execute(
                    select(
                        func.pg_advisory_unlock(func.hashtext(literal("datakits:load:bronze.t1")))
                    )
                )
                assert waiting.result(timeout=30).rows == 10
    finally:
        engine.dispose()


# --- the lock timeout, through the runner --------------------------------------------------


def test_runner_gives_up_on_a_held_postgres_lock(
    pg_source: str, make_warehouse: Callable[[str], str]
) -> None:
    warehouse = make_warehouse("postgres")
    _rows_source(pg_source, 10)
    spec = make_spec("postgres", "postgres", {"name": "t1"})
    engine = create_engine(warehouse, poolclass=NullPool)
    try:
        with engine.connect() as holder:  # another load of bronze.t1, as far as we know
            holder.execute(
                select(func.pg_advisory_lock(func.hashtext(literal("datakits:load:bronze.t1"))))
            )
            started = time.monotonic()
            done = run_extract(spec, "t1", pg_source, warehouse, RUNNER_LOCK_TIMEOUT="1.5")
            waited = time.monotonic() - started
    finally:
        engine.dispose()

    assert done.returncode == 5, done.stderr
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1
    reported = re.fullmatch(
        r"runner extract: another load holds the lock of bronze\.t1: gave up after waiting "
        r"(\d+\.\d) s \(lock timeout 1\.5 s\)",
        lines[0],
    )
    assert reported, lines[0]
    # Orderings, not a window: not before its timeout, and not after the runner had exited
    # (the report is rounded to 0.1 s).
    assert 1.5 <= float(reported[1]) <= waited + 0.05
    assert table_names(warehouse, "bronze") == []


def test_runner_gives_up_on_a_busy_duckdb_file(
    tmp_path: Path, make_source: Callable[[str], str]
) -> None:
    warehouse = tmp_path / "busy.duckdb"
    spec = make_spec("sqlite", "duckdb", {"name": "sample"})
    holder = _hold_duckdb(warehouse, 30)
    try:
        done = run_extract(
            spec, "sample", make_source("sqlite"), f"duckdb:///{warehouse}", RUNNER_LOCK_TIMEOUT="1"
        )
    finally:
        holder.kill()
        holder.wait()

    assert done.returncode == 5, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"runner extract: the DuckDB warehouse {warehouse} is in use")
    assert lines[0].endswith("(lock timeout 1 s)")


@pytest.mark.parametrize("value", ["soon", "-1", "nan"])
def test_bad_lock_timeout_is_a_config_error(
    value: str, make_source: Callable[[str], str], tmp_path: Path
) -> None:
    spec = make_spec("sqlite", "duckdb", {"name": "sample"})
    done = run_extract(
        spec,
        "sample",
        make_source("sqlite"),
        f"duckdb:///{tmp_path / 'w.duckdb'}",
        RUNNER_LOCK_TIMEOUT=value,
    )
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        f"runner extract: RUNNER_LOCK_TIMEOUT must be a number of seconds (0 or more), "
        f"got {value!r}"
    ]

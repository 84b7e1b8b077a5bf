"""Crash safety: a real `runner extract` killed with SIGKILL mid-load changes nothing.

For each warehouse kind and each mode, on a 200,000-row PostgreSQL source:

1. a clean load gives the last good state (bronze checksum, watermark, audit rows);
2. the source changes (rows updated, rows added);
3. `runner extract` is started and killed with SIGKILL right after it reports its
   1st batch, a middle batch, and its last batch (then it is swapping or merging and
   committing: the kill lands before or after the commit, never inside it);
4. after each kill, bronze and the watermark are exactly the last good state (or, for
   the last kill only, exactly the new state if the commit won the race);
5. one more run converges: bronze's checksum equals the source's (that run is
   in-process: the same `load_table` the runner calls, without another start-up).

The runner writes one progress line per batch (RUNNER_PROGRESS_INTERVAL=0), so each
kill point is a known place in the load, not a guess from timing. The checksum is md5
over the ordered rows, computed by each database; bronze's and the source's agree
because every column here renders the same text in PostgreSQL and DuckDB.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import threading
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from psycopg import sql

from datakits.load import load_table
from devtools.postgres import PostgresCluster
from tests.datakits.bronze_state import audit_count, checksum, execute, watermark
from tests.datakits.conftest import _db_name, make_spec, query, table_names
from tests.datakits.runner_proc import start_extract

ROWS = 200_000
BATCH = 20_000
#: Rows the source changes after the good load: updated (cursor moved on) and added.
UPDATED, ADDED = 60_000, 20_000


@pytest.fixture(scope="module")
def big_template(pg_cluster: PostgresCluster) -> str:
    """A database holding `big`, made once: each test clones it (a file copy, not inserts)."""
    url = pg_cluster.create_database("crash_template")
    _big(url)
    return "crash_template"


@pytest.fixture
def big_source(
    pg_cluster: PostgresCluster, big_template: str, request: pytest.FixtureRequest
) -> str:
    name = _db_name(request, "crash")
    with psycopg.connect(pg_cluster.dsn("postgres"), autocommit=True) as conn:
        ident = sql.Identifier(name)
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(ident, sql.Identifier(big_template))
        )
    return pg_cluster.url.rsplit("/", 1)[0] + f"/{name}"


def _big(source: str) -> None:
    """`big`: 1,000 rows share each cursor value, so ties span every batch boundary."""
    execute(
        source,
        "CREATE TABLE big (id bigint PRIMARY KEY, label text NOT NULL, amount numeric(12, 2), "
        "updated_at timestamptz NOT NULL)",
        "INSERT INTO big SELECT g, 'label ' || g || repeat('x', g % 20), g / 100.0, "
        "TIMESTAMPTZ '2024-01-01 00:00:00+00' + (g / 1000) * interval '1 second' "
        f"FROM generate_series(1, {ROWS}) g",
    )


def _change(source: str) -> None:
    execute(
        source,
        "UPDATE big SET label = 'changed ' || id, amount = amount + 1, "
        "updated_at = TIMESTAMPTZ '2024-06-01 00:00:00+00' + (id / 1000) * interval '1 second' "
        f"WHERE id % {ROWS // UPDATED + 1} = 0 OR id <= {UPDATED // 2}",
        "INSERT INTO big SELECT g, 'added ' || g, g / 100.0, "
        "TIMESTAMPTZ '2024-07-01 00:00:00+00' + (g / 1000) * interval '1 second' "
        f"FROM generate_series({ROWS + 1}, {ROWS + ADDED}) g",
    )


def _state(warehouse: str) -> tuple[Any, ...]:
    return (
        checksum(warehouse, "big"),
        watermark(warehouse, "big"),
        audit_count(warehouse, "big"),
        table_names(warehouse, "bronze"),  # no staging table survives a kill
    )


def _kill_after(proc: subprocess.Popen[str], progress_lines: int) -> int:
    """SIGKILL `proc` right after its n-th progress line; returns the lines seen."""
    assert proc.stderr is not None
    watchdog = threading.Timer(120, proc.kill)  # never hang the suite on a stuck runner
    watchdog.start()
    seen = 0
    try:
        while seen < progress_lines:
            line = proc.stderr.readline()
            if not line:  # it ended (or failed) before that point
                break
            if " rows/s" in line and line.startswith("acme: "):
                seen += 1
    finally:
        watchdog.cancel()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stderr.close()
    if proc.stdout is not None:
        proc.stdout.close()
    return seen


@pytest.mark.parametrize("mode", ["full_refresh", "incremental"])
@pytest.mark.parametrize("kind", ["postgres", "duckdb"])
def test_sigkill_mid_load_keeps_last_good_state_and_next_run_converges(
    kind: str,
    mode: str,
    big_source: str,
    make_warehouse: Callable[[str], str],
) -> None:
    pg_source = big_source
    warehouse = make_warehouse(kind)
    table: dict[str, Any] = {"name": "big", "batch_size": BATCH}
    if mode == "incremental":
        table |= {"cursor": "updated_at", "primary_key": ["id"], "mode": mode}
    spec = make_spec("postgres", kind, table)
    load_table(spec, spec.tables[0], pg_source, warehouse)
    good = _state(warehouse)
    assert good[0] == checksum(pg_source, "big", schema="public")

    _change(pg_source)
    expected = checksum(pg_source, "big", schema="public")
    changed_rows = query(
        pg_source, "SELECT count(*) FROM big WHERE updated_at >= '2024-01-01 00:03:20+00'"
    )[0][0]
    read = ROWS + ADDED if mode == "full_refresh" else changed_rows
    batches = -(-read // BATCH)
    assert batches >= 4

    for point in (1, batches // 2, batches):
        proc = start_extract(spec, "big", pg_source, warehouse, RUNNER_PROGRESS_INTERVAL="0")
        seen = _kill_after(proc, point)
        assert proc.returncode == -signal.SIGKILL
        state = _state(warehouse)
        if point < batches:
            assert seen == point
            assert state == good, f"killed after batch {point} of {batches}"
        else:  # killed while swapping/merging: before or after the commit, nothing between
            assert state == good or state[0] == expected, "killed after the last batch"

    load_table(spec, spec.tables[0], pg_source, warehouse)  # the next run, as the runner's
    assert checksum(warehouse, "big") == expected
    assert table_names(warehouse, "bronze") == ["big"]
    if mode == "incremental":
        top = query(pg_source, "SELECT max(updated_at) FROM big")[0][0]
        stored = watermark(warehouse, "big")
        assert stored is not None and stored[0] == "updated_at"
        assert dt.datetime.fromisoformat(str(stored[1])) == top

"""Parallel loads of one tenant: the warehouse serialises what must not interleave."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from datakits.errors import SourceUnavailable
from datakits.load import LoadResult, load_table
from datakits.writers.duckdb import DuckDBWriter
from tests.datakits.conftest import make_spec, query, sqlite_table

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


def test_duckdb_load_waits_for_another_process(tmp_path: Path) -> None:
    source_url = _source(tmp_path)
    warehouse = tmp_path / "busy.duckdb"
    spec = make_spec("sqlite", "duckdb", {"name": "t1"})
    holder = _hold_duckdb(warehouse, 1.5)
    try:
        started = time.monotonic()
        result = load_table(spec, spec.tables[0], source_url, f"duckdb:///{warehouse}")
        assert time.monotonic() - started > 0.5
        assert result.rows == 500
    finally:
        holder.kill()
        holder.wait()


def test_duckdb_busy_too_long_is_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(DuckDBWriter, "lock_wait_seconds", 0.3)
    source_url = _source(tmp_path)
    warehouse = tmp_path / "busy.duckdb"
    spec = make_spec("sqlite", "duckdb", {"name": "t1"})
    holder = _hold_duckdb(warehouse, 10)
    try:
        with pytest.raises(SourceUnavailable, match="Could not set lock on file"):
            load_table(spec, spec.tables[0], source_url, f"duckdb:///{warehouse}")
    finally:
        holder.kill()
        holder.wait()

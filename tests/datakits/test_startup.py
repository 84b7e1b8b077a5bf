"""What a runner process does before its first row: every task of every tenant pays it.

`runner --help` and argv errors load no engine; pydantic's plugin scan is off in the runner
unless the task's env turns it on; a whole-table load asks the source for its row
estimate on the reader's own connection, not on a connection of its own; an extract's
start-up runs no cyclic GC collection, and the GC is back on (start-up frozen) for the load.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from datakits.sources import reader_for
from datakits.sources.postgres import PostgresReader
from devtools.postgres import PostgresCluster
from tests.datakits.conftest import make_spec
from tests.datakits.runner_proc import RUNNER, run_extract, runner_env

#: Modules only a command's work needs: `--help` must not pay for them.
#: (pydantic is not among them: typer itself builds its option parsers with it.)
HEAVY = ("sqlalchemy", "pyarrow", "deltalake", "psycopg", "duckdb", "adbc_driver_manager")
#: Our own modules that import pydantic models: the commands' work, not their help.
WORK = ("datakits.spec", "datakits.contract", "runners.extract", "runners.lineage")


def _imported(argv: list[str], env: dict[str, str] | None = None) -> tuple[set[str], str]:
    """The modules a `python -X importtime -m runners ...` process imported, and its stdout."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "runners", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    names = {m.group(1) for m in re.finditer(r"^import time:.*\|\s*(\S+)$", done.stderr, re.M)}
    assert names, done.stderr[-2000:]  # the importtime lines are there: the test can fail
    return names, done.stdout


@pytest.mark.parametrize("argv", [["--help"], ["extract", "--help"], ["dbt", "--help"]])
def test_help_imports_no_engine(argv: list[str]) -> None:
    names, out = _imported(argv)
    assert "Usage" in out
    assert "typer" in names
    loaded = sorted(n for n in names if n.split(".")[0] in HEAVY or n in WORK)
    assert loaded == [], f"`runner {' '.join(argv)}` imported {loaded}"


def test_extract_loads_what_it_needs() -> None:
    """The counter-check: a command that runs imports the spec models (and pydantic)."""
    env = {k: v for k, v in os.environ.items() if k != "RUNNER_SPEC"}
    names, _ = _imported(["extract", "--table", "t"], env)
    assert {"pydantic", "datakits.spec"} <= names


def _probe_plugin(root: Path, marker: Path) -> dict[str, str]:
    """A real pydantic plugin, registered through package metadata (an entry point of the
    `pydantic` group) on PYTHONPATH: importing it writes `marker`."""
    info = root / "probe_plugin-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: probe-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[pydantic]\nprobe = probe_plugin:plugin\n")
    (root / "probe_plugin.py").write_text(
        "import os, pathlib\n"
        "pathlib.Path(os.environ['PROBE_MARKER']).write_text('loaded')\n"
        "class _Plugin:\n"
        "    def new_schema_validator(self, *args, **kwargs):\n"
        "        return None, None, None\n"
        "plugin = _Plugin()\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("RUNNER_SPEC", "RUNNER_DEBUG")}
    env.pop("PYDANTIC_DISABLE_PLUGINS", None)
    return {**env, "PYTHONPATH": str(root), "PROBE_MARKER": str(marker)}


def test_pydantic_plugins_are_not_scanned(tmp_path: Path) -> None:
    marker = tmp_path / "loaded"
    env = _probe_plugin(tmp_path / "site", marker)
    argv = [RUNNER, "extract", "--table", "t"]
    # The spec models are built (pydantic's plugin hook runs), then RUNNER_SPEC is missing.
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "RUNNER_SPEC is not set" in done.stderr
    assert not marker.exists()
    # An operator who wants pydantic plugins in a task says so in its env: then it loads.
    env["PYDANTIC_DISABLE_PLUGINS"] = ""
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "RUNNER_SPEC is not set" in done.stderr
    assert marker.read_text() == "loaded"


# --- the cyclic GC during start-up -------------------------------------------------------------

#: `runner extract` as its console script runs it, watched: every collection the GC starts
#: is counted, and what `resume_gc` and the process's end see is written to stderr.
GC_WATCH = """
import gc, json, os, sys
collections = []
gc.callbacks.append(lambda phase, info: phase == "start" and collections.append(info["generation"]))
import runners.extract as extract
resume, seen = extract.resume_gc, {}
def watched():
    seen["start-up"], seen["enabled at start"] = list(collections), gc.isenabled()
    resume()
    seen["frozen"] = gc.get_freeze_count()
extract.resume_gc = watched
end = os._exit
def report(code):
    seen["enabled at end"] = gc.isenabled()
    sys.stderr.write("GC " + json.dumps(seen) + "\\n")
    sys.stderr.flush()
    end(code)
os._exit = report
from runners.cli import main
collections.clear()  # from here on: what main() does
main()
"""


def test_extract_start_up_runs_no_gc_and_the_load_runs_with_it(tmp_path: Path) -> None:
    source = tmp_path / "src.sqlite"
    with sqlite3.connect(source) as conn:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
        conn.executemany("INSERT INTO items VALUES (?, ?)", [(i, f"n{i}") for i in range(500)])
    conn.close()
    spec = make_spec("sqlite", "duckdb", {"name": "items"})
    env = runner_env(spec, f"sqlite:///{source}", f"duckdb:///{tmp_path / 'wh.duckdb'}")
    done = subprocess.run(
        [sys.executable, "-c", GC_WATCH, "extract", "--table", "items"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.splitlines()[-1])["rows"] == 500
    seen = json.loads(done.stderr.split("GC ", 1)[1].splitlines()[0])
    # start-up (the engine's imports, the spec, reflection, the warehouse session): none
    assert seen["start-up"] == [] and seen["enabled at start"] is False
    # the load itself: collected as usual, without scanning what start-up left alive
    assert seen["enabled at end"] is True and seen["frozen"] > 10_000


# --- the row estimate on the reader's connection ----------------------------------------------


def _events(url: str, rows: int) -> None:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text("CREATE TABLE events (id integer PRIMARY KEY, note text)"))
        conn.execute(
            text("INSERT INTO events SELECT g, 'note ' || g FROM generate_series(1, :n) g"),
            {"n": rows},
        )
        conn.execute(text("ANALYZE events"))
    engine.dispose()


def _sessions(cluster: PostgresCluster, database: str) -> tuple[int, int]:
    """(sessions ever opened on `database` (PostgreSQL 14+), backends connected to it now),
    read from another database so that reading does not count."""
    engine = create_engine(cluster.url)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                text(
                    "SELECT d.sessions, (SELECT count(*) FROM pg_stat_activity a "
                    "WHERE a.datname = d.datname) FROM pg_stat_database d WHERE d.datname = :db"
                ),
                {"db": database},
            ).one()
    finally:
        engine.dispose()
    return int(row[0]), int(row[1])


def _source_sessions(cluster: PostgresCluster, database: str, run: Callable[[], None]) -> int:
    """How many sessions `run` opened on `database`.

    A session is counted as its backend goes, just after the runner ended: wait until no
    backend is connected to the database any more."""
    before, _ = _sessions(cluster, database)
    run()
    deadline = time.monotonic() + 30
    sessions, connected = _sessions(cluster, database)
    while (connected or sessions == before) and time.monotonic() < deadline:
        time.sleep(0.1)
        sessions, connected = _sessions(cluster, database)
    return sessions - before


def test_runner_estimate_uses_the_readers_connection(
    pg_cluster: PostgresCluster, make_warehouse: Callable[[str], str]
) -> None:
    """A full refresh prints `~N%` of the estimate, and opens no more source sessions than
    an append load, which asks for no estimate: the estimate has no connection of its own."""
    source = pg_cluster.create_database("startup_src")
    _events(source, 3000)
    warehouse = make_warehouse("duckdb")
    tables = ({"name": "events", "batch_size": 500},)
    full = make_spec("postgres", "duckdb", *tables)
    append = make_spec("postgres", "duckdb", {**tables[0], "mode": "append", "cursor": "id"})
    outputs: list[subprocess.CompletedProcess[str]] = []

    def load(spec: Any) -> Callable[[], None]:
        def run() -> None:
            env = {"RUNNER_PROGRESS_INTERVAL": "0"}
            outputs.append(run_extract(spec, "events", source, warehouse, **env))
            assert outputs[-1].returncode == 0, outputs[-1].stderr

        return run

    with_estimate = _source_sessions(pg_cluster, "startup_src", load(full))
    assert "~100% of ~3,000 rows" in outputs[-1].stderr
    without = _source_sessions(pg_cluster, "startup_src", load(append))
    assert "%" not in outputs[-1].stderr
    assert with_estimate == without >= 2  # the reader's session and the COPY connection's


class _FailingEstimate(PostgresReader):
    """The real reader whose catalog query fails on the server (division by zero)."""

    @classmethod
    def estimate_rows(cls, conn: Any, table: str, schema: str | None) -> int | None:
        return int(conn.execute(text("SELECT 1 / 0")).scalar())


def test_a_failed_estimate_leaves_the_reader_usable(pg_cluster: PostgresCluster) -> None:
    source = pg_cluster.create_database("startup_fail")
    _events(source, 50)
    spec = make_spec("postgres", "duckdb", {"name": "events"})
    with reader_for(spec.source, spec.tables[0], source) as reader:
        assert reader.row_estimate() == 50
    with _FailingEstimate(source, spec.tables[0]) as reader:
        assert reader.row_estimate() is None  # the aborted transaction was rolled back
        assert reader.exists()  # the reader's connection still answers
        assert sum(b.num_rows for b in reader.batches()) == 50

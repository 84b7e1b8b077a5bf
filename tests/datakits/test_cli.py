"""The real `runner extract` console script, as an orchestrator runs it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from datakits.spec import RUNNER_SPEC_ENV, SOURCE_URL_ENV, WAREHOUSE_URL_ENV, LoadSpec
from tests.datakits.conftest import make_spec, query

RUNNER = str(Path(sys.executable).parent / "runner")


def _run(spec: LoadSpec, table: str, source_url: str, warehouse_url: str):
    env = {
        **os.environ,
        RUNNER_SPEC_ENV: spec.to_env_json(),
        SOURCE_URL_ENV: source_url,
        WAREHOUSE_URL_ENV: warehouse_url,
    }
    env.pop("RUNNER_DEBUG", None)
    return subprocess.run(
        [RUNNER, "extract", "--table", table],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_extract_prints_json_result_last(
    make_source: Callable[[str], str], make_warehouse: Callable[[str], str]
) -> None:
    source_url, warehouse_url = make_source("sqlite"), make_warehouse("postgres")
    spec = make_spec("sqlite", "postgres", {"name": "sample"})

    done = _run(spec, "sample", source_url, warehouse_url)

    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["status"] == "ok"
    assert result["rows"] == 3
    assert result["target"] == "bronze.sample"
    assert result["tenant"] == "acme"
    assert result["mode"] == "full_refresh"
    assert result["watermark"] is None
    assert {"bytes", "seconds", "batch_id"} <= result.keys()
    assert query(warehouse_url, "SELECT count(*) FROM bronze.sample") == [(3,)]
    assert len(done.stderr.splitlines()) == 1  # the summary line, no live display


@pytest.mark.parametrize(
    ("case", "code"),
    [("missing_table", 2), ("missing_file", 3), ("bad_value", 4)],
)
def test_extract_failure_is_one_line_and_exit_code(
    case: str, code: int, tmp_path: Path, make_warehouse: Callable[[str], str]
) -> None:
    from tests.datakits.conftest import sqlite_table

    source_url = sqlite_table(tmp_path / "s.db", "CREATE TABLE t (id INTEGER)", [(1,), ("x",)])
    table = "t"
    if case == "missing_table":
        table = "absent"
    elif case == "missing_file":
        source_url = f"sqlite:///{tmp_path / 'gone.db'}"
    spec = make_spec("sqlite", "duckdb", {"name": table})

    done = _run(spec, table, source_url, make_warehouse("duckdb"))

    assert done.returncode == code
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("runner extract: ")


def test_extract_reports_the_committed_watermark_and_progress(
    pg_source: str, make_warehouse: Callable[[str], str]
) -> None:
    from tests.datakits.bronze_state import execute
    from tests.datakits.runner_proc import run_extract

    execute(
        pg_source,
        "CREATE TABLE ev (id bigint PRIMARY KEY, at timestamptz NOT NULL)",
        "INSERT INTO ev SELECT g, TIMESTAMPTZ '2024-03-01 00:00:00+00' + g * interval '1 second'"
        " FROM generate_series(1, 250) g",
    )
    warehouse = make_warehouse("duckdb")
    spec = make_spec(
        "postgres",
        "duckdb",
        {
            "name": "ev",
            "mode": "incremental",
            "cursor": "at",
            "primary_key": ["id"],
            "batch_size": 100,
        },
    )

    done = run_extract(spec, "ev", pg_source, warehouse, RUNNER_PROGRESS_INTERVAL="0")

    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert (result["mode"], result["rows"]) == ("incremental", 250)
    assert result["watermark"] == "2024-03-01T00:04:10+00:00"
    lines = done.stderr.splitlines()
    progress = [re.search(r": ([\d,]+) rows, [\d,]+ rows/s$", line) for line in lines[:-1]]
    assert [m.group(1) if m else None for m in progress] == ["100", "200", "250"]
    assert lines[0].startswith("acme: ev → bronze.ev (incremental, first load (no bronze table))")
    assert lines[-1].endswith("watermark 2024-03-01T00:04:10+00:00")

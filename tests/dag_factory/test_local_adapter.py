"""The local adapter for real: a runner that fails is classified by its exit code, and a
killed task leaves no process behind, no lock held and bronze at its last good state."""

from __future__ import annotations

import os
import signal
import sqlite3
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from dag_factory.adapters.local import RunnerProcessOperator
from datakits.contract import (
    LOCK_TIMEOUT_ENV,
    PROGRESS_INTERVAL_ENV,
    RUNNER_SPEC_ENV,
    SOURCE_URL_ENV,
    WAREHOUSE_URL_ENV,
)
from tests.datakits.conftest import make_spec, query
from tests.datakits.runner_proc import run_extract

REPO = Path(__file__).resolve().parents[2]
GOOD_ROWS = 500
BIG_ROWS = 400_000


def _operator(argv: tuple[str, ...], env: dict[str, str], cwd: Path = REPO, **kw: Any):
    return RunnerProcessOperator(
        task_id="t", argv=argv, runner_env=env, secrets=(), cwd=str(cwd), **kw
    )


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _in_thread(op: RunnerProcessOperator) -> tuple[threading.Thread, dict[str, Any]]:
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = op.execute(context={})
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def _group(pgid: int) -> list[psutil.Process]:
    alive = []
    for proc in psutil.process_iter():
        try:
            if proc.status() != psutil.STATUS_ZOMBIE and os.getpgid(proc.pid) == pgid:
                alive.append(proc)
        except (psutil.Error, ProcessLookupError):
            continue
    return alive


def test_a_bad_spec_fails_the_task_without_retry() -> None:
    op = _operator(("extract", "--table", "orders"), {RUNNER_SPEC_ENV: "{not json"})
    with pytest.raises(AirflowFailException, match=r"exit code 2 .*RUNNER_SPEC is invalid"):
        op.execute(context={})


def test_an_unreachable_source_is_retried(tmp_path: Path) -> None:
    spec = make_spec("sqlite", "duckdb", {"name": "big"})
    env = {
        RUNNER_SPEC_ENV: spec.to_env_json(),
        SOURCE_URL_ENV: f"sqlite:///{tmp_path / 'missing.sqlite'}",
        WAREHOUSE_URL_ENV: f"duckdb:///{tmp_path / 'w.duckdb'}",
    }
    with pytest.raises(AirflowException, match="exit code 3") as exc:
        _operator(("extract", "--table", "big"), env).execute(context={})
    assert not isinstance(exc.value, AirflowFailException)


#: A stand-in `runners` package (found first on sys.path: it is in the cwd) whose process
#: starts a child and a grandchild and, like a stuck load, ignores SIGTERM.
_STUBBORN = textwrap.dedent(
    """
    import signal, subprocess, sys, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"
    child = subprocess.Popen([sys.executable, "-c",
        "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', %r]); "
        "time.sleep(600)" % code])
    print("started", file=sys.stderr, flush=True)
    time.sleep(600)
    """
)


def test_on_kill_ends_the_whole_process_group(tmp_path: Path) -> None:
    (tmp_path / "runners").mkdir()
    (tmp_path / "runners" / "__main__.py").write_text(_STUBBORN)
    op = _operator(("extract",), {}, cwd=tmp_path, kill_grace=1.0)
    thread, outcome = _in_thread(op)
    _wait_for(lambda: op._proc is not None, "the runner to start")
    group = op._proc.pid
    _wait_for(lambda: len(_group(group)) == 3, "the runner, its child and grandchild")

    op.on_kill()  # SIGTERM is ignored by all three: SIGKILL after the grace period
    thread.join(60)
    assert not thread.is_alive()
    # SIGKILL was sent to the whole group; the kernel ends its members asynchronously (a
    # busy machine may still show one for some milliseconds)
    _wait_for(lambda: _group(group) == [], "every process of the group to be gone")
    assert op._proc.returncode == -signal.SIGKILL
    assert isinstance(outcome["error"], AirflowException)
    assert not isinstance(outcome["error"], AirflowFailException)  # a retry may succeed


def _sqlite_source(path: Path, rows: int) -> str:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS big (id INTEGER PRIMARY KEY, name TEXT, n REAL)")
        start = conn.execute("SELECT count(*) FROM big").fetchone()[0]
        conn.executemany(
            "INSERT INTO big VALUES (?, ?, ?)",
            ((i, f"name {i}", i * 0.5) for i in range(start, start + rows)),
        )
    return f"sqlite:///{path}"


def test_killing_a_load_releases_the_lock_and_keeps_bronze(tmp_path: Path) -> None:
    spec = make_spec("sqlite", "duckdb", {"name": "big", "batch_size": 100})
    source = _sqlite_source(tmp_path / "shop.sqlite", GOOD_ROWS)
    warehouse_file = tmp_path / "wh.duckdb"
    warehouse = f"duckdb:///{warehouse_file}"
    first = run_extract(spec, "big", source, warehouse)
    assert first.returncode == 0, first.stderr
    _sqlite_source(tmp_path / "shop.sqlite", BIG_ROWS)  # the next load is a long one

    env = {
        RUNNER_SPEC_ENV: spec.to_env_json(),
        SOURCE_URL_ENV: source,
        WAREHOUSE_URL_ENV: warehouse,
        PROGRESS_INTERVAL_ENV: "0",
    }
    op = _operator(("extract", "--table", "big"), env)
    thread, outcome = _in_thread(op)
    _wait_for(lambda: op._proc is not None, "the runner to start")
    runner = psutil.Process(op._proc.pid)
    _wait_for(
        lambda: any(f.path == str(warehouse_file) for f in runner.open_files()),
        "the load to open (and lock) the warehouse",
    )
    op.on_kill()
    thread.join(60)
    assert "error" in outcome, "the load finished before it was killed: make it longer"
    assert op._proc.returncode == -signal.SIGTERM
    assert _group(op._proc.pid) == []

    assert query(warehouse, "SELECT count(*) FROM bronze.big") == [(GOOD_ROWS,)]
    again = run_extract(spec, "big", source, warehouse, **{LOCK_TIMEOUT_ENV: "0"})
    assert again.returncode == 0, again.stderr  # no lock left behind: no wait, no exit 5
    assert query(warehouse, "SELECT count(*) FROM bronze.big") == [(GOOD_ROWS + BIG_ROWS,)]

"""Kill means kill: a real `execution_timeout` under Airflow ends the runner and its load.

Airflow raises its task timeout inside the operator and calls `on_kill`; the local adapter
must then end the runner's whole process group. Checked from outside, as an operator
would: no runner process is left, bronze still holds the last good load, and the next
load of the same table gets the DuckDB file at once (lock timeout 0).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import yaml

from datakits.load import load_table
from datakits.spec import LoadSpec
from tests.datakits.conftest import query

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TABLE = "slow_kill_probe"


def _tenant(warehouses: Path, timeout: str) -> None:
    doc = {
        "tenant": "killme",
        "source": {"kind": "sqlite", "connection": {"env": "KILLME_SOURCE_URL"}},
        "warehouse": {"kind": "duckdb", "connection": {"env": "KILLME_WAREHOUSE_URL"}},
        "tables": [{"name": TABLE, "batch_size": 10_000}],
        "dbt": {"project": "../_dbt/shop"},
        "schedule": None,
        "retries": 0,
        "tasks": {"extract": {"timeout": timeout}},
    }
    folder = warehouses / "killme"
    folder.mkdir(exist_ok=True)
    (folder / "warehouse.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))


def _rows(path: Path, n: int) -> None:
    """`TABLE` as a real table of `n` rows."""
    with sqlite3.connect(path) as conn:
        _drop(conn)
        conn.execute(f"CREATE TABLE {TABLE} (id INTEGER PRIMARY KEY, pad TEXT NOT NULL)")
        conn.execute(
            f"INSERT INTO {TABLE} WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL "
            f"SELECT i + 1 FROM n WHERE i < {n}) SELECT i, printf('%0200d', i) FROM n"
        )
    conn.close()


def _endless(path: Path) -> None:
    """`TABLE` as a view of 9M rows (~2 GB of text) that SQLite makes as they are read.

    A load that takes far longer than any timeout here, from a file of under 1 MB: the
    3M-row table this replaced wrote 650 MB into the test's temp dir before the run."""
    with sqlite3.connect(path) as conn:
        _drop(conn)
        conn.executescript(
            f"""
            CREATE TABLE ids (id INTEGER NOT NULL);
            CREATE TABLE pads (pad TEXT NOT NULL);
            INSERT INTO ids WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL
                SELECT i + 1 FROM n WHERE i < 3000) SELECT i FROM n;
            INSERT INTO pads SELECT printf('%0200d', id) FROM ids;
            CREATE VIEW {TABLE} AS SELECT ids.id, pads.pad FROM ids CROSS JOIN pads;
            """
        )
    conn.close()


def _drop(conn: sqlite3.Connection) -> None:
    """Whatever `TABLE` is now (a table or the endless view), and the view's tables."""
    for kind, name in (("VIEW", TABLE), ("TABLE", TABLE), ("TABLE", "ids"), ("TABLE", "pads")):
        row = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = ? AND name = ?", (kind.lower(), name)
        ).fetchone()
        if row:
            conn.execute(f"DROP {kind} {name}")


def _runner_processes() -> list[str]:
    """Command lines of live `runner extract --table slow_kill_probe` processes."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = (Path("/proc") / pid / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "runners" in cmd and "extract" in cmd and TABLE in cmd:
            found.append(cmd)
    return found


def _dags_test(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BIN / "airflow", "dags", "test", "tenant_killme"],
        env={**env, "DAG_FACTORY_TENANTS": "killme"},
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
        check=False,
    )


def test_a_timed_out_load_is_killed_and_bronze_keeps_its_last_good_state(
    airflow_env: dict[str, str], tmp_path: Path
) -> None:
    warehouses = tmp_path / "warehouses"
    shutil.copytree(REPO / "warehouses", warehouses)
    source_db, warehouse_db = tmp_path / "src.sqlite", tmp_path / "wh.duckdb"
    env = {
        **airflow_env,
        "DAG_FACTORY_WAREHOUSES": str(warehouses),
        "DAG_FACTORY_CACHE_DIR": "",
        "KILLME_SOURCE_URL": f"sqlite:///{source_db}",
        "KILLME_WAREHOUSE_URL": f"duckdb:///{warehouse_db}",
    }

    _rows(source_db, 1_000)
    _tenant(warehouses, "10m")
    good = _dags_test(env)
    assert "extract_slow_kill_probe" in good.stdout + good.stderr
    assert query(f"duckdb:///{warehouse_db}", f"SELECT count(*) FROM bronze.{TABLE}") == [(1_000,)]

    _endless(source_db)  # a load that takes far longer than the timeout
    _tenant(warehouses, "3s")
    killed = _dags_test(env)
    log = killed.stdout + killed.stderr
    assert killed.returncode != 0, log[-3000:]
    assert "Timeout" in log or "timed out" in log, log[-3000:]
    assert "sent SIGTERM to the runner's process group" in log, log[-3000:]
    assert _runner_processes() == []

    warehouse = f"duckdb:///{warehouse_db}"
    assert query(warehouse, f"SELECT count(*) FROM bronze.{TABLE}") == [(1_000,)]
    spec = LoadSpec.model_validate(
        {
            "tenant": "killme",
            "source": {"kind": "sqlite", "connection": {"env": "KILLME_SOURCE_URL"}},
            "warehouse": {"kind": "duckdb", "connection": {"env": "KILLME_WAREHOUSE_URL"}},
            "tables": [{"name": TABLE}],
        }
    )
    _rows(source_db, 2_000)
    # the file lock went with the killed runner: a new load gets it without waiting
    done = load_table(spec, spec.tables[0], f"sqlite:///{source_db}", warehouse, lock_timeout=0)
    assert done.rows == 2_000

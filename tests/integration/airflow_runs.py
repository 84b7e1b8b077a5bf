"""What `airflow dags test` left in its metadata database (SQLite under AIRFLOW_HOME), for
the integration tests that run DAGs that way."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any


def last_run(
    env: dict[str, str], dag_id: str = "tenant_demo"
) -> tuple[dict[str, str], dict[str, Any], list[str]]:
    """Task states, XComs (task id → value) and asset events (URIs) of the DAG's last run."""
    db = sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db")
    try:
        (run_id,) = db.execute(
            "select run_id from dag_run where dag_id = ? order by id desc limit 1", (dag_id,)
        ).fetchone()
        states = dict(
            db.execute(
                "select task_id, state from task_instance where dag_id = ? and run_id = ?",
                (dag_id, run_id),
            ).fetchall()
        )
        xcoms = {
            task: json.loads(value) if isinstance(value, str) else value
            for task, value in db.execute(
                "select task_id, value from xcom where dag_id = ? and run_id = ? "
                "and key = 'return_value'",
                (dag_id, run_id),
            ).fetchall()
        }
        events = [
            uri
            for (uri,) in db.execute(
                "select a.uri from asset_event e join asset a on a.id = e.asset_id "
                "where e.source_run_id = ?",
                (run_id,),
            ).fetchall()
        ]
    finally:
        db.close()
    return states, xcoms, events

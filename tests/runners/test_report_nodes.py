"""`runner dbt --report-nodes` (contract B) and the run's dbt artifacts (contract D).

The real `runner` console script runs real dbt-core on a real DuckDB file, as the
producer task runs it: all layers in one build. One model fails at run time: the runner
still exits 0 and reports that node `error`, its descendants `skipped`, the rest
`success`. A project that does not parse still exits 2.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import duckdb

from datakits.contract import RUN_ID_ENV
from datakits.spec import LoadSpec
from tests.datakits.runner_proc import RUNNER, runner_env

LAYERS = {"silver": "path:models/staging", "gold": "path:models/marts"}
PROJECT = {
    "dbt_project.yml": """
name: report
profile: report
version: "1.0"
models:
  report:
    +materialized: table
""",
    "models/staging/good.sql": "select 1 as id union all select 2 as id\n",
    "models/staging/broken.sql": "select * from a_table_that_does_not_exist\n",
    "models/staging/schema.yml": """
version: 2
models:
  - name: good
    columns:
      - name: id
        data_tests: [unique, not_null]
""",
    "models/marts/from_good.sql": "select id * 10 as id from {{ ref('good') }}\n",
    "models/marts/from_broken.sql": "select * from {{ ref('broken') }}\n",
}


def _project(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.lstrip())
    return root


def _spec(kind: str = "duckdb") -> LoadSpec:
    return LoadSpec.model_validate(
        {
            "tenant": "rep",
            "source": {"kind": "sqlite", "connection": {"env": "SRC"}},
            "warehouse": {
                "kind": kind,
                "connection": {"env": "WH"},
                "schemas": {
                    "bronze": "r_bronze",
                    "silver": "r_silver",
                    "gold": "r_gold",
                    "meta": "r_meta",
                },
            },
            "tables": [{"name": "orders"}],
        }
    )


def _producer(
    project: Path, warehouse: str, kind: str = "duckdb", **env: str
) -> subprocess.CompletedProcess[str]:
    """The producer task's argv (contract B): every layer's selector in one build."""
    argv = [RUNNER, "dbt", "--project-dir", str(project), "--on-test-failure", "fail"]
    argv += ["--layers", json.dumps(LAYERS), "--report-nodes"]
    argv += ["build", "--select", *LAYERS.values()]
    return subprocess.run(
        argv,
        env=runner_env(_spec(kind), "", warehouse, **env),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _statuses(result: dict[str, Any]) -> dict[str, str]:
    return {uid.split(".", 2)[2]: node["status"] for uid, node in result["nodes"].items()}


def test_a_failing_model_is_reported_and_the_producer_succeeds(tmp_path: Path) -> None:
    project = _project(tmp_path / "p", PROJECT)
    warehouse = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    done = _producer(project, warehouse)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.splitlines()[-1])
    statuses = _statuses(result)
    assert statuses["good"] == statuses["from_good"] == "success"
    assert statuses["broken"] == "error"
    assert statuses["from_broken"] == "skipped"
    assert {s for name, s in statuses.items() if name.startswith(("unique_", "not_null_"))} == {
        "pass"
    }
    broken = next(v for k, v in result["nodes"].items() if k.endswith(".broken"))
    assert "a_table_that_does_not_exist" in broken["message"]
    assert len(broken["message"]) <= 300 and "\n" not in broken["message"]
    test = next(v for k, v in result["nodes"].items() if ".unique_good_id" in k)
    assert test["failures"] == 0 and isinstance(test["seconds"], float)
    # each layer built into its schema: routing covers every layer of the one build
    with duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True) as conn:
        assert conn.execute("select count(*) from r_gold.from_good").fetchone() == (2,)


def test_without_report_nodes_the_same_failure_fails_the_task(tmp_path: Path) -> None:
    project = _project(tmp_path / "p", PROJECT)
    argv = [RUNNER, "dbt", "--project-dir", str(project), "--layers", json.dumps(LAYERS)]
    done = subprocess.run(
        [*argv, "build", "--select", *LAYERS.values()],
        env=runner_env(_spec(), "", f"duckdb:///{tmp_path / 'wh.duckdb'}"),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 4, done.stderr[-2000:]  # a runtime error: retryable


def test_a_project_that_does_not_compile_still_exits_2(tmp_path: Path) -> None:
    files = {**PROJECT, "models/marts/from_broken.sql": "select * from {{ ref('nowhere') }}\n"}
    project = _project(tmp_path / "p", files)
    done = _producer(project, f"duckdb:///{tmp_path / 'wh.duckdb'}")
    assert done.returncode == 2, done.stderr[-2000:]
    assert "nowhere" in done.stderr.strip().splitlines()[-1]


def test_a_selection_matching_nothing_still_exits_2(tmp_path: Path) -> None:
    project = _project(tmp_path / "p", PROJECT)
    argv = [RUNNER, "dbt", "--project-dir", str(project), "--report-nodes"]
    done = subprocess.run(
        [*argv, "build", "--select", "path:models/nothing_here"],
        env=runner_env(_spec(), "", f"duckdb:///{tmp_path / 'wh.duckdb'}"),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 2, done.stderr[-2000:]


def test_an_unreachable_warehouse_still_fails_the_producer(tmp_path: Path) -> None:
    project = _project(tmp_path / "p", PROJECT)
    done = _producer(project, "postgresql://runner:pw@127.0.0.1:1/nowhere", "postgres")
    assert done.returncode == 3, done.stderr[-2000:]
    assert "artifacts" not in done.stderr  # nothing ran: no record to keep, no second wait


def test_artifacts_are_kept_per_run_and_the_manifest_once(tmp_path: Path) -> None:
    files = {k: v for k, v in PROJECT.items() if "broken" not in k}
    project = _project(tmp_path / "p", files)
    warehouse = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    for run in ("run-1", "run-2"):
        done = _producer(project, warehouse, **{RUN_ID_ENV: run})
        assert done.returncode == 0, done.stderr[-2000:]
        assert "artifacts not kept" not in done.stderr
    with duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True) as conn:
        rows = conn.execute(
            "select run_id, kind, sha256, body is not null, created_at "
            "from r_meta.dbt_artifacts order by run_id, kind"
        ).fetchall()
        bodies = [b for (b,) in conn.execute("select body from r_meta.dbt_artifacts").fetchall()]
    assert [(r[0], r[1], r[3]) for r in rows] == [
        ("run-1", "manifest", True),
        ("run-1", "run_results", True),
        ("run-2", "manifest", False),  # the same manifest: stored once, linked by sha256
        ("run-2", "run_results", True),
    ]
    assert rows[0][2] == rows[2][2] and rows[1][2] != rows[3][2]
    results = json.loads(bodies[1] if bodies[1] and "results" in bodies[1] else bodies[3])
    assert {r["status"] for r in results["results"]} == {"success", "pass"}
    for body in filter(None, bodies):
        assert "runner-dbt-" not in body  # the temp copy's path is replaced by the project's


def test_artifacts_on_postgres_hold_no_password(pg_cluster: Any, tmp_path: Path) -> None:
    """A warehouse reached by a login role with a password: neither artifact holds it."""
    from tests.datakits.conftest import query

    password = "Artifacts-Secret-7731"
    warehouse = pg_cluster.create_database("t_dbt_artifacts", owner="art_owner", password=password)
    files = {k: v for k, v in PROJECT.items() if "broken" not in k}
    project = _project(tmp_path / "p", files)
    done = _producer(project, warehouse, "postgres", **{RUN_ID_ENV: "pg-run"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "artifacts not kept" not in done.stderr
    rows = query(warehouse, "SELECT run_id, kind, body FROM r_meta.dbt_artifacts ORDER BY kind")
    assert [(run, kind) for run, kind, _ in rows] == [
        ("pg-run", "manifest"),
        ("pg-run", "run_results"),
    ]
    for _, _, body in rows:
        json.loads(body)
        assert password not in body

"""Model-level dbt tasks under a real scheduler: a broken model fails its branch only, and
clearing it after the fix rebuilds that branch.

`airflow dags test` (tests/integration/test_model_dag.py) runs every task in one process;
here the scheduler queues each model task as its own task process, gated by trigger rules,
and a cleared task is retried as a user retries it in the UI. The tenant is the demo shop
under another id, with a copy of the shop project of its own (the shared one stays intact),
its graph compiled by `dag-factory dbt compile` as a deployment does.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from devtools.airflow_server import compile_dbt, create_pools
from tests.realtime.conftest import REPO, RealAirflow
from tests.realtime.test_scheduler import _task_instances, _write_new_tenant, xcom

TENANT = "modelshop"
DAG_ID = f"tenant_{TENANT}"
BROKEN = "silver.order_items"
#: The broken model's descendants (the gold model reads order_items) and its layer's gates.
DESCENDANTS = ("gold.revenue_per_customer_month", "silver_done", "gold_done")
#: The other silver models: branches that do not read order_items.
OTHER_BRANCHES = ("silver.customers", "silver.orders", "silver.products")
#: A runtime error in DuckDB (a conversion), not a compile error: dbt parses it fine.
SQL_ERROR = "\n  and cast('not a number' as integer) > 0\n"


def _states(airflow: RealAirflow, run_id: str) -> dict[str, str | None]:
    return {t: ti["state"] for t, ti in _task_instances(airflow, DAG_ID, run_id).items()}


def _write_tenant(warehouses: Path) -> Path:
    """The demo tenant as `modelshop`: its own dbt project (a copy of the shop's), no
    retries (a failure is final at once: the test clears it by hand), its own pool."""
    file = _write_new_tenant(warehouses, TENANT, f"tenant_{TENANT}")
    shutil.copytree(
        REPO / "warehouses" / "_dbt" / "shop",
        file.parent / "dbt",
        ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"),
    )
    text = file.read_text(encoding="utf-8")
    own = text.replace("project: ../_dbt/shop", "project: dbt") + "retries: 0\n"
    assert "project: dbt" in own, "the demo tenant file changed: update _write_tenant"
    file.write_text(own, encoding="utf-8")
    return file.parent / "dbt" / "models" / "silver" / "order_items.sql"


def _wait_model_level(airflow: RealAirflow, timeout: float = 120) -> set[str]:
    """Until the dag-processor has parsed the tenant with its compiled graph (it may list
    the tenant first with layer tasks, parsed before `dbt compile` wrote the graph)."""
    server = airflow.server
    server.wait_dag(DAG_ID, timeout=timeout)
    deadline = time.monotonic() + timeout
    tasks: set[str] = set()
    while time.monotonic() < deadline:
        tasks = {t["task_id"] for t in server.api("GET", f"/dags/{DAG_ID}/tasks")["tasks"]}
        if BROKEN in tasks:
            return tasks
        time.sleep(2)
    raise AssertionError(f"{DAG_ID} has no model tasks after {timeout:.0f}s: {sorted(tasks)}")


def test_broken_model_fails_its_branch_and_a_clear_after_the_fix_rebuilds_it(
    airflow_server: RealAirflow,
):
    server = airflow_server.server
    model = _write_tenant(airflow_server.warehouses)
    good_sql = model.read_text(encoding="utf-8")
    compile_dbt(server.env, [TENANT])
    pools = create_pools(server.env)
    assert pools.returncode == 0, pools.stdout + pools.stderr
    tasks = _wait_model_level(airflow_server)
    assert {BROKEN, *DESCENDANTS, *OTHER_BRANCHES, "dbt_build"} <= tasks

    # the model breaks after compiling: a runtime SQL error, as a bad edit deploys
    model.write_text(good_sql + SQL_ERROR, encoding="utf-8")
    server.unpause(DAG_ID)
    run_id = server.trigger(DAG_ID)
    run = server.wait_run(DAG_ID, run_id, timeout=110)
    states = _states(airflow_server, run_id)
    assert run["state"] == "failed", states
    assert states["dbt_build"] == "success", states  # the build ran; its report says who failed
    build = xcom(airflow_server, DAG_ID, run_id, "dbt_build")
    assert build["nodes"]["model.shop.order_items"]["status"] == "error"
    assert states[BROKEN] == "failed", states
    assert {t: states[t] for t in DESCENDANTS} == dict.fromkeys(DESCENDANTS, "upstream_failed")
    assert {t: states[t] for t in OTHER_BRANCHES} == dict.fromkeys(OTHER_BRANCHES, "success")
    assert {states[t] for t in states if t.startswith("extract_")} == {"success"}
    log = server.client.get(
        f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{BROKEN}/logs/1",
        headers={"Accept": "application/json"},
    )
    assert "Conversion Error" in log.text, log.text[-2000:]

    # fixed, then the failed task cleared with its descendants (the UI's "Clear" button)
    model.write_text(good_sql, encoding="utf-8")
    server.api(
        "POST",
        f"/dags/{DAG_ID}/clearTaskInstances",
        json={
            "dry_run": False,
            "dag_run_id": run_id,
            "task_ids": [BROKEN],
            "include_downstream": True,
            "only_failed": False,
            "reset_dag_runs": True,
        },
    )
    run = server.wait_run(DAG_ID, run_id, timeout=110)
    states = _states(airflow_server, run_id)
    assert run["state"] == "success", states
    assert set(states.values()) == {"success"}, states
    # the retry ran the model itself (a runner), and so did its descendant that never ran;
    # the other branches were not cleared: they still hold dbt_build's report
    assert xcom(airflow_server, DAG_ID, run_id, BROKEN)["ran"] == "runner"
    assert xcom(airflow_server, DAG_ID, run_id, DESCENDANTS[0])["ran"] == "runner"
    for task in OTHER_BRANCHES:
        assert xcom(airflow_server, DAG_ID, run_id, task)["ran"] == "dbt_build"
    tis = _task_instances(airflow_server, DAG_ID, run_id)
    assert tis[BROKEN]["try_number"] == 2

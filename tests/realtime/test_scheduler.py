"""Tenants under a real scheduler: pools, runs, a broken tenant beside valid ones.

`airflow dags test` passes a task whose pool is missing; a scheduler never queues it.
These tests trigger runs through the REST API of `airflow standalone` and wait for what
a user would see (see conftest.py for the server).
"""

from __future__ import annotations

import datetime as dt
import itertools
import time
from pathlib import Path
from typing import Any

from devtools.airflow_server import create_pools
from devtools.report import layer_counts
from tests.realtime.conftest import BROKEN_TENANT, RealAirflow

DEMO_TABLES = ("customers", "products", "orders", "order_items")
#: The demo's dbt models as tasks (its graph compiled by the server fixture): `<layer>.<model>`.
DEMO_SILVER = tuple(f"silver.{t}" for t in ("customers", "products", "orders", "order_items"))
DEMO_GOLD = ("gold.revenue_per_customer_month",)
DEMO_TASKS = (
    *(f"extract_{t}" for t in DEMO_TABLES),
    "dbt_build",
    *DEMO_SILVER,
    *DEMO_GOLD,
    "silver_done",
    "gold_done",
)


def xcom(airflow: RealAirflow, dag_id: str, run_id: str, task_id: str) -> Any:
    """A task's return value, as the REST API gives it (deserialized)."""
    entry = airflow.server.api(
        "GET",
        f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value",
        params={"deserialize": True},
    )
    return entry["value"]


def _task_instances(airflow: RealAirflow, dag_id: str, run_id: str) -> dict[str, dict]:
    found = airflow.server.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
    return {ti["task_id"]: ti for ti in found["task_instances"]}


def _time(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value)


def test_demo_runs_under_the_scheduler_in_its_pool(airflow_server: RealAirflow):
    """Unpause + trigger the model-level demo: every task succeeds in the tenant's pool, one
    at a time (DuckDB takes one writer); one `dbt build` after every extract, each model
    task after it and after its parents, passing on dbt_build's report without a runner of
    its own; rows in every layer. The broken tenant file (conftest) sits beside it all along."""
    server = airflow_server.server
    server.unpause("tenant_demo")
    run_id = server.trigger("tenant_demo")
    run = server.wait_run("tenant_demo", run_id, timeout=300)
    tis = _task_instances(airflow_server, "tenant_demo", run_id)
    assert run["state"] == "success", {t: ti["state"] for t, ti in tis.items()}
    assert {t: ti["state"] for t, ti in tis.items()} == dict.fromkeys(DEMO_TASKS, "success")
    assert {ti["pool"] for ti in tis.values()} == {"tenant_demo"}

    # Orderings, not durations: the pool has one slot, so no two tasks overlap.
    spans = sorted((_time(ti["start_date"]), _time(ti["end_date"]), t) for t, ti in tis.items())
    for (_, end, first), (start, _, second) in itertools.pairwise(spans):
        assert end <= start, f"{first} and {second} overlapped"
    extracts_end = max(_time(tis[f"extract_{t}"]["end_date"]) for t in DEMO_TABLES)
    assert extracts_end <= _time(tis["dbt_build"]["start_date"])
    silver_end = max(_time(tis[t]["end_date"]) for t in DEMO_SILVER)
    assert _time(tis["dbt_build"]["end_date"]) <= min(
        _time(tis[t]["start_date"]) for t in DEMO_SILVER
    )
    assert silver_end <= _time(tis["gold.revenue_per_customer_month"]["start_date"])
    assert silver_end <= _time(tis["silver_done"]["start_date"])

    # one dbt build ran every model; each model task passed on its report
    build = xcom(airflow_server, "tenant_demo", run_id, "dbt_build")
    for task in (*DEMO_SILVER, *DEMO_GOLD):
        value = xcom(airflow_server, "tenant_demo", run_id, task)
        assert value["ran"] == "dbt_build", (task, value)
        assert [build["nodes"][n]["status"] for n in value["nodes"]] == ["success"]

    counts = {
        f"{layer}:{name.split('.', 1)[1]}": n
        for layer, name, n in layer_counts(
            airflow_server.warehouse_url, {"bronze": "bronze", "silver": "silver", "gold": "gold"}
        )
    }
    assert counts["bronze:orders"] == 2000  # the generated shop's orders, all loaded
    for table in DEMO_TABLES:
        assert counts[f"bronze:{table}"] > 0
        assert counts[f"silver:{table}"] > 0
    assert counts["gold:revenue_per_customer_month"] > 0


def test_broken_tenant_is_a_failing_placeholder_beside_valid_ones(airflow_server: RealAirflow):
    """A typo (`retires: 3`) makes its tenant a placeholder DAG tagged invalid-tenant-file,
    whose run fails with the problem in its log; the valid tenants are listed as usual."""
    server = airflow_server.server
    dag_id = f"tenant_{BROKEN_TENANT}"
    listed = server.dag_ids()
    assert {"tenant_demo", "tenant_acme", dag_id} <= listed

    broken = server.api("GET", f"/dags/{dag_id}")
    assert "invalid-tenant-file" in {tag["name"] for tag in broken["tags"]}
    assert broken["description"].startswith("INVALID tenant file")
    assert "retries" in broken["description"]  # "did you mean `retries`?"
    demo = server.api("GET", "/dags/tenant_demo")
    assert "invalid-tenant-file" not in {tag["name"] for tag in demo["tags"]}
    # the placeholder keeps the tenant's schedule (the broken file is demo's with one typo):
    # its run fails when the real one was due
    assert broken["timetable_summary"] == demo["timetable_summary"]

    server.unpause(dag_id)
    run_id = server.trigger(dag_id)
    run = server.wait_run(dag_id, run_id, timeout=120)
    assert run["state"] == "failed"
    tis = _task_instances(airflow_server, dag_id, run_id)
    assert {t: ti["state"] for t, ti in tis.items()} == {"invalid_tenant_file": "failed"}
    log = server.client.get(
        f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/invalid_tenant_file/logs/1",
        headers={"Accept": "application/json"},
    )
    assert log.status_code == 200, log.text
    assert "retires" in log.text and "the tenant file is invalid" in log.text


def test_broken_tenant_file_shows_in_import_errors(airflow_server: RealAirflow):
    """Airflow's own error view (`/api/v2/importErrors`, the UI's import-errors banner)
    names the broken tenant file and its problem — keyed by the tenant file, never by the
    DAG file (that would mark every tenant's DAG as broken).

    The dag-processor drops such an entry at each bundle refresh (the tenant file is not a
    DAG file) and the next parse of the DAG file adds it again (`airflow_errors`), so the
    test waits for it as a user would see it: there within one parse interval."""
    server = airflow_server.server
    deadline = time.monotonic() + 120
    broken: list[dict] = []
    while not broken and time.monotonic() < deadline:
        errors = server.import_errors()
        broken = [e for e in errors if f"{BROKEN_TENANT}/warehouse.yaml" in e["filename"]]
        if not broken:
            time.sleep(2)
    assert broken, f"no import error names the broken tenant file; errors: {errors}"
    assert "retires" in broken[0]["stack_trace"]
    assert not [e for e in errors if e["filename"].endswith("tenants.py")]
    # the valid tenants stay parsed and schedulable beside it
    assert {"tenant_demo", "tenant_acme"} <= server.dag_ids()


def _write_new_tenant(warehouses: Path, tenant: str, pool: str) -> Path:
    """The demo tenant under a new id, a new pool and schemas of its own; manual only."""
    text = (warehouses / "demo" / "warehouse.yaml").read_text(encoding="utf-8")
    schemas = ", ".join(
        f"{layer}: {tenant}_{layer}" for layer in ("bronze", "silver", "gold", "meta")
    )
    replaced = (
        text.replace("tenant: demo", f"tenant: {tenant}")
        .replace("pool: tenant_demo", f"pool: {pool}")
        .replace('schedule: "@daily"', "schedule: null")
        .replace(
            "    env: DEMO_WAREHOUSE_URL\n",
            f"    env: DEMO_WAREHOUSE_URL\n  schemas: {{{schemas}}}\n",
        )
        .replace("env: DEMO_", f"env: {tenant.upper()}_")  # its own (conftest sets them)
    )
    assert replaced.count(tenant) >= 5, "the demo tenant file changed: update _write_new_tenant"
    file = warehouses / tenant / "warehouse.yaml"
    file.parent.mkdir()
    file.write_text(replaced, encoding="utf-8")
    return file


def test_new_tenant_with_new_pool_runs_after_the_pools_step(airflow_server: RealAirflow):
    """A tenant added with a pool nobody created: its first task waits in "scheduled"
    (the hang users hit), `dag-factory pools --check` says so, and after
    `dag-factory pools` the same run completes. No other file is edited."""
    server = airflow_server.server
    tenant, pool = "newshop", "tenant_newshop"
    _write_new_tenant(airflow_server.warehouses, tenant, pool)
    dag_id = f"tenant_{tenant}"
    server.wait_dag(dag_id, timeout=120)

    check = create_pools(server.env, "--check")
    assert check.returncode == 1, check.stdout + check.stderr
    assert f"missing pool {pool}" in check.stdout

    server.unpause(dag_id)
    run_id = server.trigger(dag_id)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        states = {
            t: ti["state"] for t, ti in _task_instances(airflow_server, dag_id, run_id).items()
        }
        if "scheduled" in states.values():
            break
        time.sleep(1)
    assert "scheduled" in states.values(), states
    time.sleep(5)  # several scheduler loops: without its pool, nothing is ever queued
    states = {t: ti["state"] for t, ti in _task_instances(airflow_server, dag_id, run_id).items()}
    assert set(states.values()) <= {None, "scheduled"}, states

    done = create_pools(server.env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"created pool {pool}: 1 slot(s)" in done.stdout
    created = server.api("GET", f"/pools/{pool}")
    assert created["slots"] == 1 and tenant in created["description"]

    run = server.wait_run(dag_id, run_id, timeout=300)
    tis = _task_instances(airflow_server, dag_id, run_id)
    assert run["state"] == "success", {t: ti["state"] for t, ti in tis.items()}
    assert {ti["pool"] for ti in tis.values()} == {pool}
    counts = {
        name: n
        for _, name, n in layer_counts(airflow_server.warehouse_url, {"gold": f"{tenant}_gold"})
    }
    assert counts[f"{tenant}_gold.revenue_per_customer_month"] > 0

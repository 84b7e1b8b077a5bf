"""The runner's OpenLineage runs hang under Airflow's own: a real `airflow dags test` of
the demo tenant (local adapter) with Airflow's OpenLineage provider sending over HTTP to a
receiver on 127.0.0.1. Airflow emits START/COMPLETE per task; each runner event names, in
its `parent` facet, the run Airflow emitted for that very task try. The Docker and
Kubernetes adapters put the same run env into the container and the pod."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from dag_factory.adapters import docker, kubernetes
from dag_factory.adapters.run_env import run_env
from dag_factory.plan import plan_tenant
from datakits.contract import OPENLINEAGE_URL_ENV, PARENT_RUN_ENV, RUN_ID_ENV
from devtools.shop import generate_shop
from runners.lineage import NAMESPACE as RUNNER_NAMESPACE
from tests.integration.test_tenant_dags import dags_test
from tests.observability.conftest import MakeTenant, Receiver
from tests.observability.openlineage_schema import validate_events

#: The provider's job namespace in this test (its default is `default`).
AIRFLOW_NAMESPACE = "airflow-test"
DAG_ID = "tenant_demo"


def _parent(event: dict[str, Any]) -> dict[str, Any]:
    return event["run"].get("facets", {}).get("parent") or {}


def test_runner_events_name_airflows_task_runs_as_parent(
    airflow_env: dict[str, str], receiver: Receiver, tmp_path: Path
) -> None:
    source = f"sqlite:///{tmp_path}/shop.sqlite"
    warehouse = f"duckdb:///{tmp_path}/warehouse.duckdb"
    tables = generate_shop(source, orders=100)
    transport = {"type": "http", "url": receiver.url, "endpoint": "api/v1/lineage"}
    dags_test(
        DAG_ID,
        {
            **airflow_env,
            "DEMO_SOURCE_URL": source,
            "DEMO_WAREHOUSE_URL": warehouse,
            "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(transport),
            "AIRFLOW__OPENLINEAGE__NAMESPACE": AIRFLOW_NAMESPACE,
            # the deployment's endpoint for the runners (forwarded by the adapter)
            OPENLINEAGE_URL_ENV: receiver.url,
        },
    )
    events = receiver.events()
    validate_events(events)  # Airflow's events and the runner's
    airflow_runs: dict[str, dict[str, set[str]]] = {}  # task → event type → run ids
    for event in events:
        job = event["job"]
        if job["namespace"] == AIRFLOW_NAMESPACE and job["name"].startswith(f"{DAG_ID}."):
            task = job["name"].removeprefix(f"{DAG_ID}.")
            airflow_runs.setdefault(task, {}).setdefault(event["eventType"], set()).add(
                event["run"]["runId"]
            )
    runner_events = [e for e in events if e["job"]["namespace"] == RUNNER_NAMESPACE]

    tasks = {f"extract_{t}" for t in tables} | {"dbt_silver", "dbt_gold"}
    # Airflow's own events: one START and one COMPLETE per task, for one run id
    for task in tasks:
        runs = airflow_runs.get(task, {})
        assert set(runs) >= {"START", "COMPLETE"}, (task, runs)
        assert runs["START"] == runs["COMPLETE"] and len(runs["START"]) == 1, (task, runs)

    # the runner's: START and COMPLETE per task, each naming its task's Airflow run
    assert {e["job"]["name"] for e in runner_events} == {f"demo.{t}" for t in tasks}
    for event in runner_events:
        task = event["job"]["name"].removeprefix("demo.")
        parent = _parent(event)
        job = {k: parent["job"][k] for k in ("namespace", "name")}
        assert job == {"namespace": AIRFLOW_NAMESPACE, "name": f"{DAG_ID}.{task}"}
        assert {parent["run"]["runId"]} == airflow_runs[task]["COMPLETE"], event
        assert event["run"]["runId"] not in airflow_runs[task]["COMPLETE"]  # its own run
    assert {e["eventType"] for e in runner_events} == {"START", "COMPLETE"}


def _context(dag_id: str, task_id: str, try_number: int) -> dict[str, Any]:
    """A task try's context as `run_env` reads it: the task instance's ids and its run."""
    dag_run = SimpleNamespace(
        logical_date=dt.datetime(2026, 11, 30, tzinfo=dt.UTC),
        run_after=dt.datetime(2026, 11, 30, tzinfo=dt.UTC),
        clear_number=0,
        conf={},
        run_id="manual__2026-11-30T00:00:00+00:00",
    )
    ti = SimpleNamespace(
        dag_id=dag_id,
        task_id=task_id,
        try_number=try_number,
        map_index=-1,
        run_id=dag_run.run_id,
        dag_run=dag_run,
        get_template_context=lambda: {"dag_run": dag_run},
    )
    return {"ti": ti, "dag_run": dag_run}


def test_docker_and_kubernetes_get_the_run_env_of_the_try(
    make_tenant: MakeTenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.providers.openlineage.plugins.adapter import OpenLineageAdapter

    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__NAMESPACE", AIRFLOW_NAMESPACE)
    monkeypatch.setenv(OPENLINEAGE_URL_ENV, "http://lineage.example:5000")
    tenant = make_tenant()
    task = plan_tenant(tenant, tenant.folder.parent).task("extract_orders")
    dag_id = f"tenant_{tenant.spec.tenant}"
    context = _context(dag_id, task.task_id, try_number=2)
    airflow_run = OpenLineageAdapter.build_task_instance_run_id(
        dag_id=dag_id,
        task_id=task.task_id,
        try_number=2,
        logical_date=context["dag_run"].logical_date,
        map_index=-1,
    )
    wanted = {
        RUN_ID_ENV: "manual__2026-11-30T00:00:00+00:00",
        PARENT_RUN_ENV: f"{AIRFLOW_NAMESPACE}/{dag_id}.{task.task_id}/{airflow_run}",
        OPENLINEAGE_URL_ENV: "http://lineage.example:5000",
    }
    assert run_env(context) == wanted

    container = docker.render(task, context)["environment"]
    assert {k: container.get(k) for k in wanted} == wanted
    assert RUN_ID_ENV not in docker.render(task)["environment"]  # per try, not per DAG

    (pod_container,) = [
        c for c in kubernetes.render(task, context)["spec"]["containers"] if c["name"] == "base"
    ]
    pod_env = {e["name"]: e.get("value") for e in pod_container["env"]}
    assert {k: pod_env.get(k) for k in wanted} == wanted
    # a retry is another OpenLineage run: the parent changes with the try
    assert run_env(_context(dag_id, task.task_id, 3))[PARENT_RUN_ENV] != wanted[PARENT_RUN_ENV]

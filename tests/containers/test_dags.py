"""Every repository tenant's DAG builds with the Docker and the Kubernetes executor, and
serialises (as the scheduler stores it) with no secret value in it. The tenants are
compiled first, as a deployment's are (their graphs name their dbt images)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.serialization.serialized_objects import DagSerialization

from dag_factory.adapters.docker import RunnerContainerOperator
from dag_factory.adapters.kubernetes import RunnerPodOperator
from dag_factory.build import INVALID_TAG, build_dags
from dag_factory.isolation import EXECUTOR_ENV
from devtools.compiled import compiled_tenants

REPO = Path(__file__).resolve().parents[2]
SECRET = "n0-s3cret-in-dags"
OPERATORS = {"docker": RunnerContainerOperator, "kubernetes": RunnerPodOperator}


@pytest.mark.parametrize("executor", sorted(OPERATORS))
def test_tenant_dags_build_and_serialise(executor: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(EXECUTOR_ENV, executor)
    monkeypatch.setenv("AIRFLOW_CONN_ACME_SOURCE", f"postgres://u:{SECRET}@db:5432/src")
    monkeypatch.setenv("AIRFLOW_CONN_ACME_WAREHOUSE", f"postgres://u:{SECRET}@db:5432/wh")
    monkeypatch.setenv("DEMO_SOURCE_URL", f"sqlite:///{SECRET}.sqlite")
    dags = build_dags(compiled_tenants())
    assert {"tenant_acme", "tenant_demo"} <= set(dags)
    for dag in dags.values():
        assert dag.tasks
        assert INVALID_TAG not in dag.tags, dag.doc_md
        for task in dag.tasks:
            if isinstance(task, EmptyOperator):  # a layer gate: it runs nothing
                continue
            assert isinstance(task, OPERATORS[executor]), task.task_id
        serialised = json.dumps(DagSerialization.to_dict(dag), default=str)
        assert SECRET not in serialised

"""The real DAG file through Airflow's DagBag: one DAG per tenant, broken tenants visible."""

from __future__ import annotations

from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag

from dag_factory.build import INVALID_TAG
from tests.dag_factory.conftest import REPO, WriteTenant


def bag(warehouses: Path, monkeypatch: pytest.MonkeyPatch) -> DagBag:
    monkeypatch.setenv("DAG_FACTORY_WAREHOUSES", str(warehouses))
    return DagBag(dag_folder=str(REPO / "dags"))


def test_one_dag_per_tenant_with_layer_order(
    warehouses: Path, write_tenant: WriteTenant, monkeypatch: pytest.MonkeyPatch
):
    write_tenant("shop")
    dagbag = bag(warehouses, monkeypatch)
    assert dagbag.import_errors == {}
    dag = dagbag.dags["tenant_shop"]
    assert sorted(dag.task_ids) == ["dbt_gold", "dbt_silver", "extract_customers", "extract_orders"]
    assert dag.get_task("dbt_silver").upstream_task_ids == {"extract_customers", "extract_orders"}
    assert dag.get_task("dbt_gold").upstream_task_ids == {"dbt_silver"}
    assert "tenant:shop" in dag.tags
    assert {task.retries for task in dag.tasks} == {2}
    assert dag.max_active_tasks == 1  # DuckDB: one writer at a time


def test_invalid_tenant_is_visible_and_hides_nothing(
    warehouses: Path, write_tenant: WriteTenant, monkeypatch: pytest.MonkeyPatch
):
    write_tenant("good")
    broken = write_tenant("broken", "tenant: broken\nretries: many\n")
    dagbag = bag(warehouses, monkeypatch)
    # Keyed by the tenant file, not the DAG file: an error on the DAG file hides every DAG.
    assert list(dagbag.import_errors) == [str(broken)]
    assert set(dagbag.dag_ids) == {"tenant_good", "tenant_broken"}
    placeholder = dagbag.dags["tenant_broken"]
    assert INVALID_TAG in placeholder.tags
    assert placeholder.schedule == "@daily"  # kept: its run fails when the real one was due
    assert placeholder.description == "INVALID tenant file: source: is required"
    assert "broken/warehouse.yaml:2:10: retries: must be a whole number, got 'many'" in (
        placeholder.doc_md
    )
    [warning] = dagbag.captured_warnings[str(REPO / "dags" / "tenants.py")]
    assert "broken/warehouse.yaml:2:10: retries" in warning


def test_tenant_filter_loads_a_subset(
    warehouses: Path, write_tenant: WriteTenant, monkeypatch: pytest.MonkeyPatch
):
    write_tenant("one")
    write_tenant("two")
    monkeypatch.setenv("DAG_FACTORY_TENANTS", "two")
    assert bag(warehouses, monkeypatch).dag_ids == ["tenant_two"]


def test_repository_tenants_load(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("DAG_FACTORY_WAREHOUSES", raising=False)
    dagbag = DagBag(dag_folder=str(REPO / "dags"))
    assert dagbag.import_errors == {}
    assert {"tenant_demo", "tenant_acme"} <= set(dagbag.dag_ids)
    assert not any(INVALID_TAG in dag.tags for dag in dagbag.dags.values())

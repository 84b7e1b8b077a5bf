"""The planner is pure: same tenant, same tasks; secrets only as references."""

from __future__ import annotations

import json
from pathlib import Path

from dag_factory.loader import Loader
from dag_factory.plan import TaskKind, plan_tenant
from datakits.spec import RUNNER_SPEC_ENV, SOURCE_URL_ENV, WAREHOUSE_URL_ENV, LoadSpec
from tests.dag_factory.conftest import WriteTenant


def test_plan_is_extracts_then_silver_then_gold(warehouses: Path, write_tenant: WriteTenant):
    tenant = Loader(warehouses).load(write_tenant("shop"))
    plan = plan_tenant(tenant, warehouses.parent)
    assert [(t.task_id, t.kind, t.upstream) for t in plan.tasks] == [
        ("extract_customers", TaskKind.extract, ()),
        ("extract_orders", TaskKind.extract, ()),
        ("dbt_silver", TaskKind.dbt, ("extract_customers", "extract_orders")),
        ("dbt_gold", TaskKind.dbt, ("dbt_silver",)),
    ]
    assert plan.task("extract_orders").argv == ("extract", "--table", "orders")
    assert plan.task("dbt_gold").argv == (
        "dbt",
        "--project-dir",
        "warehouses/shop/dbt",
        "--on-test-failure",
        "fail",
        "build",
        "--select",
        "gold",
    )
    assert plan == plan_tenant(tenant, warehouses.parent)  # a value: equal when re-planned


def test_env_carries_the_load_spec_and_no_secret(warehouses: Path, write_tenant: WriteTenant):
    tenant = Loader(warehouses).load(write_tenant("shop"))
    plan = plan_tenant(tenant, warehouses.parent)
    extract = plan.task("extract_orders")
    spec = LoadSpec.model_validate_json(extract.env_dict[RUNNER_SPEC_ENV])
    assert spec == tenant.spec.load_spec()
    assert set(extract.env_dict) == {RUNNER_SPEC_ENV}
    assert [(s.env, s.ref.env) for s in extract.secrets] == [
        (SOURCE_URL_ENV, "SHOP_SOURCE_URL"),
        (WAREHOUSE_URL_ENV, "SHOP_WAREHOUSE_URL"),
    ]
    # dbt never sees the source's credentials
    assert [s.env for s in plan.task("dbt_silver").secrets] == [WAREHOUSE_URL_ENV]
    assert "SHOP_SOURCE_URL" in json.dumps(json.loads(extract.env_dict[RUNNER_SPEC_ENV]))

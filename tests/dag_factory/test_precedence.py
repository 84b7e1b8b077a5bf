"""defaults.yaml < tenant file < a table's own `task:` settings."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from dag_factory.loader import Loader
from dag_factory.plan import plan_tenant
from tests.dag_factory.conftest import VALID_TENANT, WriteTenant


def plan_for(warehouses: Path, write_tenant: WriteTenant, extra: str, tables: str | None = None):
    text = VALID_TENANT.format(name="shop", env="SHOP")
    if tables is not None:
        text = text[: text.index("tables:")] + tables
    tenant = Loader(warehouses).load(write_tenant("shop", text + extra))
    return tenant.spec, plan_tenant(tenant, warehouses.parent)


def test_defaults_apply_when_the_tenant_says_nothing(warehouses: Path, write_tenant):
    _, plan = plan_for(warehouses, write_tenant, "")
    extract = plan.task("extract_orders").settings
    assert extract.retries == 2  # defaults.yaml retries
    assert extract.retry_delay == dt.timedelta(minutes=5)
    assert extract.timeout == dt.timedelta(hours=2)  # defaults.yaml tasks.extract.timeout
    assert extract.resources.limits.memory == "512Mi"
    assert plan.task("dbt_gold").settings.timeout == dt.timedelta(hours=1)


def test_tenant_overrides_defaults_and_table_overrides_tenant(warehouses: Path, write_tenant):
    _, plan = plan_for(
        warehouses,
        write_tenant,
        extra="""\
retries: 4
tasks:
  extract:
    timeout: 30m
    resources:
      limits: {memory: 2Gi}
""",
        tables="""\
tables:
  - name: customers
  - name: orders
    task:
      retries: 0
      resources:
        limits: {cpu: "3"}
""",
    )
    customers = plan.task("extract_customers").settings
    orders = plan.task("extract_orders").settings
    assert customers.retries == 4  # tenant
    assert customers.timeout == dt.timedelta(minutes=30)  # tenant's tasks.extract
    assert customers.resources.limits.memory == "2Gi"  # tenant over defaults
    assert customers.resources.limits.cpu == "1"  # defaults, merged per amount
    assert customers.resources.requests.memory == "256Mi"  # defaults
    assert orders.retries == 0  # the table's own task settings
    assert orders.resources.limits.cpu == "3"
    assert orders.resources.limits.memory == "2Gi"
    assert plan.task("dbt_silver").settings.retries == 4


def test_disabled_table_has_no_task_and_is_not_loaded(warehouses: Path, write_tenant):
    spec, plan = plan_for(
        warehouses,
        write_tenant,
        extra="",
        tables="tables:\n  - name: customers\n  - name: orders\n    enabled: false\n",
    )
    assert [t.task_id for t in plan.tasks] == ["extract_customers", "dbt_silver", "dbt_gold"]
    assert [t.name for t in spec.load_spec().tables] == ["customers"]

"""A bad tenant file gets every problem at once, each with file:line:column and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from dag_factory.errors import TenantFileError
from dag_factory.loader import Loader
from tests.dag_factory.conftest import WriteTenant


def messages(warehouses: Path, file: Path) -> list[str]:
    with pytest.raises(TenantFileError) as caught:
        Loader(warehouses).load(file)
    return [str(p).replace(f"{warehouses}/", "") for p in caught.value.problems]


def test_valid_tenant_loads_with_defaults_merged(warehouses: Path, write_tenant: WriteTenant):
    tenant = Loader(warehouses).load(write_tenant("shop"))
    assert tenant.spec.tenant == "shop"
    assert tenant.spec.schedule == "@daily"  # from defaults.yaml
    assert tenant.spec.retries == 2
    assert tenant.spec.warehouse.schemas.silver == "silver"
    assert [t.name for t in tenant.spec.tables] == ["customers", "orders"]


def test_typo_enum_and_pattern_are_all_reported(warehouses: Path, write_tenant: WriteTenant):
    file = write_tenant(
        "shop",
        """\
        tenant: shop
        schedul: "@daily"
        source:
          kind: oracle
          connection: {env: shop_url}
        warehouse:
          kind: duckdb
          connection: {env: WH}
        tables:
          - name: Orders
            source_name: Orders
        """,
    )
    assert messages(warehouses, file) == [
        "shop/warehouse.yaml:2:1: schedul: unknown key; did you mean `schedule`? allowed here: "
        "tenant, enabled, description, owners, tags, source, warehouse, tables, dbt, schedule, "
        "start_date, catchup, max_active_runs, concurrency, pool, retries, retry_delay, tasks, "
        "images, alerting, freshness, platform, access",
        "shop/warehouse.yaml:4:9: source.kind: must be one of 'sqlite', 'postgres' or "
        "'mysql', got 'oracle'",
        "shop/warehouse.yaml:5:21: source.connection.env: must be an env var name "
        "(A-Z, 0-9, _), got 'shop_url'",
        "shop/warehouse.yaml:10:5: tables[0]: `name` is the bronze table name when "
        "`source_name` is given: it must be a lower-case SQL identifier (a-z, 0-9, _; at most "
        "63 characters), got 'Orders'",
    ]


def test_duplicate_key_is_an_error(warehouses: Path, write_tenant: WriteTenant):
    file = write_tenant(
        "shop",
        """\
        tenant: shop
        source:
          kind: sqlite
          connection: {env: SRC}
          kind: postgres
        """,
    )
    assert messages(warehouses, file) == [
        "shop/warehouse.yaml:5:3: duplicate key `source.kind` (first given on line 3)",
    ]


def test_invalid_yaml_names_the_line(warehouses: Path, write_tenant: WriteTenant):
    file = write_tenant(
        "shop",
        """\
        tenant: shop
        tables:
          - name: orders
         - name: customers
        """,
    )
    assert messages(warehouses, file) == [
        "shop/warehouse.yaml:4:2: invalid YAML: while parsing a block mapping: "
        "did not find expected key",
    ]


def test_secret_values_and_bad_references(warehouses: Path, write_tenant: WriteTenant):
    file = write_tenant(
        "shop",
        """\
        tenant: shop
        source:
          kind: postgres
          connection:
            url: postgresql://app:hunter2@db/shop
        warehouse:
          kind: postgres
          connection: {env: WH, airflow_conn: wh}
        tables: []
        """,
    )
    assert messages(warehouses, file) == [
        "shop/warehouse.yaml:5:5: source.connection.url: unknown key; allowed here: "
        "env, airflow_conn",
        "shop/warehouse.yaml:8:15: warehouse.connection: give exactly one of `env` or "
        "`airflow_conn`",
        "shop/warehouse.yaml:9:9: tables: must have at least 1 item(s)",
    ]


def test_a_pasted_url_is_masked_in_the_error(warehouses: Path, write_tenant: WriteTenant):
    text = Path(write_tenant("shop")).read_text()
    file = write_tenant(
        "shop", text.replace("env: SHOP_SOURCE_URL", "env: postgresql://app:hunter2@db/shop")
    )
    [problem] = messages(warehouses, file)
    assert "hunter2" not in problem
    assert problem == (
        "shop/warehouse.yaml:5:10: source.connection.env: must be an env var name (A-Z, 0-9, _), "
        "got 'postgresql://app:***@db/shop'"
    )


def test_tenant_must_match_folder_and_have_a_dbt_project(
    warehouses: Path, write_tenant: WriteTenant
):
    file = write_tenant(
        "shop",
        Path(write_tenant("x"))
        .read_text()
        .replace("tenant: x", "tenant: other")
        .replace("X_", "OTHER_"),
    )
    (file.parent / "dbt" / "dbt_project.yml").unlink()
    assert messages(warehouses, file) == [
        "shop/warehouse.yaml:1:9: tenant: must equal its folder's name 'shop', got 'other'",
        "shop/warehouse.yaml:1:1: dbt.project: no dbt_project.yml in shop/dbt",
    ]


def test_bad_default_is_reported_in_defaults_file(warehouses: Path, write_tenant: WriteTenant):
    defaults = warehouses / "defaults.yaml"
    defaults.write_text(defaults.read_text().replace('schedule: "@daily"', 'schedule: "@dayly"'))
    file = write_tenant("shop")
    assert messages(warehouses, file) == [
        "defaults.yaml:3:11: schedule: must be a cron expression, a preset (@continuous, @daily, "
        "@hourly, @monthly, @once, @quarterly, @weekly, @yearly) or null (manual only), "
        "got '@dayly'",
    ]


def test_one_bad_tenant_does_not_hide_the_others(warehouses: Path, write_tenant: WriteTenant):
    write_tenant("good")
    write_tenant("bad", "tenant: bad\nretries: many\n")
    report = Loader(warehouses).load_all()
    assert [t.spec.tenant for t in report.tenants] == ["good"]
    assert [e.file.parent.name for e in report.errors] == ["bad"]

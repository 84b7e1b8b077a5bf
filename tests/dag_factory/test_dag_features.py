"""Assets, asset schedules, alerting and disabled tenants in the built DAGs."""

from __future__ import annotations

from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag

from tests.dag_factory.conftest import REPO, VALID_TENANT, WriteTenant


def bag(warehouses: Path, monkeypatch: pytest.MonkeyPatch) -> DagBag:
    monkeypatch.setenv("DAG_FACTORY_WAREHOUSES", str(warehouses))
    return DagBag(dag_folder=str(REPO / "dags"))


def test_assets_per_table_and_layer_and_asset_schedules(
    warehouses: Path, write_tenant: WriteTenant, monkeypatch: pytest.MonkeyPatch
):
    write_tenant("shop")
    marts = (
        VALID_TENANT.format(name="marts", env="MARTS")
        + "schedule:\n  assets: [tenant://shop/gold]\n"
    )
    write_tenant("marts", marts)
    dagbag = bag(warehouses, monkeypatch)
    assert dagbag.import_errors == {}
    shop = dagbag.dags["tenant_shop"]
    assert [a.uri for a in shop.get_task("extract_orders").outlets] == [
        "tenant://shop/bronze/orders"
    ]
    assert [a.uri for a in shop.get_task("dbt_silver").outlets] == ["tenant://shop/silver"]
    assert [a.uri for a in shop.get_task("dbt_gold").outlets] == ["tenant://shop/gold"]
    condition = dagbag.dags["tenant_marts"].timetable.asset_condition
    assert [a.uri for a in condition.objects] == ["tenant://shop/gold"]


def test_alerting_attaches_airflow_notifiers(
    warehouses: Path, write_tenant: WriteTenant, monkeypatch: pytest.MonkeyPatch
):
    from airflow.providers.slack.notifications.slack import SlackNotifier
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    text = VALID_TENANT.format(name="shop", env="SHOP") + (
        "alerting:\n"
        "  on_failure:\n"
        "    email: [oncall@example.com]\n"
        "    slack: {connection: shop_slack, channel: '#data-alerts'}\n"
        "  on_retry:\n"
        "    email: [owner@example.com]\n"
    )
    write_tenant("shop", text)
    task = bag(warehouses, monkeypatch).dags["tenant_shop"].get_task("extract_orders")
    failure = task.on_failure_callback
    assert [type(n) for n in failure] == [SmtpNotifier, SlackNotifier]
    assert failure[0].to == ["oncall@example.com"]
    assert failure[1].channel == "#data-alerts"
    assert [type(n) for n in task.on_retry_callback] == [SmtpNotifier]


def test_disabled_tenant_builds_no_dag(
    warehouses: Path, write_tenant: WriteTenant, monkeypatch: pytest.MonkeyPatch
):
    write_tenant("on")
    write_tenant("paused", VALID_TENANT.format(name="paused", env="PAUSED") + "enabled: false\n")
    assert bag(warehouses, monkeypatch).dag_ids == ["tenant_on"]

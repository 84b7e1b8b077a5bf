"""Asset events carry the runner's facts: a real `airflow dags test` of the demo tenant,
then the events read back from that Airflow's metadata DB (`AssetEvent`)."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from dag_factory.adapters.asset_events import facts
from devtools.shop import generate_shop
from tests.integration.test_tenant_dags import dags_test

BIN = Path(sys.executable).parent

#: Run inside the test's Airflow (its AIRFLOW_HOME): every asset event's uri and extra.
READ_EVENTS = """
import json
from sqlalchemy import select
from airflow.models.asset import AssetEvent, AssetModel
from airflow.utils.session import create_session
with create_session() as session:
    rows = session.execute(
        select(AssetModel.uri, AssetEvent.extra)
        .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
    ).all()
print(json.dumps([[uri, extra] for uri, extra in rows]))
"""


def asset_events(env: dict[str, str]) -> dict[str, list[dict]]:
    done = subprocess.run(
        [BIN / "python", "-c", READ_EVENTS], env=env, capture_output=True, text=True, check=True
    )
    events: dict[str, list[dict]] = {}
    for uri, extra in json.loads(done.stdout.strip().splitlines()[-1]):
        events.setdefault(uri, []).append(extra)
    return events


def test_demo_run_puts_load_and_dbt_facts_on_asset_events(
    airflow_env: dict[str, str], tmp_path: Path
) -> None:
    source = f"sqlite:///{tmp_path}/shop.sqlite"
    warehouse = f"duckdb:///{tmp_path}/warehouse.duckdb"
    source_rows = generate_shop(source, orders=300)
    before = dt.datetime.now(dt.UTC)
    dags_test(
        "tenant_demo", {**airflow_env, "DEMO_SOURCE_URL": source, "DEMO_WAREHOUSE_URL": warehouse}
    )
    events = asset_events(airflow_env)

    engine = sa.create_engine(warehouse)
    with engine.connect() as conn:
        audit = {
            row.table_name: row
            for row in conn.execute(
                sa.text("select table_name, batch_id, rows from meta.load_audit")
            )
        }
    engine.dispose()
    for table, rows in source_rows.items():
        (extra,) = events[f"tenant://demo/bronze/{table}"]
        assert extra["command"] == "extract" and extra["status"] == "ok"
        assert extra["rows"] == rows == audit[table].rows
        assert extra["batch_id"] == audit[table].batch_id  # the committed load's own id
        assert extra["bytes"] > 0 and extra["seconds"] > 0
        assert extra["mode"] == "full_refresh" and extra["target"] == f"bronze.{table}"
        assert "watermark" in extra  # None for a full refresh: it has none
        read_at = dt.datetime.fromisoformat(extra["read_at"])
        assert before < read_at < dt.datetime.now(dt.UTC)

    for layer in ("silver", "gold"):
        (extra,) = events[f"tenant://demo/{layer}"]
        assert extra["command"] == "dbt"
        assert extra["models_built"] == len(extra["models"]) > 0
        assert all(m.startswith(f"{layer}.") for m in extra["models"])
        assert extra["failed"] == 0 and extra["tests_failed"] == 0
    assert events["tenant://demo/silver"][0]["tests_passed"] > 0  # the shop's silver tests


def test_facts_of_an_incremental_extract_carry_its_watermark() -> None:
    result = {
        "status": "ok",
        "command": "extract",
        "seconds": 1.5,
        "tenant": "t",
        "table": "orders",
        "mode": "incremental",
        "rows": 10,
        "bytes": 800,
        "batch_id": "b1",
        "watermark": "2026-01-01T00:00:00",
        "read_at": "2026-01-01T00:00:01+00:00",
        "target": "bronze.orders",
    }
    extra = facts(result)
    assert extra["watermark"] == "2026-01-01T00:00:00" and extra["batch_id"] == "b1"
    assert "tenant" not in extra  # the asset's uri already names it
    assert facts({"status": "ok", "command": "other", "seconds": 0}) == {}

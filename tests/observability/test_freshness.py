"""`freshness: {gold: …}` becomes the DAG's deadline alert, routed to the tenant's alerting.

The callback firing under a real scheduler: tests/realtime/test_freshness_deadline.py."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from dag_factory.build import build_dag
from tests.observability.conftest import SHOP_TENANT, MakeTenant

FRESH = SHOP_TENANT + "freshness:\n  gold: 6h\nalerting:\n  on_failure:\n    email: [a@b.io]\n"


def test_gold_freshness_is_a_serialisable_deadline_alert(
    make_tenant: MakeTenant, tmp_path: Path
) -> None:
    from airflow.serialization.serialized_objects import DagSerialization

    dag = build_dag(make_tenant(text=FRESH), tmp_path)
    (alert,) = dag.deadline
    assert alert.interval == dt.timedelta(hours=6)
    assert alert.callback.kwargs["alerting"]["on_failure"]["email"] == ["a@b.io"]
    assert alert.callback.path == "dag_factory.alerting.freshness_missed"
    # the triggerer runs it: an executor's callback may not read connections (3.3.2)
    assert type(alert.callback).__name__ == "AsyncCallback"
    assert "deadline" in str(DagSerialization.to_dict(dag))
    assert build_dag(make_tenant(name="plain"), tmp_path).deadline is None

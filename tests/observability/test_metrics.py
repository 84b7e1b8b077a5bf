"""Runner metrics in a real Prometheus, through a real Pushgateway.

Both servers are Debian's binaries started by the test run (`devtools.prometheus`);
Prometheus scrapes the gateway every second with `honor_labels: true`. Real `runner
extract` loads (SQLite → DuckDB) push their metrics; the test reads them back through
Prometheus's HTTP API.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from datakits.contract import PUSHGATEWAY_URL_ENV
from devtools.postgres import free_port
from devtools.prometheus import PrometheusStack
from runners.metrics import METRICS
from tests.observability.runner_helpers import NEWEST, result_of, run_extract, spec, sqlite_source

DASHBOARD = Path(__file__).parents[2] / "docs" / "grafana" / "tenant-runner.json"


@pytest.fixture(scope="module")
def prometheus_stack() -> Iterator[PrometheusStack]:
    with PrometheusStack() as stack:
        yield stack


def _value(series: list[dict], **labels: str) -> float:
    found = [s for s in series if all(s["metric"].get(k) == v for k, v in labels.items())]
    assert len(found) == 1, (labels, series)
    return float(found[0]["value"][1])


def test_loads_and_a_failure_reach_prometheus(
    prometheus_stack: PrometheusStack, tmp_path: Path
) -> None:
    source = sqlite_source(tmp_path / "src.db")
    warehouse = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    load_spec = spec("metrics_a")
    push = {PUSHGATEWAY_URL_ENV: prometheus_stack.gateway_url}

    events = result_of(run_extract(load_spec, "events", source, warehouse, **push))
    plain = result_of(run_extract(load_spec, "plain", source, warehouse, **push))
    failed = run_extract(load_spec, "absent", source, warehouse, **push)
    assert failed.returncode == 2, failed.stderr

    tenant = '{tenant="metrics_a"}'
    rows = prometheus_stack.wait_for(f"tenant_runner_rows_loaded{tenant}", count=2)
    assert _value(rows, table="events", task="extract_events") == events["rows"] == 3
    assert _value(rows, table="plain", task="extract_plain") == plain["rows"] == 2
    sizes = prometheus_stack.wait_for(f"tenant_runner_bytes_loaded{tenant}", count=2)
    assert _value(sizes, table="events") == events["bytes"] > 0
    assert _value(sizes, table="plain") == plain["bytes"] > 0

    # the watermark of the timestamp cursor, and the lag behind it at the end of the load
    newest = dt.datetime.fromisoformat(NEWEST).replace(tzinfo=dt.UTC).timestamp()
    marks = prometheus_stack.wait_for(f"tenant_runner_watermark_timestamp_seconds{tenant}")
    assert [s["metric"]["table"] for s in marks] == ["events"]  # a full refresh has none
    assert _value(marks, table="events") == newest
    lag = _value(prometheus_stack.wait_for(f"tenant_runner_lag_seconds{tenant}"), table="events")
    success = prometheus_stack.wait_for(
        f"tenant_runner_last_success_timestamp_seconds{tenant}", count=2
    )
    assert lag == pytest.approx(_value(success, table="events") - newest, abs=1)

    # the failed load: its exit code as a label, no rows, a load time
    failures = prometheus_stack.wait_for(f"tenant_runner_last_failure_timestamp_seconds{tenant}")
    assert [(s["metric"]["table"], s["metric"]["exit_code"]) for s in failures] == [("absent", "2")]
    status = prometheus_stack.wait_for(f"tenant_runner_task_status{tenant}", count=3)
    codes = {s["metric"]["table"]: s["metric"]["exit_code"] for s in status}
    assert codes == {"events": "0", "plain": "0", "absent": "2"}
    seconds = prometheus_stack.wait_for(f"tenant_runner_load_seconds{tenant}", count=3)
    assert all(float(s["value"][1]) > 0 for s in seconds)
    assert {s["metric"]["job"] for s in seconds} == {"tenant_runner"}  # honor_labels kept ours


def test_a_failure_keeps_the_last_good_load(
    prometheus_stack: PrometheusStack, tmp_path: Path
) -> None:
    """pushadd semantics: the failure replaces status and failure time, not the rows."""
    source = sqlite_source(tmp_path / "src.db")
    warehouse = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    load_spec = spec("metrics_b")
    push = {PUSHGATEWAY_URL_ENV: prometheus_stack.gateway_url}
    result_of(run_extract(load_spec, "plain", source, warehouse, **push))
    with sqlite3.connect(tmp_path / "src.db") as conn:
        conn.execute("DROP TABLE plain")
    conn.close()

    failed = run_extract(load_spec, "plain", source, warehouse, **push)

    assert failed.returncode == 2, failed.stderr
    tenant = '{tenant="metrics_b"}'
    failure = prometheus_stack.wait_for(f"tenant_runner_last_failure_timestamp_seconds{tenant}")
    success = prometheus_stack.wait_for(f"tenant_runner_last_success_timestamp_seconds{tenant}")
    assert _value(failure, exit_code="2") > _value(success, table="plain")
    assert (
        _value(prometheus_stack.wait_for(f"tenant_runner_rows_loaded{tenant}"), table="plain") == 2
    )
    status = prometheus_stack.wait_for(
        'tenant_runner_task_status{tenant="metrics_b",exit_code="2"}'
    )
    assert len(status) == 1
    assert (
        prometheus_stack.query('tenant_runner_task_status{tenant="metrics_b",exit_code="0"}') == []
    )


def test_a_gateway_that_is_down_never_fails_the_task(tmp_path: Path) -> None:
    source = sqlite_source(tmp_path / "src.db")
    warehouse = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    down = f"http://127.0.0.1:{free_port()}"

    done = run_extract(spec(), "plain", source, warehouse, **{PUSHGATEWAY_URL_ENV: down})

    assert result_of(done)["rows"] == 2
    warnings = [ln for ln in done.stderr.splitlines() if "warning" in ln]
    assert len(warnings) == 1
    assert PUSHGATEWAY_URL_ENV in warnings[0]
    assert warnings[0].startswith("runner extract: warning: metrics not pushed")


def test_nothing_is_pushed_without_the_env(
    prometheus_stack: PrometheusStack, tmp_path: Path
) -> None:
    source = sqlite_source(tmp_path / "src.db")
    warehouse = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    result_of(run_extract(spec("metrics_off"), "plain", source, warehouse))
    # a later pushed run in another tenant proves the gateway has been scraped since
    result_of(
        run_extract(
            spec("metrics_on"),
            "plain",
            source,
            warehouse,
            **{PUSHGATEWAY_URL_ENV: prometheus_stack.gateway_url},
        )
    )
    assert prometheus_stack.wait_for('tenant_runner_rows_loaded{tenant="metrics_on"}')
    assert prometheus_stack.query('{tenant="metrics_off"}') == []


def test_grafana_dashboard_queries_name_emitted_metrics() -> None:
    """Every panel's PromQL names a metric the runner pushes (or Airflow's StatsD one)."""
    import re

    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    panels = [p for p in dashboard["panels"] if p.get("type") != "row"]
    assert panels
    names_seen = set()
    for panel in panels:
        exprs = [t["expr"] for t in panel.get("targets", ())]
        assert exprs, f"panel {panel['title']!r} has no query"
        for expr in exprs:
            names = set(re.findall(r"\b(tenant_runner_[a-z_]+|airflow_[a-z_]+)\b", expr))
            assert names, f"panel {panel['title']!r}: {expr!r} names no runner metric"
            unknown = {n for n in names if n.startswith("tenant_runner_")} - METRICS.keys()
            assert not unknown, f"panel {panel['title']!r} queries unknown {unknown}"
            names_seen |= names
    # the dashboard covers what the issue asks for
    for wanted in (
        "tenant_runner_rows_loaded",
        "tenant_runner_bytes_loaded",
        "tenant_runner_load_seconds",
        "tenant_runner_watermark_timestamp_seconds",
        "tenant_runner_last_failure_timestamp_seconds",
    ):
        assert wanted in names_seen


def test_grafana_queries_run_in_prometheus(
    prometheus_stack: PrometheusStack, tmp_path: Path
) -> None:
    """Each panel query, with Grafana's variables filled in, is valid PromQL here, and the
    per-load panels show the load just pushed."""
    source = sqlite_source(tmp_path / "src.db")
    warehouse = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    push = {PUSHGATEWAY_URL_ENV: prometheus_stack.gateway_url}
    result_of(run_extract(spec("metrics_g"), "events", source, warehouse, **push))
    prometheus_stack.wait_for('tenant_runner_watermark_timestamp_seconds{tenant="metrics_g"}')
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    filled = {"$tenant": "metrics_g", "$__rate_interval": "1m", "$__range": "1h"}
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            for var, value in filled.items():
                expr = expr.replace(var, value)
            series = prometheus_stack.query(expr)  # raises on a PromQL error
            if panel["title"].startswith(("Rows", "Bytes", "Source lag", "Load seconds")):
                assert series, f"panel {panel['title']!r} is empty after a load: {expr}"

"""Prometheus metrics of one runner task, pushed to a Pushgateway when the task ends.

Why push, and not a scrape target or a node-exporter textfile: a runner is a short-lived
process (a subprocess, a container, a pod) that is gone before any scrape could reach
it, and it has no stable address to scrape. A textfile collector needs a node exporter
and a directory shared by every pod on a node — which Docker and Kubernetes runners do
not have, and which would leave files of finished pods behind. The Pushgateway is the
Prometheus answer for batch jobs: the task pushes its last values once at its end,
Prometheus scrapes the gateway (`honor_labels: true` keeps our labels).

What is pushed, per grouping key tenant/table/task (`job="tenant_runner"`; `table` is
empty for dbt tasks; `task` is the planner's task id, `extract_<table>` / `dbt_<layer>`):

* `tenant_runner_rows_loaded`, `tenant_runner_bytes_loaded`: rows and Arrow bytes of
  the last successful load;
* `tenant_runner_load_seconds`: how long the last run took (success or failure);
* `tenant_runner_watermark_timestamp_seconds`: the newest source row (cursor tables with
  a time cursor; a naive timestamp is taken as UTC), and `tenant_runner_lag_seconds`,
  the lag between it and the end of the load. Dashboards chart
  `time() - tenant_runner_watermark_timestamp_seconds`, which keeps growing while no
  load runs;
* `tenant_runner_last_success_timestamp_seconds`: end of the last successful run; for
  `task="dbt_gold"` it is the freshness of gold;
* `tenant_runner_last_failure_timestamp_seconds{exit_code}` and
  `tenant_runner_task_status{exit_code}` (1, the code of the last run, 0 when it
  succeeded): failures by exit code.

Gauges only: a Pushgateway keeps the last push, it cannot add up counters from
processes that each start at zero. We push with `pushadd_to_gateway` (HTTP POST), which
replaces only the metric names pushed: a failure replaces the status and failure time
but leaves the rows, bytes and success time of the last good load in place, where a
plain `push_to_gateway` (PUT) would wipe them.

Off unless `RUNNER_PUSHGATEWAY_URL` is set. A gateway that is down or slow never fails
the task: one warning line on stderr, and the task's own exit code stands.

DAG-run duration comes from the scheduler side: Airflow's own StatsD metrics
(`[metrics]` section, see docs/grafana/README.md) through a statsd-exporter mapping.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import time
from typing import TYPE_CHECKING, Any

from datakits.contract import PUSHGATEWAY_URL_ENV, RUNNER_SPEC_ENV

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

JOB = "tenant_runner"
#: Seconds the push may take before it is given up (the task is already done).
PUSH_TIMEOUT = 5.0

#: Every metric the runner pushes: name → help. The Grafana dashboard test checks its
#: queries against this table.
METRICS: dict[str, str] = {
    "tenant_runner_rows_loaded": "Rows loaded into bronze by the last successful load.",
    "tenant_runner_bytes_loaded": "Arrow bytes moved by the last successful load.",
    "tenant_runner_load_seconds": "Duration of the last run of the task, in seconds.",
    "tenant_runner_watermark_timestamp_seconds": "Newest source row loaded (time cursors).",
    "tenant_runner_lag_seconds": "Newest source row to the end of the load, in seconds.",
    "tenant_runner_last_success_timestamp_seconds": "End of the last successful run.",
    "tenant_runner_last_failure_timestamp_seconds": "End of the last failed run, by exit code.",
    "tenant_runner_task_status": "1 for the exit code of the last run (0: success).",
}
LABELS = ("tenant", "table", "task")


def task_id(command: str, table: str | None, args: list[str] | None = None) -> str:
    """The planner's task id for this run: `extract_<table>`, `dbt_<layer>` or `dbt`."""
    if table:
        return f"{command}_{table}"
    args = list(args or ())
    for flag in ("--select", "-s"):
        if flag in args[:-1]:
            selected = args[args.index(flag) + 1]
            if selected.isidentifier():
                return f"{command}_{selected}"
    return command


def tenant_of(result: dict[str, Any] | None) -> str | None:
    """The tenant from the result, else from `RUNNER_SPEC` (a failed run has no result)."""
    if result and result.get("tenant"):
        return str(result["tenant"])
    try:
        tenant = json.loads(os.environ.get(RUNNER_SPEC_ENV) or "{}").get("tenant")
    except (json.JSONDecodeError, AttributeError):
        return None
    return str(tenant) if tenant else None


def watermark_timestamp(watermark: Any) -> float | None:
    """Unix time of a time watermark (ISO text); None for integer/decimal cursors."""
    if not isinstance(watermark, str):
        return None
    try:
        value = dt.datetime.fromisoformat(watermark)
    except ValueError:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.timestamp()


def build_registry(
    result: dict[str, Any] | None, code: int, seconds: float, now: float
) -> CollectorRegistry:
    """The metrics of one run, in a registry of their own (never the global one)."""
    from prometheus_client import CollectorRegistry, Gauge  # ~0.2 s: only when pushing

    registry = CollectorRegistry()

    def gauge(name: str, value: float, **labels: str) -> None:
        g = Gauge(name, METRICS[name], list(labels), registry=registry)
        (g.labels(**labels) if labels else g).set(value)

    gauge("tenant_runner_load_seconds", seconds)
    gauge("tenant_runner_task_status", 1, exit_code=str(code))
    if code:
        gauge("tenant_runner_last_failure_timestamp_seconds", now, exit_code=str(code))
        return registry
    gauge("tenant_runner_last_success_timestamp_seconds", now)
    result = result or {}
    for key in ("rows", "bytes"):
        if isinstance(result.get(key), int):
            gauge(f"tenant_runner_{key}_loaded", result[key])
    mark = watermark_timestamp(result.get("watermark"))
    if mark is not None:
        gauge("tenant_runner_watermark_timestamp_seconds", mark)
        gauge("tenant_runner_lag_seconds", max(0.0, now - mark))
    return registry


def push(
    command: str,
    table: str | None,
    result: dict[str, Any] | None,
    code: int,
    seconds: float,
    args: list[str] | None = None,
) -> None:
    """Push this run's metrics if `RUNNER_PUSHGATEWAY_URL` is set; never raises."""
    gateway = os.environ.get(PUSHGATEWAY_URL_ENV, "").strip()
    tenant = tenant_of(result)
    if not gateway or not tenant:
        return
    key = {"tenant": tenant, "table": table or "", "task": task_id(command, table, args)}
    try:
        from prometheus_client import pushadd_to_gateway

        registry = build_registry(result, code, seconds, time.time())
        pushadd_to_gateway(gateway, JOB, registry, grouping_key=key, timeout=PUSH_TIMEOUT)
    except Exception as exc:  # the task's outcome stands, whatever the gateway does
        reason = " ".join(str(exc).split())[:200]
        print(
            f"runner {command}: warning: metrics not pushed to {PUSHGATEWAY_URL_ENV}: "
            f"{type(exc).__name__}: {reason}",
            file=sys.stderr,
        )

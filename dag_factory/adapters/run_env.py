"""The env a runner gets from its task *try*, known only at execute time: Airflow's run
id and the try's OpenLineage run (values, never secrets), plus the deployment's lineage
and metrics endpoints from the worker's own env.

Why not in the plan: the plan is the same for every run (DESIGN: a pure `spec → tasks`),
these change with each run and try. Why the provider's own macro: the runner's `parent`
facet must name exactly the run Airflow's OpenLineage listener emits for the task
(`<namespace>/<dag_id>.<task_id>/<uuid7 of dag, task, try, logical date, map index>`);
computing it another way would drift from it silently.

Why forward the endpoints: every adapter gives the runner a clean env (the worker's is
not inherited), so without them the runner would send no lineage and push no metrics
under Airflow. `OPENLINEAGE_URL` is also what Airflow's provider falls back to when it
has no transport configured, so one setting serves both. The API key is a secret and is
not forwarded: a deployment that needs one passes it as a secret reference.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from datakits.contract import (
    OPENLINEAGE_ENDPOINT_ENV,
    OPENLINEAGE_URL_ENV,
    PARENT_RUN_ENV,
    PUSHGATEWAY_URL_ENV,
    RUN_ID_ENV,
)

#: Deployment endpoints (not secrets) passed from the worker's env when set.
FORWARDED_ENV = (OPENLINEAGE_URL_ENV, OPENLINEAGE_ENDPOINT_ENV, PUSHGATEWAY_URL_ENV)


def parent_run(ti: Any) -> str | None:
    """`namespace/job/run_id` of the task try's OpenLineage run; None without the
    provider (then no Airflow event exists for the runner's run to hang under)."""
    try:
        from airflow.providers.openlineage.plugins.macros import lineage_parent_id
    except ImportError:
        return None
    try:
        return lineage_parent_id(ti)
    except Exception as exc:  # lineage never fails a load: the runner's run has no parent
        logging.getLogger(__name__).warning("no OpenLineage parent run for the runner: %s", exc)
        return None


def run_env(context: Any) -> dict[str, str]:
    """`RUNNER_RUN_ID` and `RUNNER_PARENT_RUN` for the try `context` describes, and the
    endpoints of `FORWARDED_ENV` the worker has."""
    env = {name: os.environ[name] for name in FORWARDED_ENV if os.environ.get(name)}
    ti = (context or {}).get("ti")
    if ti is None:  # `execute` called outside a task run: no run to name
        return env
    env[RUN_ID_ENV] = str(ti.run_id)
    if parent := parent_run(ti):
        env[PARENT_RUN_ENV] = parent
    return env

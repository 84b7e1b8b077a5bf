"""What a person may ask of one run from Airflow's trigger form: which tables, which reloads.

Every tenant DAG carries these params (Airflow shows them in the "Trigger Dag" form; a
scheduled run takes the defaults, which change nothing):

* `tables`: the tables to load in this run; empty means every enabled table. An extract
  task whose table is not listed is *skipped*; the dbt layers still run (their trigger
  rule accepts skipped extracts), on the bronze that the skipped tables already hold.
* `full_refresh`: tables to reload from scratch. Their extract gets `--full-refresh`:
  an append or incremental table is rebuilt from every source row and its watermark is
  replaced in the same transaction as the data (`datakits.modes.plan_load`). Offered
  only for those tables: a full-refresh table is rebuilt on every run anyway.

Backfills: a source table holds only its current state, so an append or incremental
table cannot be loaded "as of" a past logical date. A backfill run loads such a table
from its watermark like any run, and says so in the task log as a warning; full-refresh
tables reload as usual. To rebuild history, trigger one run with `full_refresh`.

The options are applied in one place for every adapter: `RunOptions` is the operators'
`pre_execute` hook (it runs after templates are rendered, before `execute`), and each
adapter's operator only knows how to append arguments to its runner argv
(`RunnerArgs.add_runner_args`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

from airflow.sdk import Param
from airflow.sdk.exceptions import AirflowSkipException

from datakits.spec import LoadMode

TABLES_PARAM = "tables"
FULL_REFRESH_PARAM = "full_refresh"
#: The runner flag that asks for a reload from scratch (`runner extract --full-refresh`).
FULL_REFRESH_FLAG = "--full-refresh"

log = logging.getLogger(__name__)


class RunnerArgs(Protocol):
    """What every adapter's operator offers: more arguments for the runner's argv."""

    def add_runner_args(self, args: Sequence[str]) -> None: ...


def dag_params(tables: Sequence[str], reloadable: Sequence[str]) -> dict[str, Param]:
    """The DAG's params: multi-selects over the tenant's enabled tables, and over those a
    full reload changes (append and incremental ones: a full-refresh table is rebuilt on
    every run), offered only where there are some.

    Kept to what the form needs: Airflow deep-copies the DAG's params into every task when
    the DAG file is parsed, so each choice listed costs parse time once per task."""
    params = {
        TABLES_PARAM: Param(
            [],
            type="array",
            items={"type": "string", "enum": list(tables)},
            uniqueItems=True,
            title="Tables to load",
            description="Load only these tables in this run; leave empty to load every table.",
        )
    }
    if reloadable:
        params[FULL_REFRESH_PARAM] = Param(
            [],
            type="array",
            items={"type": "string", "enum": list(reloadable)},
            uniqueItems=True,
            title="Tables to reload from scratch",
            description=(
                "Rebuild these tables from every source row; an incremental or append "
                "table's watermark is reset in the same transaction as the data."
            ),
        )
    return params


class RunOptions:
    """The `pre_execute` hook of one extract task: skip it, or ask for a full reload."""

    def __init__(self, table: str, mode: LoadMode) -> None:
        self.table = table
        self.mode = mode

    def __call__(self, context: Any) -> None:
        params = context.get("params") or {}
        selected = list(params.get(TABLES_PARAM) or [])
        if selected and self.table not in selected:
            raise AirflowSkipException(
                f"table {self.table} is not among this run's tables ({', '.join(selected)})"
            )
        reload = self.table in (params.get(FULL_REFRESH_PARAM) or [])
        if reload and self.mode is not LoadMode.full_refresh:
            context["task"].add_runner_args((FULL_REFRESH_FLAG,))
            log.info("full reload of %s requested: its watermark is reset", self.table)
        dag_run = context.get("dag_run")
        if self._is_backfill(dag_run) and self.mode is not LoadMode.full_refresh and not reload:
            log.warning(
                "backfill run: %s is %s, loaded from its watermark, not as of the logical "
                "date (a source holds only its current rows); trigger a run with "
                "full_refresh=[%s] to rebuild it",
                self.table,
                self.mode.value,
                self.table,
            )

    @staticmethod
    def _is_backfill(dag_run: Any) -> bool:
        run_type = getattr(dag_run, "run_type", None)
        return str(getattr(run_type, "value", run_type)) == "backfill"

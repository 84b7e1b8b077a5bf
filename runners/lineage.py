"""OpenLineage run events of one runner task: START before the work, COMPLETE or FAIL
after it, sent over HTTP to a lineage backend (Marquez, OpenMetadata, ...).

Why the runner emits its own events although Airflow's OpenLineage provider emits one
per task: the provider sees an operator that starts a subprocess, a container or a pod,
and knows nothing of what it read or wrote. The runner knows: an extract's input is the
source table (namespace from the source URL *without* its credentials, e.g.
`postgres://db:5432`, name `db.schema.table`) and its output the bronze table, with the
columns and types that were loaded (`schema` facet) and the rows and Arrow bytes
(`outputStatistics`); a dbt task's outputs are the models it built. When the adapter
passes the task's own OpenLineage run as `RUNNER_PARENT_RUN` (`namespace/job/run_id`,
what the provider's `lineage_parent_id` macro renders), the runner's run names it in a
`parent` facet, so a backend shows the runner's datasets under the Airflow task.

Job namespace `tenant-runner`, job name `<tenant>.<task>` (task: the planner's task
id, `extract_<table>` / `dbt_<layer>`), run id a fresh UUID (v7) per run.

Off unless `OPENLINEAGE_URL` is set: the `openlineage-python` client would otherwise
fall back to printing events on stdout, where the runner's result line must be last.
A backend that is down or slow never fails the task: one warning line on stderr.
Nothing of an event comes from a URL's user or password part or from an error text.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datakits.contract import (
    OPENLINEAGE_API_KEY_ENV,
    OPENLINEAGE_ENDPOINT_ENV,
    OPENLINEAGE_URL_ENV,
    PARENT_RUN_ENV,
    SOURCE_URL_ENV,
    WAREHOUSE_URL_ENV,
)
from runners.metrics import task_id, tenant_of

if TYPE_CHECKING:
    from openlineage.client.event_v2 import InputDataset, OutputDataset, RunEvent

#: The job namespace of every runner event.
NAMESPACE = "tenant-runner"
#: Who produced the events (a URI, as the spec wants).
PRODUCER = "urn:tenant-runner:runner"
#: Seconds one POST may take; one retry after that (the task is waiting).
TIMEOUT = 5.0
#: Ports left out of a namespace when the URL does not name one.
_DEFAULT_PORTS = {"postgres": 5432, "mysql": 3306}
#: SQLAlchemy backend → the OpenLineage naming scheme.
_SCHEMES = {"postgresql": "postgres", "mysql": "mysql", "mariadb": "mysql"}


@dataclass
class LineageRun:
    """One task's run: its ids, and the client to send with (None: lineage is off)."""

    command: str
    table: str | None
    args: list[str] | None
    run_id: str
    client: Any = None
    parent: str | None = None
    facets: dict[str, Any] = field(default_factory=dict)


def dataset_address(url: str, table: str) -> tuple[str, str]:
    """(namespace, name) of `table` in the database `url` points at, credentials left out.

    Server databases: `postgres://host:5432`, `db.schema.table` (OpenLineage's naming
    for PostgreSQL/MySQL); file databases (SQLite, DuckDB): `sqlite:///abs/file.db` and
    the table as given."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    backend = parsed.get_backend_name()
    scheme = _SCHEMES.get(backend, backend)
    if parsed.host:
        port = parsed.port or _DEFAULT_PORTS.get(scheme)
        namespace = f"{scheme}://{parsed.host}" + (f":{port}" if port else "")
        name = ".".join(p for p in (parsed.database, table) if p)
        return namespace, name
    database = parsed.database or ""
    if database and database != ":memory:":
        database = str(Path(database).resolve())
    return f"{scheme}://{database}" if database else scheme, table


def _env_url(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def _parent_facet(parent: str | None) -> dict[str, Any]:
    """`namespace/job/run_id` → the `parent` run facet; nothing for anything else."""
    if not parent or parent.count("/") < 2:
        return {}
    from openlineage.client.facet_v2 import parent_run

    namespace, _, rest = parent.partition("/")
    job, _, run_id = rest.rpartition("/")
    if not (namespace and job and run_id):
        return {}
    return {
        "parent": parent_run.ParentRunFacet(
            run=parent_run.Run(runId=run_id),
            job=parent_run.Job(namespace=namespace, name=job),
        )
    }


def _extract_datasets(
    result: dict[str, Any],
) -> tuple[list[InputDataset], list[OutputDataset]]:
    from openlineage.client.event_v2 import InputDataset, OutputDataset
    from openlineage.client.facet_v2 import output_statistics_output_dataset as stats
    from openlineage.client.facet_v2 import schema_dataset

    inputs, outputs = [], []
    source, warehouse = _env_url(SOURCE_URL_ENV), _env_url(WAREHOUSE_URL_ENV)
    fields = [
        schema_dataset.SchemaDatasetFacetFields(name=name, type=kind)
        for name, kind in (result.get("columns") or {}).items()
    ]
    schema = {"schema": schema_dataset.SchemaDatasetFacet(fields=fields)} if fields else {}
    if source and result.get("source_table"):
        namespace, name = dataset_address(source, result["source_table"])
        inputs.append(InputDataset(namespace=namespace, name=name, facets=dict(schema)))
    if warehouse and result.get("target"):
        namespace, name = dataset_address(warehouse, result["target"])
        statistics = stats.OutputStatisticsOutputDatasetFacet(
            rowCount=int(result.get("rows") or 0), size=int(result.get("bytes") or 0)
        )
        outputs.append(
            OutputDataset(
                namespace=namespace,
                name=name,
                facets=dict(schema),
                outputFacets={"outputStatistics": statistics},
            )
        )
    return inputs, outputs


def _dbt_datasets(result: dict[str, Any]) -> list[OutputDataset]:
    from openlineage.client.event_v2 import OutputDataset

    warehouse = _env_url(WAREHOUSE_URL_ENV)
    if not warehouse:
        return []
    return [
        OutputDataset(*dataset_address(warehouse, model)) for model in result.get("models") or ()
    ]


def _client() -> Any:
    """An HTTP client for `OPENLINEAGE_URL`, or None when it is not set."""
    url = _env_url(OPENLINEAGE_URL_ENV)
    if not url:
        return None
    from openlineage.client import OpenLineageClient
    from openlineage.client.transport.http import HttpConfig, HttpTransport

    config: dict[str, Any] = {
        "url": url,
        "endpoint": os.environ.get(OPENLINEAGE_ENDPOINT_ENV) or "api/v1/lineage",
        "timeout": TIMEOUT,
        "retry": {"total": 1, "backoff_factor": 0.2},
    }
    if api_key := os.environ.get(OPENLINEAGE_API_KEY_ENV):
        config["auth"] = {"type": "api_key", "apiKey": api_key}
    return OpenLineageClient(transport=HttpTransport(HttpConfig.from_dict(config)))


def _send(run: LineageRun, event: RunEvent) -> None:
    try:
        run.client.emit(event)
    except Exception as exc:  # the task's outcome stands, whatever the backend does
        reason = " ".join(str(exc).split())[:200]
        print(
            f"runner {run.command}: warning: lineage not sent to {OPENLINEAGE_URL_ENV}: "
            f"{type(exc).__name__}: {reason}",
            file=sys.stderr,
        )
        run.client = None  # one warning per task, not one per event


def _event(run: LineageRun, state: str, tenant: str, **parts: Any) -> RunEvent:
    from openlineage.client.event_v2 import Job, Run, RunEvent, RunState

    return RunEvent(
        eventType=RunState[state],
        eventTime=dt.datetime.now(dt.UTC).isoformat(),
        run=Run(runId=run.run_id, facets=dict(run.facets)),
        job=Job(namespace=NAMESPACE, name=f"{tenant}.{task_id(run.command, run.table, run.args)}"),
        producer=PRODUCER,
        **parts,
    )


def start(command: str, table: str | None = None, args: list[str] | None = None) -> LineageRun:
    """Begin the task's run: a START event when lineage is on; never raises."""
    run = LineageRun(command, table, args, run_id="")
    try:
        run.client = _client()
        if run.client is None:
            return run
        from openlineage.client.facet_v2 import set_producer
        from openlineage.client.uuid import generate_new_uuid

        set_producer(PRODUCER)
        run.run_id = str(generate_new_uuid())
        run.parent = os.environ.get(PARENT_RUN_ENV) or None
        run.facets = _parent_facet(run.parent)
        tenant = tenant_of(None)
        if tenant:
            _send(run, _event(run, "START", tenant))
        else:
            run.client = None
    except Exception as exc:
        print(f"runner {command}: warning: lineage is off: {exc}", file=sys.stderr)
        run.client = None
    return run


def finish(run: LineageRun, result: dict[str, Any] | None, code: int) -> None:
    """End the task's run: COMPLETE with its datasets, or FAIL with its exit code."""
    if run.client is None:
        return
    try:
        tenant = tenant_of(result)
        if not tenant:
            return
        if code:
            from openlineage.client.facet_v2 import error_message_run

            run.facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
                message=f"runner {run.command} exited with code {code}",
                programmingLanguage="python",
            )
            _send(run, _event(run, "FAIL", tenant))
            return
        inputs: list[Any] = []
        outputs: list[Any] = []
        if run.command == "extract":
            inputs, outputs = _extract_datasets(result or {})
        elif run.command == "dbt":
            outputs = _dbt_datasets(result or {})
        _send(run, _event(run, "COMPLETE", tenant, inputs=inputs, outputs=outputs))
    except Exception as exc:
        print(f"runner {run.command}: warning: lineage not sent: {exc}", file=sys.stderr)

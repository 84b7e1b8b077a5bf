"""Keep each `runner dbt` run's `manifest.json` and `run_results.json` (issue 14, contract D).

They go to `<meta>.dbt_artifacts` in the tenant's warehouse, the schema that already
holds the load audit, so lineage and docs can be published from the warehouse later
without a shared artifacts folder. One row per run and artifact kind:
`run_id` (`RUNNER_RUN_ID` when the adapter sets it, else a uuid), `created_at`, `kind`
(`manifest` | `run_results`), `sha256`, `body` (the JSON text).

A manifest is stored once per sha256: a run whose manifest is already there gets a row
with its sha256 and no body (the link from the run to the stored text). To make that
possible the manifest is normalised first: the path of the run's temp project copy
becomes the project path the runner was given, and the hash ignores the metadata that
changes every run (ids and times) and each resource's `created_at`, else no two manifests would
ever hash the same.

Neither artifact holds credentials: the profile's values are `env_var()` lookups dbt
does not write out, and dbt's run_results `args` are the command's flags (checked by
the tests). Storing is best effort: a warehouse that refuses the rows warns on stderr
and never fails a run whose models built.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import sys
import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Column, DateTime, MetaData, Table, Text, insert, select
from sqlalchemy.schema import CreateSchema

from datakits.contract import RUN_ID_ENV
from datakits.spec import LoadSpec
from datakits.urls import engine_url, make_engine

TABLE = "dbt_artifacts"
#: Manifest metadata that differs in every run of the same project.
_VOLATILE = ("generated_at", "invocation_id", "invocation_started_at", "run_started_at")
#: The per-resource key holding the parse's clock time (every node, macro, source).
_CREATED = "created_at"
#: Warehouse kinds whose meta schema is a SQLAlchemy database (the lakehouse's is not).
_KINDS = ("duckdb", "postgres")


def artifacts_table(schema: str) -> Table:
    """`<schema>.dbt_artifacts` (defined, not created)."""
    return Table(
        TABLE,
        MetaData(schema=schema),
        Column("run_id", Text, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("kind", Text, nullable=False),
        Column("sha256", Text, nullable=False),
        Column("body", Text),
    )


def normalise(text: str, work_dir: str, project: str) -> str:
    """The artifact with the run's temp dir replaced by the project path it came from."""
    return text.replace(f"{work_dir}/project", project).replace(work_dir, ".")


def _stable(value: Any) -> Any:
    """`value` without the `created_at` stamps dbt puts on every resource it parses."""
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if k != _CREATED}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


def manifest_sha256(text: str) -> str:
    """The manifest's hash without what changes every run: the run's metadata (ids and
    times) and each resource's parse time."""
    doc = json.loads(text)
    metadata = doc.get("metadata") or {}
    for key in _VOLATILE:
        metadata.pop(key, None)
    return hashlib.sha256(json.dumps(_stable(doc), sort_keys=True).encode()).hexdigest()


def run_id() -> str:
    return os.environ.get(RUN_ID_ENV) or str(uuid.uuid4())


def store_artifacts(spec: LoadSpec, warehouse_url: str, artifacts: Mapping[str, str]) -> None:
    """Insert the run's artifacts; warn (never raise) when the warehouse refuses them."""
    if not artifacts:
        return
    if spec.warehouse.kind not in _KINDS:
        print(
            f"runner dbt: dbt artifacts not kept: a {spec.warehouse.kind} warehouse has no "
            "SQL meta schema",
            file=sys.stderr,
        )
        return
    try:
        _insert(spec.warehouse.schemas.meta, warehouse_url, artifacts)
    except Exception as exc:  # the models built: the artifacts are a record, not the job
        line = " ".join(str(exc).split())[:300]
        print(f"runner dbt: dbt artifacts not kept: {type(exc).__name__}: {line}", file=sys.stderr)


def _release_duckdb() -> None:
    """Close the DuckDB connection dbt-duckdb keeps for the process (it closes it only at
    exit), so this process can open the file with SQLAlchemy: DuckDB refuses a second
    connection to one file with another configuration."""
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    except ImportError:
        return
    env = DuckDBConnectionManager._ENV
    DuckDBConnectionManager.close_all_connections()
    if env is not None:
        env.close()


def _insert(schema: str, warehouse_url: str, artifacts: Mapping[str, str]) -> None:
    _release_duckdb()
    table = artifacts_table(schema)
    now = dt.datetime.now(dt.UTC)
    run = run_id()
    engine = make_engine(engine_url(warehouse_url))
    try:
        with engine.begin() as conn:
            conn.execute(CreateSchema(schema, if_not_exists=True))
            table.create(conn, checkfirst=True)
            rows = []
            for kind, text in artifacts.items():
                if kind == "manifest":
                    digest = manifest_sha256(text)
                    stored = conn.execute(
                        select(table.c.run_id)
                        .where(table.c.kind == kind, table.c.sha256 == digest)
                        .where(table.c.body.is_not(None))
                        .limit(1)
                    ).first()
                    body = None if stored else text
                else:
                    digest, body = hashlib.sha256(text.encode()).hexdigest(), text
                rows.append(
                    {"run_id": run, "created_at": now, "kind": kind, "sha256": digest, "body": body}
                )
            conn.execute(insert(table), rows)
    finally:
        engine.dispose()

"""Checks that read Airflow: connection references and the tenant's pool.

Everything here may import Airflow (~5 s the first time, and not safe to import from two
threads at once), so the doctor runs these calls one after another on one thread of
their own while the network checks that do not need Airflow proceed.
"""

from __future__ import annotations

from dag_factory.doctor.findings import Finding, Status, finding
from dag_factory.secrets import SecretResolutionError, resolve
from datakits import kinds
from datakits.messages import reason
from datakits.spec import ConnectionRef


def _example_url(kind: str) -> str:
    """A URL of `kind` to show in a fix (`export X=<this>`), from the kind's registry entry."""
    entry = kinds.SOURCES.get(kind) or kinds.WAREHOUSES.get(kind)
    return (entry.example_url if entry else "") or "<SQLAlchemy URL>"


def airflow_conn_env(conn_id: str) -> str:
    """The env var Airflow reads a connection from (`AIRFLOW_CONN_<ID>`)."""
    return "AIRFLOW_CONN_" + conn_id.upper()


def resolve_ref(
    tenant: str, field: str, ref: ConnectionRef, kind: str
) -> tuple[str | None, Finding]:
    """The URL of `ref` (None if it does not resolve) and the finding that says so.

    `field` is the tenant file's field (`source.connection`), so the fix names it."""
    example = _example_url(kind)
    try:
        url = resolve(ref)
    except SecretResolutionError as exc:
        if ref.env is not None:
            message = f"{field}.env {ref.env} is not set: export {ref.env}={example}"
        else:
            conn_id = ref.airflow_conn
            message = (
                f"{field}.airflow_conn {conn_id}: {exc}: define it with "
                f"`airflow connections add {conn_id} --conn-uri {example}` "
                f"or export {airflow_conn_env(conn_id or '')}={example}"
            )
        return None, Finding(tenant, "connection", Status.problem, message)
    where = f"env {ref.env}" if ref.env else f"Airflow connection {ref.airflow_conn}"
    return url, Finding(tenant, "connection", Status.ok, f"{field} resolves ({where})")


def check_pool(tenant: str, pool: str | None) -> Finding:
    """The tenant's pool exists in Airflow's metadata DB (a task in a missing pool never
    runs: it waits in `scheduled` for ever)."""
    if pool is None:
        return Finding(tenant, "pool", Status.ok, "no pool set: tasks use default_pool")
    try:
        from airflow.models.pool import Pool  # the worker's Airflow, its metadata DB

        found = Pool.get_pool(pool)
    except Exception as exc:  # no DB, not migrated, refused: say so, in one line
        return Finding(
            tenant,
            "pool",
            Status.problem,
            f"pool {pool}: cannot read Airflow's metadata DB ({reason(exc)}): run "
            "`airflow db migrate`, or run the doctor with the workers' AIRFLOW_HOME",
        )
    return finding(
        tenant,
        "pool",
        None if found else f"pool {pool} does not exist in Airflow: run `dag-factory pools`",
        f"pool {pool} exists ({found.slots if found else 0} slots)",
    )

"""Resolve connection references into URLs when a task runs — never when a DAG is parsed.

An `env` reference reads the worker's environment; an `airflow_conn` reference reads an
Airflow connection (from the metadata DB, a secrets backend, or `AIRFLOW_CONN_<ID>`)
and turns it into the SQLAlchemy URL the runner expects.
"""

from __future__ import annotations

import os

from sqlalchemy.engine import URL

from datakits.spec import ConnectionRef

#: Airflow conn_type → SQLAlchemy driver name for the server databases the runner speaks.
_SERVER_DRIVERS = {
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mysql+pymysql",
}
#: File databases: the connection's host (or schema) is the file path.
_FILE_DRIVERS = {"sqlite": "sqlite", "duckdb": "duckdb"}


class SecretResolutionError(RuntimeError):
    """The reference cannot be resolved on this worker; the message says which and why."""


def connection_url(
    conn_type: str,
    *,
    host: str | None,
    port: int | None,
    login: str | None,
    password: str | None,
    schema: str | None,
) -> str:
    """The SQLAlchemy URL of an Airflow connection's fields (password kept, never logged)."""
    if conn_type in _FILE_DRIVERS:
        return URL.create(_FILE_DRIVERS[conn_type], database=host or schema).render_as_string(
            hide_password=False
        )
    if conn_type not in _SERVER_DRIVERS:
        known = ", ".join(sorted({*_SERVER_DRIVERS, *_FILE_DRIVERS}))
        raise SecretResolutionError(f"connection type {conn_type!r} is not supported ({known})")
    return URL.create(
        _SERVER_DRIVERS[conn_type],
        username=login or None,
        password=password or None,
        host=host or None,
        port=port or None,
        database=schema or None,
    ).render_as_string(hide_password=False)


def resolve(ref: ConnectionRef) -> str:
    if ref.env is not None:
        value = os.environ.get(ref.env)
        if not value:
            raise SecretResolutionError(f"env var {ref.env} is not set on this worker")
        return value
    from airflow.sdk import BaseHook  # run time only: parsing never reads a connection

    try:
        conn = BaseHook.get_connection(ref.airflow_conn)
    except Exception as exc:  # Airflow raises its own not-found type per version
        raise SecretResolutionError(
            f"Airflow connection {ref.airflow_conn!r} cannot be read: {exc}"
        ) from None
    return connection_url(
        conn.conn_type,
        host=conn.host,
        port=conn.port,
        login=conn.login,
        password=conn.password,
        schema=conn.schema,
    )

"""Resolve connection references into URLs when a task runs — never when a DAG is parsed.

An `env` reference reads the worker's environment; an `airflow_conn` reference reads an
Airflow connection (from the metadata DB, a secrets backend, or `AIRFLOW_CONN_<ID>`)
and turns it into the SQLAlchemy URL the runner expects: the driver comes from the kind
registry (`datakits.kinds`, by the connection's type), the connection's extras
(`sslmode`, `sslrootcert`, ...) become the URL's query, as in Airflow's own
`Connection.get_uri()`.
"""

from __future__ import annotations

import os
from typing import Any

from sqlalchemy.engine import URL

from datakits import kinds
from datakits.spec import ConnectionRef


class SecretResolutionError(RuntimeError):
    """The reference cannot be resolved on this worker; the message says which and why."""


def _query(extra: dict[str, Any] | None) -> dict[str, str]:
    """Scalar extras as URL query parameters; nested values have no URL form."""
    query = {}
    for key, value in (extra or {}).items():
        if isinstance(value, dict | list):
            raise SecretResolutionError(
                f"connection extra {key!r} is not a plain value: it cannot go into a URL"
            )
        if value is not None:
            query[key] = str(value).lower() if isinstance(value, bool) else str(value)
    return query


def connection_url(
    conn_type: str,
    *,
    host: str | None,
    port: int | None,
    login: str | None,
    password: str | None,
    schema: str | None,
    extra: dict[str, Any] | None = None,
) -> str:
    """The SQLAlchemy URL of an Airflow connection's fields (password kept, never logged)."""
    kind = kinds.kind_for_conn_type(conn_type)
    if kind is None:
        known = ", ".join(kinds.conn_types())
        raise SecretResolutionError(f"connection type {conn_type!r} is not supported ({known})")
    if kind.file_based:  # the connection's host (or schema) is the file path
        url = URL.create(kind.driver, database=host or schema, query=_query(extra))
    else:
        url = URL.create(
            kind.driver,
            username=login or None,
            password=password or None,
            host=host or None,
            port=port or None,
            database=schema or None,
            query=_query(extra),
        )
    return url.render_as_string(hide_password=False)


def resolve(ref: ConnectionRef, *, field: str = "connection") -> str:
    """The URL `ref` points at. `field` is the tenant file's field holding the reference
    (`source.connection`), so an error says where to look."""
    if ref.env is not None:
        value = os.environ.get(ref.env)
        if not value:
            raise SecretResolutionError(
                f"env var {ref.env} (named by {field} in the tenant file) is not set on this worker"
            )
        return value
    from airflow.sdk import BaseHook  # run time only: parsing never reads a connection

    try:
        conn = BaseHook.get_connection(ref.airflow_conn)
    except Exception as exc:  # Airflow raises its own not-found type per version
        raise SecretResolutionError(
            f"Airflow connection {ref.airflow_conn!r} (named by {field} in the tenant file) "
            f"cannot be read: {exc}"
        ) from None
    return connection_url(
        conn.conn_type,
        host=conn.host,
        port=conn.port,
        login=conn.login,
        password=conn.password,
        schema=conn.schema,
        extra=conn.extra_dejson,
    )

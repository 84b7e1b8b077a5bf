"""Checks that connect: the source and its tables, and the warehouse.

Tables are checked with datakits' own source readers (the ones the extract task uses),
so a missing table or column is reported in the runner's own words, reflected through
SQLAlchemy: no SQL is written here. Every connection is time-boxed (`CONNECT_TIMEOUT`).
"""

from __future__ import annotations

import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy import URL

from dag_factory.doctor.findings import Finding, Status
from dag_factory.spec import TenantSpec, TenantTable
from datakits.errors import DatakitsError, SourceUnavailable
from datakits.kinds import warehouse_kind
from datakits.sources import reader_for
from datakits.urls import connect, make_engine, parse_url, require_backend, safe
from datakits.writers import writer_class

#: Seconds to wait for a server before calling it unreachable (the runner waits longer).
CONNECT_TIMEOUT = 5
#: Tables reflected at once (one connection each).
TABLE_WORKERS = 8
_SERVER_BACKENDS = ("postgresql", "mysql", "mariadb")


def timeboxed(raw: str) -> URL:
    """The URL with a connect timeout, for the server databases (libpq and PyMySQL read
    `connect_timeout` from the URL's query)."""
    url = parse_url(raw)
    if url.get_backend_name() in _SERVER_BACKENDS and "connect_timeout" not in url.query:
        url = url.update_query_dict({"connect_timeout": str(CONNECT_TIMEOUT)})
    return url


def _named_columns(table: TenantTable) -> list[tuple[str, str]]:
    """(field, column) for every column the spec names besides `columns:` (which the
    reader checks itself): the cursor, the primary key, the filters."""
    named = [("cursor", table.cursor)] if table.cursor else []
    named += [("primary_key", name) for name in table.primary_key or ()]
    named += [(f"filter[{i}].column", f.column) for i, f in enumerate(table.filter)]
    return named


def _check_table(tenant: str, spec: TenantSpec, index: int, url: URL) -> Finding:
    """Open the table with the extract's reader (reflect only, no row read)."""
    table = spec.tables[index]
    field = f"tables[{index}]"
    reader = reader_for(spec.source, table.load_part(), url)
    if hasattr(reader, "use_copy"):
        reader.use_copy = False  # reads no rows: no COPY connection either
    with reader:
        have = set(reader.source_table.columns.keys())
        for part, column in _named_columns(table):
            if column not in have:
                return Finding(
                    tenant,
                    "table",
                    Status.problem,
                    f"{field}.{part} {column}: source table {reader.qualified_name} has no "
                    f"column {column} (columns: {', '.join(sorted(have))}): fix `{part}` or "
                    "add the column at the source",
                )
    columns = len(table.columns) if table.columns else len(have)
    return Finding(
        tenant, "table", Status.ok, f"{field} {reader.qualified_name} ({columns} columns read)"
    )


def _table_or_problem(tenant: str, spec: TenantSpec, index: int, url: URL) -> Finding:
    try:
        return _check_table(tenant, spec, index, url)
    except SourceUnavailable:
        raise
    except DatakitsError as exc:  # missing table or column, in the reader's words
        field = f"tables[{index}]"
        return Finding(
            tenant, "table", Status.problem, f"{field}: {exc}: fix the spec or the source"
        )


def check_source(tenant: str, spec: TenantSpec, raw_url: str) -> list[Finding]:
    """The source is reachable and every enabled table exists with the columns named."""
    indexes = [i for i, t in enumerate(spec.tables) if t.enabled]
    try:
        url = timeboxed(raw_url)
        # The first table also proves the source reachable; the others then go in parallel.
        first = _table_or_problem(tenant, spec, indexes[0], url)
        with ThreadPoolExecutor(max_workers=TABLE_WORKERS) as pool:
            rest = list(pool.map(lambda i: _table_or_problem(tenant, spec, i, url), indexes[1:]))
    except DatakitsError as exc:  # unreachable, refused, or a URL of the wrong kind
        message = f"source.connection: {exc}: {_fix(spec.source.kind)}"
        return [Finding(tenant, "source", Status.problem, message)]
    reached = Finding(tenant, "source", Status.ok, f"source {safe(url)} is reachable")
    return [reached, first, *rest]


def _fix(kind: str) -> str:
    if kind == "sqlite":  # a file, not a server
        return "fix the URL or create the database file"
    return "start the server or fix the connection"


def _duckdb_folder_problem(database: str | None) -> str | None:
    """Why the runner could not create or write the DuckDB file, or None."""
    if not database or database == ":memory:":
        return None
    path = Path(database).absolute()
    if path.exists() and not path.is_file():
        return f"the DuckDB warehouse {path} is not a file"
    existing = path.parent
    while not existing.exists():  # the runner creates the missing folders
        existing = existing.parent
    if not existing.is_dir():
        return f"the DuckDB folder {path.parent} cannot be created: {existing} is a file"
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        return f"the DuckDB folder {existing} is not writable ({exc.strerror})"
    return None


def check_warehouse(tenant: str, spec: TenantSpec, raw_url: str) -> Finding:
    """A server warehouse accepts a connection; a DuckDB file's folder is writable."""
    kind = spec.warehouse.kind
    backend = getattr(writer_class(kind), "backend", None)
    if backend is None:  # not an SQLAlchemy database (e.g. a lakehouse's object store)
        return Finding(
            tenant,
            "warehouse",
            Status.skipped,
            f"no reachability check for a {kind.value} warehouse yet: its first load will tell",
        )
    try:
        url = timeboxed(raw_url)
        require_backend(url, backend, "warehouse")
        if warehouse_kind(kind.value).file_based:
            problem = _duckdb_folder_problem(url.database)
            if problem:
                return Finding(
                    tenant,
                    "warehouse",
                    Status.problem,
                    f"warehouse.connection: {problem}: point the URL at a writable folder",
                )
            return Finding(
                tenant, "warehouse", Status.ok, f"DuckDB file {url.database} is writable"
            )
        engine = make_engine(url)
        try:
            connect(engine, "warehouse").close()
        finally:
            engine.dispose()
    except DatakitsError as exc:
        return Finding(
            tenant,
            "warehouse",
            Status.problem,
            f"warehouse.connection: {exc}: {_fix(kind)}",
        )
    return Finding(tenant, "warehouse", Status.ok, f"warehouse {safe(url)} is reachable")

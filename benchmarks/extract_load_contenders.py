"""The baselines of `extract_load.py`, each run in a child process of its own.

`python benchmarks/extract_load_contenders.py NAME --src URL --dst URL --table T --rows N`
copies table T from the PostgreSQL `--src` into `--dst` (a PostgreSQL URL or a DuckDB
file path) the way contender NAME does it, and prints one JSON line: the seconds of the
transfer itself (imports and process start excluded, which favours the baselines: our
runner is timed as a whole process) and the rows it holds at the end.

A child per contender gives each its own peak RSS (the parent reads it with `wait4`) and
keeps one library's state (dlt's, connectorx's threads) from touching another's run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

#: The columns of the benchmark table, as PostgreSQL and DuckDB declare them.
PG_COLUMNS = (
    "id bigint, customer_id integer, status text, amount numeric(12,2), currency char(3), "
    "created_at timestamptz, updated_at timestamptz, note text, attrs jsonb"
)
DUCKDB_CSV_COLUMNS = {
    "id": "BIGINT",
    "customer_id": "INTEGER",
    "status": "VARCHAR",
    "amount": "DECIMAL(12,2)",
    "currency": "VARCHAR",
    "created_at": "TIMESTAMPTZ",
    "updated_at": "TIMESTAMPTZ",
    "note": "VARCHAR",
    "attrs": "JSON",
}


def _libpq(url: str) -> str:
    """A SQLAlchemy URL (`postgresql+psycopg://…`) as a libpq URI."""
    scheme, _, rest = url.partition("://")
    return f"postgresql://{rest}" if scheme.startswith("postgres") else url


def _with_password(uri: str) -> str:
    """dlt insists on a password; a trust-auth server ignores the one we make up."""
    scheme, _, rest = uri.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not at or ":" in userinfo:
        return uri
    return f"{scheme}://{userinfo}:unused@{host}"


def _select(table: str, limit: int | None) -> sql.Composed:
    query = sql.SQL("SELECT * FROM {}").format(sql.Identifier(table))
    if limit is not None:
        query = sql.SQL("{} ORDER BY id LIMIT {}").format(query, sql.Literal(limit))
    return query


def _pg_count(dst: str, table: str, schema: str | None = None) -> int:
    with psycopg.connect(_libpq(dst)) as conn:
        ident = sql.Identifier(schema, table) if schema else sql.Identifier(table)
        row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(ident)).fetchone()
        return int(row[0]) if row else 0


def _duck_count(path: str, table: str, schema: str | None = None) -> int:
    import duckdb

    with duckdb.connect(path) as conn:
        name = f'"{schema}"."{table}"' if schema else f'"{table}"'
        row = conn.execute(f"SELECT count(*) FROM {name}").fetchone()
        return int(row[0]) if row else 0


# --- PostgreSQL → PostgreSQL ---------------------------------------------------------------


def copy_limit(args: argparse.Namespace) -> dict[str, Any]:
    """psycopg COPY … TO STDOUT (FORMAT BINARY) streamed into COPY … FROM STDIN (BINARY)."""
    target = sql.Identifier(f"{args.table}_limit")
    with psycopg.connect(_libpq(args.src)) as src, psycopg.connect(_libpq(args.dst)) as dst:
        dst.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(target))
        dst.commit()
        started = time.perf_counter()
        dst.execute(sql.SQL("CREATE TABLE {} ({})").format(target, sql.SQL(PG_COLUMNS)))
        out = sql.SQL("COPY ({}) TO STDOUT (FORMAT BINARY)").format(_select(args.table, None))
        into = sql.SQL("COPY {} FROM STDIN (FORMAT BINARY)").format(target)
        with src.cursor().copy(out) as reader, dst.cursor().copy(into) as writer:
            for data in reader:
                writer.write(data)
        dst.commit()
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "rows": _pg_count(args.dst, f"{args.table}_limit")}


def pandas_pg(args: argparse.Namespace) -> dict[str, Any]:
    return _pandas(args, args.dst)


def pandas_duckdb(args: argparse.Namespace) -> dict[str, Any]:
    return _pandas(args, f"duckdb:///{args.dst}")


def _pandas(args: argparse.Namespace, dst_url: str) -> dict[str, Any]:
    """What a team writes by hand: read_sql, then to_sql (on a slice: it takes minutes)."""
    import pandas as pd
    from sqlalchemy import create_engine
    from sqlalchemy.dialects.postgresql import JSONB

    src, dst = create_engine(args.src), create_engine(dst_url)
    started = time.perf_counter()
    frame = pd.read_sql_query(_select(args.table, args.slice).as_string(), src)
    # psycopg cannot adapt the dicts read from jsonb: the one line a team adds for it.
    dtype = {"attrs": JSONB} if dst_url.startswith("postgres") else None
    frame.to_sql(f"{args.table}_pandas", dst, if_exists="replace", index=False, dtype=dtype)
    seconds = time.perf_counter() - started
    src.dispose()
    dst.dispose()
    return {"seconds": seconds, "rows": len(frame)}


# --- dlt -----------------------------------------------------------------------------------


def _dlt(args: argparse.Namespace, backend: str, file_format: str | None) -> dict[str, Any]:
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    import dlt
    from dlt.sources.sql_database import sql_table

    is_duckdb = not args.dst.startswith("postgres")
    destination = (
        dlt.destinations.duckdb(credentials=args.dst)
        if is_duckdb
        else dlt.destinations.postgres(credentials=_with_password(_libpq(args.dst)))
    )
    work = tempfile.mkdtemp(prefix="dlt-bench-")
    pipeline = dlt.pipeline(
        pipeline_name=f"bench_{backend}",
        destination=destination,
        dataset_name="dlt_bronze",
        pipelines_dir=work,
    )
    started = time.perf_counter()
    resource = sql_table(credentials=args.src, table=args.table, backend=backend)
    info = pipeline.run(resource, write_disposition="replace", loader_file_format=file_format)
    seconds = time.perf_counter() - started
    info.raise_on_failed_jobs()
    counter = _duck_count if is_duckdb else _pg_count
    return {"seconds": seconds, "rows": counter(args.dst, args.table, "dlt_bronze")}


def dlt_pyarrow_parquet(args: argparse.Namespace) -> dict[str, Any]:
    return _dlt(args, "pyarrow", "parquet")


def dlt_connectorx_parquet(args: argparse.Namespace) -> dict[str, Any]:
    return _dlt(args, "connectorx", "parquet")


def dlt_pyarrow_csv(args: argparse.Namespace) -> dict[str, Any]:
    return _dlt(args, "pyarrow", "csv")


def dlt_default(args: argparse.Namespace) -> dict[str, Any]:
    return _dlt(args, "sqlalchemy", None)


# --- PostgreSQL → DuckDB ------------------------------------------------------------------


def _fresh_duckdb(path: str) -> Any:
    import duckdb

    for stale in (Path(path), Path(f"{path}.wal")):
        stale.unlink(missing_ok=True)
    return duckdb.connect(path)


def adbc_duckdb(args: argparse.Namespace) -> dict[str, Any]:
    """The ADBC PostgreSQL driver's record-batch reader, streamed into DuckDB."""
    import adbc_driver_postgresql.dbapi as adbc

    duck = _fresh_duckdb(args.dst)
    started = time.perf_counter()
    with adbc.connect(_libpq(args.src)) as conn, conn.cursor() as cursor:
        cursor.execute(_select(args.table, None).as_string())
        reader = cursor.fetch_record_batch()
        duck.register("source_stream", reader)
        duck.execute(f'CREATE TABLE "{args.table}" AS SELECT * FROM source_stream')
    seconds = time.perf_counter() - started
    duck.close()
    return {"seconds": seconds, "rows": _duck_count(args.dst, args.table)}


def connectorx_duckdb(args: argparse.Namespace) -> dict[str, Any]:
    """connectorx reads the whole table into Arrow; DuckDB creates the table from it."""
    import connectorx as cx

    duck = _fresh_duckdb(args.dst)
    started = time.perf_counter()
    table = cx.read_sql(
        _libpq(args.src), _select(args.table, None).as_string(), return_type="arrow"
    )
    duck.register("source_table", table)
    duck.execute(f'CREATE TABLE "{args.table}" AS SELECT * FROM source_table')
    seconds = time.perf_counter() - started
    duck.close()
    return {"seconds": seconds, "rows": _duck_count(args.dst, args.table)}


def csv_duckdb(args: argparse.Namespace) -> dict[str, Any]:
    """COPY … TO STDOUT (FORMAT CSV) into a temporary file, read by DuckDB's CSV reader."""
    duck = _fresh_duckdb(args.dst)
    fd, path = tempfile.mkstemp(prefix="bench-", suffix=".csv")
    started = time.perf_counter()
    try:
        out = sql.SQL("COPY ({}) TO STDOUT (FORMAT CSV)").format(_select(args.table, None))
        with (
            psycopg.connect(_libpq(args.src)) as src,
            src.cursor().copy(out) as reader,
            os.fdopen(fd, "wb") as file,
        ):
            for data in reader:
                file.write(data)
        duck.execute(
            f'CREATE TABLE "{args.table}" AS SELECT * FROM read_csv(?, header = false, '
            "columns = ?)",
            [path, DUCKDB_CSV_COLUMNS],
        )
        seconds = time.perf_counter() - started
    finally:
        Path(path).unlink(missing_ok=True)
    duck.close()
    return {"seconds": seconds, "rows": _duck_count(args.dst, args.table)}


CONTENDERS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "copy-limit": copy_limit,
    "pandas-pg": pandas_pg,
    "pandas-duckdb": pandas_duckdb,
    "dlt-pyarrow-parquet": dlt_pyarrow_parquet,
    "dlt-connectorx-parquet": dlt_connectorx_parquet,
    "dlt-pyarrow-csv": dlt_pyarrow_csv,
    "dlt-default": dlt_default,
    "adbc-duckdb": adbc_duckdb,
    "connectorx-duckdb": connectorx_duckdb,
    "csv-duckdb": csv_duckdb,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=sorted(CONTENDERS))
    parser.add_argument("--src", required=True, help="source PostgreSQL SQLAlchemy URL")
    parser.add_argument("--dst", required=True, help="PostgreSQL URL or DuckDB file path")
    parser.add_argument("--table", default="orders")
    parser.add_argument("--slice", type=int, default=None, help="rows to read (pandas)")
    args = parser.parse_args(argv)
    result = CONTENDERS[args.name](args)
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()

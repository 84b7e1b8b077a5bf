"""The lakehouse baseline of `extract_load.py`: PostgreSQL → one Parquet file on S3.

    python benchmarks/extract_load_lake_baseline.py --src URL --dst S3_URL --table T \
        --parquet '{"compression": "snappy", ..., "row_group_size": 1048576}'

What a team writes without a table format: the ADBC PostgreSQL driver's record batches
(`SELECT * FROM T`, the driver's own types) written with pyarrow's `ParquetWriter` into
one object on the S3 server (pyarrow's S3 file system, path-style, background part
uploads): no Delta log, no commit, no watermark, no type checks. It is the fastest way
to move the table into Parquet on S3 we know, and it is kept as lean as we would write
it ourselves, so that timing it as a whole process does not handicap it:

* its own script, importing only pyarrow and the ADBC driver (the DB-API module is
  skipped: it imports `pyarrow.dataset`; the low-level API is the same driver);
* the Parquet options and row-group size come from the parent (`--parquet`, our
  writer's `PARQUET_OPTIONS`), so both sides encode alike without this process importing
  `datakits` (SQLAlchemy, pydantic).

Prints one JSON line: `seconds` (connect to close, imports and start-up excluded: the
in-process figure) and the rows the written file holds. The parent times the whole
process as well (`extract_load.py`, `Bench.baseline`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from urllib.parse import parse_qs, unquote, urlsplit

import adbc_driver_manager
import adbc_driver_postgresql
import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import fs


def _file_system(dst: str) -> tuple[fs.S3FileSystem, str]:
    """`s3://KEY:SECRET@host:port/BUCKET?region=..&secure=..` → (file system, bucket)."""
    url = urlsplit(dst)
    query = {k: v[-1] for k, v in parse_qs(url.query).items()}
    secure = query.get("secure", "true").lower() not in ("false", "0", "no")
    host = f"{url.hostname}:{url.port}" if url.port else url.hostname
    s3 = fs.S3FileSystem(
        access_key=unquote(url.username) if url.username else None,
        secret_key=unquote(url.password) if url.password else None,
        endpoint_override=host or None,
        scheme="https" if secure else "http",
        region=query.get("region", "us-east-1"),
        force_virtual_addressing=False,
    )
    return s3, url.path.strip("/")


def _libpq(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"postgresql://{rest}" if scheme.startswith("postgres") else url


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", required=True, help="source PostgreSQL URL")
    parser.add_argument("--dst", required=True, help="the lakehouse warehouse URL (s3://…)")
    parser.add_argument("--table", default="orders")
    parser.add_argument("--parquet", required=True, help="ParquetWriter options (JSON)")
    args = parser.parse_args(argv)
    options = json.loads(args.parquet)
    row_group_size = options.pop("row_group_size")
    s3, bucket = _file_system(args.dst)
    path = f"{bucket}/baseline/{args.table}/part-0.parquet"
    query = f'SELECT * FROM "{args.table}"'  # a benchmark name, not user input

    started = time.perf_counter()
    rows = 0
    database = adbc_driver_postgresql.connect(_libpq(args.src))
    connection = adbc_driver_manager.AdbcConnection(database)
    statement = adbc_driver_manager.AdbcStatement(connection)
    try:
        statement.set_sql_query(query)
        handle, _ = statement.execute_query()
        with (
            pa.RecordBatchReader.from_stream(handle) as reader,
            pq.ParquetWriter(path, reader.schema, filesystem=s3, **options) as writer,
        ):
            for batch in reader:
                writer.write_batch(batch, row_group_size=row_group_size)
                rows += batch.num_rows
    finally:
        statement.close()
        connection.close()
        database.close()
    seconds = time.perf_counter() - started

    held = pq.read_metadata(path, filesystem=s3).num_rows
    sys.stdout.write(json.dumps({"seconds": seconds, "rows": held if held else rows}) + "\n")


if __name__ == "__main__":
    main()

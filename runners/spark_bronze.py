"""Bronze Delta tables as Spark DataFrames: the snapshot's files, resolved by `deltalake`.

Why not `spark.read.format("delta")`: that needs the delta-spark jars (Maven), and an
`s3a://` path needs hadoop-aws; neither can be downloaded on this project's machines,
and a test must run the code production runs. So the runner does what a Delta reader
does first, with the package that writes bronze: open the table's log (`DeltaTable`,
the latest version, pinned for the whole run), take its active files (`file_uris()`),
and hand Spark exactly those Parquet files with the table's schema. Spark then reads
them like any Parquet: a column that a file lacks (added by a later load's schema
evolution) reads as NULL, as Delta's own readers do.

How Spark reaches the files (`BronzeAccess`):

* `s3a` (production): the URIs as `s3a://bucket/key`; executors read them straight from
  MinIO/S3 through hadoop-aws (in the Spark image, see `runners.spark_conf`). Only the
  file list passes through the driver: this scales with the cluster.
* `copy` (tests, and small tenants without hadoop-aws): the driver copies the snapshot's
  files into a scratch directory and Spark reads them from there. Everything passes
  through one machine: fine for tests and megabytes, not for a tenant that outgrew one
  machine (that is what `s3a` is for). The rest of the path is the same code.

Refused: tables whose protocol needs deletion vectors or column mapping (our writer
never sets them; a foreign writer might): plain Parquet reads would then be wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import pyarrow as pa

from datakits.errors import ConfigError, SourceUnavailable
from datakits.writers.lakehouse import LakeLocation, table_path

#: Reader features a plain Parquet read of the active files cannot honour.
_UNSUPPORTED = {"deletionVectors", "columnMapping", "v2Checkpoint"}


class BronzeAccess(StrEnum):
    """How Spark reaches the snapshot's files (see the module docstring)."""

    s3a = "s3a"
    copy = "copy"


@dataclass(frozen=True)
class Snapshot:
    """One bronze table at one committed version: what Spark reads."""

    table: str
    version: int
    uris: list[str]
    schema: pa.Schema


def snapshot(location: LakeLocation, tenant: str, bronze: str, table: str) -> Snapshot:
    """The latest committed version of a bronze table: its active files and schema."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    uri = f"{location.root}/{table_path(tenant, bronze, table)}"
    try:
        delta = DeltaTable(uri, storage_options=location.storage_options())
    except TableNotFoundError:
        raise ConfigError(
            f"bronze table {bronze}.{table} does not exist at {uri}: run `runner extract "
            f"--table {table}` first"
        ) from None
    except Exception as exc:  # unreachable endpoint, refused credentials
        raise SourceUnavailable(
            f"cannot read the Delta log of {uri}: {type(exc).__name__}"
        ) from None
    protocol = delta.protocol()
    features = set(protocol.reader_features or ()) & _UNSUPPORTED
    if features:
        raise ConfigError(
            f"bronze table {uri} uses Delta reader feature(s) {', '.join(sorted(features))}, "
            "which the Spark runner's Parquet read cannot honour"
        )
    return Snapshot(
        table=table,
        version=delta.version(),
        uris=list(delta.file_uris()),
        schema=pa.schema(delta.schema().to_arrow()),
    )


def s3a_uri(uri: str) -> str:
    """`s3://bucket/key` as hadoop-aws names it."""
    return "s3a://" + uri.removeprefix("s3://")


def copy_files(location: LakeLocation, snap: Snapshot, scratch: Path) -> list[str]:
    """Copy the snapshot's files to `scratch/<table>/` (the `copy` access); local paths."""
    from pyarrow import fs

    from datakits.writers.lakehouse import _file_system

    s3 = _file_system(location)
    target = scratch / snap.table
    target.mkdir(parents=True, exist_ok=True)
    local = fs.LocalFileSystem()
    paths = []
    for i, uri in enumerate(snap.uris):
        path = target / f"{i:05d}-{uri.rsplit('/', 1)[-1]}"
        fs.copy_files(uri.removeprefix("s3://"), str(path), s3, local)
        paths.append(str(path))
    return paths


def spark_schema(schema: pa.Schema) -> Any:
    """The Delta table's Arrow schema as Spark's (`from_arrow_schema`: pyspark's own)."""
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(schema)


def register(
    spark: Any,
    location: LakeLocation,
    tenant: str,
    bronze: str,
    tables: list[str],
    access: BronzeAccess,
    scratch: Path,
) -> dict[str, int]:
    """Make each bronze table `global_temp.<table>` in `spark`; returns {table: version}.

    A global temporary view is the one namespaced name Spark gives a DataFrame without a
    metastore, so the dbt sources point at schema `global_temp` (`runners.spark`).
    """
    versions: dict[str, int] = {}
    for table in tables:
        snap = snapshot(location, tenant, bronze, table)
        if access is BronzeAccess.s3a:
            paths = [s3a_uri(u) for u in snap.uris]
        else:
            paths = copy_files(location, snap, scratch)
        schema = spark_schema(snap.schema)
        if paths:
            frame = spark.read.schema(schema).parquet(*paths)
        else:  # an empty table (a load of no rows): its schema, no rows
            frame = spark.createDataFrame([], schema)
        frame.createOrReplaceGlobalTempView(table)
        versions[table] = snap.version
    return versions

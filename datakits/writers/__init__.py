"""Bronze writers, one module per warehouse kind; `writer_for` picks one by kind.

The writer module is imported only when its kind is used: each pulls in its own driver
(duckdb, psycopg), and a runner starts faster without the one it does not need.
"""

from __future__ import annotations

from sqlalchemy import URL

from datakits.kinds import warehouse_kind
from datakits.spec import WarehouseKind, WarehouseSpec
from datakits.writers.base import (
    BATCH_ID,
    DEFAULT_LOCK_TIMEOUT,
    DELETED_AT,
    LOADED_AT,
    BatchSink,
    BronzeSession,
    BronzeWriter,
    LoadStamp,
    SqlBronzeWriter,
    staging_name,
)


def writer_class(kind: WarehouseKind) -> type[SqlBronzeWriter]:
    """The writer of `kind`, from the registry (`datakits.kinds`)."""
    return warehouse_kind(kind).writer_class()


def writer_for(
    warehouse: WarehouseSpec, url: str | URL, *, lock_timeout: float | None = None
) -> BronzeWriter:
    """The bronze writer for the spec's warehouse kind.

    `lock_timeout`: seconds to wait for another load of the same table (None: the default).
    """
    return writer_class(warehouse.kind)(url, warehouse.schemas, lock_timeout=lock_timeout)


__all__ = [
    "BATCH_ID",
    "DEFAULT_LOCK_TIMEOUT",
    "DELETED_AT",
    "LOADED_AT",
    "BatchSink",
    "BronzeSession",
    "BronzeWriter",
    "LoadStamp",
    "SqlBronzeWriter",
    "staging_name",
    "writer_class",
    "writer_for",
]

"""Source readers, one module per source technology; `reader_for` picks one by kind.

The reader module is imported only when its kind is used, as the writers are: each
pulls in its own driver (psycopg and the ADBC driver, pymysql), and a runner starts
faster without the ones it does not need.
"""

from __future__ import annotations

import logging

from sqlalchemy import URL

from datakits.kinds import source_kind
from datakits.sources.base import SourceReader, SqlTableReader
from datakits.spec import SourceKind, SourceSpec, TableSpec


def reader_class(kind: SourceKind) -> type[SqlTableReader]:
    """The reader of `kind`, from the registry (`datakits.kinds`)."""
    return source_kind(kind).reader_class()


def reader_for(source: SourceSpec, table: TableSpec, url: str | URL) -> SourceReader:
    """The reader for the spec's source kind, not yet opened (use it with `with`)."""
    return reader_class(source.kind)(url, table, schema=source.schema_)


def row_estimate(source: SourceSpec, table: TableSpec, url: str | URL) -> int | None:
    """The source's statistics-based row estimate of `table`, or None (unknown).

    One short connection and a catalog query, no reflection and no scan. Any failure is
    None: an estimate only decorates progress lines, and the load that follows reports a
    real problem (unreachable, missing table) in its own words."""
    cls = reader_class(source.kind)
    try:
        reader = cls(url, table, schema=source.schema_)
        engine = reader._make_engine()
        try:
            with engine.connect() as conn:
                return cls.estimate_rows(conn, table.source_table, reader.source_schema)
        finally:
            engine.dispose()
    except Exception as exc:
        # the type only: a driver message may quote the URL
        logging.getLogger(__name__).debug("no row estimate for %s: %s", table.name, type(exc))
        return None


__all__ = ["SourceReader", "SqlTableReader", "reader_class", "reader_for", "row_estimate"]

"""PostgreSQL source: typed values from psycopg 3, streamed through a server-side cursor.

PostgreSQL enforces its column types, so values pass to Arrow unconverted except where
the mapping needs it (JSON, UUID, unconstrained numeric). A COPY-based fast path can
replace `batches` later without changing the reader's contract.
"""

from __future__ import annotations

from datakits.sources.base import SqlTableReader


class PostgresReader(SqlTableReader):
    backend = "postgresql"
    loose_types = False

"""What a warehouse holds for one table: rows, checksum, watermark, audit. Test helpers.

The checksum is computed by the warehouse itself (md5 over the ordered rows, the load
columns left out), so two loads of the same data compare equal whatever their batch ids,
and a 200,000-row table is compared without fetching it into Python.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from tests.datakits.conftest import query

LOAD_COLUMNS = ("_loaded_at", "_batch_id")


def execute(url: str, *statements: str, **params: Any) -> None:
    """Run statements in one transaction (source changes in tests)."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(text(statement), params)
    finally:
        engine.dispose()


def columns(url: str, table: str, schema: str = "bronze") -> list[str]:
    rows = query(
        url,
        "SELECT column_name FROM information_schema.columns "
        f"WHERE table_schema = '{schema}' AND table_name = '{table}' ORDER BY ordinal_position",
    )
    return [r[0] for r in rows if r[0] not in LOAD_COLUMNS]


def checksum(url: str, table: str, order_by: str = "id", schema: str = "bronze") -> str | None:
    """md5 of every row (load columns excluded) in `order_by` order; None if no table."""
    names = columns(url, table, schema)
    if not names:
        return None
    cells = " || '|' || ".join(f"coalesce(CAST({n} AS VARCHAR), '<null>')" for n in names)
    rows = query(
        url,
        f"SELECT count(*), md5(coalesce(string_agg({cells}, '~' ORDER BY {order_by}), '')) "
        f"FROM {schema}.{table}",
    )
    return f"{rows[0][0]}:{rows[0][1]}"


def rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    return query(url, sql)


def watermark(url: str, table: str, meta: str = "meta") -> tuple[str, str | None] | None:
    """(cursor column, value) of the table's watermark row, or None."""
    found = query(
        url, f"SELECT cursor_column, value FROM {meta}.watermarks WHERE table_name = '{table}'"
    )
    return found[0] if found else None


def audit_count(url: str, table: str, meta: str = "meta") -> int:
    return query(url, f"SELECT count(*) FROM {meta}.load_audit WHERE table_name = '{table}'")[0][0]

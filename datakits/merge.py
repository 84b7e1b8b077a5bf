"""Set-based statements that move a load's staged rows into bronze, inside its transaction.

A delta load (append or incremental after the first load) streams the rows it read into
a staging table, then runs one of these, then drops the staging table:

* `merge` (incremental): delete the bronze rows whose key is staged, insert the staged
  rows. Portable (PostgreSQL and DuckDB), set-based, and idempotent: re-reading a row
  that is already in bronze replaces it by the same values. That is what makes a
  `>=` watermark and a lookback window safe.
* `insert_absent` (append with a primary key): insert the staged rows whose key is not
  in bronze yet; bronze rows are never updated.
* `insert_all` (append without a key): insert every staged row.

With `deletes` (incremental), after the merge, the source's keys (staged by the key scan)
are anti-joined with bronze: `delete_missing` removes the bronze rows whose key the
source no longer has, `mark_missing` stamps them `_deleted_at` instead. Both are one
`NOT EXISTS` statement: the warehouse plans it as a hash anti-join (DuckDB; PostgreSQL
with the keys table analysed), never a Python set of keys.

`key_problem` runs first: a NULL or duplicated key would make a merge drop or double
rows, so the load fails instead, naming the key.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    CursorResult,
    DateTime,
    Table,
    and_,
    column,
    delete,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    table,
    update,
)
from sqlalchemy.sql.expression import TableClause

from datakits.messages import one_line


def _target(schema: str, name: str, columns: Sequence[str]) -> TableClause:
    return table(name, *(column(c) for c in columns), schema=schema)


def _match(bronze: TableClause, staging: Table, keys: Sequence[str]) -> ColumnElement[bool]:
    return and_(*(bronze.c[k] == staging.c[k] for k in keys))


def key_problem(conn: Connection, staging: Table, keys: Sequence[str]) -> str | None:
    """Why the staged rows cannot be merged by `keys` (NULL or duplicate key), or None."""
    names = ", ".join(keys)
    nulls = conn.execute(
        select(func.count())
        .select_from(staging)
        .where(or_(*(staging.c[k].is_(None) for k in keys)))
    ).scalar_one()
    if nulls:
        return f"{nulls:,} row(s) read have a NULL in the primary key ({names})"
    key_columns = [staging.c[k] for k in keys]
    duplicate = conn.execute(
        select(*key_columns, func.count().label("copies"))
        .group_by(*key_columns)
        .having(func.count() > 1)
        .limit(1)
    ).first()
    if duplicate is not None:
        values = ", ".join(f"{k}={duplicate[i]!r}" for i, k in enumerate(keys))
        return one_line(
            f"the primary key ({names}) is not unique in the rows read: "
            f"{values} appears {duplicate.copies} times",
            limit=300,
        )
    return None


def merge(conn: Connection, schema: str, name: str, staging: Table, keys: Sequence[str]) -> None:
    """Replace the bronze rows whose key is staged by the staged rows."""
    names = [c.name for c in staging.columns]
    bronze = _target(schema, name, names)
    staged = select(literal_column("1")).select_from(staging).where(_match(bronze, staging, keys))
    conn.execute(delete(bronze).where(staged.exists()))
    conn.execute(insert(bronze).from_select(names, select(*staging.columns)))


def insert_absent(
    conn: Connection, schema: str, name: str, staging: Table, keys: Sequence[str]
) -> None:
    """Insert the staged rows whose key bronze does not have yet."""
    names = [c.name for c in staging.columns]
    bronze = _target(schema, name, names)
    present = select(literal_column("1")).select_from(bronze).where(_match(bronze, staging, keys))
    conn.execute(
        insert(bronze).from_select(names, select(*staging.columns).where(~present.exists()))
    )


def insert_all(conn: Connection, schema: str, name: str, staging: Table) -> None:
    names = [c.name for c in staging.columns]
    bronze = _target(schema, name, names)
    conn.execute(insert(bronze).from_select(names, select(*staging.columns)))


def _gone(bronze: TableClause, keys_table: Table, keys: Sequence[str]) -> ColumnElement[bool]:
    """Bronze rows whose key is not among the source's keys."""
    present = select(literal_column("1")).select_from(keys_table)
    return ~present.where(_match(bronze, keys_table, keys)).exists()


def delete_missing(
    conn: Connection, schema: str, name: str, keys_table: Table, keys: Sequence[str]
) -> int:
    """Delete the bronze rows whose key the source no longer has; returns how many."""
    bronze = _target(schema, name, keys)
    return _count(conn.execute(delete(bronze).where(_gone(bronze, keys_table, keys))))


def mark_missing(
    conn: Connection,
    schema: str,
    name: str,
    keys_table: Table,
    keys: Sequence[str],
    *,
    deleted_at: str,
    when: dt.datetime,
) -> int:
    """Set `deleted_at` on bronze rows whose key the source no longer has (and that are not
    marked yet: the first load that missed them dates the deletion); returns how many."""
    bronze = _target(schema, name, [*keys, deleted_at])
    gone = and_(_gone(bronze, keys_table, keys), bronze.c[deleted_at].is_(None))
    stamp = literal(when, DateTime(timezone=True))
    return _count(conn.execute(update(bronze).where(gone).values({deleted_at: stamp})))


def _count(result: CursorResult[Any]) -> int:
    """Rows a DELETE/UPDATE changed (DuckDB reports them as its statement's result row)."""
    if result.rowcount is not None and result.rowcount >= 0:
        return int(result.rowcount)
    return int(result.scalar_one())

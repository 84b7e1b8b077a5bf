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

`key_problem` runs first: a NULL or duplicated key would make a merge drop or double
rows, so the load fails instead, naming the key.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import (
    ColumnElement,
    Connection,
    Table,
    and_,
    column,
    delete,
    func,
    insert,
    literal_column,
    or_,
    select,
    table,
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

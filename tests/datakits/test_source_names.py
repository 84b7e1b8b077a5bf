"""Real-world source names: quoted, mixed-case, spaced, unicode and reserved table and
column names load under safe bronze names, on every source and both warehouses.

The source tables are created with SQLAlchemy Core objects carrying the exact names (the
dialect quotes them), as an ORM or Northwind's scripts would have created them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    Column,
    DateTime,
    Float,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    create_engine,
    delete,
    update,
)
from sqlalchemy.pool import NullPool

from datakits.errors import ConfigError
from datakits.load import load_table
from datakits.naming import bronze_name, column_names
from datakits.spec import TableSpec
from tests.datakits.conftest import make_spec, normalize, query

SOURCES = ["postgres", "mysql", "sqlite"]
WAREHOUSES = ["duckdb", "postgres"]
T0 = dt.datetime(2024, 3, 1, 8, 0, 0)


# --- the naming rule ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "bronze"),
    [
        ("orders", "orders"),  # already a bronze identifier: kept (old tables unchanged)
        ("_private", "_private"),
        ("select", "select"),  # reserved, but an identifier: SQLAlchemy quotes it
        ("Order Details", "order_details"),
        ("OrderID", "orderid"),
        ("UnitPrice", "unitprice"),
        ("Café", "cafe"),
        ("Bestellungen Ä", "bestellungen_a"),
        ("Unit Price ($)", "unit_price"),
        ("2024 Sales", "_2024_sales"),
        ("  --  ", "_" + hashlib.sha1(b"  --  ", usedforsecurity=False).hexdigest()[:8]),
        ("東京", "_" + hashlib.sha1("東京".encode(), usedforsecurity=False).hexdigest()[:8]),
    ],
)
def test_bronze_name_rule(source: str, bronze: str) -> None:
    assert bronze_name(source) == bronze


def test_long_names_keep_apart_within_63_characters() -> None:
    a, b = "X" * 70 + "a", "X" * 70 + "b"
    assert len(bronze_name(a)) == 63 and len(bronze_name(b)) == 63
    assert bronze_name(a) != bronze_name(b)


def test_colliding_names_get_stable_suffixes_by_ordinal_position() -> None:
    assert column_names(["Name", "name", "NAME"]) == {
        "Name": "name",
        "name": "name_2",
        "NAME": "name_3",
    }
    # a name given explicitly is claimed first; derived names step around it
    assert column_names(["Name", "name"], {"name": "name"}) == {"Name": "name_2", "name": "name"}


def test_spec_derives_the_bronze_table_name_from_a_source_name() -> None:
    table = TableSpec.model_validate({"name": "Order Details"})
    assert (table.name, table.source_table) == ("order_details", "Order Details")
    again = TableSpec.model_validate_json(table.model_dump_json(exclude_defaults=True))
    assert again == table
    given = TableSpec.model_validate({"name": "lines", "source_name": "Order Details"})
    assert (given.name, given.source_table) == ("lines", "Order Details")


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"name": "Lines", "source_name": "Order Details"}, "`name` is the bronze table name"),
        (
            {"name": "t", "columns": [{"source": "A", "name": "A b"}]},
            "String should match pattern",
        ),
        (
            {"name": "t", "columns": [{"source": "A", "name": "a"}, {"source": "B", "name": "a"}]},
            "same bronze name",
        ),
        (
            {"name": "t", "mode": "append", "cursor": "UpdatedAt", "columns": ["OrderID"]},
            "add UpdatedAt",
        ),
    ],
)
def test_bad_names_are_explained(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        TableSpec.model_validate(table)
    assert message in str(caught.value)


# --- sources with Northwind-style names -------------------------------------------------


@pytest.fixture
def source_url(
    request: pytest.FixtureRequest, pg_source: str, tmp_path: Path
) -> Callable[[str], str]:
    def make(kind: str) -> str:
        if kind == "sqlite":
            return f"sqlite:///{tmp_path / 'northwind.db'}"
        if kind == "postgres":
            return pg_source
        server = request.getfixturevalue("mariadb_server")
        digest = hashlib.sha1(request.node.nodeid.encode(), usedforsecurity=False).hexdigest()
        return server.create_database(f"nw_{digest[:12]}")

    return make


def _order_details(metadata: MetaData, kind: str) -> Table:
    """Northwind's `Order Details`, plus the names the issue lists. MySQL and SQLite fold
    column names case-insensitively, so the `"Name"`/`name` pair is PostgreSQL's only;
    `"Unit Price"`/`unit_price` collide after derivation on every source."""
    extra = [Column("Name", String(40)), Column("name", String(40))] if kind == "postgres" else []
    return Table(
        "Order Details",
        metadata,
        Column("OrderID", Integer, primary_key=True, autoincrement=False),
        Column("ProductID", Integer, primary_key=True, autoincrement=False),
        Column("UnitPrice", Numeric(10, 2), nullable=False),
        Column("Discount", Float, nullable=False),
        Column("Unit Price", String(20)),
        Column("unit_price", Integer),
        Column("select", String(20)),
        Column("order", Integer),
        Column("Menge Ä", Integer),
        *extra,
        Column("UpdatedAt", DateTime, nullable=False),
    )


def _detail(i: int, kind: str) -> dict[str, Any]:
    row = {
        "OrderID": 10248 + i // 2,
        "ProductID": 11 + i,
        "UnitPrice": Decimal(f"{14 + i}.50"),
        "Discount": 0.25 * (i % 2),
        "Unit Price": f"${14 + i}",
        "unit_price": 14 + i,
        "select": f"pick {i}",
        "order": i,
        "Menge Ä": 10 * i,
        "UpdatedAt": T0 + dt.timedelta(days=i),
    }
    if kind == "postgres":
        row |= {"Name": f"Queso {i}", "name": f"queso {i}"}
    return row


#: Bronze name of each source column (the documented rule, in ordinal order).
BRONZE = {
    "OrderID": "orderid",
    "ProductID": "productid",
    "UnitPrice": "unitprice",
    "Discount": "discount",
    "Unit Price": "unit_price",
    "unit_price": "unit_price_2",
    "select": "select",
    "order": "order",
    "Menge Ä": "menge_a",
    "Name": "name",
    "name": "name_2",
    "UpdatedAt": "updatedat",
}


def _create(url: str, kind: str, rows: int) -> tuple[Table, Table, Table]:
    metadata = MetaData()
    details = _order_details(metadata, kind)
    customers = Table(
        "Customers",
        metadata,
        Column("CustomerID", String(5), primary_key=True),
        Column("CompanyName", String(40)),
        Column("Contact Name", String(30)),
    )
    cafe = Table("Café", metadata, Column("Größe", Integer), Column("Preis €", Numeric(6, 2)))
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            metadata.create_all(conn)
            conn.execute(details.insert(), [_detail(i, kind) for i in range(rows)])
            conn.execute(
                customers.insert(),
                [
                    {"CustomerID": "ALFKI", "CompanyName": "Alfreds", "Contact Name": "Maria"},
                    {"CustomerID": "ANATR", "CompanyName": "Ana Trujillo", "Contact Name": "Ana"},
                ],
            )
            conn.execute(cafe.insert(), [{"Größe": 1, "Preis €": Decimal("2.40")}])
    finally:
        engine.dispose()
    return details, customers, cafe


def _execute(url: str, statement: Any, rows: list[dict[str, Any]] | None = None) -> None:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(statement, rows) if rows else conn.execute(statement)
    finally:
        engine.dispose()


def _plain(value: Any) -> Any:
    """Compare across sources: decimals as floats (SQLite keeps REAL), naive UTC times."""
    value = normalize(value)
    return float(value) if isinstance(value, Decimal) else value


def _bronze_rows(wh_url: str, table: str, columns: list[str], order: str) -> list[tuple]:
    select_list = ", ".join(f'"{c}"' for c in columns)  # test-side read of fixed names
    rows = query(wh_url, f"SELECT {select_list} FROM bronze.{table} ORDER BY {order}")
    return [tuple(_plain(v) for v in row) for row in rows]


def _expected(rows: list[dict[str, Any]], sources: list[str]) -> list[tuple]:
    ordered = sorted(rows, key=lambda r: (r["OrderID"], r["ProductID"]))
    return [tuple(_plain(r[s]) for s in sources) for r in ordered]


@pytest.mark.parametrize("warehouse", WAREHOUSES)
@pytest.mark.parametrize("source", SOURCES)
def test_northwind_names_load_incrementally(
    source: str,
    warehouse: str,
    source_url: Callable[[str], str],
    make_warehouse: Callable[[str], str],
) -> None:
    src, wh = source_url(source), make_warehouse(warehouse)
    details, _, _ = _create(src, source, rows=6)
    spec = make_spec(
        source,
        warehouse,
        {
            "name": "Order Details",
            "mode": "incremental",
            "cursor": "UpdatedAt",
            "primary_key": ["OrderID", "ProductID"],
        },
        {"name": "Customers", "columns": [{"source": "CustomerID", "name": "id"}, "CompanyName"]},
        {"name": "Café"},
    )
    order_details = spec.table("order_details")
    first = load_table(spec, order_details, src, wh)
    assert first.rows == 6 and first.target.endswith("order_details")

    sources = [c.name for c in details.columns]
    bronze = [BRONZE[s] for s in sources]
    rows = [_detail(i, source) for i in range(6)]
    assert _bronze_rows(wh, "order_details", bronze, "orderid, productid") == _expected(
        rows, sources
    )
    assert query(wh, "SELECT cursor_column, value FROM meta.watermarks") == [
        ("updatedat", (T0 + dt.timedelta(days=5)).isoformat())
    ]

    # a changed row (new price, later UpdatedAt) and a new one: only they are read, with
    # the row on the watermark (`>=`, for ties)
    changed = {"UnitPrice": Decimal("99.00"), "UpdatedAt": T0 + dt.timedelta(days=30)}
    key = (details.c.OrderID == rows[1]["OrderID"]) & (details.c.ProductID == rows[1]["ProductID"])
    _execute(src, update(details).where(key).values(changed))
    new = _detail(40, source) | {"UpdatedAt": T0 + dt.timedelta(days=31)}
    _execute(src, details.insert(), [new])
    second = load_table(spec, order_details, src, wh)
    assert second.rows == 3
    rows[1] |= changed
    assert _bronze_rows(wh, "order_details", bronze, "orderid, productid") == _expected(
        [*rows, new], sources
    )

    load_table(spec, spec.table("customers"), src, wh)
    assert _bronze_rows(wh, "customers", ["id", "companyname"], "id") == [
        ("ALFKI", "Alfreds"),
        ("ANATR", "Ana Trujillo"),
    ]
    load_table(spec, spec.table("cafe"), src, wh)
    # `Größe`: ß has no ASCII base and is dropped (see datakits.naming)
    assert _bronze_rows(wh, "cafe", ["groe", "preis"], "groe") == [(1, 2.4)]


@pytest.mark.parametrize("source", ["mysql", "sqlite"])
def test_a_plain_mixed_case_table_name(
    source: str, source_url: Callable[[str], str], make_warehouse: Callable[[str], str]
) -> None:
    """A MySQL table `Orders` (case-sensitive on Linux): `name: Orders` is enough."""
    src, wh = source_url(source), make_warehouse("duckdb")
    orders = Table(
        "Orders",
        MetaData(),
        Column("OrderID", Integer, primary_key=True, autoincrement=False),
        Column("ShipCity", String(20)),
    )
    engine = create_engine(src, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            orders.create(conn)
            conn.execute(orders.insert(), [{"OrderID": 1, "ShipCity": "Reims"}])
    finally:
        engine.dispose()
    spec = make_spec(source, "duckdb", {"name": "Orders", "mode": "full_refresh"})
    load_table(spec, spec.tables[0], src, wh)
    assert query(wh, "SELECT orderid, shipcity FROM bronze.orders") == [(1, "Reims")]


def test_the_spec_names_source_columns_and_the_error_lists_them(
    source_url: Callable[[str], str], make_warehouse: Callable[[str], str]
) -> None:
    src, wh = source_url("postgres"), make_warehouse("duckdb")
    _create(src, "postgres", rows=1)
    spec = make_spec(
        "postgres",
        "duckdb",
        {"name": "Order Details", "mode": "append", "cursor": "updatedat"},
    )
    with pytest.raises(ConfigError, match=r"no cursor column updatedat .*UpdatedAt"):
        load_table(spec, spec.tables[0], src, wh)


def test_a_filter_on_a_quoted_column(
    source_url: Callable[[str], str], make_warehouse: Callable[[str], str]
) -> None:
    src, wh = source_url("postgres"), make_warehouse("postgres")
    _create(src, "postgres", rows=4)
    spec = make_spec(
        "postgres",
        "postgres",
        {
            "name": "Order Details",
            "filter": [{"column": "Menge Ä", "op": ">=", "value": 20}],
            "columns": ["OrderID", "ProductID", {"source": "Menge Ä", "name": "menge"}],
        },
    )
    load_table(spec, spec.tables[0], src, wh)
    rows = query(wh, "SELECT productid, menge FROM bronze.order_details ORDER BY 1")
    assert rows == [(13, 20), (14, 30)]


@pytest.mark.parametrize("warehouse", WAREHOUSES)
@pytest.mark.parametrize("source", SOURCES)
def test_northwind_names_load_incrementally_with_deletes(
    source: str,
    warehouse: str,
    source_url: Callable[[str], str],
    make_warehouse: Callable[[str], str],
) -> None:
    """The issue's whole case: `"Order Details"` with a CamelCase composite key and cursor,
    incremental with `deletes: hard` — a row deleted at the source leaves bronze, the key
    scan selecting the source's quoted names and matching bronze's derived ones."""
    src, wh = source_url(source), make_warehouse(warehouse)
    details, _, _ = _create(src, source, rows=6)
    spec = make_spec(
        source,
        warehouse,
        {
            "name": "Order Details",
            "mode": "incremental",
            "cursor": "UpdatedAt",
            "primary_key": ["OrderID", "ProductID"],
            "deletes": "hard",
        },
    )
    table = spec.table("order_details")
    assert load_table(spec, table, src, wh).rows == 6
    rows = [_detail(i, source) for i in range(6)]
    gone = rows.pop(2)
    key = (details.c.OrderID == gone["OrderID"]) & (details.c.ProductID == gone["ProductID"])
    _execute(src, delete(details).where(key))

    second = load_table(spec, table, src, wh)
    assert second.deleted == 1
    sources = [c.name for c in details.columns]
    bronze = [BRONZE[s] for s in sources]
    assert _bronze_rows(wh, "order_details", bronze, "orderid, productid") == _expected(
        rows, sources
    )

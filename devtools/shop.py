"""The demo shop: a small, deterministic source database for the tenants' pipelines.

`generate_shop(url)` (re)creates four tables — customers, products, orders, order_items —
and fills them from `random.Random(seed)`, so the same seed gives the same rows on any
backend SQLAlchemy reaches (SQLite, PostgreSQL, DuckDB through duckdb-engine). The tables
are defined once with SQLAlchemy Core; rows go in by executemany, a few thousand at a time.

    python -m devtools.shop --url sqlite:///.data/demo/shop.sqlite --orders 100000 --seed 7
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
from bisect import bisect
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import (
    CHAR,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    Numeric,
    Table,
    Text,
    create_engine,
    make_url,
)
from sqlalchemy.engine import Connection
from sqlalchemy.schema import CreateSchema

CUSTOMERS = 2_000
PRODUCTS = 200
CHUNK = 5_000
STATUSES = ("placed", "shipped", "delivered", "cancelled")
STATUS_WEIGHTS = (8, 12, 70, 10)

# fmt: off
_FIRST = (
    "Ada", "Alan", "Anna", "Bea", "Carl", "Chloe", "Dan", "Dora", "Eli", "Emma", "Finn",
    "Flora", "Gus", "Hana", "Ivan", "Iris", "Jan", "Jade", "Kai", "Kim", "Leo", "Lina", "Max",
    "Mia", "Nils", "Nora", "Omar", "Olga", "Paul", "Pia", "Quinn", "Rosa", "Sam", "Sara", "Tom",
    "Tina", "Uma", "Vera", "Walt", "Yara", "Zoe",
)
_LAST = (
    "Berg", "Brown", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia", "Hansen", "Ivanova",
    "Jensen", "Kowalski", "Larsen", "Martin", "Novak", "Olsen", "Peters", "Quist", "Rossi",
    "Schmidt", "Silva", "Smith", "Tanaka", "Urban", "Vogel", "Weber", "Young",
)
# fmt: on
_DOMAINS = ("example.com", "mail.test", "shop.test", "post.example")
_COUNTRIES = ("DE", "FR", "NL", "BE", "DK", "SE", "ES", "IT", "PL", "GB", "US")
_COUNTRY_WEIGHTS = (20, 14, 10, 6, 5, 5, 9, 9, 7, 8, 7)
_CATEGORIES = {
    "books": (5, 60),
    "games": (10, 90),
    "garden": (8, 250),
    "kitchen": (4, 180),
    "music": (6, 45),
    "sports": (12, 400),
    "toys": (3, 80),
}
# fmt: off
_ADJECTIVES = (
    "Basic", "Classic", "Compact", "Deluxe", "Eco", "Mini", "Pro", "Smart", "Solid", "Travel",
)
_NOUNS = {
    "books": ("Atlas", "Cookbook", "Guide", "Novel", "Almanac"),
    "games": ("Puzzle", "Boardgame", "Deck", "Dice", "Quiz"),
    "garden": ("Hose", "Rake", "Planter", "Shears", "Lamp"),
    "kitchen": ("Kettle", "Pan", "Knife", "Grinder", "Scale"),
    "music": ("Vinyl", "Songbook", "Ukulele", "Tuner", "Harmonica"),
    "sports": ("Ball", "Racket", "Helmet", "Mat", "Bottle"),
    "toys": ("Robot", "Kite", "Blocks", "Train", "Plush"),
}
# fmt: on

_STATUS_HOURS = {"placed": (0, 2), "shipped": (6, 72), "delivered": (48, 240), "cancelled": (0, 48)}
_ITEMS_PER_ORDER = ((1, 2, 3, 4), (45, 30, 15, 10))
_QUANTITIES = ((1, 2, 3, 4, 5), (60, 20, 10, 6, 4))

_CUSTOMERS_SINCE = datetime(2022, 1, 1)
_ORDERS_SINCE = datetime(2023, 1, 1)
_ORDERS_UNTIL = datetime(2025, 7, 1)


def shop_metadata(schema: str | None = None) -> MetaData:
    """The four shop tables, in `schema` (None: the connection's default)."""
    md = MetaData(schema=schema)
    prefix = f"{schema}." if schema else ""
    Table(
        "customers",
        md,
        Column("customer_id", Integer, primary_key=True, autoincrement=False),
        Column("name", Text, nullable=False),
        Column("email", Text, nullable=False),
        Column("country", CHAR(2), nullable=False),
        Column("created_at", DateTime, nullable=False),
    )
    Table(
        "products",
        md,
        Column("product_id", Integer, primary_key=True, autoincrement=False),
        Column("name", Text, nullable=False),
        Column("category", Text, nullable=False),
        Column("price", Numeric(10, 2), nullable=False),
    )
    Table(
        "orders",
        md,
        Column("order_id", Integer, primary_key=True, autoincrement=False),
        Column(
            "customer_id", Integer, ForeignKey(f"{prefix}customers.customer_id"), nullable=False
        ),
        Column("status", Text, nullable=False),
        Column("ordered_at", DateTime, nullable=False),
        Column("updated_at", DateTime, nullable=False),
    )
    Table(
        "order_items",
        md,
        Column("order_item_id", Integer, primary_key=True, autoincrement=False),
        Column("order_id", Integer, ForeignKey(f"{prefix}orders.order_id"), nullable=False),
        Column("product_id", Integer, ForeignKey(f"{prefix}products.product_id"), nullable=False),
        Column("quantity", Integer, nullable=False),
        Column("unit_price", Numeric(10, 2), nullable=False),
    )
    return md


class _Weighted:
    """`rng.choices(values, weights)[0]`, with the cumulative weights computed once."""

    def __init__(self, values: tuple[Any, ...], weights: tuple[int, ...]) -> None:
        self.values = values
        self.cum = list(itertools.accumulate(weights))
        self.total = self.cum[-1]

    def __call__(self, rng: random.Random) -> Any:
        return self.values[bisect(self.cum, rng.random() * self.total)]


def _seconds(rng: random.Random, start: datetime, end: datetime) -> datetime:
    return start + timedelta(seconds=rng.randrange(int((end - start).total_seconds())))


def _customers(rng: random.Random, count: int) -> list[dict[str, Any]]:
    pick_country = _Weighted(_COUNTRIES, _COUNTRY_WEIGHTS)
    rows = []
    for customer_id in range(1, count + 1):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        email = f"{first}.{last}{customer_id}@{rng.choice(_DOMAINS)}".lower()
        # Real sign-up forms: some emails arrive in capitals or with stray blanks.
        if rng.random() < 0.05:
            email = email.upper()
        if rng.random() < 0.03:
            email = f" {email} "
        rows.append(
            {
                "customer_id": customer_id,
                "name": f"{first} {last}",
                "email": email,
                "country": pick_country(rng),
                "created_at": _seconds(rng, _CUSTOMERS_SINCE, _ORDERS_UNTIL - timedelta(days=30)),
            }
        )
    return rows


def _products(rng: random.Random, count: int) -> list[dict[str, Any]]:
    rows = []
    categories = sorted(_CATEGORIES)
    for product_id in range(1, count + 1):
        category = rng.choice(categories)
        low, high = _CATEGORIES[category]
        cents = rng.randrange(low * 100, high * 100)
        cents = cents - cents % 100 + 99  # shop prices end in .99
        rows.append(
            {
                "product_id": product_id,
                "name": f"{rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS[category])} {product_id}",
                "category": category,
                "price": Decimal(cents).scaleb(-2),
            }
        )
    return rows


def _orders(
    rng: random.Random,
    count: int,
    customers: list[dict[str, Any]],
    products: list[dict[str, Any]],
) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Yield (order, its items), in order_id order."""
    pick_status = _Weighted(STATUSES, STATUS_WEIGHTS)
    pick_count = _Weighted(*_ITEMS_PER_ORDER)
    pick_quantity = _Weighted(*_QUANTITIES)
    discount = Decimal("0.90")
    cent = Decimal("0.01")
    order_item_id = 0
    for order_id in range(1, count + 1):
        customer = rng.choice(customers)
        since = max(customer["created_at"], _ORDERS_SINCE)
        ordered_at = _seconds(rng, since, _ORDERS_UNTIL)
        status = pick_status(rng)
        hours = _STATUS_HOURS[status]
        updated_at = ordered_at + timedelta(minutes=rng.randrange(hours[0] * 60, hours[1] * 60 + 1))
        order = {
            "order_id": order_id,
            "customer_id": customer["customer_id"],
            "status": status,
            "ordered_at": ordered_at,
            "updated_at": updated_at,
        }
        items = []
        for product in rng.sample(products, pick_count(rng)):
            order_item_id += 1
            price = product["price"]
            if rng.random() < 0.1:  # a 10 % discount now and then
                price = (price * discount).quantize(cent)
            items.append(
                {
                    "order_item_id": order_item_id,
                    "order_id": order_id,
                    "product_id": product["product_id"],
                    "quantity": pick_quantity(rng),
                    "unit_price": price,
                }
            )
        yield order, items


def _insert(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), CHUNK):
        conn.execute(table.insert(), rows[start : start + CHUNK])


def generate_shop(
    url: str, *, seed: int = 7, orders: int = 100_000, schema: str | None = None
) -> dict[str, int]:
    """(Re)create the shop tables at `url` (in `schema`) and fill them; returns row counts."""
    if orders < 0:
        raise ValueError(f"orders must be >= 0, got {orders}")
    rng = random.Random(seed)  # noqa: S311 - demo data, not secrets
    md = shop_metadata(schema)
    tables = md.tables
    t = {name.rsplit(".", 1)[-1]: table for name, table in tables.items()}
    counts = {"customers": 0, "products": 0, "orders": 0, "order_items": 0}

    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            if schema is not None:
                if conn.dialect.name == "sqlite":
                    raise ValueError("SQLite has no schemas: leave `schema` out")
                conn.execute(CreateSchema(schema, if_not_exists=True))
            md.drop_all(conn)
            md.create_all(conn)

            customers = _customers(rng, CUSTOMERS)
            products = _products(rng, PRODUCTS)
            _insert(conn, t["customers"], customers)
            _insert(conn, t["products"], products)
            counts["customers"], counts["products"] = len(customers), len(products)

            order_rows: list[dict[str, Any]] = []
            item_rows: list[dict[str, Any]] = []
            for order, items in _orders(rng, orders, customers, products):
                order_rows.append(order)
                item_rows.extend(items)
                if len(order_rows) >= CHUNK:
                    conn.execute(t["orders"].insert(), order_rows)
                    conn.execute(t["order_items"].insert(), item_rows)
                    counts["orders"] += len(order_rows)
                    counts["order_items"] += len(item_rows)
                    order_rows, item_rows = [], []
            if order_rows:
                conn.execute(t["orders"].insert(), order_rows)
                conn.execute(t["order_items"].insert(), item_rows)
                counts["orders"] += len(order_rows)
                counts["order_items"] += len(item_rows)
    finally:
        engine.dispose()
    return counts


def _ensure_parent(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() in ("sqlite", "duckdb") and parsed.database not in (
        None,
        "",
        ":memory:",
    ):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.shop", description="Create and fill the demo shop database."
    )
    parser.add_argument("--url", required=True, help="SQLAlchemy URL, e.g. sqlite:///shop.db")
    parser.add_argument("--orders", type=int, default=100_000, help="orders to generate")
    parser.add_argument("--seed", type=int, default=7, help="random seed (same seed, same data)")
    parser.add_argument("--schema", default=None, help="schema for the tables (not SQLite)")
    args = parser.parse_args(argv)
    _ensure_parent(args.url)
    counts = generate_shop(args.url, seed=args.seed, orders=args.orders, schema=args.schema)
    print(json.dumps(counts))


if __name__ == "__main__":
    main()

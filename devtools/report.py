"""Print a tenant's row counts per layer (bronze, silver, gold): the end of `make demo`.

    python -m devtools.report demo

Reads the tenant's warehouse through its `env` connection reference.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import sqlalchemy as sa
from rich.console import Console
from rich.table import Table

from dag_factory.loader import Loader
from datakits.urls import engine_url

WAREHOUSES = Path(__file__).resolve().parents[1] / "warehouses"


def layer_counts(url: str, schemas: dict[str, str]) -> list[tuple[str, str, int]]:
    """(layer, schema.table, rows) for every table of every layer schema."""
    engine = sa.create_engine(engine_url(url))
    rows = []
    try:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            for layer, schema in schemas.items():
                for name in sorted(inspector.get_table_names(schema=schema)):
                    table = sa.Table(name, sa.MetaData(), schema=schema)
                    count = conn.execute(sa.select(sa.func.count()).select_from(table)).scalar()
                    rows.append((layer, f"{schema}.{name}", int(count or 0)))
    finally:
        engine.dispose()
    return rows


def main(tenant_id: str) -> int:
    tenant = Loader(WAREHOUSES).load(WAREHOUSES / tenant_id / "warehouse.yaml")
    ref = tenant.spec.warehouse.connection
    if ref.env is None:
        print(f"tenant {tenant_id} reads its warehouse from Airflow; no report", file=sys.stderr)
        return 1
    url = os.environ[ref.env]
    s = tenant.spec.warehouse.schemas
    table = Table(title=f"tenant {tenant_id}: rows per layer")
    for column in ("layer", "table", "rows"):
        table.add_column(column, justify="right" if column == "rows" else "left")
    for layer, name, count in layer_counts(
        url, {"bronze": s.bronze, "silver": s.silver, "gold": s.gold}
    ):
        table.add_row(layer, name, f"{count:,}")
    console = Console()
    console.print(table)
    console.print(f"warehouse: {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "demo"))

"""Compiled dbt graphs written by hand in the exact format of contract A (issue 14), for
tests of the DAG side before and independently of `dag-factory dbt compile`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dag_factory.dbt_graph import graph_path

DEFAULT_LAYERS = {"silver": "silver", "gold": "gold"}


def node(
    name: str,
    layer: str,
    *,
    depends_on: tuple[str, ...] = (),
    sources: tuple[str, ...] = (),
    tests: tuple[str, ...] = (),
    resource_type: str = "model",
    materialized: str = "table",
    package: str = "shop",
) -> tuple[str, dict[str, Any]]:
    return f"{resource_type}.{package}.{name}", {
        "name": name,
        "resource_type": resource_type,
        "layer": layer,
        "materialized": materialized,
        "depends_on": list(depends_on),
        "sources": list(sources),
        "tests": list(tests),
    }


def shop_nodes() -> dict[str, dict[str, Any]]:
    """The shop project (`warehouses/_dbt/shop`) as dbt 1.12 parses it: four silver models
    on bronze, one gold model on three of them; relationships tests attached to the parent
    that comes last in topological order."""
    return dict(
        [
            node(
                "customers",
                "silver",
                sources=("customers",),
                tests=(
                    "test.shop.unique_customers_customer_id.c5af1ff4b5",
                    "test.shop.not_null_customers_customer_id.5c9bf9911d",
                    "test.shop.not_null_customers_email.c0adcda4b7",
                ),
            ),
            node(
                "products",
                "silver",
                sources=("products",),
                tests=(
                    "test.shop.unique_products_product_id.9a4e2b51a2",
                    "test.shop.not_null_products_product_id.6373b0acf3",
                ),
            ),
            node(
                "orders",
                "silver",
                sources=("orders",),
                tests=(
                    "test.shop.unique_orders_order_id.fed79b3a6e",
                    "test.shop.not_null_orders_order_id.cf6c17daed",
                    "test.shop.relationships_orders_customer_id__customer_id__ref_customers_.c6ec7f58f2",
                ),
            ),
            node(
                "order_items",
                "silver",
                sources=("order_items",),
                tests=("test.shop.not_null_order_items_order_id.3a8f5b5e1c",),
            ),
            node(
                "revenue_per_customer_month",
                "gold",
                depends_on=("model.shop.order_items", "model.shop.orders", "model.shop.customers"),
                tests=("test.shop.not_null_revenue_per_customer_month_revenue.1f2e3d4c5b",),
            ),
        ]
    )


def graph_doc(
    tenant: str,
    project: str,
    nodes: dict[str, dict[str, Any]],
    layers: dict[str, str] | None = None,
    version: int = 1,
) -> dict[str, Any]:
    return {
        "version": version,
        "tenant": tenant,
        "project": project,
        "project_hash": "a" * 64,
        "inputs_hash": "b" * 64,
        "dbt_version": "1.12.0",
        "layers": dict(DEFAULT_LAYERS if layers is None else layers),
        "nodes": nodes,
    }


def write_graph(tenant_dir: Path, doc: dict[str, Any]) -> Path:
    path = graph_path(tenant_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2))
    return path


def report(
    statuses: dict[str, str], extra: dict[str, dict[str, Any]] | None = None
) -> dict[str, Any]:
    """A `dbt_build` result (contract B) whose `nodes` have the given statuses, plus
    `extra` fields per node (message, failures)."""
    nodes = {uid: {"status": s, "seconds": 0.1, "message": ""} for uid, s in statuses.items()}
    for uid, fields in (extra or {}).items():
        nodes[uid] = {**nodes.get(uid, {}), **fields}
    return {"command": "dbt", "status": "ok", "nodes": nodes}

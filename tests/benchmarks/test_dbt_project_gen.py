"""The dbt benchmark's generated tenant is what the benchmark says it is: a valid tenant
file and a dbt project that dbt parses into the requested models, layers, fan-in and
tests (the benchmark itself takes minutes and is not run here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.dbt_dag import Tenant, prepare_plain
from benchmarks.dbt_project_gen import (
    DOMAINS,
    copy_tenant,
    env_names,
    generate_tenant,
    layer_sizes,
)
from dag_factory.loader import Loader


def test_layer_sizes_split_20_50_30_and_sum_to_the_request():
    assert layer_sizes(200) == {"silver": 40, "intermediate": 100, "gold": 60}
    assert sum(layer_sizes(53).values()) == 53
    with pytest.raises(ValueError, match="at least 3"):
        layer_sizes(2)


def test_generated_project_parses_into_the_requested_nodes(tmp_path: Path):
    generated = generate_tenant(tmp_path / "root", models=40)
    source_env, warehouse_env = env_names("bench")
    tenant = Tenant(
        name="bench",
        env={
            source_env: f"sqlite:///{tmp_path}/shop.sqlite",
            warehouse_env: f"duckdb:///{tmp_path}/bench.duckdb",
        },
        warehouse_file=tmp_path / "bench.duckdb",
    )
    prepare_plain(generated.warehouses, tenant, tmp_path / "plain")

    manifest = json.loads(tenant.manifest.read_text())
    nodes = manifest["nodes"]
    models = {k: n for k, n in nodes.items() if n["resource_type"] == "model"}
    tests = [n for n in nodes.values() if n["resource_type"] == "test"]
    assert tenant.models == len(models) == generated.model_count == 40
    assert tenant.tests == len(tests) == generated.test_count == 2 * 10
    by_folder = {folder: 0 for folder in ("staging", "intermediate", "marts")}
    for node in models.values():
        by_folder[node["fqn"][1]] += 1
    assert by_folder == {"staging": 8, "intermediate": 20, "marts": 12}

    for node in models.values():
        parents = node["depends_on"]["nodes"]
        if node["fqn"][1] == "staging":  # one bronze source each, a view
            assert [p.split(".")[-2] for p in parents] == ["bronze"]
            assert node["config"]["materialized"] == "view"
        else:  # fan-in of at least two models, tables
            assert len(parents) >= 2 and all(p.startswith("model.") for p in parents)
            assert node["config"]["materialized"] == "table"
    # every layer routes to its own schema (the runner's macro, from dbt.layers)
    schemas = {node["fqn"][1]: node["schema"] for node in models.values()}
    assert schemas == {"staging": "silver", "intermediate": "intermediate", "marts": "gold"}
    # domain folders: staging by source table, the others by business area
    folders = {"/".join(node["fqn"][1:3]) for node in models.values()}
    assert {f for f in folders if f.startswith("staging/")} == {
        "staging/customers", "staging/products", "staging/orders", "staging/order_items",
    }  # fmt: skip
    assert {f.split("/")[1] for f in folders if not f.startswith("staging/")} == set(DOMAINS)


def test_generated_tenant_and_its_copies_are_valid_tenants(tmp_path: Path):
    generated = generate_tenant(tmp_path, models=10)
    copy_tenant(generated.warehouses, "bench", "bench001")
    copy_tenant(generated.warehouses, "bench", "bench002", tasks="folder")
    loader = Loader(generated.warehouses)
    copy = loader.load(generated.warehouses / "bench001" / "warehouse.yaml")
    assert copy.spec.tenant == "bench001"
    assert copy.spec.source.connection.env == "BENCH001_SOURCE_URL"
    assert copy.dbt_project_dir.resolve() == generated.project_dir.resolve()
    assert list(copy.spec.dbt.layers) == ["silver", "intermediate", "gold"]
    assert copy.spec.dbt.tasks == "model"
    folders = loader.load(generated.warehouses / "bench002" / "warehouse.yaml")
    assert folders.spec.dbt.tasks == "folder" and folders.spec.tenant == "bench002"

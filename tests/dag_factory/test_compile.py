"""`dag-factory dbt compile`: the real console script, the real runner subprocess, real
dbt-core parsing each tenant's project (no warehouse)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from tests.dag_factory.conftest import REPO

DAG_FACTORY = str(Path(sys.executable).parent / "dag-factory")


def _compile(warehouses: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DAG_FACTORY, "dbt", "compile", *args, "--warehouses", str(warehouses)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_compile_writes_the_demo_tenants_graph(tmp_path: Path) -> None:
    done = _compile(REPO / "warehouses", "demo", "--out-root", str(tmp_path))
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines() == [f"demo: 5 nodes, 20 tests → {tmp_path / 'demo'}"]
    graph = json.loads((tmp_path / "demo" / "dbt_graph.json").read_text())
    assert graph["tenant"] == "demo" and graph["project"] == "warehouses/_dbt/shop"
    assert (tmp_path / "demo" / "manifest.json").is_file()
    assert not (REPO / "warehouses" / "demo" / "compiled").exists()


def test_compile_names_the_tenant_whose_project_does_not_parse(tmp_path: Path) -> None:
    warehouses = tmp_path / "warehouses"
    shutil.copytree(REPO / "warehouses" / "_dbt", warehouses / "_dbt")
    shutil.copytree(REPO / "warehouses" / "demo", warehouses / "demo")
    shutil.copy(REPO / "warehouses" / "defaults.yaml", warehouses / "defaults.yaml")
    broken = warehouses / "_dbt" / "shop" / "models" / "gold" / "revenue_per_customer_month.sql"
    broken.write_text("select * from {{ ref('no_such_model') }}\n")
    done = _compile(warehouses)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("demo: dbt parse failed:") and "no_such_model" in lines[0]
    # the default output folder is beside the tenant file, and nothing is left half-written
    assert not (warehouses / "demo" / "compiled" / "dbt_graph.json").exists()

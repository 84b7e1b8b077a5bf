"""The `dag-factory` CLI as a person uses it: real process, real files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.dag_factory.conftest import REPO, WriteTenant
from tests.dag_factory.graphs import graph_doc, shop_nodes, write_graph

CLI = Path(sys.executable).parent / "dag-factory"


def run(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}  # rich wraps tables to the terminal's width
    return subprocess.run(
        [CLI, *args], capture_output=True, text=True, cwd=cwd, timeout=120, env=env
    )


def test_validate_repository_tenants():
    done = run("validate")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 valid, 0 invalid tenant file(s)" in done.stdout


def test_validate_reports_every_problem_as_json(warehouses: Path, write_tenant: WriteTenant):
    write_tenant("good")
    write_tenant("bad", "tenant: bad\nretries: many\nschedul: x\n")
    done = run("validate", "--format", "json", "-w", str(warehouses))
    assert done.returncode == 1
    payload = json.loads(done.stdout)
    assert payload["valid"] == [str(warehouses / "good" / "warehouse.yaml")]
    fields = [(p["line"], p["field"]) for p in payload["problems"]]
    assert (2, "retries") in fields and (3, "schedul") in fields


def test_new_scaffolds_a_valid_tenant(warehouses: Path):
    done = run("new", "fresh", "-w", str(warehouses))
    assert done.returncode == 0, done.stderr
    checked = run("validate", str(warehouses / "fresh"), "-w", str(warehouses))
    assert checked.returncode == 0, checked.stdout
    again = run("new", "fresh", "-w", str(warehouses))
    assert again.returncode == 1 and "exists already" in again.stderr
    bad = run("new", "Bad-Name", "-w", str(warehouses))
    assert bad.returncode == 2 and "is not a tenant id" in bad.stderr


def test_render_local_shows_references_not_secrets():
    done = run("render", "acme", "--executor", "local")
    assert done.returncode == 0, done.stderr
    docs = list(yaml.safe_load_all(done.stdout))
    assert [d["task_id"] for d in docs][-2:] == ["dbt_silver", "dbt_gold"]
    assert docs[0]["secrets"]["RUNNER_SOURCE_URL"] == {"airflow_conn": "acme_source"}


def test_plan_and_list():
    planned = run("plan", "demo")
    assert planned.returncode == 0 and "extract_orders" in planned.stdout
    listed = run("list")
    assert listed.returncode == 0 and "acme" in listed.stdout and "demo" in listed.stdout


def test_plan_and_render_show_the_model_tasks_of_a_compiled_tenant(tmp_path: Path):
    shutil.copytree(
        REPO / "warehouses", tmp_path / "warehouses", ignore=shutil.ignore_patterns("compiled")
    )
    plain = run("render", "demo", "-w", str(tmp_path / "warehouses"))
    assert [d["task_id"] for d in yaml.safe_load_all(plain.stdout)][-2:] == [
        "dbt_silver",
        "dbt_gold",
    ]
    write_graph(
        tmp_path / "warehouses" / "demo",
        graph_doc("demo", "warehouses/_dbt/shop", shop_nodes()),
    )
    rendered = run("render", "demo", "-w", str(tmp_path / "warehouses"))
    docs = {d["task_id"]: d for d in yaml.safe_load_all(rendered.stdout)}
    assert {"dbt_build", "silver.customers", "gold.revenue_per_customer_month"} <= set(docs)
    assert "--report-nodes" in docs["dbt_build"]["argv"]
    # the tenant's own dbt image, tagged from the graph (the local adapter runs no image)
    assert docs["dbt_build"]["image"].startswith("registry.localhost/tenant-dbt-demo:")
    planned = run("plan", "demo", "-w", str(tmp_path / "warehouses"))
    assert planned.returncode == 0 and "dbt_build" in planned.stdout


def test_unknown_tenant_fails_with_one_line():
    done = run("plan", "nobody")
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "no such tenant file" in done.stderr


def test_k8s_writes_a_kustomize_folder(tmp_path: Path):
    bare = tmp_path / "bare"
    shutil.copytree(REPO / "warehouses", bare)
    acme_file = bare / "acme" / "warehouse.yaml"
    acme_file.write_text(acme_file.read_text().split("\nplatform:\n")[0] + "\n")
    refused = run("k8s", "acme", "--out", str(tmp_path / "refused"), "-w", str(bare))
    assert refused.returncode == 1
    assert "source_egress: the postgres source needs a NetworkPolicy destination" in (
        " ".join(refused.stderr.split())
    )
    assert not (tmp_path / "refused").exists()  # nothing half-written

    warehouses = tmp_path / "warehouses"
    shutil.copytree(REPO / "warehouses", warehouses)
    acme_file = warehouses / "acme" / "warehouse.yaml"
    acme_file.write_text(acme_file.read_text().split("\nplatform:\n")[0] + "\n")
    with acme_file.open("a") as file:
        file.write(
            "platform:\n  kubernetes:\n"
            "    source_egress: {cidrs: [10.20.0.0/16]}\n"
            "    warehouse_egress: {pod_selector: {app: acme-warehouse}}\n"
        )
    done = run("k8s", "acme", "--out", str(tmp_path / "acme"), "-w", str(warehouses))
    assert done.returncode == 0, done.stderr
    built = subprocess.run(
        ["kubectl", "kustomize", str(tmp_path / "acme")], capture_output=True, text=True
    )
    assert built.returncode == 0, built.stderr
    kinds = [doc["kind"] for doc in yaml.safe_load_all(built.stdout)]
    assert {"Namespace", "ServiceAccount", "Role", "RoleBinding", "NetworkPolicy"} <= set(kinds)

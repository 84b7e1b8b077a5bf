"""The `acme` tenant's DAG with `executor: docker`, for real: `airflow dags test` runs every
task as a container of the runner images pulled from the test registry, on the test run's
own dockerd, against the test run's PostgreSQL (reached over the host network). As in a
deployment, `dag-factory dbt compile` and the tenant image come first: the dbt tasks run
acme's own image (`make images`), and its model tasks read `dbt_build`'s report."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dag_factory.isolation import EXECUTOR_ENV
from dag_factory.plan import NETWORK_ENV, REGISTRY_ENV
from devtools.docker import DockerEngine
from devtools.postgres import PostgresCluster
from devtools.shop import generate_shop
from runners.build_images import tenant_images
from tests.containers.conftest import RunnerImages
from tests.integration.test_tenant_dags import counts, dags_test

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ORDERS = 3_000
#: Trust auth ignores it; it must appear nowhere in the run's output.
PASSWORD = "n0t-in-any-log"


def test_acme_dag_runs_in_docker(
    airflow_env: dict[str, str],
    pg_cluster: PostgresCluster,
    runner_images: RunnerImages,
    docker_engine: DockerEngine,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
):
    root = tmp_path / "deploy"
    shutil.copytree(os.environ["DAG_FACTORY_WAREHOUSES"], root / "warehouses")
    subprocess.run(
        [BIN / "dag-factory", "dbt", "compile", "acme", "--warehouses", root / "warehouses"],
        check=True,
        capture_output=True,
    )
    (acme_image,) = tenant_images(
        registry=runner_images.registry,
        push=True,
        tenants=["acme"],
        dbt_image=runner_images.ref("dbt"),
        root=root,
        work=tmp_path / "work",
        env=docker_engine.env,
    )
    source = pg_cluster.create_database("acme_docker_source")
    warehouse = pg_cluster.create_database("acme_docker_warehouse")
    source_rows = generate_shop(source, orders=ORDERS, schema="shop")
    server = f"postgres://postgres:{PASSWORD}@127.0.0.1:{pg_cluster.port}"
    env = {
        **airflow_env,
        EXECUTOR_ENV: "docker",
        REGISTRY_ENV: runner_images.registry,
        NETWORK_ENV: "host",  # PostgreSQL listens on 127.0.0.1 only
        "DOCKER_HOST": docker_engine.host,
        "DAG_FACTORY_WAREHOUSES": str(root / "warehouses"),
        "AIRFLOW_CONN_ACME_SOURCE": f"{server}/acme_docker_source",
        "AIRFLOW_CONN_ACME_WAREHOUSE": f"{server}/acme_docker_warehouse",
    }
    started = time.perf_counter()
    done = dags_test("tenant_acme", env)
    seconds = time.perf_counter() - started
    log = done.stdout + done.stderr
    (tmp_path / "dags-test.log").write_text(log)
    # a container per extract and one for dbt_build (acme's own image); the model tasks
    # passed on dbt_build's report without a container; none ran as a subprocess
    started_lines = [ln for ln in log.splitlines() if "Starting docker container" in ln]
    assert len(started_lines) == len(source_rows) + 1, f"see {tmp_path / 'dags-test.log'}"
    assert all(f"from image {runner_images.registry}/" in ln for ln in started_lines)
    assert sum(f"from image {acme_image.ref}" in ln for ln in started_lines) == 1
    assert "success in dbt_build" in log
    assert "RunnerProcessOperator" not in log

    found = counts(
        warehouse, {"bronze": "acme_bronze", "silver": "acme_silver", "gold": "acme_gold"}
    )
    for table, rows in source_rows.items():
        assert found[f"{table}@bronze"] == rows
        assert found[f"{table}@silver"] > 0
    assert found["revenue_per_customer_month@gold"] > 0
    # the containers were removed, and no connection password reached the log
    assert docker_engine.run("ps", "-aq", "--filter", "label=dag-factory.io/tenant=acme") == ""
    assert PASSWORD not in log
    with capsys.disabled():
        print(f"\nacme DAG through DockerOperator (airflow dags test): {seconds:.1f} s", end="")

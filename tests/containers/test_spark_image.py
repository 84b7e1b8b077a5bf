"""The Spark runner image and a Spark tenant's image, for real: `make images`'s code path
builds `tenant-runner-spark` offline on the test registry's dbt image (Java from .deb
files the host's apt fetched, the `spark` extra's wheels), then the `lake_spark`
tenant's image FROM it, from the graph `dag-factory dbt compile` writes; the DAG names
that very image, and Spark's local mode runs in it with a read-only root and no network.

Costs about 1-2 minutes on top of the datakit and dbt images (pyspark's wheel, built once
per set of pins under .data/wheels/, and Java's .deb files under .data/debs/).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from dag_factory import dbt_graph
from dag_factory.compile import compile_tenant
from dag_factory.dbt_graph import graph_path
from dag_factory.loader import Loader
from dag_factory.plan import PlatformOverrides, plan_tenant
from datakits.contract import RUNNER_UID
from devtools.compiled import LOCAL_OUTPUT
from devtools.docker import DockerEngine, Registry
from runners.build_images import ALL_IMAGES, build_images, tenant_images
from tests.containers.conftest import RunnerImages
from tests.lakehouse.test_spark_tenant import spark_tenant

REPO = Path(__file__).resolve().parents[2]
#: Spark's local mode in a container with no network: its own address, not a DNS lookup
#: of the container's hostname (which `--network none` leaves unresolvable).
SPARK_PROBE = (
    "from pyspark.sql import SparkSession; "
    "s = SparkSession.builder.master('local[1]').getOrCreate(); "
    "print('rows', s.range(3).count()); s.stop()"
)


@pytest.fixture(scope="module")
def spark(
    tmp_path_factory: pytest.TempPathFactory,
    runner_images: RunnerImages,
    docker_engine: DockerEngine,
) -> Iterator[SimpleNamespace]:
    """Both images, pushed to a registry of this module's own: with Java and pyspark they
    hold ~3 GB of layers, which leave the disk with the module (registry, images and build
    cache) instead of staying to the end of the session."""
    with Registry() as registry:
        try:
            built = _build(tmp_path_factory, runner_images, docker_engine, registry.address)
            yield built
        finally:
            refs = docker_engine.run(
                "image", "ls", "--format", "{{.Repository}}:{{.Tag}}", check=False
            ).split()
            ours = [ref for ref in refs if ref.startswith(f"{registry.address}/")]
            if ours:
                docker_engine.run("rmi", "--force", *ours, check=False)
            docker_engine.run("builder", "prune", "--all", "--force", check=False)


def _build(
    tmp_path_factory: pytest.TempPathFactory,
    runner_images: RunnerImages,
    docker_engine: DockerEngine,
    registry: str,
) -> SimpleNamespace:
    (image,) = build_images(
        registry=registry, push=True, base_image=runner_images.base,
        targets=("spark",), env=docker_engine.env,
    )  # fmt: skip
    root = tmp_path_factory.mktemp("spark-tenants")
    warehouses = root / "warehouses"
    shutil.copytree(REPO / "warehouses", warehouses, ignore=shutil.ignore_patterns(*LOCAL_OUTPUT))
    file = spark_tenant(warehouses, root / "spark-warehouse") / "warehouse.yaml"
    doc = yaml.safe_load(file.read_text())
    doc["images"] = {"spark": image.refs[0]}  # the tenant file names the image just pushed
    file.write_text(yaml.safe_dump(doc, sort_keys=False))
    tenant = Loader(warehouses).load(file)
    compiled = compile_tenant(tenant, root)
    assert compiled.ok, compiled.line
    (built,) = tenant_images(
        registry=registry, push=True, tenants=["lake_spark"],
        spark_image=image.refs[0], root=root, work=tmp_path_factory.mktemp("work"),
        env=docker_engine.env,
    )  # fmt: skip
    docker_engine.run("rmi", built.ref)  # what runs next comes from the registry
    docker_engine.run("pull", "--quiet", built.ref)
    return SimpleNamespace(image=image, tenant=tenant, root=root, built=built, registry=registry)


def test_the_dag_runs_the_image_the_builder_pushed(spark: SimpleNamespace):
    graph = dbt_graph.load(graph_path(spark.tenant.folder))
    assert graph is not None and graph.engine == "spark"
    overrides = PlatformOverrides(registry=spark.registry)  # DAG_FACTORY_REGISTRY
    task = plan_tenant(spark.tenant, spark.root, overrides, graph).task("dbt_gold")
    assert task.image == task.env_dict["SPARK_IMAGE"] == spark.built.ref
    assert not spark.built.reused


def test_the_spark_images_labels_user_and_java(spark: SimpleNamespace, docker_engine: DockerEngine):
    config = json.loads(docker_engine.run("image", "inspect", spark.built.ref))[0]["Config"]
    labels = config["Labels"]
    assert labels["io.tenant-runner.engine"] == "spark"
    assert labels["org.opencontainers.image.base.name"] == spark.image.refs[0]
    assert labels["org.opencontainers.image.title"] == "tenant-dbt-lake_spark"
    assert config["User"] == f"{RUNNER_UID}:{RUNNER_UID}" and config["Entrypoint"] == ["runner"]
    base = json.loads(docker_engine.run("image", "inspect", spark.image.refs[0]))[0]["Config"]
    assert base["Labels"]["org.opencontainers.image.title"] == ALL_IMAGES["spark"]
    out = docker_engine.run(
        "run", "--rm", "--network", "none", "--read-only", "--entrypoint", "sh", spark.built.ref,
        "-c", "java -version 2>&1 | grep ' version '; ls /var/cache/apt/archives/*.deb "
        "2>/dev/null | wc -l; ls /app/warehouses; id -u",
    )  # fmt: skip
    java, debs, *folders, uid = out.split("\n")[:-1]
    assert java.startswith('openjdk version "17.') and debs == "0"
    assert folders == ["_dbt", "lake_spark"] and uid == str(RUNNER_UID)


def test_spark_local_mode_runs_in_the_tenant_image_read_only_offline(
    spark: SimpleNamespace, docker_engine: DockerEngine
):
    out = docker_engine.run(
        "run", "--rm", "--network", "none", "--read-only", "--tmpfs", "/tmp",  # noqa: S108 (the container's)
        "-e", "SPARK_LOCAL_IP=127.0.0.1", "--entrypoint", "python", spark.built.ref,
        "-c", SPARK_PROBE, timeout=300,
    )  # fmt: skip
    assert out.strip().splitlines()[-1] == "rows 3"

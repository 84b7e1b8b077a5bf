"""The Spark task of a lakehouse tenant as a Kubernetes pod, and its Spark settings.

The pod is the one the Kubernetes adapter renders for the tenant's dbt task, with the
`runner spark` argv and the Spark image: it validates against the 1.32 schema like every
other pod, and the lake's secret stays a `secretKeyRef`. The settings say client mode on
the cluster with executors from the same image, and s3a for the tenant's lake only.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import kubernetes_validate
import pytest

from dag_factory.adapters import renderer_for
from dag_factory.loader import Loader
from dag_factory.plan import plan_tenant
from dag_factory.spec import Executor
from datakits.writers.lakehouse import lake_location
from runners.spark_bronze import BronzeAccess
from runners.spark_conf import spark_conf

REPO = Path(__file__).resolve().parents[2]
SPARK_IMAGE = "registry.localhost/runner-spark:1.0.0"
URL = "s3://key:s%2Fecret@minio.minio:9000/lake-bucket?secure=false"


def test_the_spark_task_renders_as_a_valid_restricted_pod() -> None:
    lake = next(
        t for t in Loader(REPO / "warehouses").load_all().tenants if t.spec.tenant == "lake"
    )
    gold = plan_tenant(lake, REPO).task("dbt_gold")
    argv = ("spark", "--project-dir", "warehouses/_dbt/shop", "run", "--select", "silver", "gold")
    env = (*gold.env, ("SPARK_MASTER", "k8s://https://kubernetes.default.svc"))
    task = dataclasses.replace(gold, argv=argv, image=SPARK_IMAGE, env=env)
    pod = renderer_for(Executor.kubernetes)(task)
    kubernetes_validate.validate(pod, "1.32", strict=True)
    container = pod["spec"]["containers"][0]
    assert container["args"] == list(argv) and container["image"] == SPARK_IMAGE
    secret = next(e for e in container["env"] if e["name"] == "RUNNER_WAREHOUSE_URL")
    assert secret["valueFrom"]["secretKeyRef"]["name"] == "tenant-lake-warehouse"
    assert container["securityContext"]["runAsNonRoot"] is True


def test_spark_settings_client_mode_on_kubernetes_and_s3a_for_the_lake(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SPARK_MASTER", "k8s://https://kubernetes.default.svc")
    monkeypatch.setenv("SPARK_IMAGE", SPARK_IMAGE)
    monkeypatch.setenv("SPARK_NAMESPACE", "tenant-lake")
    location = lake_location(URL)
    conf = spark_conf(location, "s3a://lake-bucket/lake/spark-warehouse", access=BronzeAccess.s3a)
    assert conf["spark.submit.deployMode"] == "client"
    assert conf["spark.kubernetes.container.image"] == SPARK_IMAGE
    assert conf["spark.kubernetes.namespace"] == "tenant-lake"
    assert conf["spark.driver.host"]  # the pod's own address, for the executors
    assert conf["spark.hadoop.fs.s3a.endpoint"] == "http://minio.minio:9000"
    assert conf["spark.hadoop.fs.s3a.path.style.access"] == "true"
    assert conf["spark.hadoop.fs.s3a.secret.key"] == "s/ecret"
    # local mode with copied bronze: no s3a settings, no Kubernetes ones
    monkeypatch.delenv("SPARK_MASTER")
    local = spark_conf(location, "spark-warehouse", access=BronzeAccess.copy)
    assert local["spark.master"].startswith("local")
    assert not any(k.startswith(("spark.hadoop.fs.s3a", "spark.kubernetes")) for k in local)
    # the driver talks to itself on loopback: no need for the host name to resolve
    assert local["spark.driver.host"] == local["spark.driver.bindAddress"] == "127.0.0.1"

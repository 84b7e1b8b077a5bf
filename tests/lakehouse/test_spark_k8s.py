"""`runner spark` as Spark's driver in client mode on Kubernetes: a real kube-apiserver,
executor pods created by Spark's own Kubernetes scheduler backend from our pod template,
run (by a stand-in kubelet, devtools/kubelet.py) as `runner executor` the way the image's
entrypoint would start them; the executors register with the driver and run the dbt
build, and gold equals the DuckDB path's row for row.

Real parts: kube-apiserver + etcd (TLS, RBAC, ServiceAccount and LimitRange admission),
the tenant's own objects applied to it (dag_factory.k8s_objects: namespace, quota,
LimitRange, the `spark-driver` account and Role), a bound token of that account found by
Spark's client the way it finds a pod's mounted token, Spark's fabric8 client, the JVMs. What is not
real: no container runtime (the executor processes run on this machine as this user), and
pods are not scheduled to a node.

Skips unless a kube-apiserver binary is found (`KUBE_APISERVER`, or built under
/work/kube-build: see /work/shared/STACK.md), so `make test` is unaffected.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from dag_factory.k8s_objects import SPARK_DRIVER, SPARK_ROLE_LABEL, tenant_objects
from dag_factory.loader import Loader
from dag_factory.plan import plan_tenant
from datakits.load import load_table
from datakits.writers.lakehouse import lake_location
from devtools.compiled import LOCAL_OUTPUT
from devtools.kube import APISERVER_ENV, KubeAPIServer, apiserver_binary
from devtools.kubelet import ImageConfig, LocalKubelet, dockerfile_image, venv_paths
from devtools.s3 import S3Server
from devtools.shop import generate_shop
from runners.spark_bronze import BronzeAccess
from runners.spark_conf import spark_conf
from tests.datakits.runner_proc import RUNNER, runner_env
from tests.lakehouse.gold import GOLD, assert_spark_gold_equals_duckdb, build_duckdb_gold
from tests.lakehouse.test_spark_tenant import spark_tenant

REPO = Path(__file__).resolve().parents[2]
PROJECT = REPO / "warehouses" / "_dbt" / "shop"
IMAGE = "registry.test/tenant-dbt-lake_spark:k8s-test"
EXECUTORS = 2
#: dbt.spark.executor of the test's tenant: half a core and 1Gi per executor pod.
EXECUTOR_SIZE = {"cpu": "500m", "memory": "1Gi"}
#: The plan's env of the executors' and the driver's sizes (dag_factory.plan.spark_resource_env).
SIZE_ENV = (
    "RUNNER_SPARK_EXECUTOR_MILLICORES",
    "RUNNER_SPARK_EXECUTOR_MEMORY_MIB",
    "RUNNER_SPARK_DRIVER_MEMORY_MIB",
)


@pytest.fixture(scope="module")
def kube_apiserver() -> Iterator[KubeAPIServer]:
    binary = apiserver_binary()
    if binary is None:
        named = os.environ.get(APISERVER_ENV)
        pytest.skip(
            (f"{APISERVER_ENV}={named} is not a file" if named else "no kube-apiserver")
            + f": `make test-k8s` builds one (Debian's `kubernetes` source package, into "
            f".data/kube-build) and runs this test; or set {APISERVER_ENV} to a binary"
        )
    if shutil.which("etcd") is None:
        pytest.skip("no etcd: apt-get install etcd-server")
    server = KubeAPIServer(binary).start()
    try:
        yield server
    finally:
        server.stop()


def apply(kube: KubeAPIServer, objects: list[dict[str, Any]]) -> None:
    """Create the objects as the admin (`kubectl create`), namespaces first."""
    from kubernetes import client, utils

    api = kube.client()
    core = client.CoreV1Api(api)
    have = {n.metadata.name for n in core.list_namespace().items}
    for obj in objects:
        namespace = obj["metadata"].get("namespace")
        if namespace and namespace not in have:
            core.create_namespace({"metadata": {"name": namespace}})
            have.add(namespace)
        if obj["kind"] == "Namespace":
            have.add(obj["metadata"]["name"])
        utils.create_from_dict(api, obj)
        if obj["kind"] == "Namespace":
            # no controller-manager: the account admission wants exists nowhere yet
            core.create_namespaced_service_account(
                obj["metadata"]["name"], {"metadata": {"name": "default"}}
            )


def driver_pod(namespace: str) -> dict[str, Any]:
    """The runner pod as the Kubernetes adapter renders a Spark task's (its identity part):
    Spark reads it to make the executors' owner. No kubelet runs it: this test's process
    is its container."""
    restricted = {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "lake-spark-dbt-gold-driver",
            "namespace": namespace,
            "labels": {SPARK_ROLE_LABEL: "driver"},
        },
        "spec": {
            "serviceAccountName": SPARK_DRIVER,
            "automountServiceAccountToken": False,  # its token: given to Spark below
            "containers": [
                {"name": "base", "image": IMAGE, "args": ["spark"], "securityContext": restricted}
            ],
        },
    }


def mounted_token(folder: Path, kube: KubeAPIServer, token: str) -> dict[str, str]:
    """The account's token and the API's CA as a pod has them mounted, and how Spark finds
    them there. In production `spark_conf` sets no `spark.kubernetes.authenticate.*`:
    Spark's client (fabric8) discovers the pod's service account by itself, from
    /var/run/secrets/kubernetes.io/serviceaccount/{token,ca.crt}. Here the same discovery
    runs, pointed at these files by fabric8's own overrides of those two paths."""
    folder.mkdir(parents=True)
    (folder / "token").write_text(token)
    return {
        "KUBERNETES_AUTH_SERVICEACCOUNT_TOKEN": str(folder / "token"),
        "KUBERNETES_CERTS_CA_FILE": str(kube.ca_file),
        "KUBECONFIG": str(folder / "no-kubeconfig"),  # no other credentials to find
    }


def causes(log: str) -> list[str]:
    """The lines of a JVM log that say what failed: exceptions and their causes."""
    return [line for line in log.splitlines() if "Exception" in line and "\tat " not in line]


def wait_for(check: Any, what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_the_image_runs_runner_executor_for_sparks_executor_argument() -> None:
    image = dockerfile_image(REPO / "runners" / "docker" / "Dockerfile", "spark")
    assert image.entrypoint == ["runner"]
    assert image.env["PYSPARK_PYTHON"] == "/opt/venv/bin/python"
    assert image.env["PATH"].startswith("/opt/venv/bin:")


def test_the_driver_binds_to_the_address_executors_are_given(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Spark 4.1+ (`spark.kubernetes.executor.useDriverPodIP`, default true) tells the
    executors the driver's *bind* address: it must be the pod IP, never 0.0.0.0."""
    monkeypatch.setenv("SPARK_MASTER", "k8s://https://kubernetes.default.svc")
    monkeypatch.setenv("SPARK_DRIVER_HOST", "10.1.2.3")
    location = lake_location("s3://k:s@127.0.0.1:9/lake?region=us-east-1&secure=false")
    conf = spark_conf(location, str(tmp_path), access=BronzeAccess.copy, work_dir=tmp_path)
    assert conf["spark.driver.bindAddress"] == conf["spark.driver.host"] == "10.1.2.3"


def test_spark_executor_pods_run_on_kubernetes_and_gold_equals_duckdb(
    spark_java: str, kube_apiserver: KubeAPIServer, s3_server: S3Server, bucket: str, tmp_path: Path
) -> None:
    from kubernetes import client

    # the tenant, as test_spark_tenant has it, and its objects in the cluster
    warehouses = tmp_path / "warehouses"
    shutil.copytree(REPO / "warehouses", warehouses, ignore=shutil.ignore_patterns(*LOCAL_OUTPUT))
    spark_dir = tmp_path / "spark-warehouse"
    tenant_file = spark_tenant(warehouses, spark_dir) / "warehouse.yaml"
    doc = yaml.safe_load(tenant_file.read_text())
    doc["dbt"]["spark"]["api_server"] = {"cidrs": ["127.0.0.1/32"]}
    doc["dbt"]["spark"]["executor"] = EXECUTOR_SIZE
    tenant_file.write_text(yaml.safe_dump(doc, sort_keys=False))
    loaded = Loader(warehouses).load(warehouses / "lake_spark" / "warehouse.yaml")
    tenant = loaded.spec
    # the executors' size as the plan gives it to the task (dbt.spark.executor)
    planned = plan_tenant(loaded, warehouses.parent).task("dbt_gold").env_dict
    sizes = {k: planned[k] for k in SIZE_ENV if k in planned}
    assert sizes["RUNNER_SPARK_EXECUTOR_MEMORY_MIB"] == "1024"
    namespace = tenant.namespace
    apply(kube_apiserver, tenant_objects(tenant))
    core = client.CoreV1Api(kube_apiserver.client())
    if kube_apiserver.controllers:  # quota admission counts only once the status is there
        wait_for(
            lambda: core.read_namespaced_resource_quota("runner-quota", namespace).status.hard,
            "the quota controller",
        )
    driver = core.create_namespaced_pod(namespace, driver_pod(namespace))
    token = kube_apiserver.token_for(namespace, SPARK_DRIVER)

    # bronze in the lake, DuckDB's gold from it
    spec = tenant.load_spec()
    source = f"sqlite:///{tmp_path}/shop.sqlite"
    generate_shop(source, orders=400)
    lake_db = tmp_path / "lake.duckdb"
    lake_url = s3_server.warehouse_url(bucket, duckdb=lake_db)
    for table in spec.tables:
        load_table(spec, table, source, lake_url)
    env = runner_env(spec, source, lake_url)
    build_duckdb_gold(env, PROJECT)
    project = ["--project-dir", str(PROJECT)]

    # the kubelet for the executor pods, with the image's entrypoint and env
    image: ImageConfig = dockerfile_image(REPO / "runners" / "docker" / "Dockerfile", "spark")
    kubelet = LocalKubelet(
        api=kube_apiserver.client(),
        namespace=namespace,
        selector=f"{SPARK_ROLE_LABEL}=executor",
        images={IMAGE: image},
        work=tmp_path / "pods",
        paths=venv_paths(),
    ).start()
    # the driver pod runs (this test's subprocess is its container): Spark waits for it
    # to be Ready before it makes it the executors' owner
    kubelet.report_running(kube_apiserver.client().sanitize_for_serialization(driver))
    driver_ip = kubelet.ip(driver.metadata.name)
    spark_env = {
        **env,
        "RUNNER_SPARK_BRONZE": "copy",
        "RUNNER_SPARK_WAREHOUSE": str(spark_dir),
        "SPARK_MASTER": f"k8s://{kube_apiserver.url}",
        "SPARK_NAMESPACE": namespace,
        "SPARK_IMAGE": IMAGE,
        "SPARK_EXECUTORS": str(EXECUTORS),
        "SPARK_DRIVER_HOST": driver_ip,  # the downward API's status.podIP
        "SPARK_DRIVER_POD": driver.metadata.name,
        **sizes,
        **mounted_token(tmp_path / "serviceaccount", kube_apiserver, token),
    }
    try:
        done = subprocess.run(
            [RUNNER, "spark", *project, "run", "--select", "silver", "gold"],
            env=spark_env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        (tmp_path / "driver.log").write_text(done.stderr)  # kept when the test fails
        logs = {name: ran.log.read_text(errors="replace") for name, ran in kubelet.pods.items()}
        assert done.returncode == 0, "\n".join(
            [*causes(done.stderr), f"executors: {sorted(logs)}", done.stderr[-2000:]]
        )
        # Spark deletes its executor pods at the end (deleteOnTermination)
        wait_for(
            lambda: (
                not core.list_namespaced_pod(namespace, label_selector="spark-role=executor").items
            ),
            "the executor pods to be deleted",
        )
    finally:
        kubelet.stop()
    assert kubelet.errors == []
    # the driver's account may do all Spark asks of the API (its PVC clean-up included)
    assert "403" not in done.stderr and "Forbidden" not in done.stderr, causes(done.stderr)
    result = json.loads(done.stdout.splitlines()[-1])
    assert (result["failed"], result["models"][-1]) == (0, f"gold.{GOLD}")

    # the executor pods: ours (pod template), owned by the driver pod, started as the image would
    assert len(kubelet.pods) == EXECUTORS
    for name, ran in kubelet.pods.items():
        pod = ran.pod
        assert pod["metadata"]["labels"][SPARK_ROLE_LABEL] == "executor"
        assert [(o["kind"], o["name"], o["uid"]) for o in pod["metadata"]["ownerReferences"]] == [
            ("Pod", driver.metadata.name, driver.metadata.uid)
        ]
        spec_ = pod["spec"]
        assert spec_["automountServiceAccountToken"] is False
        # no token: no secret or projected token volume, nor a file of the driver's
        # SPARK_CONF_DIR that Spark copies into the executors' config map
        assert "token" not in json.dumps(spec_["volumes"]).lower()
        assert not any("secret" in v or "projected" in v for v in spec_["volumes"])
        assert spec_["securityContext"]["runAsNonRoot"] is True
        (container,) = spec_["containers"]
        assert container["image"] == IMAGE
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["runAsUser"] == 10001
        # Spark passes `executor` as the args; the image's ENTRYPOINT is `runner`, found on
        # the image's PATH (its /opt/venv/bin: this virtualenv's bin here)
        assert container["args"] == ["executor"] and "command" not in container
        # the tenant's executor size, as the namespace's quota counts it
        size = {"cpu": "500m", "memory": "1Gi"}
        assert container["resources"] == {"limits": size, "requests": size}
        assert ran.argv == ["runner", "executor"]
        assert ran.env["PATH"].startswith(f"{sys.prefix}/bin:")
        # executors connect to the driver pod's IP (not 0.0.0.0: that is each pod itself)
        assert ran.env["SPARK_DRIVER_URL"].startswith(
            f"spark://CoarseGrainedScheduler@{driver_ip}:"
        )
        assert ran.env["SPARK_EXECUTOR_POD_IP"] == kubelet.ip(name)
        assert ran.exit_code is not None  # it ended, with the driver
        log = logs[name]
        assert "Successfully registered with driver" in log, log[-2000:]
        assert "Running task" in log, log[-2000:]  # it did the work, not the driver

    assert_spark_gold_equals_duckdb(lake_db, spark_dir)

"""The size of a Spark tenant's executors, from the tenant file to Spark and the quota.

`dbt.spark.executor: {cpu, memory}` → the plan's env (integers) → `spark_conf`'s Spark
settings (cores, request/limit cores, heap + overhead) → the executor pod Spark builds
from them; and the same size in the namespace's ResourceQuota and LimitRange. The pod
Spark would ask for is rebuilt here from the settings the way Spark's
`BasicExecutorFeatureStep` does (memory request = limit = heap + overhead in Mi, CPU
request and limit the two `spark.kubernetes.executor.*.cores`) and must fit the quota and
the LimitRange exactly. Fast: no JVM, no server. Bad files: tests/dag_factory/corpus/4*.
"""

from __future__ import annotations

import copy
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from dag_factory.adapters.container import memory_bytes, millicores
from dag_factory.k8s_objects import (
    POD_SLOT_HEADROOM,
    executor_amounts,
    limit_range,
    parallel_executor_pods,
    quota_amounts,
    tenant_objects,
)
from dag_factory.loader import Loader, Tenant
from dag_factory.plan import plan_tenant
from datakits.writers.lakehouse import lake_location
from devtools.compiled import LOCAL_OUTPUT
from runners.spark_bronze import BronzeAccess
from runners.spark_conf import (
    DRIVER_MEMORY_ENV,
    EXECUTOR_MEMORY_ENV,
    EXECUTOR_MILLICORES_ENV,
    MIN_HEAP_MIB,
    MIN_OVERHEAD_MIB,
    executor_pod_template,
    executor_resources,
    spark_conf,
    split_memory,
)
from tests.lakehouse.test_spark_tenant import spark_tenant

REPO = Path(__file__).resolve().parents[2]
API = {"cidrs": ["10.96.0.1/32"]}
K8S = "1.32"
MIB = 2**20


@pytest.fixture
def warehouses(tmp_path: Path) -> Path:
    root = tmp_path / "warehouses"
    shutil.copytree(REPO / "warehouses", root, ignore=shutil.ignore_patterns(*LOCAL_OUTPUT))
    spark_tenant(root, tmp_path / "spark-warehouse")
    return root


def load(warehouses: Path, name: str = "lake_spark", **spark: Any) -> Tenant:
    path = warehouses / name / "warehouse.yaml"
    if spark:
        doc = yaml.safe_load(path.read_text())
        doc["dbt"]["spark"] = {**doc["dbt"]["spark"], **spark}
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return Loader(warehouses).load(path)


def k8s_conf(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> dict[str, str]:
    """`spark_conf` as the Spark task's pod runs it: a k8s master and the planned env."""
    monkeypatch.setenv("SPARK_MASTER", "k8s://https://kubernetes.default.svc")
    monkeypatch.setenv("SPARK_DRIVER_HOST", "10.0.0.5")
    for name in (EXECUTOR_MILLICORES_ENV, EXECUTOR_MEMORY_ENV, DRIVER_MEMORY_ENV):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    location = lake_location("s3://key:secret@minio.minio:9000/lake-bucket?secure=false")
    return spark_conf(location, "s3a://lake-bucket/lake_spark/w", access=BronzeAccess.s3a)


def executor_pod(conf: dict[str, str]) -> dict[str, Any]:
    """The executor pod Spark makes of our template and `conf`, as
    `BasicExecutorFeatureStep` does for the default resource profile: memory request and
    limit `heap + overhead` Mi (no off-heap memory, no `pyspark.memory`), CPU request
    `request.cores`, CPU limit `limit.cores`."""
    pod = executor_pod_template()
    pod["metadata"] = {"name": "lake-spark-exec-1", "labels": {"spark-role": "executor"}}
    heap = int(conf["spark.executor.memory"].removesuffix("m"))
    overhead = int(conf["spark.executor.memoryOverhead"].removesuffix("m"))
    memory = f"{heap + overhead}Mi"
    container = pod["spec"]["containers"][0]
    container["image"] = "registry.localhost/tenant-runner-spark:0.1.0"
    container["args"] = ["executor"]
    container["resources"] = {
        "requests": {"cpu": conf["spark.kubernetes.executor.request.cores"], "memory": memory},
        "limits": {"cpu": conf["spark.kubernetes.executor.limit.cores"], "memory": memory},
    }
    return pod


# --- the tenant file and the plan ------------------------------------------------------------


def test_executors_have_a_default_size_and_the_plan_passes_it_as_integers(
    warehouses: Path,
) -> None:
    spec = load(warehouses).spec
    assert (spec.dbt.spark.executor.cpu, spec.dbt.spark.executor.memory) == ("1", "2Gi")
    plan = plan_tenant(
        load(warehouses, executor={"cpu": "2500m", "memory": "6Gi"}), warehouses.parent
    )
    for layer in ("dbt_silver", "dbt_gold"):
        env = plan.task(layer).env_dict
        assert env[EXECUTOR_MILLICORES_ENV] == "2500"
        assert env[EXECUTOR_MEMORY_ENV] == "6144"
        # the driver is the task's own pod: defaults.yaml's tasks.dbt limit, 1Gi
        assert env[DRIVER_MEMORY_ENV] == "1024"
    extracts = [t for t in plan.tasks if t.task_id.startswith("extract_")]
    assert extracts and not any(EXECUTOR_MEMORY_ENV in t.env_dict for t in extracts)
    # never Spark's own env names, which spark-submit and the executors read themselves
    assert not {"SPARK_EXECUTOR_MEMORY", "SPARK_EXECUTOR_CORES", "SPARK_DRIVER_MEMORY"} & set(
        plan.task("dbt_gold").env_dict
    )


def test_a_partial_executor_keeps_the_other_default(warehouses: Path) -> None:
    executor = load(warehouses, executor={"memory": "8Gi"}).spec.dbt.spark.executor
    assert (executor.cpu, executor.memory) == ("1", "8Gi")


# --- spark_conf: a pure function of the env ---------------------------------------------------


@pytest.mark.parametrize(
    ("millicores_", "memory_mib", "cores", "heap", "overhead"),
    [
        (1000, 2048, "1", 1664, 384),  # the default: Spark's 384Mi floor
        (500, 1024, "1", 640, 384),  # a fraction of a core still runs one task
        (2500, 6144, "2", 5529, 615),  # 10% above the floor, rounded up
        (16000, 65536, "16", 58982, 6554),
    ],
)
def test_executor_settings_add_up_to_the_pod(
    millicores_: int, memory_mib: int, cores: str, heap: int, overhead: int
) -> None:
    conf = executor_resources(millicores_, memory_mib)
    assert conf == {
        "spark.executor.cores": cores,
        "spark.kubernetes.executor.request.cores": f"{millicores_}m",
        "spark.kubernetes.executor.limit.cores": f"{millicores_}m",
        "spark.executor.memory": f"{heap}m",
        "spark.executor.memoryOverhead": f"{overhead}m",
    }
    assert heap + overhead == memory_mib  # what Spark asks for is the tenant's size
    assert overhead >= max(MIN_OVERHEAD_MIB, memory_mib // 10) and heap >= MIN_HEAP_MIB


def test_a_pod_too_small_for_sparks_heap_is_refused_not_shrunk() -> None:
    assert split_memory(800, 0.1) == (416, 384)
    with pytest.raises(ValueError, match=r"416Mi heap, under its 450Mi minimum"):
        executor_resources(1000, 800)


def test_spark_conf_sizes_executors_on_kubernetes_only(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {EXECUTOR_MILLICORES_ENV: "3000", EXECUTOR_MEMORY_ENV: "4096"}
    conf = k8s_conf(monkeypatch, env)
    assert conf["spark.executor.cores"] == "3"
    assert conf["spark.executor.memory"] == "3686m"
    assert conf["spark.executor.memoryOverhead"] == "410m"
    assert "spark.driver.memory" not in conf  # no limit planned: Spark's default heap
    # unplanned (an older plan): the schema's default size, never Spark's 1g without limits
    default = k8s_conf(monkeypatch, {})
    assert default["spark.kubernetes.executor.limit.cores"] == "1000m"
    assert default["spark.executor.memory"] == "1664m"
    monkeypatch.setenv("SPARK_MASTER", "local[2]")
    location = lake_location("s3://key:secret@minio.minio:9000/lake-bucket?secure=false")
    local = spark_conf(location, "spark-warehouse", access=BronzeAccess.copy)
    assert not any(k.startswith("spark.executor.") or "executor.request" in k for k in local)


@pytest.mark.parametrize(
    ("limit_mib", "heap"),
    [
        (1024, "614m"),  # 40% beside the heap: the JVM's overhead and dbt's Python
        (4096, "2457m"),
        (800, None),  # no heap Spark accepts fits (the spec refuses this: corpus 44)
    ],
)
def test_the_driver_heap_fits_the_task_pods_limit(
    monkeypatch: pytest.MonkeyPatch, limit_mib: int, heap: str | None
) -> None:
    conf = k8s_conf(monkeypatch, {DRIVER_MEMORY_ENV: str(limit_mib)})
    assert conf.get("spark.driver.memory") == heap


# --- the namespace: quota and LimitRange ------------------------------------------------------


def test_the_quota_counts_executors_at_their_size(warehouses: Path) -> None:
    """lake (4 tables, concurrency 8, 1 run, dbt 250m-2 CPU / 512Mi-1Gi): 8 task pods
    (4 slots, twice) at the largest task + the XCom sidecar. lake_spark adds 3 executors
    per run, twice (a layer's executors still terminating beside the next layer's), each
    1500m / 3Gi as request and limit alike."""
    lake = load(warehouses, "lake").spec
    spark = load(warehouses, executors=3, executor={"cpu": "1500m", "memory": "3Gi"}).spec
    assert quota_amounts(lake) == {
        "pods": "8",
        "requests.cpu": "2080m",
        "requests.memory": "4224Mi",
        "limits.cpu": "16400m",
        "limits.memory": "8448Mi",
    }
    assert quota_amounts(spark) == {
        "pods": "14",  # 8 + 3 * 2
        "requests.cpu": "11080m",  # 2080m + 6 * 1500m
        "requests.memory": "22656Mi",  # 4224Mi + 6 * 3Gi
        "limits.cpu": "25400m",  # 16400m + 6 * 1500m
        "limits.memory": "26880Mi",  # 8448Mi + 6 * 3Gi
    }
    executors = parallel_executor_pods(spark) * POD_SLOT_HEADROOM
    for part in ("requests", "limits"):
        extra_cpu = millicores(quota_amounts(spark)[f"{part}.cpu"]) - millicores(
            quota_amounts(lake)[f"{part}.cpu"]
        )
        extra_memory = memory_bytes(quota_amounts(spark)[f"{part}.memory"]) - memory_bytes(
            quota_amounts(lake)[f"{part}.memory"]
        )
        assert extra_cpu == executors * 1500 and extra_memory == executors * 3 * 2**30
    assert executor_amounts(lake) == {}  # no Spark, nothing added


def test_the_limit_range_admits_an_executor_bigger_than_any_task(warehouses: Path) -> None:
    big = load(warehouses, executor={"cpu": "4", "memory": "16Gi"}).spec
    (limit,) = limit_range(big)["spec"]["limits"]
    assert limit["max"] == {"cpu": "4", "memory": "16Gi"}
    # defaults (what a task pod naming nothing gets) stay the smallest task's
    assert limit["default"] == {"cpu": "1", "memory": "512Mi"}
    small = load(warehouses, executor={"cpu": "500m", "memory": "1Gi"}).spec
    (limit,) = limit_range(small)["spec"]["limits"]
    assert limit["max"] == {"cpu": "2", "memory": "1Gi"}  # the largest task's, as before


def test_without_task_resources_the_quota_names_no_cpu_or_memory(warehouses: Path) -> None:
    """A quota on cpu or memory refuses every pod that names none; only task amounts bring
    a LimitRange default, so executors never add a quota resource of their own."""
    path = warehouses / "defaults.yaml"
    doc = yaml.safe_load(path.read_text())
    for kind in doc["tasks"].values():
        kind.pop("resources", None)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    spec = load(warehouses, executors=4).spec
    assert quota_amounts(spec) == {"pods": str((4 + 4) * POD_SLOT_HEADROOM)}
    assert limit_range(spec) is None


@pytest.mark.parametrize(
    "executor",
    [{}, {"cpu": "500m", "memory": "1Gi"}, {"cpu": "4", "memory": "16Gi"}, {"cpu": "2.5"}],
)
def test_the_pod_spark_builds_fits_the_limit_range_and_the_quota_counts_it_exactly(
    warehouses: Path, monkeypatch: pytest.MonkeyPatch, executor: dict[str, str]
) -> None:
    """File → plan env → spark_conf → the executor pod Spark makes → validated (strict),
    within the LimitRange's max, and its memory and CPU are what the quota counts."""
    tenant = load(warehouses, executor=executor, executors=2, api_server=API)
    spec = tenant.spec
    env = plan_tenant(tenant, warehouses.parent).task("dbt_gold").env_dict
    conf = k8s_conf(monkeypatch, {k: v for k, v in env.items() if k.startswith("RUNNER_SPARK_")})
    pod = executor_pod(conf)
    kubernetes_validate.validate(pod, K8S, strict=True)
    resources = pod["spec"]["containers"][0]["resources"]
    size = executor_amounts(spec)
    for part in ("requests", "limits"):
        assert memory_bytes(resources[part]["memory"]) == memory_bytes(size["memory"])
        assert millicores(resources[part]["cpu"]) == millicores(size["cpu"])
    objects = tenant_objects(spec)
    for obj in objects:
        kubernetes_validate.validate(obj, K8S, strict=True)
    (limits,) = next(o for o in objects if o["kind"] == "LimitRange")["spec"]["limits"]
    for name, parse in (("cpu", millicores), ("memory", memory_bytes)):
        assert parse(resources["limits"][name]) <= parse(limits["max"][name])
    # without the executors, the quota is the same tenant's on DuckDB, to the byte
    hard = next(o for o in objects if o["kind"] == "ResourceQuota")["spec"]["hard"]
    duck = copy.deepcopy(yaml.safe_load((warehouses / "lake_spark" / "warehouse.yaml").read_text()))
    duck["dbt"].pop("engine")
    (warehouses / "lake_spark" / "warehouse.yaml").write_text(yaml.safe_dump(duck))
    lake_hard = quota_amounts(load(warehouses).spec)
    executors = parallel_executor_pods(spec) * POD_SLOT_HEADROOM
    assert int(hard["pods"]) - int(lake_hard["pods"]) == executors
    for part in ("requests", "limits"):
        memory = memory_bytes(hard[f"{part}.memory"]) - memory_bytes(lake_hard[f"{part}.memory"])
        cpu = millicores(hard[f"{part}.cpu"]) - millicores(lake_hard[f"{part}.cpu"])
        assert memory == executors * memory_bytes(resources[part]["memory"])
        assert cpu == executors * millicores(resources[part]["cpu"])
    assert memory_bytes(resources["limits"]["memory"]) % MIB == 0


# --- Spark's own arithmetic (a JVM) -----------------------------------------------------------


@pytest.fixture(scope="module")
def spark_jvm(spark_java: str) -> Iterator[Any]:
    """A JVM with Spark's classes and no SparkContext (whose default resource profile
    would be cached from its own conf)."""
    from pyspark.java_gateway import launch_gateway

    gateway = launch_gateway()
    try:
        yield gateway.jvm
    finally:
        gateway.shutdown()


def _object(package: Any, name: str) -> Any:
    """A Scala object (`Name$.MODULE$`) through py4j."""
    return getattr(package, f"{name}$").__getattr__("MODULE$")


def spark_executor_resources(jvm: Any, settings: dict[str, str]) -> dict[str, dict[str, str]]:
    """The resources of the executor container Spark 4 itself builds from `settings`: its
    `BasicExecutorFeatureStep` (what `spark.kubernetes` runs for every executor pod) on
    the default resource profile of a conf holding them."""
    conf = jvm.org.apache.spark.SparkConf(False)
    for key, value in settings.items():
        conf.set(key, value)
    profiles = _object(jvm.org.apache.spark.resource, "ResourceProfile")
    profiles.clearDefaultProfile()  # cached per JVM, from the first conf it saw
    profile = profiles.getOrCreateDefaultProfile(conf)
    k8s = jvm.org.apache.spark.deploy.k8s
    none = jvm.scala.Option.empty()
    executor_conf = k8s.KubernetesExecutorConf(conf, "spark-app", "1", none, profile.id())
    secret_file = _object(jvm.org.apache.spark.internal.config, "package").AUTH_SECRET_FILE()
    security = jvm.org.apache.spark.SecurityManager(conf, none, secret_file)
    step = k8s.features.BasicExecutorFeatureStep(executor_conf, security, profile)
    pod = step.configurePod(_object(k8s, "SparkPod").initialPod())
    resources = pod.container().getResources()
    return {
        "requests": {str(k): str(v) for k, v in resources.getRequests().items()},
        "limits": {str(k): str(v) for k, v in resources.getLimits().items()},
    }


@pytest.mark.parametrize(
    "executor",
    [{}, {"cpu": "500m", "memory": "1Gi"}, {"cpu": "2500m", "memory": "6Gi"}, {"memory": "64Gi"}],
)
def test_spark_itself_builds_the_executor_pod_the_quota_counts(
    warehouses: Path, monkeypatch: pytest.MonkeyPatch, spark_jvm: Any, executor: dict[str, str]
) -> None:
    """File → plan env → `spark_conf` → Spark 4's own executor pod: its requests and limits
    are the tenant's size exactly, within the LimitRange, and the quota counts them."""
    tenant = load(warehouses, executor=executor, executors=3, api_server=API)
    env = plan_tenant(tenant, warehouses.parent).task("dbt_gold").env_dict
    monkeypatch.setenv("SPARK_IMAGE", env["SPARK_IMAGE"])
    conf = k8s_conf(monkeypatch, {k: v for k, v in env.items() if k.startswith("RUNNER_SPARK_")})
    built = spark_executor_resources(spark_jvm, conf)
    size = executor_amounts(tenant.spec)
    for part in ("requests", "limits"):
        assert memory_bytes(built[part]["memory"]) == memory_bytes(size["memory"])
        assert millicores(built[part]["cpu"]) == millicores(size["cpu"])
    (limits,) = limit_range(tenant.spec)["spec"]["limits"]
    assert memory_bytes(built["limits"]["memory"]) <= memory_bytes(limits["max"]["memory"])
    assert millicores(built["limits"]["cpu"]) <= millicores(limits["max"]["cpu"])
    # Spark's own default, for contrast: a 1g heap and no CPU limit (the quota's
    # limits.cpu would refuse the pod)
    assert spark_executor_resources(
        spark_jvm, {k: v for k, v in conf.items() if "executor" not in k}
    ) == {"requests": {"cpu": "1", "memory": "1408Mi"}, "limits": {"memory": "1408Mi"}}

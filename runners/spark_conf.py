"""The Spark configuration of `runner spark`: local mode here, Kubernetes in production.

Production runs the Spark *driver in the runner pod* (client mode) against the cluster
(`SPARK_MASTER=k8s://https://kubernetes.default.svc`), and Spark's own Kubernetes
scheduler starts the executor pods. Why this and not the Spark operator's
`SparkApplication`:

* the task stays one pod rendered by our KubernetesPodOperator adapter, with the same
  argv/env contract, secret references, exit codes and JSON result line as every other
  task (`runner spark run --select silver gold`); Airflow sees its exit code directly;
* no operator, CRD or webhook to install and upgrade per cluster, and nothing to poll:
  a `SparkApplication` is a custom resource whose outcome Airflow must watch through
  another operator, and whose driver logs are not the task's;
* what it costs: the runner pod's ServiceAccount may create pods in its namespace (the
  executors), and executors must reach the driver (`spark.driver.host` = the pod IP, from
  its /etc/hosts, or `SPARK_DRIVER_HOST`). `spark-submit --deploy-mode cluster` would
  add a second driver pod for nothing: the runner pod already is one.

The image: the `spark` target of `runners/docker/Dockerfile`, `FROM dbt` plus Debian's
`openjdk-17-jre-headless`, the `spark` extra's wheels, and the jars of a local folder
(build arg `SPARK_JARS`: hadoop-aws and the AWS SDK bundle for `s3a`, from Maven through
your own cache) in `/opt/spark/jars`, put on the driver's and executors' class path here
(`EXTRA_JARS_ENV`). The executors run the same image: its entrypoint starts Spark's
executor backend when Spark passes `executor` (runners/docker/spark-entrypoint.sh), and
they run under the pod template `executor_pod_template` writes (the namespace enforces
the `restricted` Pod Security Standard, which Spark's default executor pod fails).
Here, with no jars and no cluster, the same code runs in local mode with bronze copied
to a scratch directory (`runners.spark_bronze.BronzeAccess.copy`).
"""

from __future__ import annotations

import json
import math
import os
import socket
from pathlib import Path
from typing import Any

from datakits.writers.lakehouse import LakeLocation
from runners.spark_bronze import BronzeAccess

#: The Spark master (`local[2]` when unset: a test, or a tenant small enough for one pod).
MASTER_ENV = "SPARK_MASTER"
#: The driver pod's IP (downward API), which executors connect back to.
DRIVER_HOST_ENV = "SPARK_DRIVER_HOST"
#: Executor count and image (Kubernetes only).
EXECUTORS_ENV = "SPARK_EXECUTORS"
IMAGE_ENV = "SPARK_IMAGE"
NAMESPACE_ENV = "SPARK_NAMESPACE"
#: The driver pod's name (downward API): executors are owned by it, so deleting the task's
#: pod deletes them too.
DRIVER_POD_ENV = "SPARK_DRIVER_POD"
#: The size of each executor pod, planned from `dbt.spark.executor` as plain integers (the
#: orchestrator parsed the Kubernetes quantities): millicores, and the whole pod's MiB.
#: Not Spark's own `SPARK_EXECUTOR_CORES`/`SPARK_EXECUTOR_MEMORY`, which Spark itself
#: reads from the environment (with other units) in the driver and the executor pods.
EXECUTOR_MILLICORES_ENV = "RUNNER_SPARK_EXECUTOR_MILLICORES"
EXECUTOR_MEMORY_ENV = "RUNNER_SPARK_EXECUTOR_MEMORY_MIB"
#: The driver's pod (the runner's) memory limit in MiB, from `tasks.dbt.resources`; unset
#: when the tenant sets no limit (Spark's default heap then). Not `SPARK_DRIVER_MEMORY`,
#: which spark-submit reads itself.
DRIVER_MEMORY_ENV = "RUNNER_SPARK_DRIVER_MEMORY_MIB"
#: Spark's floor of an overhead (`spark.executor.minMemoryOverhead`, 384m) and its factors:
#: 0.1 of a JVM-only pod (an executor runs SQL, no Python), 0.4 where Python runs beside
#: the JVM (Spark's own default for non-JVM jobs): the driver's pod also runs dbt.
MIN_OVERHEAD_MIB = 384
EXECUTOR_OVERHEAD_FACTOR = 0.1
DRIVER_OVERHEAD_FACTOR = 0.4
#: Spark refuses a heap under 450 MiB (1.5 x its 300 MiB reserved memory).
MIN_HEAP_MIB = 450
#: A folder of extra jars (the image's `/opt/spark/jars`: hadoop-aws, the AWS SDK).
EXTRA_JARS_ENV = "SPARK_EXTRA_JARS"
#: The pod's emptyDir (the root filesystem is read-only), as in every runner pod.
SCRATCH = "/tmp"  # noqa: S108 - a per-pod emptyDir, not a shared /tmp
#: The runner's uid, as in every runner pod (datakits.contract.RUNNER_UID).
_RUNNER_UID = 10001


def spark_conf(
    location: LakeLocation,
    warehouse_dir: str,
    *,
    access: BronzeAccess,
    work_dir: Path | None = None,
) -> dict[str, str]:
    """Spark settings for one run; secrets only as values Spark keeps in the JVM.

    `work_dir`: where the executors' pod template is written (Kubernetes only)."""
    master = os.environ.get(MASTER_ENV) or "local[2]"
    conf = {
        "spark.master": master,
        "spark.sql.warehouse.dir": warehouse_dir,
        "spark.sql.catalogImplementation": "in-memory",
        # timestamps as the DuckDB path reads them: no session-zone shift
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": "4" if master.startswith("local") else "64",
        "spark.ui.enabled": "false",
        "spark.sql.sources.partitionOverwriteMode": "dynamic",
        # a model is rebuilt where its last run wrote it (the catalog is per session)
        "spark.sql.legacy.allowNonEmptyLocationInCTAS": "true",
    }
    jars = os.environ.get(EXTRA_JARS_ENV)
    if jars and Path(jars).is_dir() and any(Path(jars).glob("*.jar")):
        conf["spark.driver.extraClassPath"] = f"{jars}/*"
        conf["spark.executor.extraClassPath"] = f"{jars}/*"
    if access is BronzeAccess.s3a:
        conf.update(_s3a(location))
    driver = _driver_memory()
    if driver is not None:
        conf["spark.driver.memory"] = driver
    if master.startswith("local"):
        # one process: the driver talks to itself on loopback, so a container whose own
        # hostname does not resolve (Docker's `--network none`, some CI runners) still starts
        conf["spark.driver.host"] = "127.0.0.1"
        conf["spark.driver.bindAddress"] = "127.0.0.1"
    if master.startswith("k8s://"):
        conf.update(_kubernetes())
        if work_dir is not None:
            template = Path(work_dir) / "executor-pod.json"
            template.write_text(json.dumps(executor_pod_template()))
            conf["spark.kubernetes.executor.podTemplateFile"] = str(template)
            conf["spark.kubernetes.executor.podTemplateContainerName"] = "executor"
    return conf


def split_memory(pod_mib: int, factor: float) -> tuple[int, int]:
    """A pod's memory (MiB) as Spark's heap and overhead, which Spark adds up again to size
    the pod (`heap + overhead`, with no off-heap memory and no `pyspark.memory` set): so the
    pod Spark asks for is exactly `pod_mib`, the amount the namespace's quota counts.

    An explicit `memoryOverhead` replaces Spark's derived one (its `getOrElse`), so the
    floor and factor are applied here, to the pod rather than to the heap."""
    overhead = max(MIN_OVERHEAD_MIB, math.ceil(pod_mib * factor))
    return pod_mib - overhead, overhead


def executor_resources(millicores: int, memory_mib: int) -> dict[str, str]:
    """Spark's settings for executor pods of `millicores` CPU and `memory_mib` memory.

    CPU: the pod's request and limit are both the tenant's amount (fractions allowed:
    `500m`); Spark's task slots per executor (`spark.executor.cores`, a whole number)
    are its whole cores, at least one. Memory: `split_memory` at the executor factor."""
    heap, overhead = split_memory(memory_mib, EXECUTOR_OVERHEAD_FACTOR)
    if heap < MIN_HEAP_MIB:
        raise ValueError(
            f"an executor pod of {memory_mib}Mi leaves Spark a {heap}Mi heap, under its "
            f"{MIN_HEAP_MIB}Mi minimum: give dbt.spark.executor.memory at least 1Gi"
        )
    cpu = f"{millicores}m"
    return {
        "spark.executor.cores": str(max(1, millicores // 1000)),
        "spark.kubernetes.executor.request.cores": cpu,
        "spark.kubernetes.executor.limit.cores": cpu,
        "spark.executor.memory": f"{heap}m",
        "spark.executor.memoryOverhead": f"{overhead}m",
    }


def _driver_memory() -> str | None:
    """The driver's heap in its pod's memory limit (`DRIVER_MEMORY_ENV`): the rest is the
    JVM's overhead and the runner's own Python (dbt). None, and Spark's default heap, when
    the pod has no limit or one too small for a heap of Spark's minimum."""
    limit = os.environ.get(DRIVER_MEMORY_ENV)
    if not limit:
        return None
    heap, _ = split_memory(int(limit), DRIVER_OVERHEAD_FACTOR)
    return f"{heap}m" if heap >= MIN_HEAP_MIB else None


def executor_pod_template() -> dict[str, Any]:
    """The executor pods as the `restricted` Pod Security Standard wants them, like the
    runner pods: non-root, read-only root filesystem with an emptyDir at /tmp (Spark's
    local dirs), no capabilities, no API token. Spark adds image, env, resources, labels."""
    restricted = {
        "runAsNonRoot": True,
        "runAsUser": _RUNNER_UID,
        "runAsGroup": _RUNNER_UID,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "spec": {
            "automountServiceAccountToken": False,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": _RUNNER_UID,
                "runAsGroup": _RUNNER_UID,
                "fsGroup": _RUNNER_UID,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "executor",
                    "securityContext": restricted,
                    "volumeMounts": [{"name": "scratch", "mountPath": SCRATCH}],
                }
            ],
            "volumes": [{"name": "scratch", "emptyDir": {"sizeLimit": "8Gi"}}],
        },
    }


def _s3a(location: LakeLocation) -> dict[str, str]:
    """hadoop-aws options for the tenant's lake: path-style, its endpoint and keys."""
    conf = {
        "spark.hadoop.fs.s3a.path.style.access": "true",
        "spark.hadoop.fs.s3a.endpoint.region": location.region,
        "spark.hadoop.fs.s3a.connection.ssl.enabled": str(location.secure).lower(),
    }
    if location.endpoint:
        conf["spark.hadoop.fs.s3a.endpoint"] = location.endpoint
    if location.access_key:
        conf["spark.hadoop.fs.s3a.access.key"] = location.access_key
    if location.secret_key:
        conf["spark.hadoop.fs.s3a.secret.key"] = location.secret_key
    return conf


def _kubernetes() -> dict[str, str]:
    """Client mode on Kubernetes: executors from the runner's own image, in its namespace."""
    conf = {
        "spark.submit.deployMode": "client",
        "spark.executor.instances": os.environ.get(EXECUTORS_ENV, "2"),
        "spark.kubernetes.container.image": os.environ.get(IMAGE_ENV, ""),
        "spark.kubernetes.namespace": os.environ.get(NAMESPACE_ENV, "default"),
        "spark.kubernetes.executor.deleteOnTermination": "true",
        **executor_resources(
            int(os.environ.get(EXECUTOR_MILLICORES_ENV, "1000")),
            int(os.environ.get(EXECUTOR_MEMORY_ENV, "2048")),
        ),
        # scratch and shuffle files on the emptyDir: the root filesystem is read-only
        "spark.local.dir": f"{SCRATCH}/spark-local",
    }
    pod = os.environ.get(DRIVER_POD_ENV)
    if pod:
        conf["spark.kubernetes.driver.pod.name"] = pod
    # the pod's IP: a pod's /etc/hosts maps its hostname to it (no downward API needed)
    host = os.environ.get(DRIVER_HOST_ENV) or socket.gethostbyname(socket.gethostname())
    conf["spark.driver.host"] = host
    # bound to that IP too, not 0.0.0.0: since Spark 4.1 (spark.kubernetes.executor.
    # useDriverPodIP, default true) executors are told the *bind* address as the driver's,
    # and 0.0.0.0 would send each executor to itself
    conf["spark.driver.bindAddress"] = host
    return conf

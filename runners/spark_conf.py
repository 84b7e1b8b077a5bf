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

The image: a `spark` target of `runners/docker/Dockerfile` (not built yet: it belongs
to the images' owner), `FROM dbt` plus `openjdk-17-jre-headless`, the `spark` extra's
wheels, and the hadoop-aws and AWS SDK bundle jars copied into pyspark's `jars/` (they
come from Maven, which the build must reach or a wheelhouse-like jar cache must hold);
the executors run the same image.
Here, with no jars and no cluster, the same code runs in local mode with bronze copied
to a scratch directory (`runners.spark_bronze.BronzeAccess.copy`).
"""

from __future__ import annotations

import os
import socket

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


def spark_conf(
    location: LakeLocation, warehouse_dir: str, *, access: BronzeAccess
) -> dict[str, str]:
    """Spark settings for one run; secrets only as values Spark keeps in the JVM."""
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
    if access is BronzeAccess.s3a:
        conf.update(_s3a(location))
    if master.startswith("k8s://"):
        conf.update(_kubernetes())
    return conf


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
    }
    # the pod's IP: a pod's /etc/hosts maps its hostname to it (no downward API needed)
    conf["spark.driver.host"] = os.environ.get(DRIVER_HOST_ENV) or socket.gethostbyname(
        socket.gethostname()
    )
    conf["spark.driver.bindAddress"] = "0.0.0.0"  # noqa: S104 - inside the pod
    return conf

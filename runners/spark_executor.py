"""`runner executor`: a Spark executor in the Spark runner image (Kubernetes, client mode).

Spark's Kubernetes scheduler starts each executor pod from the driver's image
(`SPARK_IMAGE`, the runner's own) with the single argument `executor` and its settings
in env, as the entrypoint of Spark's own images expects. Our images' entrypoint is
`runner`, so `runner executor` plays that part: it execs Spark's executor backend from
the jars pyspark ships (plus the image's extra jars: hadoop-aws and the AWS SDK for
`s3a`). No shell script: the image stays one entrypoint, and this is testable Python.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from datakits.errors import ConfigError

#: Spark's executor backend on Kubernetes (spark-kubernetes jar).
BACKEND = "org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend"
#: The image's extra jars (Dockerfile target `spark`, build arg SPARK_JARS).
DEFAULT_EXTRA_JARS = "/opt/spark/jars"
#: The env Spark sets on every executor pod, and the backend flag each one feeds.
_ARGS = (
    ("--driver-url", "SPARK_DRIVER_URL"),
    ("--executor-id", "SPARK_EXECUTOR_ID"),
    ("--cores", "SPARK_EXECUTOR_CORES"),
    ("--app-id", "SPARK_APPLICATION_ID"),
    ("--hostname", "SPARK_EXECUTOR_POD_IP"),
    ("--resourceProfileId", "SPARK_RESOURCE_PROFILE_ID"),
    ("--podName", "SPARK_EXECUTOR_POD_NAME"),
)
_JAVA_OPT = re.compile(r"^SPARK_JAVA_OPT_(\d+)$")


def executor_argv(env: Mapping[str, str], spark_home: Path) -> list[str]:
    """The `java …` command line of one executor, from the pod's env."""
    missing = [name for _, name in _ARGS if not env.get(name)] + (
        [] if env.get("SPARK_EXECUTOR_MEMORY") else ["SPARK_EXECUTOR_MEMORY"]
    )
    if missing:
        raise ConfigError(
            f"only Spark starts this, in its executor pods ({', '.join(missing)} unset)"
        )
    classpath = [f"{spark_home}/jars/*"]
    extra = Path(env.get("SPARK_EXTRA_JARS", DEFAULT_EXTRA_JARS))
    if extra.is_dir() and any(extra.glob("*.jar")):
        classpath.append(f"{extra}/*")
    # the driver's settings, as SPARK_JAVA_OPT_<n>=<option>, in their order
    numbered = sorted((int(m[1]), v) for k, v in env.items() if (m := _JAVA_OPT.match(k)))
    memory = env["SPARK_EXECUTOR_MEMORY"]
    argv = [
        "java",
        *(option for _, option in numbered),
        f"-Xms{memory}",
        f"-Xmx{memory}",
        "-cp",
        ":".join(classpath),
        BACKEND,
    ]
    for flag, name in _ARGS:
        argv += [flag, env[name]]
    return argv


def exec_executor() -> None:
    """Replace this process with the executor JVM (the pod's main process)."""
    import pyspark

    argv = executor_argv(os.environ, Path(pyspark.__file__).parent)
    os.execvp(argv[0], argv)  # noqa: S606 - the pod's one process becomes the JVM

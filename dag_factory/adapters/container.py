"""What the container adapters (Docker, Kubernetes) share; no Airflow here.

The images' working directory (`runners/docker/Dockerfile`), the scratch space a
read-only root filesystem leaves writable, labels, and resource quantities (parsed by
`kubernetes.utils.parse_quantity`). The runner's uid, exit codes and result line are
the runner contract's (`datakits.contract`).
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

#: The images' WORKDIR: the planned dbt argv (`--project-dir warehouses/<t>/dbt`) is
#: relative to it.
IMAGE_WORKDIR = "/app"
#: The one writable path of a runner container (tmpfs in Docker, emptyDir in Kubernetes);
#: the images set HOME to it.
SCRATCH_PATH = "/tmp"  # noqa: S108 (inside the container, not the worker)
SCRATCH_SIZE = "256Mi"
#: Kubernetes labels (and Docker labels) naming the tenant and task of a runner.
TENANT_LABEL = "dag-factory.io/tenant"
TASK_LABEL = "dag-factory.io/task"


# --- quantities ------------------------------------------------------------------------------

#: Binary memory units, largest first, for formatting.
_BINARY_UNITS = {"Ti": 2**40, "Gi": 2**30, "Mi": 2**20, "Ki": 2**10}


@functools.cache
def _parse_quantity() -> Callable[[str], Decimal]:
    """The Kubernetes client's own quantity parser, `kubernetes/utils/quantity.py`, loaded
    as a module of its own. Importing it by name runs `kubernetes/__init__` and
    `kubernetes/utils/__init__`, which import the whole API client: 0.25-1 s at the first
    DAG parse of every worker, for a pure function that needs only `decimal` (and that
    every tenant's resource settings call, local ones too)."""
    package = importlib.util.find_spec("kubernetes")  # locates it, imports nothing
    if package is None or not package.submodule_search_locations:
        raise ModuleNotFoundError("the kubernetes client is not installed")
    path = Path(package.submodule_search_locations[0]) / "utils" / "quantity.py"
    spec = importlib.util.spec_from_file_location("_kubernetes_quantity", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.parse_quantity


def quantity(value: str) -> Decimal:
    """A Kubernetes quantity (`250m`, `1.5`, `512Mi`, `2G`) as a number, by the Kubernetes
    client's own parser (`_parse_quantity`)."""
    return _parse_quantity()(value)


def millicores(cpu: str) -> int:
    return int(quantity(cpu) * 1000)


def memory_bytes(memory: str) -> int:
    return int(quantity(memory))


def format_millicores(value: int) -> str:
    return str(value // 1000) if value % 1000 == 0 else f"{value}m"


def format_memory(value: int) -> str:
    for unit, size in _BINARY_UNITS.items():
        if value % size == 0:
            return f"{value // size}{unit}"
    return str(value)

"""What the container adapters (Docker, Kubernetes) share; no Airflow here.

The images' working directory (`runners/docker/Dockerfile`), the scratch space a
read-only root filesystem leaves writable, labels, and resource quantities (parsed by
`kubernetes.utils.parse_quantity`). The runner's uid, exit codes and result line are
the runner contract's (`datakits.contract`).
"""

from __future__ import annotations

from decimal import Decimal

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


def quantity(value: str) -> Decimal:
    """A Kubernetes quantity (`250m`, `1.5`, `512Mi`, `2G`) as a number, by the Kubernetes
    client's own parser; imported on first use (0.3 s of imports a local DAG never needs)."""
    from kubernetes.utils import parse_quantity

    return parse_quantity(value)


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

"""What the container adapters (Docker, Kubernetes) share; no Airflow here.

The image a task runs (with the registry override), the runner's user and working
directory in the images (`runners/docker/Dockerfile`), the scratch space a read-only
root filesystem leaves writable, resource quantities, and the runner's JSON result line.
"""

from __future__ import annotations

import json
import os
import re
from decimal import Decimal
from typing import Any

#: Replaces the registry host of every `images.*` reference, e.g. `127.0.0.1:5000` for a
#: test registry or a mirror; the repository path and the tag stay as planned.
REGISTRY_ENV = "DAG_FACTORY_REGISTRY"
#: The runner's uid and gid in the images (`RUNNER_UID` in runners/build_images.py).
RUNNER_UID = 10001
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


def split_registry(image: str) -> tuple[str | None, str]:
    """(`registry host` or None, the rest), by Docker's rule: the first path component
    is a registry when it has a dot or a port, or is `localhost`."""
    first, sep, rest = image.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return None, image


def image_ref(image: str) -> str:
    """`image` with its registry host replaced by `$DAG_FACTORY_REGISTRY` when that is set."""
    registry = os.environ.get(REGISTRY_ENV, "").strip().rstrip("/")
    if not registry:
        return image
    return f"{registry}/{split_registry(image)[1]}"


# --- quantities ------------------------------------------------------------------------------

_MEMORY_UNITS = {
    "": 1,
    "K": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}
_MEMORY = re.compile(r"^(\d+)(Ki|Mi|Gi|Ti|K|M|G|T)?$")


def millicores(cpu: str) -> int:
    """A Kubernetes CPU quantity (`250m`, `1`, `1.5`) in millicores."""
    if cpu.endswith("m"):
        return int(cpu[:-1])
    return int(Decimal(cpu) * 1000)


def memory_bytes(memory: str) -> int:
    """A Kubernetes memory quantity (`512Mi`, `1Gi`, `2G`, `1000`) in bytes."""
    match = _MEMORY.match(memory)
    if not match:
        raise ValueError(f"not a memory quantity: {memory!r}")
    return int(match[1]) * _MEMORY_UNITS[match[2] or ""]


def format_millicores(value: int) -> str:
    return str(value // 1000) if value % 1000 == 0 else f"{value}m"


def format_memory(value: int) -> str:
    for unit in ("Ti", "Gi", "Mi", "Ki"):
        if value % _MEMORY_UNITS[unit] == 0:
            return f"{value // _MEMORY_UNITS[unit]}{unit}"
    return str(value)


# --- the runner's result -----------------------------------------------------------------------


def parse_result(line: str | bytes | None) -> dict[str, Any]:
    """The runner's last output line, a JSON object (DESIGN.md, contract 4)."""
    text = line.decode("utf-8", "replace") if isinstance(line, bytes) else (line or "")
    try:
        result = json.loads(text.strip())
    except json.JSONDecodeError:
        result = None
    if not isinstance(result, dict):
        raise ValueError(f"the runner's last output line is not a JSON object: {text[:200]!r}")
    return result

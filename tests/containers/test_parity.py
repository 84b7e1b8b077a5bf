"""Parity: for every task of every repository tenant, the operators the local, Docker and
Kubernetes adapters build from the same planned task run the same runner — image, argv,
env, secrets, resources, timeout and retries — each read back from the operator itself
and compared with the planned value; only the transport differs (a subprocess, a
container, a pod with secretKeyRef)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from kubernetes.utils import parse_quantity

from dag_factory.adapters import adapter_for
from dag_factory.adapters.kubernetes import TRANSPORT_ENV
from dag_factory.build import task_kwargs
from dag_factory.loader import Loader
from dag_factory.plan import PlannedTask, PlatformOverrides, plan_tenant
from dag_factory.spec import Executor

REPO = Path(__file__).resolve().parents[2]
TENANTS = Loader(REPO / "warehouses").load_all().tenants
CASES = [
    pytest.param(task, id=f"{tenant.spec.tenant}-{task.task_id}")
    for tenant in TENANTS
    for task in plan_tenant(tenant, REPO, PlatformOverrides(registry="127.0.0.1:5999")).tasks
]


def _common(op: Any) -> dict[str, Any]:
    return {
        "task_id": op.task_id,
        "retries": op.retries,
        "retry_delay": op.retry_delay,
        "timeout": op.execution_timeout,
        "outlets": sorted(a.uri for a in op.outlets),
    }


def _local(op: Any) -> dict[str, Any]:
    return {
        **_common(op),
        "argv": list(op.argv),
        "env": dict(op.runner_env),
        "secrets": {s.env: s.ref for s in op.secrets},
        "cwd": op.cwd,
    }


def _docker(op: Any) -> dict[str, Any]:
    hard = op.hardening
    return {
        **_common(op),
        "image": op.image,
        "argv": list(op.command),
        "env": dict(op.environment),
        "secrets": {s.env: s.ref for s in op.secrets},
        "resources": {
            "requests.cpu": round(op.cpus * 1000),
            "limits.cpu": hard["nano_cpus"] // 10**6,
            "requests.memory": hard["mem_reservation"],
            "limits.memory": op.mem_limit,
        },
        "network": op.network_mode,
        "labels": op.labels,
    }


def _kubernetes(op: Any) -> dict[str, Any]:
    env = [e for e in op.env_vars if e.name not in TRANSPORT_ENV]
    resources = op.container_resources
    return {
        **_common(op),
        "image": op.image,
        "argv": list(op.arguments),
        "env": {e.name: e.value for e in env if e.value_from is None},
        "secrets": {
            e.name: (e.value_from.secret_key_ref.name, e.value_from.secret_key_ref.key)
            for e in env
            if e.value_from is not None
        },
        "resources": {
            f"{part}.{name}": _number(name, getattr(resources, part)[name])
            for part in ("requests", "limits")
            for name in ("cpu", "memory")
        },
        "namespace": op.namespace,
        "labels": op.labels,
    }


def _number(name: str, quantity: str) -> int:
    """cpu in millicores, memory in bytes."""
    value = parse_quantity(quantity)
    return int(value * 1000) if name == "cpu" else int(value)


def _planned(task: PlannedTask) -> dict[str, Any]:
    """What every operator must carry, from the planned value alone."""
    resources = task.settings.resources
    assert resources is not None  # warehouses/defaults.yaml sets every amount
    return {
        "task_id": task.task_id,
        "retries": task.settings.retries,
        "retry_delay": task.settings.retry_delay,
        "timeout": task.settings.timeout,
        "outlets": sorted(task.outlets),
        "image": task.image,
        "argv": list(task.argv),
        "env": task.env_dict,
        "secrets": {s.env: s.ref for s in task.secrets},
        "k8s_secrets": {s.env: (s.k8s_secret.name, s.k8s_secret.key) for s in task.secrets},
        "resources": {
            f"{part}.{name}": _number(name, getattr(getattr(resources, part), name))
            for part in ("requests", "limits")
            for name in ("cpu", "memory")
        },
    }


@pytest.mark.parametrize("task", CASES)
def test_every_adapter_runs_the_planned_runner(task: PlannedTask) -> None:
    planned = _planned(task)
    common = task_kwargs(task)
    local = _local(adapter_for(Executor.local)(task, common))
    docker = _docker(adapter_for(Executor.docker)(task, common))
    pod = _kubernetes(adapter_for(Executor.kubernetes)(task, common))

    shared = ("task_id", "retries", "retry_delay", "timeout", "outlets", "argv", "env")
    for name in shared:
        assert local[name] == docker[name] == pod[name] == planned[name], name
    assert isinstance(planned["retry_delay"], dt.timedelta)
    assert docker["image"] == pod["image"] == planned["image"]
    assert planned["image"].startswith("127.0.0.1:5999/")  # the override, applied once
    assert local["secrets"] == docker["secrets"] == planned["secrets"]
    assert pod["secrets"] == planned["k8s_secrets"]
    assert docker["resources"] == pod["resources"] == planned["resources"]
    assert docker["labels"] == pod["labels"] == dict(task.labels)
    assert local["cwd"] == task.cwd
    assert docker["network"] == task.docker.network
    assert pod["namespace"] == task.kubernetes.namespace


def test_parity_detects_a_difference() -> None:
    """The comparison can fail: a task planned with other resources builds other operators."""
    task = CASES[0].values[0]
    assert isinstance(task, PlannedTask)
    resources = task.settings.resources
    assert resources is not None
    bigger = resources.model_copy(
        update={"limits": resources.limits.model_copy(update={"memory": "3Gi"})}
    )
    other = PlannedTask(
        **{**task.__dict__, "settings": task.settings.model_copy(update={"resources": bigger})}
    )
    docker = _docker(adapter_for(Executor.docker)(other, task_kwargs(other)))
    assert docker["resources"] != _planned(task)["resources"]
    assert docker["resources"]["limits.memory"] == 3 * 2**30

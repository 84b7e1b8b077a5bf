"""Parity: for every task of every repository tenant, the local, Docker and Kubernetes
renders carry the same image, argv, env names and secret env names; only the transport
differs (a subprocess, a container with a private environment, a pod with secretKeyRef)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dag_factory.adapters import renderer_for
from dag_factory.adapters.container import REGISTRY_ENV
from dag_factory.adapters.kubernetes import TRANSPORT_ENV
from dag_factory.loader import Loader
from dag_factory.plan import plan_tenant
from dag_factory.spec import Executor

REPO = Path(__file__).resolve().parents[2]
TENANTS = Loader(REPO / "warehouses").load_all().tenants


def _local(rendered: dict[str, Any]) -> dict[str, Any]:
    return {
        "image": rendered["image"],
        "argv": rendered["argv"],
        "env": sorted(rendered["env"]),
        "secret_env": sorted(rendered["secrets"]),
    }


def _docker(rendered: dict[str, Any]) -> dict[str, Any]:
    return {
        "image": rendered["image"],
        "argv": rendered["command"],
        "env": sorted(rendered["environment"]),
        "secret_env": rendered["private_environment"],
    }


def _kubernetes(pod: dict[str, Any]) -> dict[str, Any]:
    base = pod["spec"]["containers"][0]
    env = [e for e in base["env"] if e["name"] not in TRANSPORT_ENV]
    return {
        "image": base["image"],
        "argv": base["args"],
        "env": sorted(e["name"] for e in env if "value" in e),
        "secret_env": sorted(e["name"] for e in env if "valueFrom" in e),
    }


@pytest.mark.parametrize("tenant", TENANTS, ids=lambda t: t.spec.tenant)
def test_local_docker_and_kubernetes_renders_agree(tenant, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(REGISTRY_ENV, raising=False)
    spec = tenant.spec
    tasks = plan_tenant(tenant, REPO).tasks
    assert tasks
    for task in tasks:
        local_render = renderer_for(Executor.local)(task, spec, REPO)
        docker_render = renderer_for(Executor.docker)(task, spec, REPO)
        pod = renderer_for(Executor.kubernetes)(task, spec, REPO)
        local, docker, kubernetes = _local(local_render), _docker(docker_render), _kubernetes(pod)
        assert local == docker == kubernetes, task.task_id
        assert local == {
            "image": task.image,
            "argv": list(task.argv),
            "env": sorted(task.env_dict),
            "secret_env": sorted(s.env for s in task.secrets),
        }
        # where plain values travel, they are the same values
        pod_env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
        assert docker_render["environment"] == local_render["env"]
        assert {name: pod_env[name] for name in task.env_dict} == local_render["env"]

"""The Docker adapter: what its operator will send, and — on the test run's own engine —
that the container really is hardened, gets its secrets, and fails the way the runner says."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from airflow.sdk.exceptions import AirflowFailException

from dag_factory.adapters import adapter_for, renderer_for
from dag_factory.adapters.container import SCRATCH_PATH, TASK_LABEL
from dag_factory.adapters.docker import RunnerContainerOperator, build_operator
from dag_factory.build import task_kwargs
from dag_factory.images import image_ref
from dag_factory.loader import Loader, Tenant
from dag_factory.plan import (
    NETWORK_ENV,
    REGISTRY_ENV,
    PlannedTask,
    PlatformOverrides,
    plan_tenant,
)
from dag_factory.spec import Executor
from datakits.contract import split_registry
from devtools.docker import DockerEngine
from tests.containers.conftest import RunnerImages

REPO = Path(__file__).resolve().parents[2]
SECRET = "s3cr3t-pa55"


@pytest.fixture(scope="module")
def acme() -> Tenant:
    return Loader(REPO / "warehouses").load_all({"acme"}).tenants[0]


def _task(tenant: Tenant, task_id: str) -> PlannedTask:
    """Planned as `build_dag` plans it: with the deployment's overrides from env."""
    return plan_tenant(tenant, REPO, PlatformOverrides.from_env()).task(task_id)


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("registry.localhost/tenant-runner-dbt:0.1.0", "127.0.0.1:5000/tenant-runner-dbt:0.1.0"),
        ("localhost/team/runner:1", "127.0.0.1:5000/team/runner:1"),
        ("reg:5000/runner:1", "127.0.0.1:5000/runner:1"),
        ("team/runner:1", "127.0.0.1:5000/team/runner:1"),  # no registry: Docker Hub's path
        ("runner@sha256:" + "a" * 64, "127.0.0.1:5000/runner@sha256:" + "a" * 64),
    ],
)
def test_registry_override_replaces_only_the_host(image: str, expected: str):
    assert image_ref(image, "127.0.0.1:5000") == expected
    assert image_ref(image, None) == image
    assert split_registry("team/runner:1") == (None, "team/runner:1")


def test_operator_carries_the_planned_task_hardened(acme: Tenant, monkeypatch):
    monkeypatch.delenv(REGISTRY_ENV, raising=False)
    monkeypatch.delenv(NETWORK_ENV, raising=False)
    task = _task(acme, "extract_orders")
    op = adapter_for(Executor.docker)(task, task_kwargs(task))
    assert isinstance(op, RunnerContainerOperator)
    assert op.image == task.image == acme.spec.images.extract
    assert op.command == ["extract", "--table", "orders"]
    assert op.environment == task.env_dict
    assert op.secret_env == {}  # resolved only when the task runs
    assert [s.env for s in op.secrets] == ["RUNNER_SOURCE_URL", "RUNNER_WAREHOUSE_URL"]
    assert op.network_mode == "edge"
    assert op.user == "10001:10001"
    assert op.auto_remove == "force" and op.mount_tmp_dir is False
    assert op.mem_limit == 512 * 2**20
    assert op.retries == task.settings.retries
    assert op.execution_timeout == task.settings.timeout
    assert op.hardening == {
        "read_only": True,
        "tmpfs": {SCRATCH_PATH: f"rw,noexec,nosuid,nodev,size={256 * 2**20}"},
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "pids_limit": 512,
        "nano_cpus": 1_000_000_000,
        "mem_reservation": 256 * 2**20,
    }


def test_network_and_registry_overrides(acme: Tenant, monkeypatch: pytest.MonkeyPatch):
    """Read from env once, by the planner's caller; the plan without them is untouched."""
    monkeypatch.setenv(NETWORK_ENV, "host")
    monkeypatch.setenv(REGISTRY_ENV, "127.0.0.1:5999/")
    op = build_operator(_task(acme, "dbt_gold"), {"task_id": "dbt_gold"})
    assert op.network_mode == "host"
    assert op.image == "127.0.0.1:5999/tenant-runner-dbt:0.1.0"
    plain = plan_tenant(acme, REPO).task("dbt_gold")
    assert (plain.docker.network, plain.image) == ("edge", acme.spec.images.dbt)


def test_render_names_secrets_but_holds_no_value(acme: Tenant, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_ACME_SOURCE", f"postgres://u:{SECRET}@db:5432/src")
    rendered = renderer_for(Executor.docker)(_task(acme, "extract_orders"))
    assert rendered["private_environment"] == ["RUNNER_SOURCE_URL", "RUNNER_WAREHOUSE_URL"]
    assert rendered["secrets"]["RUNNER_SOURCE_URL"] == {"airflow_conn": "acme_source"}
    assert rendered["read_only"] is True and rendered["cap_drop"] == ["ALL"]
    assert SECRET not in json.dumps(rendered)


# --- on the test run's engine -------------------------------------------------------------

#: Run by the operator instead of `runner`: reports what the container may do, as JSON.
_PROBE = r"""
import json, os
def writable(path):
    try:
        open(path, "w").close(); return True
    except OSError:
        return False
status = dict(l.split(":", 1) for l in open("/proc/self/status") if ":" in l)
mounts = {l.split()[1]: (l.split()[2], l.split()[3].split(",")) for l in open("/proc/self/mounts")}
limits = [p for p in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
          if os.path.exists(p)]
print("progress on stderr", file=__import__("sys").stderr)
print(json.dumps({
    "status": "ok", "command": "probe", "seconds": 0.0,
    "uid": os.getuid(), "cwd": os.getcwd(),
    "root_read_only": "ro" in mounts["/"][1],
    "tmp": [mounts["/tmp"][0], "noexec" in mounts["/tmp"][1]],
    "tmp_writable": writable("/tmp/x"),
    "cap_eff": status["CapEff"].strip(), "no_new_privs": status["NoNewPrivs"].strip(),
    "memory_limit": open(limits[0]).read().strip() if limits else None,
    "has_source_url": bool(os.environ.get("RUNNER_SOURCE_URL")),
    "env_names": sorted(k for k in os.environ if k.startswith("RUNNER_")),
}))
"""


def test_container_is_hardened_and_gets_its_secrets_privately(
    acme: Tenant,
    runner_images: RunnerImages,
    docker_engine: DockerEngine,
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setenv("DOCKER_HOST", docker_engine.host)
    monkeypatch.setenv(REGISTRY_ENV, runner_images.registry)
    monkeypatch.setenv(NETWORK_ENV, "none")
    monkeypatch.setenv("AIRFLOW_CONN_ACME_SOURCE", f"postgres://u:{SECRET}@db:5432/src")
    monkeypatch.setenv("AIRFLOW_CONN_ACME_WAREHOUSE", f"postgres://u:{SECRET}@db:5432/wh")
    task = dataclasses.replace(_task(acme, "extract_orders"), argv=("-c", _PROBE))
    op = build_operator(task, {"task_id": "probe"})
    op.entrypoint = ["python3"]
    result = op.execute(context={})
    assert result == {
        "status": "ok",
        "command": "probe",
        "seconds": 0.0,
        "uid": 10001,
        "cwd": "/app",
        "root_read_only": True,
        "tmp": ["tmpfs", True],
        "tmp_writable": True,
        "cap_eff": "0000000000000000",
        "no_new_privs": "1",
        "memory_limit": str(512 * 2**20),
        "has_source_url": True,
        "env_names": ["RUNNER_SOURCE_URL", "RUNNER_SPEC", "RUNNER_WAREHOUSE_URL"],
    }
    assert op.secret_env == {}  # the values lived only as long as the container
    label = f"label={TASK_LABEL}={dict(task.labels)[TASK_LABEL]}"
    leftovers = docker_engine.run("ps", "-aq", "--filter", label)
    assert leftovers.strip() == ""


def test_runner_config_error_fails_the_task_without_retry(
    acme: Tenant,
    runner_images: RunnerImages,
    docker_engine: DockerEngine,
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setenv("DOCKER_HOST", docker_engine.host)
    monkeypatch.setenv(REGISTRY_ENV, runner_images.registry)
    monkeypatch.setenv(NETWORK_ENV, "none")
    monkeypatch.setenv("AIRFLOW_CONN_ACME_SOURCE", "postgres://u@db:5432/src")
    monkeypatch.setenv("AIRFLOW_CONN_ACME_WAREHOUSE", "postgres://u@db:5432/wh")
    task = dataclasses.replace(_task(acme, "extract_orders"), argv=("extract", "--table", "nope"))
    op = build_operator(task, {"task_id": "bad_table"})
    with pytest.raises(AirflowFailException, match=r"code 2 \(.*\): runner extract: .*'nope'"):
        op.execute(context={})
    label = f"label={TASK_LABEL}={dict(task.labels)[TASK_LABEL]}"
    leftovers = docker_engine.run("ps", "-aq", "--filter", label)
    assert leftovers.strip() == ""

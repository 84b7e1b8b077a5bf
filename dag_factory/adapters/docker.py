"""The Docker adapter: the planned `runner` argv in a container of the planned image.

A small DockerOperator subclass adds what the operator has no argument for (STACK.md): a
read-only root filesystem with a tmpfs at /tmp, every capability dropped,
no-new-privileges, a CPU limit and a memory reservation. The container runs as the
runner's non-root user, on the network that reaches the warehouse
(`platform.docker.network`, or `$DAG_FACTORY_DOCKER_NETWORK`, e.g. `host` to reach servers
on 127.0.0.1), and is removed after the run, failed or not.

Secrets are resolved when the task runs — Airflow connection or worker env var → the
operator's private environment, which is neither templated, logged nor serialised. The
runner's last stdout line, a JSON object, becomes the task's XCom (stderr streams into the
task log).
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Any

from airflow.providers.docker.exceptions import DockerContainerFailedException
from airflow.providers.docker.operators.docker import DockerOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from dag_factory.adapters.container import (
    IMAGE_WORKDIR,
    RUNNER_UID,
    SCRATCH_PATH,
    SCRATCH_SIZE,
    TASK_LABEL,
    TENANT_LABEL,
    image_ref,
    memory_bytes,
    millicores,
    parse_result,
)
from dag_factory.plan import PlannedTask, SecretRef
from dag_factory.secrets import SecretResolutionError, resolve
from dag_factory.spec import TenantSpec

#: Overrides `platform.docker.network` for every tenant (`host` in tests and on CI).
NETWORK_ENV = "DAG_FACTORY_DOCKER_NETWORK"
#: Exit code of the runner for bad configuration: retrying cannot help (datakits.errors).
_CONFIG_ERROR_EXIT = 2
#: The runner writes nothing but under /tmp; nothing there is executable.
_TMPFS = {SCRATCH_PATH: f"rw,noexec,nosuid,nodev,size={memory_bytes(SCRATCH_SIZE)}"}
_PIDS_LIMIT = 512
#: Lines of the container's stdout kept for the result (the runner prints one).
_STDOUT_TAIL = 20


class _HardenedClient:
    """docker-py's APIClient with `hardening` added to every host config it creates; it
    keeps the exit status and the stdout (only) of the last container it waited for.

    DockerOperator's own XCom is the last line of stdout and stderr interleaved, where a
    late progress line on stderr can come after the runner's JSON line on stdout."""

    def __init__(self, client: Any, hardening: dict[str, Any]) -> None:
        self._client = client
        self._hardening = hardening
        self.last_status: int | None = None
        self.last_stdout = ""

    def create_host_config(self, **kwargs: Any) -> Any:
        return self._client.create_host_config(**kwargs, **self._hardening)

    def wait(self, container: Any, *args: Any, **kwargs: Any) -> Any:
        result = self._client.wait(container, *args, **kwargs)
        self.last_status = result.get("StatusCode")
        # read before DockerOperator removes the container
        out = self._client.logs(container, stdout=True, stderr=False, tail=_STDOUT_TAIL)
        self.last_stdout = out.decode("utf-8", "replace") if isinstance(out, bytes) else out
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


class RunnerContainerOperator(DockerOperator):
    """Run `runner <argv>` in the runner image, hardened, secrets resolved at run time."""

    ui_color = "#e3effb"

    def __init__(
        self,
        *,
        secrets: tuple[SecretRef, ...] = (),
        read_only: bool = True,
        tmpfs: dict[str, str] | None = None,
        cap_drop: tuple[str, ...] = ("ALL",),
        security_opt: tuple[str, ...] = ("no-new-privileges",),
        nano_cpus: int | None = None,
        mem_reservation: int | None = None,
        pids_limit: int | None = _PIDS_LIMIT,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.secrets = secrets
        self.hardening: dict[str, Any] = {
            "read_only": read_only,
            "tmpfs": dict(_TMPFS if tmpfs is None else tmpfs),
            "cap_drop": list(cap_drop),
            "security_opt": list(security_opt),
            "pids_limit": pids_limit,
        }
        if nano_cpus is not None:
            self.hardening["nano_cpus"] = nano_cpus
        if mem_reservation is not None:
            self.hardening["mem_reservation"] = mem_reservation

    @cached_property
    def cli(self) -> _HardenedClient:  # type: ignore[override]
        return _HardenedClient(self.hook.api_client, self.hardening)

    def execute(self, context: Any) -> dict[str, Any]:
        try:
            resolved = {secret.env: resolve(secret.ref) for secret in self.secrets}
        except SecretResolutionError as exc:
            raise AirflowFailException(str(exc)) from None
        self.log.info(
            "runner %s in %s (secrets: %s)",
            " ".join(self.command or ()),
            self.image,
            ", ".join(sorted(resolved)) or "none",
        )
        self._private_environment = {**self._private_environment, **resolved}
        try:
            super().execute(context)
        except DockerContainerFailedException as exc:
            code = self.cli.last_status
            reason = next((ln for ln in reversed(exc.logs or []) if str(ln).strip()), "")
            failure = AirflowFailException if code == _CONFIG_ERROR_EXIT else AirflowException
            raise failure(f"runner exited with code {code}: {reason}") from None
        finally:
            for name in resolved:  # the values live only as long as the container
                self._private_environment.pop(name, None)
        lines = [ln for ln in self.cli.last_stdout.splitlines() if ln.strip()]
        try:
            return parse_result(lines[-1] if lines else None)
        except ValueError as exc:
            raise AirflowException(f"runner exited 0 but {exc}") from None


def _network(spec: TenantSpec) -> str:
    return os.environ.get(NETWORK_ENV) or spec.platform.docker.network


def build_operator(
    task: PlannedTask, spec: TenantSpec, root: Path, common: dict[str, Any]
) -> RunnerContainerOperator:
    resources = task.settings.resources
    limits = resources.limits if resources else None
    requests = resources.requests if resources else None
    return RunnerContainerOperator(
        **common,
        image=image_ref(task.image),
        command=list(task.argv),
        environment=task.env_dict,
        secrets=task.secrets,
        network_mode=_network(spec),
        docker_url=spec.platform.docker.docker_url,  # None: $DOCKER_HOST or the local socket
        user=f"{RUNNER_UID}:{RUNNER_UID}",
        working_dir=IMAGE_WORKDIR,
        auto_remove="force",
        mount_tmp_dir=False,  # a root-owned 0700 dir the non-root runner cannot use
        # the CPU request becomes the relative weight, the limit a hard quota
        cpus=millicores(requests.cpu) / 1000 if requests and requests.cpu else 1.0,
        nano_cpus=millicores(limits.cpu) * 10**6 if limits and limits.cpu else None,
        mem_limit=memory_bytes(limits.memory) if limits and limits.memory else None,
        mem_reservation=memory_bytes(requests.memory) if requests and requests.memory else None,
        labels={TENANT_LABEL: spec.tenant, TASK_LABEL: task.task_id},
    )


def render(task: PlannedTask, spec: TenantSpec, root: Path) -> dict[str, Any]:
    """What the operator sends to the engine; secrets only as names and references."""
    op = build_operator(task, spec, root, {"task_id": task.task_id})
    return {
        "task_id": task.task_id,
        "image": op.image,
        "command": list(op.command),
        "environment": dict(op.environment),
        "private_environment": sorted(s.env for s in op.secrets),
        "secrets": {s.env: s.ref.model_dump(exclude_none=True) for s in op.secrets},
        "network_mode": op.network_mode,
        "docker_url": op.docker_url,
        "user": op.user,
        "working_dir": op.working_dir,
        "cpu_shares": round(op.cpus * 1024),
        "mem_limit": op.mem_limit,
        **op.hardening,
        "auto_remove": op.auto_remove,
        "mount_tmp_dir": op.mount_tmp_dir,
        "labels": op.labels,
    }

"""The Docker adapter: the planned `runner` argv in a container of the planned image.

A small DockerOperator subclass adds what the operator has no argument for (STACK.md): a
read-only root filesystem with a tmpfs at /tmp, every capability dropped,
no-new-privileges, a CPU limit and a memory reservation. The container runs as the
runner's non-root user, on the network that reaches the warehouse
(`platform.docker.network`, or `$DAG_FACTORY_DOCKER_NETWORK` applied by the planner, e.g.
`host` to reach servers on 127.0.0.1), and is removed after the run, failed or not.

Secrets are resolved when the task runs — Airflow connection or worker env var → the
container's environment at creation, never an operator attribute, so they are neither
templated, logged nor serialised. The
runner's last stdout line, a JSON object, becomes the task's XCom (stderr streams into the
task log).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any

from airflow.providers.docker.exceptions import DockerContainerFailedException
from airflow.providers.docker.operators.docker import DockerOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from dag_factory.adapters.asset_events import publish
from dag_factory.adapters.container import (
    IMAGE_WORKDIR,
    SCRATCH_PATH,
    SCRATCH_SIZE,
    memory_bytes,
    millicores,
)
from dag_factory.adapters.failures import runner_failure
from dag_factory.adapters.model_task import ModelTaskMixin, model_kwargs
from dag_factory.adapters.run_env import run_env
from dag_factory.plan import PlannedTask, SecretRef
from dag_factory.secrets import SecretResolutionError, resolve
from datakits.contract import RUNNER_UID, ResultLineError, parse_result

#: The runner writes nothing but under /tmp; nothing there is executable.
_TMPFS = {SCRATCH_PATH: f"rw,noexec,nosuid,nodev,size={memory_bytes(SCRATCH_SIZE)}"}
_PIDS_LIMIT = 512
#: Lines of the container's stdout kept for the result (the runner prints one).
_STDOUT_TAIL = 20


class _HardenedClient:
    """docker-py's APIClient with `hardening` added to every host config it creates and
    `secret_env` to every container's environment; it keeps the exit status and the
    stdout (only) of the last container it waited for.

    The secrets go in through docker-py's public `create_container(environment=...)`, not
    through DockerOperator's private attributes, and live only as long as one `execute`.
    DockerOperator's own XCom is the last line of stdout and stderr interleaved, where a
    late progress line on stderr can come after the runner's JSON line on stdout."""

    def __init__(self, client: Any, hardening: dict[str, Any], secret_env: dict[str, str]) -> None:
        self._client = client
        self._hardening = hardening
        self.secret_env = secret_env  # the operator's: filled for one execute only
        self.last_status: int | None = None
        self.last_stdout = ""

    def create_host_config(self, **kwargs: Any) -> Any:
        return self._client.create_host_config(**kwargs, **self._hardening)

    def create_container(self, *args: Any, environment: Any = None, **kwargs: Any) -> Any:
        environment = {**(environment or {}), **self.secret_env}
        return self._client.create_container(*args, environment=environment, **kwargs)

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
        #: Resolved secrets while `execute` runs, empty otherwise (never serialised).
        self.secret_env: dict[str, str] = {}
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
        return _HardenedClient(self.hook.api_client, self.hardening, self.secret_env)

    def add_runner_args(self, args: Sequence[str]) -> None:
        """More runner arguments for this try (a run option: `dag_factory.run_options`)."""
        self.command = [*(self.command or ()), *args]

    def add_run_env(self, context: Any) -> None:
        """This try's run id and OpenLineage parent run into the container's environment."""
        self.environment = {**(self.environment or {}), **run_env(context)}

    def execute(self, context: Any) -> dict[str, Any]:
        try:
            resolved = {s.env: resolve(s.ref, field=s.field) for s in self.secrets}
        except SecretResolutionError as exc:
            raise AirflowFailException(str(exc)) from None
        self.log.info(
            "runner %s in %s (secrets: %s)",
            " ".join(self.command or ()),
            self.image,
            ", ".join(sorted(resolved)) or "none",
        )
        self.secret_env.update(resolved)
        self.add_run_env(context)
        try:
            super().execute(context)
        except DockerContainerFailedException as exc:
            reason = next((str(ln) for ln in reversed(exc.logs or []) if str(ln).strip()), "")
            raise runner_failure(self.cli.last_status, reason.strip()) from None
        finally:
            self.secret_env.clear()  # the values live only as long as the container
        try:
            result = parse_result(self.cli.last_stdout)
        except ResultLineError as exc:
            raise AirflowException(f"runner exited 0 but {exc}") from None
        publish(context, self.outlets, result)
        return result


class ModelContainerOperator(ModelTaskMixin, RunnerContainerOperator):
    """A dbt node's task: passes on `dbt_build`'s report, or runs its node in a container."""

    # Both defined here, not only in the mixin: Airflow's operator metaclass applies
    # default args to, and guards, only an `__init__` and `execute` of the class itself.
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)

    def execute(self, context: Any) -> Any:
        return super().execute(context)


def build_operator(task: PlannedTask, common: dict[str, Any]) -> RunnerContainerOperator:
    resources = task.settings.resources
    limits = resources.limits if resources else None
    requests = resources.requests if resources else None
    cls, model = (
        (ModelContainerOperator, model_kwargs(task))
        if task.is_model
        else (RunnerContainerOperator, {})
    )
    return cls(
        **common,
        **model,
        image=task.image,
        command=list(task.argv),
        environment=task.env_dict,
        secrets=task.secrets,
        network_mode=task.docker.network,
        docker_url=task.docker.docker_url,  # None: $DOCKER_HOST or the local socket
        user=f"{RUNNER_UID}:{RUNNER_UID}",
        working_dir=IMAGE_WORKDIR,
        auto_remove="force",
        mount_tmp_dir=False,  # a root-owned 0700 dir the non-root runner cannot use
        # the CPU request becomes the relative weight, the limit a hard quota
        cpus=millicores(requests.cpu) / 1000 if requests and requests.cpu else 1.0,
        nano_cpus=millicores(limits.cpu) * 10**6 if limits and limits.cpu else None,
        mem_limit=memory_bytes(limits.memory) if limits and limits.memory else None,
        mem_reservation=memory_bytes(requests.memory) if requests and requests.memory else None,
        labels=dict(task.labels),
    )


def model_fields(task: PlannedTask) -> dict[str, Any]:
    """The attributes in which the operators of two model tasks differ, besides those the
    DAG build sets (`dag_factory.adapters.model_task.clone_operator`)."""
    return {"command": list(task.argv), "labels": dict(task.labels)}


def render(task: PlannedTask, context: Any = None) -> dict[str, Any]:
    """What the operator sends to the engine; secrets only as names and references."""
    op = build_operator(task, {"task_id": task.task_id})
    if context is not None:  # a task try's: its run env, as execute adds it
        op.add_run_env(context)
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

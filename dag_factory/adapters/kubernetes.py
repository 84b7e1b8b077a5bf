"""The Kubernetes adapter: the planned `runner` argv as a pod (KubernetesPodOperator).

The pod runs in the tenant's namespace under its service account, on its enclave's
nodes (`dag_factory.k8s_objects.ENCLAVES`), with the planned resources and a restricted
security context: non-root, read-only root filesystem with an emptyDir at /tmp, every
capability dropped, seccomp RuntimeDefault, no privilege escalation. Connection URLs come
from Kubernetes Secrets through `secretKeyRef`: no secret value is ever in the pod spec.
Logs stream into the task log; the pod is deleted when done. A failed pod is classified
by its runner's exit code, as in every adapter: a permanent code (a bad spec) fails the
task at once, any other is retried (`RunnerPodOperator.cleanup`).

XCom: the runner also writes its JSON result to `$RUNNER_RESULT_FILE`, here the file
Airflow's XCom sidecar serves (`/airflow/xcom/return.json`, an emptyDir, so the read-only
root filesystem is no obstacle). The sidecar runs the same runner image — no other image
to pull or trust — under the same security context; its command is `sh -c …`, so the
image needs `/bin/sh`. Its volume is size-limited (`XCOM_VOLUME_SIZE`).

Names: the pod name and the task label come from `dag_factory.k8s_names`, valid for every
tenant id and table name `validate` accepts (a 63-character table, one ending in `_`).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Sequence
from typing import Any

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.providers.cncf.kubernetes.utils.xcom_sidecar import PodDefaults
from airflow.sdk.exceptions import AirflowException, AirflowSkipException
from kubernetes.client import ApiClient
from kubernetes.client import models as k8s
from pydantic import ValidationError

from dag_factory.adapters.asset_events import publish
from dag_factory.adapters.container import SCRATCH_PATH, SCRATCH_SIZE
from dag_factory.adapters.failures import runner_failure
from dag_factory.adapters.model_task import ModelTaskMixin, model_kwargs
from dag_factory.adapters.run_env import run_env
from dag_factory.k8s_names import dns_label
from dag_factory.k8s_objects import (
    SIDECAR_RESOURCES,
    SPARK_DRIVER,
    SPARK_DRIVER_ROLE,
    SPARK_ROLE_LABEL,
    XCOM_VOLUME_SIZE,
)
from dag_factory.plan import PlannedTask, is_spark
from datakits.contract import RESULT_FILE_ENV, RUNNER_UID, RunnerResult

RESULT_FILE = f"{PodDefaults.XCOM_MOUNT_PATH}/return.json"
#: A Spark task's master (runners/spark_conf.py): the cluster the pod runs in, client mode.
SPARK_MASTER = "k8s://https://kubernetes.default.svc"
#: Spark tasks only: the master, and the pod's IP (downward API) the executors dial back.
#: Its pod's name owns the executor pods: deleting the task's pod deletes them too.
SPARK_ENV = frozenset({"SPARK_MASTER", "SPARK_DRIVER_HOST", "SPARK_DRIVER_POD"})
#: Env the transport adds to the planned env (parity compares the rest).
TRANSPORT_ENV = frozenset({RESULT_FILE_ENV, *SPARK_ENV})
_SCRATCH_VOLUME = "scratch"


def _seccomp() -> k8s.V1SeccompProfile:
    return k8s.V1SeccompProfile(type="RuntimeDefault")


def container_security_context() -> k8s.V1SecurityContext:
    return k8s.V1SecurityContext(
        run_as_non_root=True,
        run_as_user=RUNNER_UID,
        run_as_group=RUNNER_UID,
        read_only_root_filesystem=True,
        allow_privilege_escalation=False,
        capabilities=k8s.V1Capabilities(drop=["ALL"]),
        seccomp_profile=_seccomp(),
    )


def pod_security_context() -> k8s.V1PodSecurityContext:
    return k8s.V1PodSecurityContext(
        run_as_non_root=True,
        run_as_user=RUNNER_UID,
        run_as_group=RUNNER_UID,
        fs_group=RUNNER_UID,
        seccomp_profile=_seccomp(),
    )


class RunnerPodOperator(KubernetesPodOperator):
    """KubernetesPodOperator whose XCom sidecar runs the task's own image, sized."""

    ui_color = "#e6f0fa"

    def build_pod_request_obj(self, context: Any = None, *, dry_run: bool = False) -> k8s.V1Pod:
        pod = super().build_pod_request_obj(context, dry_run=dry_run)
        for volume in pod.spec.volumes or []:
            if volume.name == PodDefaults.VOLUME.name and volume.empty_dir is not None:
                volume.empty_dir.size_limit = XCOM_VOLUME_SIZE
        for container in pod.spec.containers:
            if container.name == PodDefaults.SIDECAR_CONTAINER_NAME:
                container.image = self.image
                container.image_pull_policy = self.image_pull_policy
                container.resources = k8s.V1ResourceRequirements(**SIDECAR_RESOURCES)
        return pod

    def add_runner_args(self, args: Sequence[str]) -> None:
        """More runner arguments for this try (a run option: `dag_factory.run_options`)."""
        self.arguments = [*(self.arguments or ()), *args]

    def add_run_env(self, context: Any) -> None:
        """This try's run id and OpenLineage parent run into the pod's env (values)."""
        extra = run_env(context)
        kept = [e for e in self.env_vars or () if e.name not in extra]
        self.env_vars = kept + [k8s.V1EnvVar(name=n, value=v) for n, v in extra.items()]

    def execute(self, context: Any) -> Any:
        """The pod's result (the XCom sidecar's `return.json`) also becomes the facts of
        the task's asset events; a pod whose result is missing or not the runner's line
        only loses those facts (the pod itself succeeded)."""
        self.add_run_env(context)
        result = super().execute(context)
        if isinstance(result, dict):
            try:
                parsed = RunnerResult.model_validate(result).model_dump()
            except ValidationError:
                self.log.warning("the pod's XCom is not a runner result: no asset-event facts")
            else:
                publish(context, self.outlets, parsed)
        return result

    def cleanup(
        self,
        pod: k8s.V1Pod,
        remote_pod: k8s.V1Pod,
        xcom_result: dict | None = None,
        context: Any = None,
    ) -> None:
        """The operator's cleanup raises one AirflowException for every failed pod, so
        every failure was retried: classify it by the runner's exit code instead."""
        try:
            super().cleanup(pod, remote_pod, xcom_result, context)
        except AirflowSkipException:
            raise
        except AirflowException as exc:
            raise pod_failure(remote_pod, self.base_container_name, str(exc)) from None


def exit_code(pod: k8s.V1Pod | None, container: str) -> int | None:
    """The exit code of `container` in a pod that ran, or None (not terminated, no pod)."""
    statuses = (pod.status.container_statuses if pod and pod.status else None) or []
    status = next((s for s in statuses if s.name == container), None)
    terminated = status.state.terminated if status and status.state else None
    return terminated.exit_code if terminated else None


def pod_failure(pod: k8s.V1Pod | None, container: str, reason: str = "") -> AirflowException:
    """The exception for a failed runner pod, by its base container's exit code."""
    return runner_failure(exit_code(pod, container), reason.splitlines()[0] if reason else "")


def _resources(task: PlannedTask) -> k8s.V1ResourceRequirements | None:
    resources = task.settings.resources
    if resources is None:
        return None
    parts = {
        part: {k: v for k, v in getattr(resources, part).model_dump().items() if v}
        for part in ("requests", "limits")
    }
    return k8s.V1ResourceRequirements(**{k: v for k, v in parts.items() if v})


def _env(task: PlannedTask) -> list[k8s.V1EnvVar]:
    env = [k8s.V1EnvVar(name=name, value=value) for name, value in task.env]
    env.append(k8s.V1EnvVar(name=RESULT_FILE_ENV, value=RESULT_FILE))
    for secret in task.secrets:
        ref = secret.k8s_secret
        selector = k8s.V1SecretKeySelector(name=ref.name, key=ref.key, optional=False)
        env.append(
            k8s.V1EnvVar(name=secret.env, value_from=k8s.V1EnvVarSource(secret_key_ref=selector))
        )
    if is_spark(task):
        env.append(k8s.V1EnvVar(name="SPARK_MASTER", value=SPARK_MASTER))
        for name, field in (
            ("SPARK_DRIVER_HOST", "status.podIP"),
            ("SPARK_DRIVER_POD", "metadata.name"),
        ):
            selector = k8s.V1ObjectFieldSelector(field_path=field)
            env.append(k8s.V1EnvVar(name=name, value_from=k8s.V1EnvVarSource(field_ref=selector)))
    return env


def _identity(task: PlannedTask) -> dict[str, Any]:
    """Service account, token and labels. Every pod runs as the tenant's runner account
    with no API token, except a Spark task's: it is Spark's driver in client mode and
    starts its executor pods, so it runs as `spark-driver` (k8s_objects.spark_objects)
    with its token mounted, labelled so the Spark NetworkPolicies find it."""
    labels = dict(task.labels)
    if not is_spark(task):
        return {
            "service_account_name": task.kubernetes.service_account,
            "automount_service_account_token": False,
            "labels": labels,
        }
    return {
        "service_account_name": SPARK_DRIVER,
        "automount_service_account_token": True,
        "labels": {**labels, SPARK_ROLE_LABEL: SPARK_DRIVER_ROLE},
    }


#: The pod name before the operator's `-<8 random>` suffix (the whole at most 63).
POD_NAME_BASE_MAX = 50


def pod_name(task: PlannedTask) -> str:
    """`<tenant>-<task>` as a DNS-1123 label of at most 50 characters (a hash replaces
    what does not fit); the operator adds a random suffix."""
    return dns_label(f"{task.tenant}-{task.task_id}", POD_NAME_BASE_MAX)


class ModelPodOperator(ModelTaskMixin, RunnerPodOperator):
    """A dbt node's task: passes on `dbt_build`'s report, and starts a pod only when its
    node must run here."""

    # Both defined here, not only in the mixin: Airflow's operator metaclass applies
    # default args to, and guards, only an `__init__` and `execute` of the class itself.
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)

    def execute(self, context: Any) -> Any:
        return super().execute(context)


def build_operator(task: PlannedTask, common: dict[str, Any]) -> RunnerPodOperator:
    where = task.kubernetes
    pull_secret = where.image_pull_secret
    cls, model = (
        (ModelPodOperator, model_kwargs(task)) if task.is_model else (RunnerPodOperator, {})
    )
    return cls(
        **common,
        **model,
        name=pod_name(task),
        namespace=where.namespace,
        image=task.image,
        image_pull_policy="IfNotPresent",  # tags are pinned (spec.ImageRef)
        arguments=list(task.argv),  # the image's ENTRYPOINT is `runner`
        env_vars=_env(task),
        **_identity(task),
        image_pull_secrets=[k8s.V1LocalObjectReference(name=pull_secret)] if pull_secret else [],
        container_resources=_resources(task),
        node_selector=dict(where.node_selector),
        tolerations=[k8s.V1Toleration(**dict(t)) for t in where.tolerations],
        security_context=pod_security_context(),
        container_security_context=container_security_context(),
        xcom_sidecar_container_security_context=container_security_context(),
        volumes=[
            k8s.V1Volume(
                name=_SCRATCH_VOLUME, empty_dir=k8s.V1EmptyDirVolumeSource(size_limit=SCRATCH_SIZE)
            )
        ],
        volume_mounts=[k8s.V1VolumeMount(name=_SCRATCH_VOLUME, mount_path=SCRATCH_PATH)],
        termination_message_policy="FallbackToLogsOnError",
        get_logs=True,
        log_events_on_failure=True,
        do_xcom_push=True,
        on_finish_action="delete_pod",
    )


def model_fields(task: PlannedTask) -> dict[str, Any]:
    """The attributes in which the operators of two model tasks differ, besides those the
    DAG build sets (`dag_factory.adapters.model_task.clone_operator`)."""
    return {"arguments": list(task.argv), "labels": dict(task.labels), "name": pod_name(task)}


def render(task: PlannedTask, context: Any = None) -> dict[str, Any]:
    """The pod manifest the operator would create (no cluster needed)."""
    op = build_operator(task, {"task_id": task.task_id})
    if context is not None:  # a task try's: its run env, as execute adds it
        op.add_run_env(context)
    with contextlib.redirect_stdout(sys.stderr):  # the operator logs to stdout; keep it clean
        pod = op.build_pod_request_obj(dry_run=True)
    return ApiClient().sanitize_for_serialization(pod)

"""The Kubernetes adapter's pods and the per-tenant cluster objects: every one validates
against the Kubernetes 1.32 schema (strict), carries the restricted security context, and
holds secrets only as references; the objects folder builds with `kubectl kustomize`."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from airflow.providers.cncf.kubernetes.utils.pod_manager import OnFinishAction
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from kubernetes.client import models as k8s

from dag_factory.adapters import adapter_for, renderer_for
from dag_factory.adapters.container import SCRATCH_PATH
from dag_factory.adapters.kubernetes import RESULT_FILE, RunnerPodOperator, exit_code, pod_failure
from dag_factory.k8s_objects import (
    ENCLAVE_LABEL,
    ENCLAVES,
    XCOM_VOLUME_SIZE,
    EgressUndefined,
    expected_secrets,
    parallel_pods,
    tenant_objects,
    write_tenant_objects,
)
from dag_factory.loader import Loader, Tenant
from dag_factory.plan import PlannedTask, plan_tenant
from dag_factory.spec import Enclave, Executor, KubernetesSettings, TenantSpec
from datakits.contract import RESULT_FILE_ENV

REPO = Path(__file__).resolve().parents[2]
K8S_VERSION = "1.32"
SECRET = "pa55-n0t-here"
TENANTS = Loader(REPO / "warehouses").load_all().tenants
#: Where acme's databases are, as a cluster deployment must say (no default destination).
EGRESS = {
    "source_egress": {"cidrs": ["10.20.0.0/16"]},
    "warehouse_egress": {
        "namespace_selector": {"kubernetes.io/metadata.name": "warehouse"},
        "pod_selector": {"app": "postgres"},
    },
}


def _with(spec: TenantSpec, **kubernetes: Any) -> TenantSpec:
    """`spec` with these `platform.kubernetes` settings (validated)."""
    settings = KubernetesSettings.model_validate(
        {**spec.platform.kubernetes.model_dump(), **kubernetes}
    )
    platform = spec.platform.model_copy(update={"kubernetes": settings})
    return spec.model_copy(update={"platform": platform})


def _cases() -> list[Any]:
    cases = []
    for tenant in TENANTS:
        for enclave in Enclave:
            for task in plan_tenant(tenant, REPO).tasks:
                cases.append(
                    pytest.param(
                        tenant,
                        enclave,
                        task.task_id,
                        id=f"{tenant.spec.tenant}-{enclave}-{task.task_id}",
                    )
                )
    return cases


def _plan(tenant: Tenant, spec: TenantSpec, task_id: str) -> PlannedTask:
    """Plan `tenant` as if its file held `spec`."""
    return plan_tenant(dataclasses.replace(tenant, spec=spec), REPO).task(task_id)


def _validate(manifest: dict[str, Any]) -> None:
    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)


def test_repository_has_tenants():
    assert {t.spec.tenant for t in TENANTS} >= {"acme", "demo"}


@pytest.mark.parametrize(("tenant", "enclave", "task_id"), _cases())
def test_every_pod_validates_and_is_restricted(
    tenant: Tenant, enclave: Enclave, task_id: str, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("AIRFLOW_CONN_ACME_SOURCE", f"postgres://u:{SECRET}@db:5432/src")
    spec = _with(tenant.spec, enclave=enclave)
    task = _plan(tenant, spec, task_id)
    pod = renderer_for(Executor.kubernetes)(task)
    _validate(pod)
    assert SECRET not in json.dumps(pod)

    assert pod["metadata"]["namespace"] == spec.namespace
    pod_spec = pod["spec"]
    assert pod_spec["serviceAccountName"] == spec.platform.kubernetes.service_account
    assert pod_spec["automountServiceAccountToken"] is False
    assert pod_spec["imagePullSecrets"] == [{"name": "registry-credentials"}]
    assert pod_spec["nodeSelector"] == {ENCLAVE_LABEL: enclave.value}
    assert len(pod_spec["tolerations"]) == len(ENCLAVES[enclave].tolerations)
    assert pod_spec["restartPolicy"] == "Never"
    assert pod_spec["securityContext"]["runAsNonRoot"] is True
    assert pod_spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}

    base, sidecar = pod_spec["containers"]
    assert base["image"] == sidecar["image"] == task.image
    assert base["args"] == list(task.argv) and not base["command"]
    for container in (base, sidecar):
        context = container["securityContext"]
        assert context["runAsNonRoot"] is True and context["runAsUser"] == 10001
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}
        assert container["resources"]["limits"]  # the namespace's quota needs limits
    resources = task.settings.resources
    assert base["resources"]["limits"] == resources.limits.model_dump(exclude_none=True)
    assert base["resources"]["requests"] == resources.requests.model_dump(exclude_none=True)

    volumes = {v["name"]: v for v in pod_spec["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in base["volumeMounts"]}
    assert "emptyDir" in volumes[mounts[SCRATCH_PATH]]
    assert "emptyDir" in volumes[mounts["/airflow/xcom"]]

    env = {e["name"]: e for e in base["env"]}
    assert env[RESULT_FILE_ENV]["value"] == RESULT_FILE
    for name, value in task.env:
        assert env[name]["value"] == value
    for secret in task.secrets:
        ref = env[secret.env]["valueFrom"]["secretKeyRef"]
        assert "value" not in env[secret.env]
        assert ref == {
            "name": f"{spec.namespace}-{secret.role.value}",
            "key": "url",
            "optional": False,
        }


def test_secret_names_come_from_the_spec_when_set():
    tenant = next(t for t in TENANTS if t.spec.tenant == "acme")
    spec = _with(
        tenant.spec,
        warehouse_secret={"name": "shared-warehouse", "key": "acme-url"},
        image_pull_secret=None,
    )
    pod = renderer_for(Executor.kubernetes)(_plan(tenant, spec, "dbt_silver"))
    _validate(pod)
    env = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
    assert env["RUNNER_WAREHOUSE_URL"]["valueFrom"]["secretKeyRef"]["name"] == "shared-warehouse"
    assert env["RUNNER_WAREHOUSE_URL"]["valueFrom"]["secretKeyRef"]["key"] == "acme-url"
    assert pod["spec"]["imagePullSecrets"] == []
    assert [s["name"] for s in expected_secrets(spec)] == ["tenant-acme-source", "shared-warehouse"]


def _ran(code: int | None) -> k8s.V1Pod:
    """A pod as the API returns it after its base container ended with `code`."""
    state = (
        k8s.V1ContainerState(terminated=k8s.V1ContainerStateTerminated(exit_code=code))
        if code is not None
        else k8s.V1ContainerState(waiting=k8s.V1ContainerStateWaiting(reason="Pending"))
    )
    status = k8s.V1ContainerStatus(
        name="base", image="i", image_id="", ready=False, restart_count=0, state=state
    )
    return k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(name="p", namespace="tenant-acme"),
        status=k8s.V1PodStatus(phase="Failed", container_statuses=[status]),
    )


@pytest.mark.parametrize(
    ("code", "permanent"),
    [(2, True), (1, False), (3, False), (4, False), (5, False), (137, False), (None, False)],
)
def test_a_failed_pod_is_classified_by_its_exit_code(code: int | None, permanent: bool):
    """exit 2 (bad spec, missing table, dbt compile error) is never retried; others are."""
    pod = _ran(code)
    assert exit_code(pod, "base") == code
    failure = pod_failure(pod, "base", "Pod p returned a failure.\nmore")
    assert isinstance(failure, AirflowException)
    assert isinstance(failure, AirflowFailException) is permanent
    assert str(failure).startswith(f"runner failed with exit code {code}")


def test_the_operator_cleanup_raises_the_classified_failure():
    """KubernetesPodOperator.cleanup itself, its three API-server calls (istio check, label
    patch, deletion) answered in-process: no cluster here."""
    acme = next(t for t in TENANTS if t.spec.tenant == "acme")
    task = plan_tenant(acme, REPO).task("extract_orders")
    op = adapter_for(Executor.kubernetes)(task, {"task_id": task.task_id})
    assert isinstance(op, RunnerPodOperator)
    op.on_finish_action = OnFinishAction.KEEP_POD  # nothing to delete without a cluster
    op.log_events_on_failure = False
    op.is_istio_enabled = lambda pod: False
    op.patch_already_checked = lambda *a, **k: None
    with pytest.raises(AirflowFailException, match="exit code 2"):
        op.cleanup(_ran(2), _ran(2))
    with pytest.raises(AirflowException, match="exit code 3") as exc:
        op.cleanup(_ran(3), _ran(3))
    assert not isinstance(exc.value, AirflowFailException)


# --- per-tenant cluster objects ------------------------------------------------------------


@pytest.mark.parametrize("enclave", list(Enclave))
@pytest.mark.parametrize("tenant", TENANTS, ids=lambda t: t.spec.tenant)
def test_tenant_objects_validate(tenant: Tenant, enclave: Enclave):
    spec = _with(tenant.spec, enclave=enclave, **EGRESS)
    objects = tenant_objects(spec)
    kinds = [o["kind"] for o in objects]
    assert kinds == [
        "Namespace",
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "ResourceQuota",
        "LimitRange",
        "NetworkPolicy",
    ]
    for obj in objects:
        _validate(obj)
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == spec.namespace
    by_kind = {o["kind"]: o for o in objects}
    assert by_kind["Namespace"]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == (
        "restricted"
    )
    assert by_kind["Namespace"]["metadata"]["labels"][ENCLAVE_LABEL] == enclave.value
    rules = {r["resources"][0]: set(r["verbs"]) for r in by_kind["Role"]["rules"]}
    assert {"create", "get", "watch", "delete"} <= rules["pods"]
    assert rules["pods/log"] >= {"get"} and rules["pods/exec"] >= {"create"}
    assert by_kind["RoleBinding"]["subjects"][0]["name"] == "airflow-worker"


def test_quota_and_limits_follow_the_resources():
    acme = _with(next(t for t in TENANTS if t.spec.tenant == "acme").spec, **EGRESS)
    # 4 tables, concurrency 8, 1 run: 4 pods at once, each at most 2 CPU / 1Gi (dbt) + sidecar;
    # each slot counted twice (a terminating pod beside its retry or successor)
    assert parallel_pods(acme) == 4
    by_kind = {o["kind"]: o for o in tenant_objects(acme)}
    assert by_kind["ResourceQuota"]["spec"]["hard"] == {
        "pods": "8",
        "requests.cpu": "2080m",
        "requests.memory": "4224Mi",
        "limits.cpu": "16400m",
        "limits.memory": "8448Mi",
    }
    assert by_kind["LimitRange"]["spec"]["limits"] == [
        {
            "type": "Container",
            "max": {"cpu": "2", "memory": "1Gi"},
            "default": {"cpu": "1", "memory": "512Mi"},
            "defaultRequest": {"cpu": "250m", "memory": "256Mi"},
        }
    ]
    demo = next(t for t in TENANTS if t.spec.tenant == "demo").spec
    assert parallel_pods(demo) == 1  # DuckDB: one writer at a time


def test_network_policy_denies_by_default_and_allows_source_and_warehouse():
    acme = next(t for t in TENANTS if t.spec.tenant == "acme").spec
    nowhere = _with(acme, source_egress={}, warehouse_egress={})
    with pytest.raises(EgressUndefined, match=r"source_egress: .*set `cidrs`.*5432"):
        tenant_objects(nowhere)  # no destination given: never TCP 5432 to every address
    same = {"cidrs": ["10.20.0.0/16"]}
    policy = {
        o["kind"]: o for o in tenant_objects(_with(acme, source_egress=same, warehouse_egress=same))
    }
    policy = policy["NetworkPolicy"]["spec"]
    assert policy["podSelector"] == {} and policy["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in policy  # no ingress at all
    dns, postgres = policy["egress"]  # source and warehouse share one rule
    assert {p["port"] for p in dns["ports"]} == {53}
    assert postgres == {
        "to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}],
        "ports": [{"protocol": "TCP", "port": 5432}],
    }

    in_cluster = {o["kind"]: o for o in tenant_objects(_with(acme, **EGRESS))}["NetworkPolicy"]
    _validate(in_cluster)
    warehouse = in_cluster["spec"]["egress"][2]
    assert warehouse["to"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "warehouse"}},
            "podSelector": {"matchLabels": {"app": "postgres"}},
        }
    ]

    narrowed = _with(
        acme,
        source_egress={"cidrs": ["10.20.0.0/16"]},
        warehouse_egress={"cidrs": ["10.30.0.8/32"], "ports": [6432]},
    )
    policy = {o["kind"]: o for o in tenant_objects(narrowed)}["NetworkPolicy"]
    _validate(policy)
    _, source, warehouse = policy["spec"]["egress"]
    assert source == {
        "to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}],
        "ports": [{"protocol": "TCP", "port": 5432}],
    }
    assert warehouse["ports"] == [{"protocol": "TCP", "port": 6432}]

    demo = next(t for t in TENANTS if t.spec.tenant == "demo").spec
    demo_policy = {o["kind"]: o for o in tenant_objects(demo)}["NetworkPolicy"]["spec"]
    assert len(demo_policy["egress"]) == 1  # SQLite and DuckDB are files: DNS only


def test_egress_cidrs_are_checked():
    from pydantic import ValidationError

    from dag_factory.spec import Egress

    with pytest.raises(ValidationError, match="host bits set"):
        Egress(cidrs=("10.20.0.1/16",))
    with pytest.raises(ValidationError, match="is every address"):
        Egress(cidrs=("0.0.0.0/0",))
    with pytest.raises(ValidationError, match="not a Kubernetes label value"):
        Egress(pod_selector={"app": "postgres_"})


def test_per_tenant_launcher_account_is_bound_in_its_namespace_only():
    acme = _with(next(t for t in TENANTS if t.spec.tenant == "acme").spec, **EGRESS)
    shared = {o["kind"]: o for o in tenant_objects(acme)}
    assert shared["RoleBinding"]["subjects"][0]["name"] == "airflow-worker"
    own = tenant_objects(_with(acme, launcher="per-tenant"))
    accounts = [o for o in own if o["kind"] == "ServiceAccount"]
    assert [(a["metadata"]["namespace"], a["metadata"]["name"]) for a in accounts] == [
        ("tenant-acme", "runner"),
        ("airflow", "airflow-acme"),
    ]
    binding = next(o for o in own if o["kind"] == "RoleBinding")
    assert binding["metadata"]["namespace"] == "tenant-acme"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "airflow-acme", "namespace": "airflow"}
    ]
    for obj in own:
        _validate(obj)


def test_xcom_sidecar_volume_is_size_limited():
    acme = next(t for t in TENANTS if t.spec.tenant == "acme")
    pod = renderer_for(Executor.kubernetes)(plan_tenant(acme, REPO).task("extract_orders"))
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["xcom"]["emptyDir"] == {"sizeLimit": XCOM_VOLUME_SIZE}


@pytest.mark.parametrize("tenant", TENANTS, ids=lambda t: t.spec.tenant)
def test_objects_folder_builds_with_kustomize(tenant: Tenant, tmp_path: Path):
    spec = _with(tenant.spec, **EGRESS)
    written = write_tenant_objects(spec, tmp_path / "k8s")
    names = {p.name for p in written}
    assert {"kustomization.yaml", "README.md"} <= names
    kustomization = yaml.safe_load((tmp_path / "k8s" / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(names - {"kustomization.yaml", "README.md"})
    readme = (tmp_path / "k8s" / "README.md").read_text()
    for secret in expected_secrets(spec):
        assert f"`{secret['name']}`" in readme

    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is missing: run `make services`"
    built = subprocess.run(
        [kubectl, "kustomize", str(tmp_path / "k8s")], capture_output=True, text=True, check=True
    ).stdout
    documents = list(yaml.safe_load_all(built))
    assert sorted(d["kind"] for d in documents) == sorted(o["kind"] for o in tenant_objects(spec))
    for document in documents:
        _validate(document)

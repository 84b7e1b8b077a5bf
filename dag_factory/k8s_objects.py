"""The Kubernetes objects a tenant needs, as plain manifests; no Airflow, no cluster.

`tenant_objects(spec)` returns them: the tenant's Namespace (Pod Security `restricted`),
the runner ServiceAccount, a Role and RoleBinding letting Airflow's pod launcher run pods
there (the shared worker account, or with `launcher: per-tenant` an account of the
tenant's own in Airflow's namespace), a ResourceQuota and LimitRange derived from the task
resources (and a Spark tenant's executor size, `dbt.spark.executor`), and a NetworkPolicy
that denies by default and allows egress to DNS and to the
tenant's source and warehouse — always to a named destination (CIDRs or selectors): a
server database without one raises `EgressUndefined` rather than open its port to every
address. `write_tenant_objects(tenant, out_dir)` writes them as a kustomize-ready
folder, with a README naming the Secrets the cluster must hold (names and keys only).

What the Kubernetes adapter and these objects must agree on — enclave placement, Secret
names, labels — is defined here, once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dag_factory.adapters.container import (
    SCRATCH_SIZE,
    TENANT_LABEL,
    format_memory,
    format_millicores,
    memory_bytes,
    millicores,
)
from dag_factory.k8s_names import dns_label
from dag_factory.spec import (
    DbtEngine,
    Egress,
    Enclave,
    ResourceAmounts,
    SecretKeyRef,
    TenantSpec,
)
from datakits.contract import RUNNER_UID
from datakits.kinds import Kind, source_kind, warehouse_kind

#: Node label of the enclaves' node pools; `high-security` nodes also carry it as a taint.
ENCLAVE_LABEL = "dag-factory.io/enclave"
MANAGED_BY = {"app.kubernetes.io/managed-by": "dag-factory"}
#: The name of the Role (and RoleBinding) that lets Airflow run pods in a namespace.
POD_LAUNCHER = "airflow-pod-launcher"
#: The Airflow XCom sidecar (KubernetesPodOperator) runs in every pod; its fixed size.
SIDECAR_RESOURCES = {
    "requests": {"cpu": "10m", "memory": "16Mi"},
    "limits": {"cpu": "50m", "memory": "32Mi"},
}
#: The size limit of the XCom sidecar's emptyDir (`/airflow/xcom`): it holds one result line.
XCOM_VOLUME_SIZE = "1Mi"
#: The key of the Secrets holding connection URLs.
URL_KEY = "url"
#: Each pod slot of the quota is counted this many times: the running pod, and one still
#: terminating (its grace period) while its retry or the next task already starts.
POD_SLOT_HEADROOM = 2


#: `dbt.engine: spark` (client mode, runners/spark_conf.py): the ServiceAccount, Role and
#: RoleBinding of the Spark tasks' pods, which start their executor pods themselves.
SPARK_DRIVER = "spark-driver"
#: The label Spark puts on the executor pods it starts (`spark-role: executor`); the
#: Kubernetes adapter puts `spark-role: driver` on the Spark tasks' pods.
SPARK_ROLE_LABEL = "spark-role"
SPARK_DRIVER_ROLE = "driver"
SPARK_EXECUTOR_ROLE = "executor"
#: The API server's port when `dbt.spark.api_server.ports` is empty.
API_SERVER_PORT = 443


class EgressUndefined(ValueError):
    """A server database has no NetworkPolicy destination (no CIDR, no selector)."""


@dataclass(frozen=True)
class Placement:
    node_selector: dict[str, str]
    tolerations: tuple[dict[str, str], ...]


#: Where each enclave's pods run: its node pool, and the taint its nodes carry.
ENCLAVES = {
    Enclave.standard: Placement({ENCLAVE_LABEL: Enclave.standard.value}, ()),
    Enclave.high_security: Placement(
        {ENCLAVE_LABEL: Enclave.high_security.value},
        (
            {
                "key": ENCLAVE_LABEL,
                "operator": "Equal",
                "value": Enclave.high_security.value,
                "effect": "NoSchedule",
            },
        ),
    ),
}


def placement(spec: TenantSpec) -> Placement:
    return ENCLAVES[spec.platform.kubernetes.enclave]


def labels(spec: TenantSpec) -> dict[str, str]:
    return {TENANT_LABEL: spec.tenant, **MANAGED_BY}


def secret_refs(spec: TenantSpec) -> dict[str, SecretKeyRef]:
    """The Kubernetes Secret (name, key) holding each connection URL, by role (`source`,
    `warehouse`: the planner's `SecretRole` values)."""
    k8s = spec.platform.kubernetes
    return {
        "source": k8s.source_secret or SecretKeyRef(name=f"{spec.namespace}-source", key=URL_KEY),
        "warehouse": k8s.warehouse_secret
        or SecretKeyRef(name=f"{spec.namespace}-warehouse", key=URL_KEY),
    }


def expected_secrets(spec: TenantSpec) -> list[dict[str, Any]]:
    """The Secrets the tenant's namespace must hold: names, keys and types, never values."""
    by_name: dict[str, dict[str, Any]] = {}
    for role, ref in secret_refs(spec).items():
        entry = by_name.setdefault(
            ref.name, {"name": ref.name, "type": "Opaque", "keys": [], "holds": []}
        )
        if ref.key not in entry["keys"]:
            entry["keys"].append(ref.key)
        entry["holds"].append(f"the {role}'s SQLAlchemy URL")
    pull = spec.platform.kubernetes.image_pull_secret
    if pull:
        by_name[pull] = {
            "name": pull,
            "type": "kubernetes.io/dockerconfigjson",
            "keys": [".dockerconfigjson"],
            "holds": ["credentials of the runner images' registry"],
        }
    return list(by_name.values())


# --- resources -------------------------------------------------------------------------------


def _amounts(spec: TenantSpec, part: str) -> list[ResourceAmounts]:
    found = []
    for kind in ("extract", "dbt"):
        settings = spec.task_settings(kind)
        if settings.resources is not None:
            found.append(getattr(settings.resources, part))
    for table in spec.enabled_tables:
        resources = spec.task_settings("extract", table).resources
        if resources is not None:
            found.append(getattr(resources, part))
    return found


def _extreme(spec: TenantSpec, part: str, pick: Any) -> dict[str, str]:
    """max or min over the tenant's tasks of one part (requests or limits), as quantities."""
    amounts = _amounts(spec, part)
    cpus = [millicores(a.cpu) for a in amounts if a.cpu]
    memories = [memory_bytes(a.memory) for a in amounts if a.memory]
    out = {}
    if cpus:
        out["cpu"] = format_millicores(pick(cpus))
    if memories:
        out["memory"] = format_memory(pick(memories))
    return out


def parallel_pods(spec: TenantSpec) -> int:
    """Pods the tenant can run at once: its task pods, plus, with `dbt.engine: spark`,
    each run's executor pods (they live in the namespace and count against its quota like
    the task pods)."""
    return parallel_task_pods(spec) + parallel_executor_pods(spec)


def parallel_task_pods(spec: TenantSpec) -> int:
    """Task pods at once: its DAG runs times the tasks one run runs at once."""
    per_run = 1 if spec.serial_only else min(spec.concurrency, max(len(spec.enabled_tables), 1))
    return spec.max_active_runs * per_run


def parallel_executor_pods(spec: TenantSpec) -> int:
    """Spark executor pods at once: each run's layer task drives `dbt.spark.executors`."""
    return spec.max_active_runs * spec.dbt.spark.executors if uses_spark(spec) else 0


def quota_pods(spec: TenantSpec) -> int:
    """Pods the quota must admit: `parallel_pods * POD_SLOT_HEADROOM`.

    A deleted pod keeps counting against the quota (pods, CPU and memory) until its
    containers stop, up to its grace period; meanwhile the slot's next pod — the retry of
    a failed try, or the next table's task — is already being created. Counting each slot
    twice admits both; a quota of `parallel_pods` would fail that pod's create with
    HTTP 403 (exceeded quota), which Airflow sees as a task failure. Executors too: the
    next layer's executors start while the last layer's still terminate."""
    return parallel_pods(spec) * POD_SLOT_HEADROOM


def executor_amounts(spec: TenantSpec) -> dict[str, str]:
    """One executor pod's requests, which are also its limits (`dbt.spark.executor`):
    Spark asks `cpu` as request and limit (`runners.spark_conf.executor_resources`), and
    heap + overhead = `memory` as both. No XCom sidecar: Spark starts these pods, not
    Airflow. Empty for a tenant without Spark."""
    if not uses_spark(spec):
        return {}
    executor = spec.dbt.spark.executor
    return {"cpu": executor.cpu, "memory": executor.memory}


def quota_amounts(spec: TenantSpec) -> dict[str, str]:
    """ResourceQuota `hard`: `quota_pods` pods; the task pods each at the largest task's
    amounts plus the XCom sidecar's, the executor pods each at the executor's size:

        per_run         = 1 if the warehouse is serial-only, else min(concurrency, tables)
        task pods       = max_active_runs * per_run * POD_SLOT_HEADROOM (2)
        executor pods   = max_active_runs * dbt.spark.executors * POD_SLOT_HEADROOM
        requests/limits = task pods * (largest task amount + sidecar amount)
                          + executor pods * executor amount

    A resource (cpu or memory, of requests or limits) is in the quota only when a task sets
    it: a quota on it refuses every pod that names none, and only then does the LimitRange
    give the task pods a default.
    """
    task_pods = parallel_task_pods(spec) * POD_SLOT_HEADROOM
    executor_pods = parallel_executor_pods(spec) * POD_SLOT_HEADROOM
    hard = {"pods": str(task_pods + executor_pods)}
    executor = executor_amounts(spec)
    for part in ("requests", "limits"):
        largest = _extreme(spec, part, max)
        sidecar = SIDECAR_RESOURCES[part]
        if "cpu" in largest:
            cpu = task_pods * (millicores(largest["cpu"]) + millicores(sidecar["cpu"]))
            if executor:
                cpu += executor_pods * millicores(executor["cpu"])
            hard[f"{part}.cpu"] = format_millicores(cpu)
        if "memory" in largest:
            memory = task_pods * (memory_bytes(largest["memory"]) + memory_bytes(sidecar["memory"]))
            if executor:
                memory += executor_pods * memory_bytes(executor["memory"])
            hard[f"{part}.memory"] = format_memory(memory)
    return hard


# --- the objects -----------------------------------------------------------------------------


def _meta(spec: TenantSpec, name: str, *, namespaced: bool = True) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": labels(spec)}
    if namespaced:
        meta["namespace"] = spec.namespace
    return meta


def namespace(spec: TenantSpec) -> dict[str, Any]:
    meta = _meta(spec, spec.namespace, namespaced=False)
    meta["labels"] = {
        **meta["labels"],
        ENCLAVE_LABEL: spec.platform.kubernetes.enclave.value,
        # the runner pods meet the `restricted` Pod Security Standard: enforce it
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
        "pod-security.kubernetes.io/warn": "restricted",
        "pod-security.kubernetes.io/audit": "restricted",
    }
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


def service_account(spec: TenantSpec) -> dict[str, Any]:
    k8s = spec.platform.kubernetes
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _meta(spec, k8s.service_account),
        # runners never talk to the Kubernetes API
        "automountServiceAccountToken": False,
    }
    if k8s.image_pull_secret:
        obj["imagePullSecrets"] = [{"name": k8s.image_pull_secret}]
    return obj


def pod_launcher_role(spec: TenantSpec) -> dict[str, Any]:
    """What KubernetesPodOperator does in the namespace: create, watch and delete pods, read
    their logs, exec into the XCom sidecar to read the result, and read events on failure."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _meta(spec, POD_LAUNCHER),
        "rules": [
            {
                "apiGroups": [""],
                "resources": ["pods"],
                "verbs": ["create", "get", "list", "watch", "patch", "delete"],
            },
            {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get", "list"]},
            {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create", "get"]},
            {"apiGroups": [""], "resources": ["events"], "verbs": ["get", "list", "watch"]},
        ],
    }


def launcher_account(spec: TenantSpec) -> str:
    """The Airflow-side service account bound to the tenant's pod-launcher Role."""
    k8s = spec.platform.kubernetes
    if k8s.per_tenant_launcher:
        return dns_label(f"airflow-{spec.tenant}")
    return k8s.airflow_service_account


def launcher_service_account(spec: TenantSpec) -> dict[str, Any] | None:
    """With `launcher: per-tenant`, the tenant's own launcher account in Airflow's
    namespace: its token can create pods in this tenant's namespace and nowhere else."""
    k8s = spec.platform.kubernetes
    if not k8s.per_tenant_launcher:
        return None
    meta = _meta(spec, launcher_account(spec), namespaced=False)
    meta["namespace"] = k8s.airflow_namespace
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta}


def pod_launcher_binding(spec: TenantSpec) -> dict[str, Any]:
    k8s = spec.platform.kubernetes
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _meta(spec, POD_LAUNCHER),
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": POD_LAUNCHER,
        },
        "subjects": [
            {
                "kind": "ServiceAccount",
                "name": launcher_account(spec),
                "namespace": k8s.airflow_namespace,
            }
        ],
    }


def resource_quota(spec: TenantSpec) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": _meta(spec, "runner-quota"),
        "spec": {"hard": quota_amounts(spec)},
    }


def limit_range(spec: TenantSpec) -> dict[str, Any] | None:
    """Per container: at most the largest task limits, or the Spark executor's size when
    larger (the LimitRange would refuse a bigger executor pod); containers that name no
    resources get the smallest task's. None when the spec sets no resources at all."""
    limit: dict[str, Any] = {"type": "Container"}
    for key, part, pick in (
        ("max", "limits", max),
        ("default", "limits", min),
        ("defaultRequest", "requests", min),
    ):
        amounts = _extreme(spec, part, pick)
        if amounts:
            limit[key] = amounts
    executor = executor_amounts(spec)
    for name, parse, show in (
        ("cpu", millicores, format_millicores),
        ("memory", memory_bytes, format_memory),
    ):
        if name in limit.get("max", {}) and executor:
            largest = max(parse(limit["max"][name]), parse(executor[name]))
            limit["max"][name] = show(largest)
    if len(limit) == 1:
        return None
    return {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": _meta(spec, "runner-limits"),
        "spec": {"limits": [limit]},
    }


def egress_ports(kind: Kind, egress: Egress) -> tuple[int, ...]:
    """The TCP ports a database kind is reached on: the settings', or the kind's default
    (registry); none for a file database (SQLite, DuckDB)."""
    return tuple(egress.ports or kind.egress_ports)


def egress_problem(role: str, kind: Kind, egress: Egress) -> str | None:
    """Why `egress` cannot make a NetworkPolicy rule for the `role` database, or None."""
    ports = egress_ports(kind, egress)
    if not ports or egress.has_destination:
        return None
    shown = ", ".join(str(p) for p in ports)
    return (
        f"the {kind.name} {role} needs a NetworkPolicy destination: set `cidrs` (its "
        f"network, e.g. [10.20.0.0/16]) or `namespace_selector`/`pod_selector` (an "
        f"in-cluster database); without one, TCP {shown} would be open to every address"
    )


def _egress_rule(role: str, kind: Kind, egress: Egress) -> dict[str, Any] | None:
    ports = egress_ports(kind, egress)
    if not ports:  # a file database (SQLite, DuckDB): nothing to connect to
        return None
    problem = egress_problem(role, kind, egress)
    if problem is not None:
        raise EgressUndefined(f"platform.kubernetes.{role}_egress: {problem}")
    return {"to": _peers(egress), "ports": [{"protocol": "TCP", "port": p} for p in ports]}


def _peers(egress: Egress) -> list[dict[str, Any]]:
    peers: list[dict[str, Any]] = [{"ipBlock": {"cidr": cidr}} for cidr in egress.cidrs]
    if egress.namespace_selector or egress.pod_selector:
        peer: dict[str, Any] = {}
        if egress.namespace_selector:
            peer["namespaceSelector"] = {"matchLabels": dict(egress.namespace_selector)}
        if egress.pod_selector:
            peer["podSelector"] = {"matchLabels": dict(egress.pod_selector)}
        peers.append(peer)
    return peers


def network_policy(spec: TenantSpec) -> dict[str, Any]:
    """Deny all ingress and egress of the namespace's pods, except DNS, the source and the
    warehouse (ports by database kind, destinations from `platform.kubernetes.*_egress`);
    raises EgressUndefined when a server database has no destination."""
    k8s = spec.platform.kubernetes
    egress = [_dns_rule()]
    for role, kind, settings in (
        ("source", source_kind(spec.source.kind), k8s.source_egress),
        ("warehouse", warehouse_kind(spec.warehouse.kind), k8s.warehouse_egress),
    ):
        rule = _egress_rule(role, kind, settings)
        if rule is not None and rule not in egress:
            egress.append(rule)
    # Spark's executor pods have a policy of their own (the lake only, `spark_objects`)
    pods: dict[str, Any] = {}
    if uses_spark(spec):
        not_executor = {"key": SPARK_ROLE_LABEL, "operator": "NotIn", "values": ["executor"]}
        pods = {"matchExpressions": [not_executor]}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(spec, "runner-egress"),
        "spec": {"podSelector": pods, "policyTypes": ["Ingress", "Egress"], "egress": egress},
    }


def _dns_rule() -> dict[str, Any]:
    return {
        "to": [
            {
                "namespaceSelector": {
                    "matchLabels": {"kubernetes.io/metadata.name": "kube-system"}
                },
                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
            }
        ],
        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
    }


# --- Spark (dbt.engine: spark) ----------------------------------------------------------------


def uses_spark(spec: TenantSpec) -> bool:
    return spec.dbt.engine is DbtEngine.spark


def _role_selector(role: str) -> dict[str, Any]:
    return {"matchLabels": {SPARK_ROLE_LABEL: role}}


def spark_objects(spec: TenantSpec) -> list[dict[str, Any]]:
    """The driver's account and rights, and the NetworkPolicies of driver and executors.

    Client mode (runners/spark_conf.py): the Spark task's pod is the driver and creates
    its executor pods through the API, so only that pod mounts a token, of `spark-driver`,
    whose Role reaches pods, their config maps and services in this namespace and nothing
    else. Executors need no API access. Traffic: executors talk to the driver and to each
    other (shuffle blocks), and read the lake; the driver also reaches the API server.
    The namespace's `runner-egress` policy leaves the executors out, so they reach the
    tenant's source nowhere.
    """
    if not uses_spark(spec):
        return []
    account = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _meta(spec, SPARK_DRIVER),
        # pods opt in: only the Spark tasks' pods set automountServiceAccountToken: true
        "automountServiceAccountToken": False,
    }
    if spec.platform.kubernetes.image_pull_secret:
        account["imagePullSecrets"] = [{"name": spec.platform.kubernetes.image_pull_secret}]
    every = ["create", "get", "list", "watch", "patch", "delete", "deletecollection"]
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _meta(spec, SPARK_DRIVER),
        "rules": [
            {"apiGroups": [""], "resources": ["pods"], "verbs": every},
            {"apiGroups": [""], "resources": ["configmaps", "services"], "verbs": every},
            # Spark lists its PVCs, and deletes them as a collection when it stops (a 403
            # there was logged at every run against a real API server)
            {
                "apiGroups": [""],
                "resources": ["persistentvolumeclaims"],
                "verbs": ["list", "deletecollection"],
            },
        ],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _meta(spec, SPARK_DRIVER),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": SPARK_DRIVER},
        "subjects": [{"kind": "ServiceAccount", "name": SPARK_DRIVER, "namespace": spec.namespace}],
    }
    return [account, role, binding, *spark_network_policies(spec)]


def api_server_rule(spec: TenantSpec) -> dict[str, Any]:
    """The driver's egress to the API server; EgressUndefined without a destination."""
    egress = spec.dbt.spark.api_server
    if not egress.has_destination:
        raise EgressUndefined(
            "dbt.spark.api_server: the Spark driver starts its executors through the "
            "Kubernetes API: set `cidrs` (the API server's address, e.g. [10.96.0.1/32]) or "
            f"selectors; without one, TCP {API_SERVER_PORT} would be open to every address"
        )
    ports = egress.ports or (API_SERVER_PORT,)
    return {"to": _peers(egress), "ports": [{"protocol": "TCP", "port": p} for p in ports]}


def spark_network_policies(spec: TenantSpec) -> list[dict[str, Any]]:
    driver = {"podSelector": _role_selector(SPARK_DRIVER_ROLE)}
    executors = {"podSelector": _role_selector(SPARK_EXECUTOR_ROLE)}
    lake = _egress_rule(
        "warehouse", warehouse_kind(spec.warehouse.kind), spec.platform.kubernetes.warehouse_egress
    )
    driver_policy = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(spec, "spark-driver"),
        "spec": {
            "podSelector": _role_selector(SPARK_DRIVER_ROLE),
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [executors]}],
            "egress": [{"to": [executors]}, api_server_rule(spec)],
        },
    }
    executor_policy = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(spec, "spark-executors"),
        "spec": {
            "podSelector": _role_selector(SPARK_EXECUTOR_ROLE),
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [driver, executors]}],
            "egress": [
                _dns_rule(),
                {"to": [driver, executors]},
                *([lake] if lake is not None else []),
            ],
        },
    }
    return [driver_policy, executor_policy]


def tenant_objects(spec: TenantSpec) -> list[dict[str, Any]]:
    """Every object of the tenant, Namespace first."""
    objects = [
        namespace(spec),
        service_account(spec),
        launcher_service_account(spec),
        pod_launcher_role(spec),
        pod_launcher_binding(spec),
        resource_quota(spec),
        limit_range(spec),
        network_policy(spec),
        *spark_objects(spec),
    ]
    return [o for o in objects if o is not None]


# --- the folder ------------------------------------------------------------------------------


def _file_name(obj: dict[str, Any]) -> str:
    return f"{obj['kind'].lower()}-{obj['metadata']['name']}.yaml"


def _readme(spec: TenantSpec, files: list[str]) -> str:
    rows = "\n".join(
        f"| `{s['name']}` | `{s['type']}` | {', '.join(f'`{k}`' for k in s['keys'])} "
        f"| {'; '.join(s['holds'])} |"
        for s in expected_secrets(spec)
    )
    listed = "\n".join(f"- `{f}`" for f in files)
    return f"""# Kubernetes objects of tenant `{spec.tenant}`

Written by dag_factory (`write_tenant_objects`); apply with `kubectl apply -k .`.

{listed}

## Secrets this namespace must hold (`{spec.namespace}`)

Not part of this folder: create them from your secret store (names and keys only here).
Runner pods read the URLs through `secretKeyRef`; no value is ever in a pod spec.

| Secret | type | keys | holds |
|---|---|---|---|
{rows}

Pods are launched by `{launcher_account(spec)}` (namespace
`{spec.platform.kubernetes.airflow_namespace}`), the only account bound to the
`{POD_LAUNCHER}` Role here. Egress: DNS, and the source and warehouse destinations of
`networkpolicy-runner-egress.yaml` only.

Pods run as uid {RUNNER_UID}, read-only root filesystem, `/tmp` an emptyDir of
{SCRATCH_SIZE}, on nodes labelled `{ENCLAVE_LABEL}={spec.platform.kubernetes.enclave.value}`.
"""


def write_tenant_objects(tenant: Any, out_dir: Path) -> list[Path]:
    """Write the tenant's objects to `out_dir` (created), one file each, with
    `kustomization.yaml` and a README of the expected Secrets; returns the files written.
    `tenant` is a loaded `Tenant` or a `TenantSpec`."""
    spec: TenantSpec = getattr(tenant, "spec", tenant)
    objects = tenant_objects(spec)  # raises before anything is written
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    files = []
    for obj in objects:
        name = _file_name(obj)
        path = out / name
        path.write_text(yaml.safe_dump(obj, sort_keys=False), encoding="utf-8")
        files.append(name)
        written.append(path)
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": files,
    }
    path = out / "kustomization.yaml"
    path.write_text(yaml.safe_dump(kustomization, sort_keys=False), encoding="utf-8")
    written.append(path)
    path = out / "README.md"
    path.write_text(_readme(spec, files), encoding="utf-8")
    written.append(path)
    return written

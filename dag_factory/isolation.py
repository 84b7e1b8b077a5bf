"""Tenant isolation at validate time: what a tenant file may name, and what no two share.

A tenant file is written by the tenant; the platform must not trust it to stay in its
lane. Two checks, both run by the loader after the models validated:

**Per tenant** (`tenant_problems`, every `Loader.load`):
- references are the tenant's own: Airflow connection ids start with `<tenant>_`, env var
  names with `<TENANT>_`, Kubernetes Secret names with `tenant-<id>-` (the namespace's
  prefix) — or are listed in defaults.yaml under `shared:` (`SharedRefs`), the platform's
  explicit allow-list (e.g. `smtp_default`, the registry's pull Secret);
- `platform.kubernetes.namespace` is the tenant's own `tenant-<id>`, or a shared one;
- requests ≤ limits for every task after precedence (the API server refuses the pod);
- a server database has a NetworkPolicy destination when the tenant runs on Kubernetes,
  and so has the API server for a `dbt.engine: spark` tenant there (its driver starts
  the executor pods through it: `dbt.spark.api_server`).

**Across tenants** (`cross_tenant_problems`, in `Loader.load_all`): no two tenants claim
one namespace, Secret (namespace + name), pool, connection or env var (shared ones
excepted), nor one warehouse schema *on the same warehouse connection reference* — the
same `{airflow_conn: X}` or `{env: X}`. Two different references may point at one
server; that cannot be known without connecting (never at parse time), and there the
warehouse enforces it: `dag-factory provision` gives each tenant a role that owns its
schemas and refuses to hand over a schema another role owns. And a reference belongs to
the loaded tenant with the longest matching prefix: with tenants `shop` and `shop_eu`,
`shop_eu_warehouse` is `shop_eu`'s, not `shop`'s (ids are ≥1 `_`-separated words).
Only the tenants loaded together are compared (`DAG_FACTORY_TENANTS` selects them).
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from dag_factory.adapters.container import quantity
from dag_factory.k8s_objects import (
    EgressUndefined,
    api_server_rule,
    egress_problem,
    secret_refs,
)
from dag_factory.spec import (
    Alerting,
    BronzeAccess,
    DbtEngine,
    Executor,
    K8sName,
    KubernetesSettings,
    ResourceAmounts,
    TenantSpec,
)
from dag_factory.yaml_source import FieldPath
from datakits.kinds import source_kind, warehouse_kind
from datakits.spec import ConnectionRef, ConnId, EnvVarName, Strict

#: The key of defaults.yaml holding `SharedRefs`; not a tenant setting.
SHARED_KEY = "shared"
#: Overrides every tenant's `platform.executor` (read by dag_factory.build too).
EXECUTOR_ENV = "DAG_FACTORY_EXECUTOR"

#: A problem before it is placed in the file: the field path and the message.
Found = tuple[FieldPath, str]


class SharedRefs(Strict):
    """defaults.yaml `shared:` — references every tenant may use. Keep it short: each
    entry is a credential or object all tenants can reach. Tenant files cannot set it."""

    #: Airflow connections any tenant may name (e.g. `smtp_default` for email alerts).
    airflow_conns: tuple[ConnId, ...] = ()
    #: Env vars any tenant may name.
    env: tuple[EnvVarName, ...] = ()
    #: Kubernetes Secret names any tenant may name (e.g. the registry's pull Secret,
    #: which every tenant namespace holds a copy of).
    secrets: tuple[K8sName, ...] = ()
    #: Namespaces a tenant may run in besides its own `tenant-<id>`.
    namespaces: tuple[K8sName, ...] = ()


@dataclass(frozen=True)
class Reference:
    """One name a tenant file uses to reach something outside it."""

    kind: str  # "airflow_conn" | "env" | "secret"
    name: str
    path: FieldPath
    #: What the tenant's own one could be called (for the fix in the message).
    role: str


def own_namespace(tenant: str) -> str:
    return "tenant-" + tenant.replace("_", "-")


#: Per reference kind: its words, the owner's prefix, the `shared:` list that exempts it.
_KINDS = {
    "airflow_conn": ("Airflow connection", lambda t: f"{t}_", "airflow_conns"),
    "env": ("env var", lambda t: f"{t.upper()}_", "env"),
    "secret": ("Kubernetes Secret", lambda t: f"{own_namespace(t)}-", "secrets"),
}


def prefix(kind: str, tenant: str) -> str:
    return _KINDS[kind][1](tenant)


#: What the spec's own defaults name — the platform's SMTP connection, the registry's pull
#: Secret: shared by construction, since a tenant that sets nothing names them.
BUILT_IN_SHARED: dict[str, tuple[str, ...]] = {
    "airflow_conn": (Alerting.model_fields["smtp_connection"].default,),
    "env": (),
    "secret": (KubernetesSettings.model_fields["image_pull_secret"].default,),
}


def _shared(shared: SharedRefs, kind: str) -> tuple[str, ...]:
    return (*getattr(shared, _KINDS[kind][2]), *BUILT_IN_SHARED[kind])


def _connection(ref: ConnectionRef, path: FieldPath, role: str) -> Reference:
    if ref.airflow_conn is not None:
        return Reference("airflow_conn", ref.airflow_conn, (*path, "airflow_conn"), role)
    return Reference("env", ref.env or "", (*path, "env"), f"{role}_url")


def references(spec: TenantSpec) -> list[Reference]:
    """Every connection, env var and Secret the tenant names (defaults included)."""
    found = [
        _connection(spec.source.connection, ("source", "connection"), "source"),
        _connection(spec.warehouse.connection, ("warehouse", "connection"), "warehouse"),
        Reference(
            "airflow_conn", spec.alerting.smtp_connection, ("alerting", "smtp_connection"), "smtp"
        ),
    ]
    for when in ("on_failure", "on_retry"):
        slack = getattr(spec.alerting, when).slack
        if slack is not None:
            found.append(
                Reference(
                    "airflow_conn",
                    slack.connection,
                    ("alerting", when, "slack", "connection"),
                    "slack",
                )
            )
    k8s = spec.platform.kubernetes
    for role, ref in secret_refs(spec).items():
        set_here = getattr(k8s, f"{role}_secret") is not None
        path = (
            ("platform", "kubernetes", f"{role}_secret", "name")
            if set_here
            else ("platform", "kubernetes", "namespace")
        )
        found.append(Reference("secret", ref.name, path, role))
    if k8s.image_pull_secret:
        found.append(
            Reference(
                "secret",
                k8s.image_pull_secret,
                ("platform", "kubernetes", "image_pull_secret"),
                "registry",
            )
        )
    return found


def _not_own(spec: TenantSpec, ref: Reference, shared: SharedRefs) -> str | None:
    words, _, shared_key = _KINDS[ref.kind]
    own = prefix(ref.kind, spec.tenant)
    if ref.name.startswith(own) or ref.name in _shared(shared, ref.kind):
        return None
    example = own + (
        ref.role.upper()
        if ref.kind == "env"
        else ref.role.replace("_", "-")
        if ref.kind == "secret"
        else ref.role
    )
    return (
        f"{words} `{ref.name}` is not tenant {spec.tenant}'s: a tenant may name only its own "
        f"({words}s starting with `{own}`) or one listed under `{SHARED_KEY}.{shared_key}` in "
        f"defaults.yaml; use one of its own, e.g. `{example}`"
    )


def _namespace_problem(spec: TenantSpec, shared: SharedRefs) -> str | None:
    chosen, own = spec.platform.kubernetes.namespace, own_namespace(spec.tenant)
    if chosen is None or chosen == own or chosen in shared.namespaces:
        return None
    return (
        f"namespace `{chosen}` is not tenant {spec.tenant}'s: a tenant runs in its own "
        f"namespace `{own}` (leave `namespace` unset) or one listed under "
        f"`{SHARED_KEY}.namespaces` in defaults.yaml"
    )


def _amount_problems(what: str, amounts: tuple[ResourceAmounts, ResourceAmounts]) -> list[str]:
    requests, limits = amounts
    found = []
    for name in ("cpu", "memory"):
        request, limit = getattr(requests, name), getattr(limits, name)
        if request and limit and quantity(request) > quantity(limit):
            found.append(
                f"{what} requests {name} {request}, more than its limit {limit} (after "
                f"defaults.yaml < tasks.* < the table's task): Kubernetes refuses such a "
                f"pod; raise `limits.{name}` too, or lower `requests.{name}`"
            )
    return found


def resource_problems(spec: TenantSpec) -> list[Found]:
    """requests ≤ limits for every task of the tenant, as precedence resolves them."""
    found: list[Found] = []
    for kind in ("extract", "dbt"):
        resources = spec.task_settings(kind).resources
        if resources is not None:
            for message in _amount_problems(
                f"{kind} tasks", (resources.requests, resources.limits)
            ):
                found.append((("tasks", kind, "resources"), message))
    for index, table in enumerate(spec.tables):
        if table.task.resources is None:
            continue  # the extract settings, checked above
        resources = spec.task_settings("extract", table).resources
        assert resources is not None
        for message in _amount_problems(
            f"table {table.name}", (resources.requests, resources.limits)
        ):
            found.append((("tables", index, "task", "resources"), message))
    return found


def effective_executor(spec: TenantSpec) -> Executor:
    """`$DAG_FACTORY_EXECUTOR` when set, else the tenant's own `platform.executor`; one rule
    for validation and DAG assembly. A value that names no executor is an error (loud in
    every tenant), never silently ignored."""
    override = os.environ.get(EXECUTOR_ENV, "").strip()
    if not override:
        return spec.platform.executor
    try:
        return Executor(override)
    except ValueError:
        known = ", ".join(e.value for e in Executor)
        raise ValueError(f"{EXECUTOR_ENV}={override!r} names no executor ({known})") from None


#: `bronze_access: copy` puts bronze (and a local warehouse_dir, silver and gold) on the
#: driver's disk: executor pods, on other nodes, cannot read it (found running executor
#: pods against a real API server: it worked only because they shared the driver's host).
SPARK_COPY_ON_KUBERNETES = (
    "copy puts bronze in the driver pod's scratch directory, which Spark's executor pods "
    "cannot read: use s3a on Kubernetes (executors read the lake themselves) and leave "
    "dbt.spark.warehouse_dir unset (silver and gold in the tenant's prefix of the lake)"
)


def egress_problems(spec: TenantSpec, executor: Executor | None = None) -> list[Found]:
    """Under the kubernetes executor, each server database needs a NetworkPolicy
    destination, and a Spark tenant's driver one for the API server; the message says
    what to set. A Spark tenant's bronze must also be one its executor pods can read."""
    if (executor or effective_executor(spec)) is not Executor.kubernetes:
        return []
    k8s = spec.platform.kubernetes
    found: list[Found] = []
    for role, kind, egress in (
        ("source", source_kind(spec.source.kind), k8s.source_egress),
        ("warehouse", warehouse_kind(spec.warehouse.kind), k8s.warehouse_egress),
    ):
        problem = egress_problem(role, kind, egress)
        if problem:
            found.append((("platform", "kubernetes", f"{role}_egress"), problem))
    if spec.dbt.engine is DbtEngine.spark:
        # the rule `dag-factory k8s` renders, asked here so both say the same thing
        try:
            api_server_rule(spec)
        except EgressUndefined as exc:
            problem = str(exc).removeprefix("dbt.spark.api_server: ")
            found.append((("dbt", "spark", "api_server"), problem))
        if spec.dbt.spark.bronze_access is BronzeAccess.copy:
            found.append((("dbt", "spark", "bronze_access"), SPARK_COPY_ON_KUBERNETES))
    return found


def tenant_problems(spec: TenantSpec, shared: SharedRefs) -> list[Found]:
    """Everything one tenant file names that is not its own, and values the Kubernetes
    API server would refuse."""
    found: list[Found] = []
    problem = _namespace_problem(spec, shared)
    if problem:
        found.append((("platform", "kubernetes", "namespace"), problem))
    for ref in references(spec):
        problem = _not_own(spec, ref, shared)
        if problem:
            found.append((ref.path, problem))
    found.extend(resource_problems(spec))
    found.extend(egress_problems(spec))
    return found


# --- across tenants ------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    what: str  # in words: "namespace", "Secret", "pool", ...
    key: Hashable
    shown: str
    path: FieldPath


def _connection_key(ref: ConnectionRef) -> tuple[str, str]:
    return ("airflow_conn", ref.airflow_conn) if ref.airflow_conn else ("env", ref.env or "")


def claims(spec: TenantSpec, shared: SharedRefs) -> Iterator[Claim]:
    """What the tenant takes for itself alone."""
    if spec.namespace not in shared.namespaces:
        yield Claim(
            "namespace", spec.namespace, spec.namespace, ("platform", "kubernetes", "namespace")
        )
    for role, ref in secret_refs(spec).items():
        if ref.name not in shared.secrets:
            path = ("platform", "kubernetes", f"{role}_secret", "name")
            yield Claim("Secret", (spec.namespace, ref.name), f"{spec.namespace}/{ref.name}", path)
    if spec.pool:
        yield Claim("pool", spec.pool, spec.pool, ("pool",))
    for ref in references(spec):
        if ref.kind != "secret" and ref.name not in _shared(shared, ref.kind):
            yield Claim(_KINDS[ref.kind][0], (ref.kind, ref.name), ref.name, ref.path)
    warehouse = _connection_key(spec.warehouse.connection)
    schemas = spec.warehouse.schemas
    for layer in ("bronze", "silver", "gold", "meta"):
        schema = getattr(schemas, layer)
        yield Claim(
            "warehouse schema",
            (warehouse, schema),
            f"{schema} (on warehouse {warehouse[0]} {warehouse[1]})",
            ("warehouse", "schemas", layer),
        )


def _owner(name: str, prefixes: dict[str, str]) -> str | None:
    """The tenant with the longest prefix (in `prefixes`: prefix → tenant) that `name`
    starts with, or None. Prefixes end in `_` or `-`: only those cuts are looked up, so
    the cost is the name's length, not the number of tenants."""
    best = None
    for index, char in enumerate(name):
        if char in "_-":
            best = prefixes.get(name[: index + 1], best)
    return best


def cross_tenant_problems(
    specs: Iterable[tuple[TenantSpec, Path]], shared: SharedRefs
) -> dict[Path, list[Found]]:
    """Problems by tenant file: claims two tenants share (each file names the other), and
    references that belong to another loaded tenant by the longest-prefix rule."""
    specs = list(specs)
    holders: dict[tuple[str, Hashable], list[tuple[TenantSpec, Path, Claim]]] = defaultdict(list)
    for spec, file in specs:
        seen = set()
        for claim in claims(spec, shared):
            key = (claim.what, claim.key)
            if key not in seen:  # a tenant may use one connection for source and warehouse
                seen.add(key)
                holders[key].append((spec, file, claim))
    found: dict[Path, list[Found]] = defaultdict(list)
    for held in holders.values():
        if len({spec.tenant for spec, _, _ in held}) < 2:
            continue
        for spec, file, claim in held:
            named = [f"{o.tenant} ({o_file})" for o, o_file, _ in held if o.tenant != spec.tenant]
            others = ", ".join(named[:3]) + (
                f" and {len(named) - 3} more" if len(named) > 3 else ""
            )
            found[file].append(
                (
                    claim.path,
                    f"{claim.what} {claim.shown} is also claimed by tenant {others}: a "
                    f"{claim.what} belongs to one tenant; give each its own",
                )
            )
    prefixes = {kind: {prefix(kind, s.tenant): s.tenant for s, _ in specs} for kind in _KINDS}
    for spec, file in specs:
        for ref in references(spec):
            if ref.name in _shared(shared, ref.kind):
                continue
            owner = _owner(ref.name, prefixes[ref.kind])
            if owner is not None and owner != spec.tenant and len(owner) > len(spec.tenant):
                found[file].append(
                    (
                        ref.path,
                        f"{_KINDS[ref.kind][0]} `{ref.name}` belongs to tenant {owner} (its "
                        f"prefix `{prefix(ref.kind, owner)}` is longer than tenant "
                        f"{spec.tenant}'s): use a name of this tenant's own",
                    )
                )
    return dict(found)

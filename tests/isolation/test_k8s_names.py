"""Property tests: every tenant id and table name the grammars accept gives Kubernetes
names and label values the API server accepts — checked with the server's own rules
(`dag_factory.k8s_names`, as in apimachinery's validation) and, for whole manifests,
with `kubernetes_validate` (strict). The strategies are the actual patterns
(`from_regex(..., fullmatch=True)`), not hand-written examples."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from airflow.providers.cncf.kubernetes.kubernetes_helper_functions import add_unique_suffix
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from dag_factory.adapters.container import TASK_LABEL, TENANT_LABEL
from dag_factory.adapters.kubernetes import pod_name, render
from dag_factory.isolation import SharedRefs, own_namespace, resource_problems, tenant_problems
from dag_factory.k8s_names import (
    dns_label,
    is_dns1123_label,
    is_dns1123_subdomain,
    is_qualified_name,
    is_valid_label_value,
    label_value,
)
from dag_factory.k8s_objects import launcher_account, secret_refs, tenant_objects
from dag_factory.loader import Loader, Tenant
from dag_factory.plan import plan_tenant
from dag_factory.spec import TenantSpec
from datakits.spec import IDENTIFIER_PATTERN, TENANT_ID_MAX, TENANT_ID_PATTERN

REPO = Path(__file__).resolve().parents[2]
K8S_VERSION = "1.32"

tenant_ids = st.from_regex(TENANT_ID_PATTERN, fullmatch=True).filter(
    lambda s: len(s) <= TENANT_ID_MAX
)
table_names = st.from_regex(IDENTIFIER_PATTERN, fullmatch=True)


# --- the validators are the server's ------------------------------------------------------


@pytest.mark.parametrize(
    ("check", "good", "bad"),
    [  # cases of apimachinery's validation_test.go
        (
            is_dns1123_label,
            ["a", "ab", "a-b", "a--b", "0", "1-2", "a" * 63],
            ["", "A", "a-", "-a", "a_b", "a.b", "a" * 64],
        ),
        (
            is_dns1123_subdomain,
            ["a", "a.b", "a-b.c-d", "1.2.3", "a" * 253],
            ["", "a.", ".a", "a..b", "A", "a_b", "a" * 254],
        ),
        (
            is_valid_label_value,
            ["", "a", "A", "a-b", "a_b", "a.b", "1.2", "a" * 63],
            ["-a", "a-", "_a", "a_", "a b", "a/b", "a" * 64],
        ),
        (
            is_qualified_name,
            ["a", "a/b", "example.com/a_b.c", "A", "a" * 63],
            ["", "/a", "a/", "A.B/c", "a_/b", "a" * 64, "a/b/c"],
        ),
    ],
)
def test_validators_agree_with_apimachinery(check: Any, good: list[str], bad: list[str]):
    assert [v for v in good if check(v)] == []
    assert [v for v in bad if not check(v)] == []


# --- names derived from the grammars --------------------------------------------------------


@given(tenant_ids)
@example("a_b_c" + "d" * 35)  # the longest
@example("a")
def test_every_tenant_id_gives_valid_names(tenant: str):
    namespace = own_namespace(tenant)
    assert is_dns1123_label(namespace) == []
    assert is_valid_label_value(tenant) == []  # the tenant label holds the id as is
    assert is_dns1123_label(dns_label(f"airflow-{tenant}")) == []
    for suffix in ("source", "warehouse"):
        assert is_dns1123_subdomain(f"{namespace}-{suffix}") == []


@given(tenant_ids, tenant_ids)
def test_distinct_tenant_ids_give_distinct_namespaces(a: str, b: str):
    assert (own_namespace(a) == own_namespace(b)) == (a == b)


@given(table_names)
@example("t" * 63)  # the cases: 63 characters, a trailing `_`
@example("orders_")
@example("_")
def test_every_table_gives_a_valid_task_label(table: str):
    for task_id in (f"extract_{table}", table):
        value = label_value(task_id)
        assert is_valid_label_value(value) == [], value
        assert value  # never empty: it names the task


@given(table_names, table_names)
def test_distinct_tables_give_distinct_labels(a: str, b: str):
    assert (label_value(f"extract_{a}") == label_value(f"extract_{b}")) == (a == b)


@given(tenant_ids, table_names)
@example("a" * 40, "t" * 63)
def test_every_pod_name_is_valid_with_the_operators_suffix(tenant: str, table: str):
    base = dns_label(f"{tenant}-extract_{table}", 50)
    assert is_dns1123_label(base) == []
    named = add_unique_suffix(name=base)  # what KubernetesPodOperator sends
    assert is_dns1123_label(named) == [] and is_dns1123_subdomain(named) == []


# --- whole manifests --------------------------------------------------------------------------

ACME = next(t for t in Loader(REPO / "warehouses").load_all().tenants if t.spec.tenant == "acme")
EGRESS = {
    "source_egress": {"cidrs": ["10.20.0.0/16"]},
    "warehouse_egress": {"pod_selector": {"app": "postgres"}},
}


def _tenant(tenant_id: str, tables: list[str], **kubernetes: Any) -> Tenant:
    data = ACME.spec.model_dump(by_alias=True, exclude_defaults=True)
    data["tenant"] = tenant_id
    data["tables"] = [{"name": t} for t in tables]
    data["platform"] = {"executor": "kubernetes", "kubernetes": {**EGRESS, **kubernetes}}
    data["source"]["connection"] = {"airflow_conn": f"{tenant_id}_source"}
    data["warehouse"]["connection"] = {"airflow_conn": f"{tenant_id}_warehouse"}
    data.pop("pool", None)
    spec = TenantSpec.model_validate(data)
    return dataclasses.replace(ACME, spec=spec)


def _labels_valid(obj: dict[str, Any]) -> None:
    for key, value in obj["metadata"].get("labels", {}).items():
        assert is_qualified_name(key) == [], key
        assert is_valid_label_value(value) == [], (key, value)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    tenant_ids,
    st.lists(table_names, min_size=1, max_size=3, unique=True),
    st.sampled_from(["shared", "per-tenant"]),
)
def test_every_rendered_manifest_validates(tenant_id: str, tables: list[str], launcher: str):
    tenant = _tenant(tenant_id, tables, launcher=launcher)
    shared = SharedRefs(airflow_conns=("smtp_default",), secrets=("registry-credentials",))
    assert tenant_problems(tenant.spec, shared) == []  # `validate` accepts it
    for task in plan_tenant(tenant, REPO).tasks:
        pod = render(task)
        kubernetes_validate.validate(pod, K8S_VERSION, strict=True)
        _labels_valid(pod)
        assert pod["metadata"]["labels"][TENANT_LABEL] == tenant_id
        assert pod["metadata"]["labels"][TASK_LABEL] == label_value(task.task_id)
        assert is_dns1123_label(pod_name(task)) == []
    for obj in tenant_objects(tenant.spec):
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        _labels_valid(obj)
        assert is_dns1123_subdomain(obj["metadata"]["name"]) == []
    assert is_dns1123_label(launcher_account(tenant.spec)) == []
    assert all(is_dns1123_subdomain(r.name) == [] for r in secret_refs(tenant.spec).values())


# --- requests <= limits ---------------------------------------------------------------------

cpus = st.one_of(
    st.integers(1, 8000).map(lambda m: f"{m}m"),
    st.integers(1, 8).map(str),
    st.decimals("0.001", "8", places=3).map(lambda d: f"{d.normalize():f}"),
)
memories = st.builds(
    lambda n, unit: f"{n}{unit}",
    st.integers(1, 4096),
    st.sampled_from(["", "Ki", "Mi", "Gi", "M", "G"]),
)


@settings(max_examples=200, deadline=None)
@given(cpus, cpus, memories, memories)
def test_requests_above_limits_are_found_exactly(cpu_r: str, cpu_l: str, mem_r: str, mem_l: str):
    from kubernetes.utils import parse_quantity

    resources = {
        "requests": {"cpu": cpu_r, "memory": mem_r},
        "limits": {"cpu": cpu_l, "memory": mem_l},
    }
    data = ACME.spec.model_dump(by_alias=True, exclude_defaults=True)
    data["tables"] = [{"name": "orders", "task": {"resources": resources}}]
    problems = resource_problems(TenantSpec.model_validate(data))
    expected = {
        name
        for name, (r, lim) in {"cpu": (cpu_r, cpu_l), "memory": (mem_r, mem_l)}.items()
        if parse_quantity(r) > parse_quantity(lim)
    }
    found = {re.search(r"requests (\w+) ", message).group(1) for _, message in problems}
    assert found == expected

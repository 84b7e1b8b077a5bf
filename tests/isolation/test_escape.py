"""Hostile tenant files, one per escape path, each refused by `dag-factory validate` with
a message that states the rule and the fix — while acme and demo stay valid."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.isolation.conftest import Validate, Write

VALID = {"acme": [], "demo": [], "lake": []}


def test_the_repository_tenants_are_valid(validate: Validate):
    assert validate() == VALID


def test_another_tenants_airflow_connection_is_refused(write: Write, validate: Validate):
    """The issue's case: any file could name acme's warehouse and run with its credentials."""
    write(
        "evil",
        source={"kind": "postgres", "connection": {"airflow_conn": "acme_source"}},
        warehouse={"kind": "postgres", "connection": {"airflow_conn": "acme_warehouse"}},
    )
    found = validate()
    assert found["evil"] == [
        "source.connection.airflow_conn: Airflow connection `acme_source` is not tenant "
        "evil's: a tenant may name only its own (Airflow connections starting with `evil_`) "
        "or one listed under `shared.airflow_conns` in defaults.yaml; use one of its own, "
        "e.g. `evil_source`",
        "warehouse.connection.airflow_conn: Airflow connection `acme_warehouse` is not "
        "tenant evil's: a tenant may name only its own (Airflow connections starting with "
        "`evil_`) or one listed under `shared.airflow_conns` in defaults.yaml; use one of "
        "its own, e.g. `evil_warehouse`",
    ]
    assert found["acme"] == found["demo"] == []


def test_another_tenants_env_var_is_refused(write: Write, validate: Validate):
    write("evil", source={"connection": {"env": "DEMO_SOURCE_URL"}})
    [problem] = validate()["evil"]
    assert problem.startswith(
        "source.connection.env: env var `DEMO_SOURCE_URL` is not tenant evil's: a tenant "
        "may name only its own (env vars starting with `EVIL_`)"
    )
    assert problem.endswith("e.g. `EVIL_SOURCE_URL`")


def test_another_tenants_slack_connection_is_refused(write: Write, validate: Validate):
    write(
        "evil",
        alerting={"on_failure": {"slack": {"connection": "acme_slack", "channel": "#x"}}},
    )
    [problem] = validate()["evil"]
    assert problem.startswith(
        "alerting.on_failure.slack.connection: Airflow connection `acme_slack` is not tenant evil's"
    )


def test_another_tenants_secret_is_refused(write: Write, validate: Validate):
    """The issue's case: `source_secret: tenant-acme-warehouse` read acme's Secret."""
    write(
        "evil",
        platform={"kubernetes": {"source_secret": {"name": "tenant-acme-warehouse"}}},
    )
    assert validate()["evil"] == [
        "platform.kubernetes.source_secret.name: Kubernetes Secret `tenant-acme-warehouse` is "
        "not tenant evil's: a tenant may name only its own (Kubernetes Secrets starting with "
        "`tenant-evil-`) or one listed under `shared.secrets` in defaults.yaml; use one of "
        "its own, e.g. `tenant-evil-source`"
    ]


def test_another_tenants_namespace_is_refused(write: Write, validate: Validate):
    """The issue's case: `namespace: tenant-acme` put evil's pods beside acme's. Its
    default Secret names then follow the namespace and are refused too."""
    write("evil", platform={"kubernetes": {"namespace": "tenant-acme"}})
    found = validate()
    assert found["evil"][0] == (
        "platform.kubernetes.namespace: namespace `tenant-acme` is not tenant evil's: a "
        "tenant runs in its own namespace `tenant-evil` (leave `namespace` unset) or one "
        "listed under `shared.namespaces` in defaults.yaml"
    )
    assert any("Kubernetes Secret `tenant-acme-source`" in p for p in found["evil"][1:])
    assert found["acme"] == []


def test_a_shared_namespace_must_be_allow_listed(
    warehouses: Path, write: Write, validate: Validate
):
    write(
        "evil",
        platform={
            "kubernetes": {
                "namespace": "batch",
                "source_secret": {"name": "tenant-evil-source"},
                "warehouse_secret": {"name": "tenant-evil-warehouse"},
            }
        },
    )
    assert validate()["evil"][0].startswith("platform.kubernetes.namespace: namespace `batch`")
    defaults = warehouses / "defaults.yaml"
    defaults.write_text(defaults.read_text().replace("namespaces: []", "namespaces: [batch]"))
    assert validate()["evil"] == []


def test_a_tenant_file_cannot_extend_the_allow_list(write: Write, validate: Validate):
    write(
        "evil",
        shared={"airflow_conns": ["acme_warehouse"]},
        warehouse={"kind": "duckdb", "connection": {"airflow_conn": "acme_warehouse"}},
    )
    found = validate()["evil"]
    assert found[0].startswith("shared: unknown key")


def test_two_tenants_on_one_warehouse_connection_cannot_share_a_schema(
    warehouses: Path, write: Write, validate: Validate
):
    """Schemas default to bronze/silver/gold/meta: two tenants writing through the same
    (shared) warehouse connection would write into each other's tables."""
    defaults = warehouses / "defaults.yaml"
    defaults.write_text(
        defaults.read_text().replace(
            "airflow_conns: [smtp_default]", "airflow_conns: [smtp_default, lake]"
        )
    )
    lake = {"kind": "postgres", "connection": {"airflow_conn": "lake"}}
    write("shop", warehouse=lake)
    write("evil", warehouse={**lake, "schemas": {"bronze": "evil_bronze", "meta": "evil_meta"}})
    found = validate()
    for tenant, other in (("shop", "evil"), ("evil", "shop")):
        assert sorted(found[tenant]) == [
            f"warehouse.schemas.{layer}: warehouse schema {layer} (on warehouse airflow_conn "
            f"lake) is also claimed by tenant {other} ({warehouses}/{other}/warehouse.yaml): "
            "a warehouse schema belongs to one tenant; give each its own"
            for layer in ("gold", "silver")
        ]
    assert found["acme"] == found["demo"] == []


def test_schemas_on_different_warehouse_connections_may_share_names(
    write: Write, validate: Validate
):
    """acme and a new tenant both have `acme_*`-free, own connections: same names are fine
    (different references; the warehouse's roles keep them apart, see provision)."""
    write("shop")  # bronze/silver/gold/meta, on SHOP_WAREHOUSE_URL
    write("other")  # the same schema names, on OTHER_WAREHOUSE_URL
    assert validate() == {**VALID, "shop": [], "other": []}


def test_two_tenants_cannot_claim_one_pool(write: Write, validate: Validate):
    write("evil", pool="tenant_acme")
    found = validate()
    assert found["evil"] == [
        f"pool: pool tenant_acme is also claimed by tenant acme ({found_file('acme')}): a "
        "pool belongs to one tenant; give each its own"
    ]
    assert found["acme"] == [
        f"pool: pool tenant_acme is also claimed by tenant evil ({found_file('evil')}): a "
        "pool belongs to one tenant; give each its own"
    ]
    assert found["demo"] == []


def found_file(tenant: str) -> str:
    return str(_WAREHOUSES[0] / tenant / "warehouse.yaml")


_WAREHOUSES: list[Path] = []


@pytest.fixture(autouse=True)
def _remember(warehouses: Path) -> None:
    _WAREHOUSES[:] = [warehouses]


def test_a_longer_tenant_id_owns_its_prefix(write: Write, validate: Validate):
    """`acme_` is acme's prefix, but `acme_eu_warehouse` is tenant acme_eu's."""
    write("acme_eu")
    write("acmex", warehouse={"connection": {"env": "ACMEX_WAREHOUSE_URL"}})
    write(
        "demo2",
        "tenant: demo2\n"
        "source: {kind: sqlite, connection: {env: DEMO2_SOURCE_URL}}\n"
        "warehouse: {kind: duckdb, connection: {env: DEMO2_WAREHOUSE_URL}}\n"
        "tables: [{name: orders}]\ndbt: {project: ../_dbt/shop}\n",
    )
    acme = Path(found_file("acme"))
    acme.write_text(acme.read_text().replace("acme_warehouse", "acme_eu_warehouse"))
    found = validate()
    assert found["acme"] == [
        "warehouse.connection.airflow_conn: Airflow connection `acme_eu_warehouse` belongs to "
        "tenant acme_eu (its prefix `acme_eu_` is longer than tenant acme's): use a name of "
        "this tenant's own"
    ]
    assert found["acme_eu"] == found["acmex"] == found["demo2"] == []


def test_a_database_without_egress_destination_is_refused_on_kubernetes(
    write: Write, validate: Validate, monkeypatch: pytest.MonkeyPatch
):
    """The NetworkPolicy would open TCP 5432 to every address (acme's case before)."""
    write(
        "evil",
        source={"kind": "postgres", "connection": {"airflow_conn": "evil_source"}},
        platform={"executor": "kubernetes"},
    )
    assert validate()["evil"] == [
        "platform.kubernetes.source_egress: the postgres source needs a NetworkPolicy "
        "destination: set `cidrs` (its network, e.g. [10.20.0.0/16]) or "
        "`namespace_selector`/`pod_selector` (an in-cluster database); without one, TCP "
        "5432 would be open to every address"
    ]
    # the deployment's executor override counts too: a postgres tenant whose file says
    # nothing of Kubernetes is refused once the deployment runs it there
    write("quiet", source={"kind": "postgres", "connection": {"airflow_conn": "quiet_source"}})
    assert validate()["quiet"] == []
    monkeypatch.setenv("DAG_FACTORY_EXECUTOR", "kubernetes")
    found = validate()
    assert [p.split(":")[0] for p in found["quiet"]] == ["platform.kubernetes.source_egress"]
    assert found["acme"] == []  # its file names its databases' network
    assert found["demo"] == []  # SQLite and DuckDB are files: nothing to reach


def test_a_world_cidr_is_not_a_destination(write: Write, validate: Validate):
    write(
        "evil",
        source={"kind": "postgres", "connection": {"airflow_conn": "evil_source"}},
        platform={
            "executor": "kubernetes",
            "kubernetes": {"source_egress": {"cidrs": ["0.0.0.0/0"]}},
        },
    )
    [problem] = validate()["evil"]
    assert problem.startswith(
        "platform.kubernetes.source_egress.cidrs[0]: 0.0.0.0/0 is every address"
    )


@pytest.mark.parametrize("tenant", ["tail_", "double__under", "t" * 41])
def test_a_tenant_id_that_makes_no_kubernetes_name_is_refused(
    tenant: str, write: Write, validate: Validate
):
    """`tail_` gave the namespace `tenant-tail-`, which the API server refuses."""
    write(tenant, OWN_BAD.format(name=tenant))
    [problem] = validate()[tenant]
    assert problem.startswith("tenant: ")
    if len(tenant) <= 40:
        assert problem == (
            "tenant: must be a tenant id (a-z, 0-9 and single _ between them; starting with a "
            f"letter, ending with a letter or digit; at most 40), got '{tenant}'"
        )
    else:
        assert "at most 40 characters" in problem


OWN_BAD = """\
tenant: {name}
source: {{kind: sqlite, connection: {{env: BAD_SOURCE_URL}}}}
warehouse: {{kind: duckdb, connection: {{env: BAD_WAREHOUSE_URL}}}}
tables: [{{name: orders}}]
dbt: {{project: ../_dbt/shop}}
"""


def test_requests_above_limits_are_refused(write: Write, validate: Validate):
    """A table raising only its requests kept the inherited limits: the server refused."""
    write(
        "evil",
        tables=[
            {"name": "orders", "task": {"resources": {"requests": {"memory": "1Gi"}}}},
            {
                "name": "items",
                "task": {"resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "2"}}},
            },
        ],
        tasks={"dbt": {"resources": {"requests": {"cpu": "3"}}}},
    )
    assert validate()["evil"] == [
        "tasks.dbt.resources: dbt tasks requests cpu 3, more than its limit 2 (after "
        "defaults.yaml < tasks.* < the table's task): Kubernetes refuses such a pod; raise "
        "`limits.cpu` too, or lower `requests.cpu`",
        "tables[0].task.resources: table orders requests memory 1Gi, more than its limit "
        "512Mi (after defaults.yaml < tasks.* < the table's task): Kubernetes refuses such a "
        "pod; raise `limits.memory` too, or lower `requests.memory`",
    ]


def test_a_long_table_name_is_accepted_and_gets_valid_kubernetes_names(
    write: Write, validate: Validate, warehouses: Path
):
    """A 63-character table (or one ending in `_`) is a valid source table: instead of
    refusing it, its label and pod name are made valid (tests/isolation/test_k8s_names)."""
    long_name, tail = "t" * 63, "orders_"
    write("shop", tables=[{"name": long_name}, {"name": tail}])
    assert validate()["shop"] == []

    from dag_factory.adapters.kubernetes import pod_name, render
    from dag_factory.k8s_names import is_dns1123_label, is_valid_label_value
    from dag_factory.loader import Loader
    from dag_factory.plan import plan_tenant

    tenant = Loader(warehouses).load(warehouses / "shop" / "warehouse.yaml")
    for task in plan_tenant(tenant, warehouses.parent).tasks:
        pod = render(task)
        for value in pod["metadata"]["labels"].values():
            assert is_valid_label_value(value) == [], value
        assert is_dns1123_label(pod_name(task)) == []

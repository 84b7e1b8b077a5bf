"""The kind registry is the one place a database kind is declared: a kind registered
there alone is accepted by the tenant spec and picked up by readers, URL drivers,
Airflow connection types, Kubernetes egress and the JSON Schema."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from datakits import kinds

REPO = Path(__file__).resolve().parents[2]

#: Registers `fakedb` in the registry before anything else is imported, then reports what
#: the rest of the code makes of it. Run in its own interpreter: the kind enums are built
#: from the registry when `datakits.spec` is first imported.
_PROBE = textwrap.dedent(
    """
    import json
    from datakits import kinds
    kinds.SOURCES["fakedb"] = kinds.SourceKindEntry(
        name="fakedb", driver="fakedb+fakedriver", schemes=("fakedb",),
        conn_types=("fake_conn",), default_port=7777,
        reader="datakits.sources.sqlite:SqliteReader",
    )

    from dag_factory.k8s_objects import network_policy
    from dag_factory.schema import render_schema
    from dag_factory.secrets import connection_url
    from dag_factory.spec import TenantSpec
    from datakits.sources import reader_class
    from datakits.spec import SourceKind
    from datakits.urls import parse_url

    spec = TenantSpec.model_validate({
        "tenant": "t",
        "source": {"kind": "fakedb", "connection": {"env": "SRC"}},
        "warehouse": {"kind": "postgres", "connection": {"env": "WH"}},
        "tables": [{"name": "orders"}],
        "platform": {"kubernetes": {
            "source_egress": {"cidrs": ["10.20.0.0/16"]},
            "warehouse_egress": {"cidrs": ["10.30.0.0/16"]},
        }},
    })
    egress = network_policy(spec)["spec"]["egress"]
    print(json.dumps({
        "enum": [k.value for k in SourceKind],
        "kind": spec.source.kind.value,
        "reader": reader_class(spec.source.kind).__name__,
        "url": parse_url("fakedb://u@h/db").drivername,
        "conn": connection_url("fake_conn", host="h", port=None, login="u", password=None,
                               schema="db"),
        "ports": sorted(p["port"] for rule in egress for p in rule["ports"]),
        "schema": "fakedb" in render_schema(),
    }))
    """
)


def test_a_kind_registered_in_one_place_is_picked_up_everywhere() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found == {
        "enum": ["sqlite", "postgres", "mysql", "fakedb"],
        "kind": "fakedb",
        "reader": "SqliteReader",
        "url": "fakedb+fakedriver",
        "conn": "fakedb+fakedriver://u@h/db",
        "ports": [53, 53, 5432, 7777],
        "schema": True,
    }


def test_no_scheme_or_connection_type_means_two_drivers() -> None:
    """Source and warehouse entries of one database (postgres) must agree."""
    for attribute in ("schemes", "conn_types"):
        drivers: dict[str, set[str]] = {}
        for kind in kinds.all_kinds():
            for name in getattr(kind, attribute):
                drivers.setdefault(name, set()).add(kind.driver)
        assert {n: d for n, d in drivers.items() if len(d) > 1} == {}, attribute


def test_every_dotted_path_resolves() -> None:
    for source in kinds.SOURCES.values():
        assert source.reader_class().__name__.endswith("Reader")
    for warehouse in kinds.WAREHOUSES.values():
        assert warehouse.writer_class().__name__.endswith("Writer")
        # runners.dbt_profile is resolved by name: datakits never imports runners
        assert callable(warehouse.dbt_profile_builder().output)


def test_only_file_databases_need_no_egress() -> None:
    assert {k.name for k in kinds.all_kinds() if not k.egress_ports} == {"sqlite", "duckdb"}
    assert [k.name for k in kinds.WAREHOUSES.values() if k.serial_loads] == ["duckdb"]

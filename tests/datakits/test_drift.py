"""Schema drift, on both warehouses: the source's columns change between two loads."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from datakits.errors import LoadFailed
from datakits.load import load_table
from datakits.spec import LoadSpec
from tests.datakits.bronze_state import audit_count, checksum, columns, execute, watermark
from tests.datakits.conftest import make_spec, query

WAREHOUSES = ["duckdb", "postgres"]
INCREMENTAL = {"mode": "incremental", "cursor": "ver", "primary_key": ["id"]}


def _spec(kind: str, **table: Any) -> LoadSpec:
    return make_spec("postgres", kind, {"name": "ev", **table})


def _load(spec: LoadSpec, source: str, warehouse: str) -> None:
    load_table(spec, spec.tables[0], source, warehouse)


def _ev(source: str) -> None:
    execute(
        source,
        "CREATE TABLE ev (id bigint PRIMARY KEY, name varchar(10), amount numeric(10, 2), "
        "qty integer, ver bigint NOT NULL)",
        "INSERT INTO ev SELECT g, 'n' || g, g / 4.0, g, g FROM generate_series(1, 20) g",
    )


def _first_load(
    kind: str, source: str, make_warehouse: Callable[[str], str], **table: Any
) -> tuple[LoadSpec, str]:
    """A `kind` warehouse that loaded `ev` once with `table`'s settings: (spec, URL)."""
    warehouse = make_warehouse(kind)
    _ev(source)
    spec = _spec(kind, **table)
    _load(spec, source, warehouse)
    return spec, warehouse


def _types(warehouse: str) -> dict[str, str]:
    rows = query(
        warehouse,
        "SELECT column_name, data_type, numeric_precision, numeric_scale "
        "FROM information_schema.columns WHERE table_schema = 'bronze' AND table_name = 'ev'",
    )
    return {
        name: f"decimal({p},{s})" if str(t).lower().startswith(("numeric", "decimal")) else t
        for name, t, p, s in rows
    }


def _state(warehouse: str) -> tuple[Any, ...]:
    return (
        columns(warehouse, "ev"),
        _types(warehouse),
        checksum(warehouse, "ev"),
        watermark(warehouse, "ev"),
        audit_count(warehouse, "ev"),
    )


@pytest.mark.parametrize("kind", WAREHOUSES)
def test_evolve_adds_new_and_keeps_dropped_columns(
    kind: str, pg_source: str, make_warehouse: Callable[[str], str]
) -> None:
    spec, warehouse = _first_load(kind, pg_source, make_warehouse, **INCREMENTAL)
    execute(
        pg_source,
        "ALTER TABLE ev ADD COLUMN colour text",
        "ALTER TABLE ev DROP COLUMN qty",
        "INSERT INTO ev (id, name, amount, ver, colour) VALUES (21, 'new', 1.5, 21, 'red')",
        "UPDATE ev SET colour = 'blue', ver = 22 WHERE id = 5",
    )

    _load(spec, pg_source, warehouse)

    assert columns(warehouse, "ev") == ["id", "name", "amount", "qty", "ver", "colour"]
    got = query(warehouse, "SELECT id, qty, colour FROM bronze.ev WHERE id IN (4, 5, 21)")
    assert sorted(got) == [(4, 4, None), (5, None, "blue"), (21, None, "red")]


@pytest.mark.parametrize("kind", WAREHOUSES)
def test_evolve_widens_a_decimal(
    kind: str, pg_source: str, make_warehouse: Callable[[str], str]
) -> None:
    spec, warehouse = _first_load(kind, pg_source, make_warehouse, **INCREMENTAL)
    execute(
        pg_source,
        "ALTER TABLE ev ALTER COLUMN amount TYPE numeric(14, 4)",
        "INSERT INTO ev (id, amount, ver) VALUES (21, 1234567890.1234, 21)",
    )

    _load(spec, pg_source, warehouse)

    assert _types(warehouse)["amount"] == "decimal(14,4)"
    got = query(warehouse, "SELECT id, amount FROM bronze.ev WHERE id IN (3, 21) ORDER BY id")
    assert got == [(3, Decimal("0.7500")), (21, Decimal("1234567890.1234"))]


@pytest.mark.parametrize("kind", WAREHOUSES)
def test_incompatible_type_change_fails_and_leaves_bronze(
    kind: str, pg_source: str, make_warehouse: Callable[[str], str]
) -> None:
    spec, warehouse = _first_load(kind, pg_source, make_warehouse, **INCREMENTAL)
    before = _state(warehouse)
    execute(
        pg_source,
        "ALTER TABLE ev ALTER COLUMN qty TYPE text",
        "ALTER TABLE ev ADD COLUMN colour text",  # would be accepted alone: not applied
        "UPDATE ev SET qty = 'many', ver = 30 WHERE id = 1",
    )

    with pytest.raises(LoadFailed) as exc:
        _load(spec, pg_source, warehouse)

    message = str(exc.value)
    assert message.startswith("incompatible type change in bronze.ev (bronze unchanged): qty (")
    assert "cannot take the new type" in message and "\n" not in message
    assert _state(warehouse) == before


@pytest.mark.parametrize("kind", WAREHOUSES)
def test_fail_policy_lists_every_difference(
    kind: str, pg_source: str, make_warehouse: Callable[[str], str]
) -> None:
    spec, warehouse = _first_load(
        kind, pg_source, make_warehouse, **INCREMENTAL, schema_drift="fail"
    )
    before = _state(warehouse)
    execute(
        pg_source,
        "ALTER TABLE ev ADD COLUMN colour text",
        "ALTER TABLE ev DROP COLUMN name",
        "ALTER TABLE ev ALTER COLUMN amount TYPE numeric(12, 2)",
    )

    with pytest.raises(LoadFailed) as exc:
        _load(spec, pg_source, warehouse)

    assert str(exc.value) == (
        "the source's columns differ from bronze.ev and schema_drift is `fail` (bronze "
        "unchanged): new column(s) colour (text); dropped column(s) name; changed type(s) "
        "amount (decimal(10, 2) in bronze, decimal(12, 2) now); set schema_drift: evolve "
        "to accept them"
    ).replace("(text)", "(varchar)" if kind == "duckdb" else "(text)")
    assert _state(warehouse) == before


@pytest.mark.parametrize("kind", WAREHOUSES)
def test_source_type_renames_that_bronze_stores_alike_are_no_drift(
    kind: str, pg_source: str, make_warehouse: Callable[[str], str]
) -> None:
    spec, warehouse = _first_load(
        kind, pg_source, make_warehouse, **INCREMENTAL, schema_drift="fail"
    )
    execute(
        pg_source,
        "ALTER TABLE ev ALTER COLUMN qty TYPE bigint",  # both are BIGINT in bronze
        "ALTER TABLE ev ALTER COLUMN name TYPE text",  # both are text in bronze
        "UPDATE ev SET ver = 99 WHERE id = 1",
    )
    _load(spec, pg_source, warehouse)
    assert watermark(warehouse, "ev") == ("ver", "99")


@pytest.mark.parametrize("kind", WAREHOUSES)
def test_full_refresh_evolve_rebuilds_with_new_shape_and_keeps_dropped(
    kind: str, pg_source: str, make_warehouse: Callable[[str], str]
) -> None:
    spec, warehouse = _first_load(kind, pg_source, make_warehouse)
    execute(
        pg_source,
        "ALTER TABLE ev ADD COLUMN colour text DEFAULT 'red'",
        "ALTER TABLE ev DROP COLUMN name",
        "ALTER TABLE ev ALTER COLUMN qty TYPE text",  # every row is rewritten: accepted
    )

    _load(spec, pg_source, warehouse)

    assert columns(warehouse, "ev") == ["id", "amount", "qty", "ver", "colour", "name"]
    assert query(warehouse, "SELECT qty, colour, name FROM bronze.ev WHERE id = 2") == [
        ("2", "red", None)
    ]


@pytest.mark.parametrize("kind", WAREHOUSES)
def test_full_refresh_fail_policy_refuses_a_new_shape(
    kind: str, pg_source: str, make_warehouse: Callable[[str], str]
) -> None:
    spec, warehouse = _first_load(kind, pg_source, make_warehouse, schema_drift="fail")
    before = _state(warehouse)
    execute(pg_source, "ALTER TABLE ev ADD COLUMN colour text")

    with pytest.raises(LoadFailed, match=r"new column\(s\) colour"):
        _load(spec, pg_source, warehouse)
    assert _state(warehouse) == before

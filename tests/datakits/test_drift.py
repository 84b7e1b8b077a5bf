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


# --- bronze made before the type-fidelity change (real, arrays, money, char(n)) -----------


class _Lines:
    """A `LoadProgress` that keeps its start lines (what the runner prints)."""

    def __init__(self) -> None:
        self.started: list[str] = []

    def start(self, label: str) -> None:
        self.started.append(label)

    def advance(self, rows: int, nbytes: int) -> None:
        pass

    def finish(self, summary: str) -> None:
        pass


_EDGES = ("CREATE TABLE ev (id bigint PRIMARY KEY, ver bigint NOT NULL, f4 real, ints int[], "
          "texts text[], cash money, code char(5))")  # fmt: skip

#: Bronze as the earlier path wrote these columns: real widened to double, arrays as
#: PostgreSQL's `to_json` text, money as its locale text, char(n) with its padding.
_OLD_FORM = {
    "postgres": [
        "ALTER TABLE bronze.ev ALTER f4 TYPE double precision",
        "ALTER TABLE bronze.ev ALTER ints TYPE text USING CASE id WHEN 1 THEN '[1,null,3]' END",
        "ALTER TABLE bronze.ev ALTER texts TYPE text USING CASE id WHEN 1 THEN "
        '\'["a b",null,"ü"]\' END',
        "ALTER TABLE bronze.ev ALTER cash TYPE text USING CASE id WHEN 1 THEN '$1,234.50' END",
        "UPDATE bronze.ev SET code = 'ab   '",
    ],
    "duckdb": [
        "ALTER TABLE bronze.ev ALTER f4 TYPE DOUBLE",
        "ALTER TABLE bronze.ev ALTER ints TYPE VARCHAR USING CASE id WHEN 1 THEN '[1,null,3]' END",
        "ALTER TABLE bronze.ev ALTER texts TYPE VARCHAR USING CASE id WHEN 1 THEN "
        '\'["a b",null,"ü"]\' END',
        "ALTER TABLE bronze.ev ALTER cash TYPE VARCHAR USING CASE id WHEN 1 THEN '$1,234.50' END",
        "UPDATE bronze.ev SET code = 'ab   '",
    ],
}


def _old_bronze(
    kind: str, source: str, make_warehouse: Callable[[str], str]
) -> tuple[LoadSpec, str]:
    """Rows 1 and 3 loaded, then bronze's columns turned into the earlier path's types and
    values (row 3, on the watermark, is re-read by the next load: its values are NULL)."""
    warehouse = make_warehouse(kind)
    execute(source, _EDGES, "INSERT INTO ev VALUES (1, 1, 0.1, '{1,NULL,3}', "
            "'{\"a b\",NULL,ü}', 1234.5, 'ab'), (3, 3, NULL, NULL, NULL, NULL, NULL)")  # fmt: skip
    spec = _spec(kind, **INCREMENTAL)
    _load(spec, source, warehouse)
    for statement in _OLD_FORM[kind]:  # DuckDB: one ALTER per transaction
        execute(warehouse, statement)
    return spec, warehouse


@pytest.mark.parametrize("kind", WAREHOUSES)
def test_bronze_from_before_native_types_takes_the_next_incremental_load(
    kind: str, pg_source: str, make_warehouse: Callable[[str], str]
) -> None:
    spec, warehouse = _old_bronze(kind, pg_source, make_warehouse)
    before = _types(warehouse)
    execute(pg_source, "INSERT INTO ev VALUES (2, 5, 0.25, '{4,5}', '{c,NULL}', -7.25, 'cd')")
    lines = _Lines()

    load_table(spec, spec.tables[0], pg_source, warehouse, lines)

    # No column rewritten: double holds every real exactly; text holds any value.
    assert _types(warehouse) == before
    got = query(warehouse, "SELECT id, f4, ints, texts, cash, code FROM bronze.ev ORDER BY id")
    assert got == [
        (1, 0.10000000149011612, "[1,null,3]", '["a b",null,"ü"]', "$1,234.50", "ab   "),
        (2, 0.25, "[4,5]", '["c",null]', "-7.25", "cd"),
        (3, None, None, None, None, None),
    ]
    line = lines.started[-1]
    double = "double" if kind == "duckdb" else "double precision"
    text = "varchar" if kind == "duckdb" else "text"
    assert f"bronze.ev.f4 stays {double}: it holds every " in line
    assert f"bronze.ev.ints stays {text} (the source now gives " in line
    assert "new values written as JSON text, like the rows already loaded" in line
    assert f"bronze.ev.cash stays {text} (the source now gives decimal(19, 2)): new values " \
        "written as text" in line  # fmt: skip
    assert "code" not in line  # char(n) is text on both sides: no drift


@pytest.mark.parametrize("kind", WAREHOUSES)
def test_evolve_widens_real_to_double(
    kind: str, pg_source: str, make_warehouse: Callable[[str], str]
) -> None:
    warehouse = make_warehouse(kind)
    execute(pg_source, "CREATE TABLE ev (id bigint PRIMARY KEY, ver bigint NOT NULL, f real)",
            "INSERT INTO ev VALUES (1, 1, 0.5)")  # fmt: skip
    spec = _spec(kind, **INCREMENTAL)
    _load(spec, pg_source, warehouse)
    execute(pg_source, "ALTER TABLE ev ALTER f TYPE double precision",
            "INSERT INTO ev VALUES (2, 2, 0.1)")  # fmt: skip

    _load(spec, pg_source, warehouse)

    assert _types(warehouse)["f"].lower() in ("double precision", "double")
    assert query(warehouse, "SELECT f FROM bronze.ev ORDER BY id") == [(0.5,), (0.1,)]

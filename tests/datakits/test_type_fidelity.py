"""Type fidelity: every source kind into every warehouse kind, values compared exactly.

Each source gets a `fidelity` table with the values that break loaders: 38-digit and
negative decimals, timestamps with and without time zone at microsecond precision and
at the ends of their ranges, dates, booleans, JSON text, UUIDs, binary (empty and every
byte value), Unicode text (emoji, CJK, a ~1 MB value, the empty string), integer
extremes, and a row of NULLs. Bronze must hold exactly those values. What a type cannot
carry must fail the load with the column named, never round (`datakits.types`).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import uuid
from collections.abc import Callable
from decimal import Decimal, localcontext
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from datakits.errors import LoadFailed
from datakits.load import load_table
from devtools.mariadb import MariaDBServer
from devtools.postgres import PostgresCluster
from tests.datakits.conftest import make_spec, normalize, pg_table, query, table_names
from tests.datakits.conftest import sqlite_table as _sqlite_table


def sqlite_table_url(tmp_path: Path, ddl: str, rows: list[tuple[Any, ...]]) -> str:
    return _sqlite_table(tmp_path / "edges.db", ddl, rows)


UTC = dt.UTC
IST = dt.timezone(dt.timedelta(hours=5, minutes=30))
WAREHOUSES = ["duckdb", "postgres"]
LONG_TEXT = ("Zoë ☕ 東京 🎉 naïve " * 60_000)[:1_000_000]
UID = uuid.UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
ALL_BYTES = bytes(range(256))
BIG = 9_223_372_036_854_775_807
NINES = Decimal("9" * 38)
NEG_NINES = Decimal("-" + "9" * 38)  # not -NINES: the default context rounds to 28
JSON_TEXT = '{"b": 1, "a": [1.10, "ü", 1e400]}'  # key order, 1.10, a huge number: kept


def _bronze(url: str, columns: list[str]) -> list[tuple[Any, ...]]:
    rows = query(url, f"SELECT {', '.join(columns)} FROM bronze.fidelity ORDER BY id")
    return [tuple(normalize(v) for v in row) for row in rows]


def _execute(url: str, *statements: str, rows: list[dict[str, Any]] | None = None) -> None:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            for statement in statements[:-1]:
                conn.execute(text(statement))
            conn.execute(text(statements[-1]), rows) if rows else conn.execute(text(statements[-1]))
    finally:
        engine.dispose()


def _load(kind: str, source_url: str, warehouse_url: str) -> None:
    warehouse = "duckdb" if warehouse_url.startswith("duckdb") else "postgres"
    spec = make_spec(kind, warehouse, {"name": "fidelity", "batch_size": 100})
    load_table(spec, spec.tables[0], source_url, warehouse_url)


# --- PostgreSQL ---------------------------------------------------------------------------

PG_COLUMNS = ["id", "d12", "d38", "d38s", "ts", "tstz", "day", "flag", "doc", "docb", "uid",
              "raw", "txt", "big", "f8"]  # fmt: skip
PG_ROWS: list[dict[str, Any]] = [
    {
        "id": 1,
        "d12": Decimal("1234567890.12"),
        "d38": NINES,
        "d38s": Decimal("1234567890123456789012345678.0123456789"),
        "ts": dt.datetime(1, 1, 1, 0, 0, 0),
        "tstz": dt.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=IST),
        "day": dt.date(1, 1, 1),
        "flag": True,
        "doc": JSON_TEXT,
        "docb": JSON_TEXT,
        "uid": UID,
        "raw": ALL_BYTES,
        "txt": 'Zoë ☕ 東京 🎉 "quoted", back\\slash\ttab\nnewline',
        "big": BIG,
        "f8": 0.1,
    },
    {
        "id": 2,
        "d12": Decimal("-0.01"),
        "d38": NEG_NINES,
        "d38s": Decimal("-0.0000000001"),
        "ts": dt.datetime(9999, 12, 31, 23, 59, 59, 999999),
        "tstz": dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        "day": dt.date(9999, 12, 31),
        "flag": False,
        "doc": "[]",
        "docb": "{}",
        "uid": uuid.UUID(int=0),
        "raw": b"",
        "txt": "",
        "big": -BIG - 1,
        "f8": -1.7976931348623157e308,
    },
    {
        "id": 3,
        "d12": Decimal("0.00"),
        "d38": Decimal(0),
        "d38s": Decimal("0E-10"),
        "ts": dt.datetime(1970, 1, 1, 0, 0, 0, 1),
        "tstz": dt.datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        "day": dt.date(2000, 2, 29),
        "flag": True,
        "doc": '"just a string"',
        "docb": "null",
        "uid": UID,
        "raw": b"\x00",
        "txt": LONG_TEXT,
        "big": 0,
        "f8": 5e-324,
    },
    dict.fromkeys(PG_COLUMNS) | {"id": 4},
]


def _pg_source(url: str) -> str:
    pg_table(
        url,
        "CREATE TABLE fidelity (id integer PRIMARY KEY, d12 numeric(12, 2), "
        "d38 numeric(38, 0), d38s numeric(38, 10), ts timestamp, tstz timestamptz, day date, "
        "flag boolean, doc json, docb jsonb, uid uuid, raw bytea, txt text, big bigint, "
        "f8 double precision)",
        PG_ROWS,
        "INSERT INTO fidelity VALUES (:id, :d12, :d38, :d38s, :ts, :tstz, :day, :flag, "
        "CAST(:doc AS json), CAST(:docb AS jsonb), :uid, :raw, :txt, :big, :f8)",
    )
    return url


def _pg_expected(source_url: str) -> list[tuple[Any, ...]]:
    # jsonb is kept as the server's own (canonical) text: ask the server for it.
    canonical = dict(query(source_url, "SELECT id, docb::text FROM fidelity"))
    expected = []
    for row in PG_ROWS:
        values = dict(row)
        values["docb"] = canonical[values["id"]]
        if values["uid"] is not None:
            values["uid"] = str(values["uid"])
        if values["d38s"] is not None:
            with localcontext(prec=100):
                values["d38s"] = values["d38s"].quantize(Decimal("1E-10"))
        expected.append(tuple(normalize(values[c]) for c in PG_COLUMNS))
    return expected


@pytest.mark.parametrize("copy", [True, False], ids=["copy", "cursor"])
@pytest.mark.parametrize("warehouse", WAREHOUSES)
def test_postgres_source_values_round_trip(
    warehouse: str,
    copy: bool,
    pg_source: str,
    make_warehouse: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if not copy:
        monkeypatch.setenv("DATAKITS_POSTGRES_COPY", "0")
    source_url, warehouse_url = _pg_source(pg_source), make_warehouse(warehouse)

    _load("postgres", source_url, warehouse_url)

    assert _bronze(warehouse_url, PG_COLUMNS) == _pg_expected(source_url)


@pytest.mark.parametrize("warehouse", WAREHOUSES)
def test_postgres_bronze_column_types(
    warehouse: str, pg_source: str, make_warehouse: Callable[[str], str]
) -> None:
    """Decimals keep precision and scale; nothing becomes a float or loses its zone."""
    source_url, warehouse_url = _pg_source(pg_source), make_warehouse(warehouse)
    _load("postgres", source_url, warehouse_url)
    if warehouse == "duckdb":
        got = dict(query(warehouse_url, "SELECT column_name, data_type FROM "
                   "information_schema.columns WHERE table_name = 'fidelity'"))  # fmt: skip
        assert got["d12"] == "DECIMAL(12,2)"
        assert got["d38"] == "DECIMAL(38,0)"
        assert got["d38s"] == "DECIMAL(38,10)"
        assert got["tstz"] == "TIMESTAMP WITH TIME ZONE"
        assert got["ts"] == "TIMESTAMP"
    else:
        got = dict(query(warehouse_url, "SELECT attname, format_type(atttypid, atttypmod) "
                   "FROM pg_attribute WHERE attrelid = 'bronze.fidelity'::regclass "
                   "AND attnum > 0"))  # fmt: skip
        assert got["d12"] == "numeric(12,2)"
        assert got["d38"] == "numeric(38,0)"
        assert got["d38s"] == "numeric(38,10)"
        assert got["tstz"] == "timestamp with time zone"
        assert got["ts"] == "timestamp without time zone"


def test_postgres_dates_before_year_one_load_exactly_through_copy(
    pg_source: str, make_warehouse: Callable[[str], str]
) -> None:
    """Arrow holds proleptic dates Python's datetime cannot: COPY carries them exactly."""
    _execute(pg_source, "CREATE TABLE fidelity (id integer, day date, ts timestamp)",
             "INSERT INTO fidelity VALUES (1, '0044-03-15 BC', "
             "'4713-01-01 12:00:00.000001 BC')")  # fmt: skip
    warehouse_url = make_warehouse("postgres")
    _load("postgres", pg_source, warehouse_url)
    got = query(warehouse_url, "SELECT day::text, ts::text FROM bronze.fidelity")
    assert got == [("0044-03-15 BC", "4713-01-01 12:00:00.000001 BC")]


PATHS = pytest.mark.parametrize("copy", [True, False], ids=["copy", "cursor"])


def _path(copy: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if not copy:
        monkeypatch.setenv("DATAKITS_POSTGRES_COPY", "0")


@pytest.mark.parametrize(
    ("ddl", "value", "message", "policy"),
    [
        ("numeric(12, 2)", "'NaN'", r"column 'v' cannot be loaded as decimal128\(12, 2\)", "clamp"),
        ("timestamptz", "'infinity'", r"column 'v' holds infinity", "fail"),
        ("timestamp", "'-infinity'", r"column 'v' holds infinity", "fail"),
        ("date", "'infinity'", r"column 'v' holds infinity", "fail"),
        ("timestamp", "'294250-01-01'", r"column 'v' holds .*beyond year 294246", "clamp"),
        ("int[]", "'{{1,2},{3,4}}'", r"array in column\(s\) v has several dimensions", "clamp"),
        ("text[]", "'[0:1]={a,b}'", r"lower bound other than 1", "clamp"),
    ],
)
@pytest.mark.parametrize("warehouse", WAREHOUSES)
@PATHS
def test_postgres_values_bronze_cannot_carry_fail_the_load(
    copy: bool,
    ddl: str,
    value: str,
    message: str,
    policy: str,
    warehouse: str,
    pg_source: str,
    make_warehouse: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Refused on purpose, the same way on both read paths; bronze is never created."""
    _path(copy, monkeypatch)
    _execute(pg_source, f"CREATE TABLE fidelity (id integer, v {ddl})",
             f"INSERT INTO fidelity VALUES (1, NULL), (2, {value})")  # fmt: skip
    warehouse_url = make_warehouse(warehouse)
    spec = make_spec("postgres", warehouse, {"name": "fidelity", "infinity": policy})
    with pytest.raises(LoadFailed, match=message):
        load_table(spec, spec.tables[0], pg_source, warehouse_url)
    assert "fidelity" not in table_names(warehouse_url, "bronze")


# --- ±infinity ------------------------------------------------------------------------------

#: What `infinity: clamp` stores, as each warehouse prints it (`datakits.spec.Infinity`).
CLAMPED = {
    "duckdb": {
        "ts": ("294247-01-10 04:00:54.775806", "290309-12-22 (BC) 00:00:00"),
        "tstz": ("294247-01-10 04:00:54.775806+00", "290309-12-22 (BC) 00:00:00+00"),
        "day": ("5881580-07-10", "5877642-06-25 (BC)"),
    },
    "postgres": {
        "ts": ("294247-01-10 04:00:54.775807", "4714-11-24 00:00:00 BC"),
        "tstz": ("294247-01-10 04:00:54.775807+00", "4714-11-24 00:00:00+00 BC"),
        "day": ("5874897-12-31", "4714-11-24 BC"),
    },
}


def _as_text(url: str, columns: list[str], table: str = "fidelity") -> list[tuple[Any, ...]]:
    """Bronze values as the warehouse prints them (years Python's datetime cannot hold)."""
    kind = "varchar" if url.startswith("duckdb") else "text"
    shown = ", ".join(f"CAST({c} AS {kind})" for c in columns)
    return query(url, f"SELECT {shown} FROM bronze.{table} ORDER BY id")


def _infinity_source(url: str) -> None:
    _execute(
        url,
        "SET TIME ZONE 'UTC'",
        "CREATE TABLE fidelity (id integer, ts timestamp, tstz timestamptz, day date)",
        "INSERT INTO fidelity VALUES (1, 'infinity', 'infinity', 'infinity'), "
        "(2, '-infinity', '-infinity', '-infinity'), "
        "(3, '2024-01-02 03:04:05.000006', '2024-01-02 03:04:05.000006+00', '2024-01-02'), "
        "(4, NULL, NULL, NULL)",
    )


@pytest.mark.parametrize("policy", ["clamp", "null"])
@pytest.mark.parametrize("warehouse", WAREHOUSES)
@PATHS
def test_postgres_infinity_is_clamped_or_nulled_as_the_table_says(
    copy: bool,
    policy: str,
    warehouse: str,
    pg_source: str,
    make_warehouse: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _path(copy, monkeypatch)
    _infinity_source(pg_source)
    warehouse_url = make_warehouse(warehouse)
    table = {"name": "fidelity", **({"infinity": policy} if policy != "clamp" else {})}
    spec = make_spec("postgres", warehouse, table)  # clamp is the default

    load_table(spec, spec.tables[0], pg_source, warehouse_url)

    clamped = CLAMPED[warehouse]
    if policy == "clamp":
        infinite = [tuple(clamped[c][0] for c in ("ts", "tstz", "day")),
                    tuple(clamped[c][1] for c in ("ts", "tstz", "day"))]  # fmt: skip
    else:
        infinite = [(None, None, None), (None, None, None)]
    finite = ("2024-01-02 03:04:05.000006", "2024-01-02 03:04:05.000006+00", "2024-01-02")
    expected = [*infinite, finite, (None, None, None)]
    got = _as_text(warehouse_url, ["ts", "tstz", "day"])
    assert got == expected
    if policy == "clamp":  # still the largest and smallest values of their columns
        assert query(warehouse_url, "SELECT max(ts) = (SELECT ts FROM bronze.fidelity "
                     "WHERE id = 1) FROM bronze.fidelity") == [(True,)]  # fmt: skip


# --- the read paths produce the same bronze ----------------------------------------------

#: Values the cursor path used to change or refuse: intervals with months and years, BC
#: dates and timestamps, 24:00, arrays, money, char(n) padding, real, ±infinity.
EDGE_DDL = (
    "CREATE TABLE edges (id integer PRIMARY KEY, iv interval, day date, ts timestamp, "
    "tstz timestamptz, tod time, todz timetz, ints int[], smalls smallint[], texts text[], "
    "nums numeric(12, 2)[], uuids uuid[], stamps timestamp[], reals real[], flags boolean[], "
    "cash money, code char(5), code_arr char(3)[], f4 real, f8 double precision, "
    "n numeric, vc varchar(10), doc jsonb)"
)
EDGE_ROWS = (
    "INSERT INTO edges VALUES "
    "(1, '1 year 2 mons 3 days 04:05:06.789', '0044-03-15 BC', '4713-01-01 12:00:00.000001 BC',"
    " '0001-01-01 00:00:00+00 BC', '24:00', '24:00:00+05:30', '{1,NULL,3}', '{-32768,32767}',"
    " '{\"a b\",NULL,\"\",\"ü\"}', '{1.50,NULL,-0.01}', '{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}',"
    " '{\"2024-01-02 03:04:05\",infinity}', '{0.1,3.4028235e38}', '{t,f,NULL}',"
    " '-92233720368547758.08',"
    " 'ab', '{x,yz}', 0.1, 0.1, 0.00000001, 'pad  ', '{\"b\": 1, \"a\": [1.10]}'),"
    "(2, '-178000000 years', '5874897-12-31', '294246-12-31 23:59:59.999999', 'infinity',"
    " '00:00', '00:00+00', '{}', NULL, '{}', '{}', '{}', '{}', '{}', '{}', '92233720368547758.07',"
    " '', '{}', 1.17549435e-38, 5e-324, 'NaN', '', 'null'),"
    "(3, '-1 mons -1 days +00:00:00.000001', '-infinity', '-infinity', '-infinity', NULL, NULL,"
    " NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,"
    " NULL)"
)
EDGE_COLUMNS = ["id", "iv", "day", "ts", "tstz", "tod", "todz", "ints", "smalls", "texts", "nums",
                "uuids", "stamps", "reals", "flags", "cash", "code", "code_arr", "f4", "f8", "n",
                "vc", "doc"]  # fmt: skip


def _edge_load(source_url: str, warehouse_url: str, warehouse: str) -> None:
    spec = make_spec("postgres", warehouse, {"name": "edges", "batch_size": 100})
    load_table(spec, spec.tables[0], source_url, warehouse_url)


@pytest.mark.parametrize("warehouse", WAREHOUSES)
def test_postgres_cursor_path_writes_the_same_bronze_as_copy(
    warehouse: str,
    pg_source: str,
    pg_cluster: PostgresCluster,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _execute(pg_source, "SET TIME ZONE 'UTC'", EDGE_DDL, EDGE_ROWS)
    urls = {}
    for path in ("copy", "cursor"):
        if warehouse == "duckdb":
            urls[path] = f"duckdb:///{tmp_path / f'{path}.duckdb'}"
        else:
            urls[path] = pg_cluster.create_database(
                f"wh_{path}_{abs(hash(request.node.nodeid)) % 10**8}"
            )
        if path == "cursor":
            monkeypatch.setenv("DATAKITS_POSTGRES_COPY", "0")
        _edge_load(pg_source, urls[path], warehouse)

    copy, cursor = (_as_text(urls[p], EDGE_COLUMNS, "edges") for p in ("copy", "cursor"))
    assert cursor == copy
    # And both are the source's own values (text as PostgreSQL prints it):
    by_id = {row[0]: row for row in copy}
    row = dict(zip(EDGE_COLUMNS, by_id["1"] if "1" in by_id else by_id[1], strict=True))
    assert row["iv"] == "1 year 2 mons 3 days 04:05:06.789"  # months and years kept
    assert row["day"] in ("0044-03-15 BC", "0044-03-15 (BC)")
    assert row["ts"] in ("4713-01-01 12:00:00.000001 BC", "4713-01-01 (BC) 12:00:00.000001")
    assert row["tod"] == "24:00:00"
    assert row["todz"] == "24:00:00+05:30"
    assert row["cash"] == "-92233720368547758.08"
    assert row["code"] == "ab"  # char(5) without its padding, as `::text` gives it
    assert row["vc"] == "pad  "  # varchar keeps its spaces
    assert row["f4"] == "0.1"  # float4, not the double 0.10000000149011612
    assert row["n"] == "0.00000001"
    if warehouse == "duckdb":
        assert row["ints"] == "[1, NULL, 3]"
        assert row["texts"] == "[a b, NULL, '', ü]"
        assert row["nums"] == "[1.50, NULL, -0.01]"
        assert row["stamps"] == "['2024-01-02 03:04:05', infinity]"
        assert row["code_arr"] == "[x, yz]"
    else:
        assert row["ints"] == "{1,NULL,3}"
        assert row["texts"] == '{"a b",NULL,"",ü}'
        assert row["nums"] == "{1.50,NULL,-0.01}"
        assert row["stamps"] == '{"2024-01-02 03:04:05",infinity}'
        assert row["code_arr"] == "{x,yz}"


@pytest.mark.parametrize("warehouse", WAREHOUSES)
def test_postgres_arrays_money_and_real_have_native_bronze_types(
    warehouse: str, pg_source: str, make_warehouse: Callable[[str], str]
) -> None:
    _execute(pg_source, EDGE_DDL, EDGE_ROWS)
    warehouse_url = make_warehouse(warehouse)
    _edge_load(pg_source, warehouse_url, warehouse)
    if warehouse == "duckdb":
        got = dict(query(warehouse_url, "SELECT column_name, data_type FROM "
                   "information_schema.columns WHERE table_name = 'edges'"))  # fmt: skip
        assert got["ints"] == "BIGINT[]"
        assert got["texts"] == "VARCHAR[]"
        assert got["nums"] == "DECIMAL(12,2)[]"
        assert got["reals"] == "FLOAT[]"
        assert got["flags"] == "BOOLEAN[]"
        assert got["f4"] == "FLOAT"
        assert got["cash"] == "DECIMAL(19,2)"
    else:
        got = dict(query(warehouse_url, "SELECT attname, format_type(atttypid, atttypmod) "
                   "FROM pg_attribute WHERE attrelid = 'bronze.edges'::regclass "
                   "AND attnum > 0"))  # fmt: skip
        assert got["ints"] == "bigint[]"
        assert got["texts"] == "text[]"
        assert got["nums"] == "numeric(12,2)[]"
        assert got["reals"] == "real[]"
        assert got["flags"] == "boolean[]"
        assert got["f4"] == "real"
        assert got["cash"] == "numeric(19,2)"


# --- MariaDB ----------------------------------------------------------------------------

MY_COLUMNS = ["id", "d12", "d38", "d38s", "d65", "ts", "tstz", "day", "flag", "doc", "uid",
              "raw", "txt", "big", "ubig", "f8", "bits", "yr"]  # fmt: skip
MY_ROWS: list[dict[str, Any]] = [
    {
        "id": 1,
        "d12": Decimal("1234567890.12"),
        "d38": NINES,
        "d38s": Decimal("1234567890123456789012345678.0123456789"),
        "d65": Decimal("12345678901234567890123456789012345.123456789012345678901234567891"),
        "ts": dt.datetime(1000, 1, 1, 0, 0, 0, 1),
        "tstz": dt.datetime(1970, 1, 1, 0, 0, 1, 123456),
        "day": dt.date(1000, 1, 1),
        "flag": 1,
        "doc": JSON_TEXT,
        "uid": str(UID),
        "raw": ALL_BYTES,
        "txt": 'Zoë ☕ 東京 🎉 "quoted", back\\slash\ttab\nnewline',
        "big": BIG,
        "ubig": 18_446_744_073_709_551_615,
        "f8": 0.1,
        "bits": b"\xff",
        "yr": 2024,
    },
    {
        "id": 2,
        "d12": Decimal("-0.01"),
        "d38": NEG_NINES,
        "d38s": Decimal("-0.0000000001"),
        "d65": Decimal("-0.000000000000000000000000000001"),
        "ts": dt.datetime(9999, 12, 31, 23, 59, 59, 999999),
        "tstz": dt.datetime(2038, 1, 19, 3, 14, 7, 999999),
        "day": dt.date(9999, 12, 31),
        "flag": 0,
        "doc": "[]",
        "uid": str(uuid.UUID(int=0)),
        "raw": b"",
        "txt": "",
        "big": -BIG - 1,
        "ubig": 0,
        "f8": -1.7976931348623157e308,
        "bits": b"\x00",
        "yr": 1901,
    },
    {
        "id": 3,
        "d12": Decimal("0.00"),
        "d38": Decimal(0),
        "d38s": Decimal("0.0000000000"),
        "d65": Decimal(0),
        "ts": dt.datetime(2024, 2, 29, 12, 0, 0, 500000),
        "tstz": dt.datetime(2024, 2, 29, 12, 0, 0, 500000),
        "day": dt.date(2000, 2, 29),
        "flag": 2,  # a BOOLEAN is a TINYINT(1): it may hold 2, so bronze keeps an integer
        "doc": '"just a string"',
        "uid": str(UID),
        "raw": b"\x00",
        "txt": LONG_TEXT,
        "big": 0,
        "ubig": BIG + 1,
        "f8": 5e-324,
        "bits": b"\x01",
        "yr": 2155,
    },
    dict.fromkeys(MY_COLUMNS) | {"id": 4},
]


def _mariadb_source(server: MariaDBServer, name: str) -> str:
    url = server.create_database(name)
    _execute(
        url,
        "SET time_zone = '+00:00'",
        "CREATE TABLE fidelity (id INT PRIMARY KEY, d12 DECIMAL(12, 2), d38 DECIMAL(38, 0), "
        "d38s DECIMAL(38, 10), d65 DECIMAL(65, 30), ts DATETIME(6), tstz TIMESTAMP(6) NULL, "
        "day DATE, flag BOOLEAN, doc JSON, uid UUID, raw LONGBLOB, txt LONGTEXT, big BIGINT, "
        "ubig BIGINT UNSIGNED, f8 DOUBLE, bits BIT(8), yr YEAR) CHARACTER SET utf8mb4",
        "INSERT INTO fidelity VALUES (:id, :d12, :d38, :d38s, :d65, :ts, :tstz, :day, :flag, "
        ":doc, :uid, :raw, :txt, :big, :ubig, :f8, :bits, :yr)",
        rows=MY_ROWS,
    )
    return url


def _mariadb_expected() -> list[tuple[Any, ...]]:
    expected = []
    for row in MY_ROWS:
        values = dict(row)
        if values["d65"] is not None:  # DECIMAL(65, 30) is wider than 38 digits: exact text
            with localcontext(prec=100):
                values["d65"] = format(values["d65"].quantize(Decimal("1E-30")), "f")
        if values["bits"] is not None:
            values["bits"] = int.from_bytes(values["bits"], "big")
        expected.append(tuple(normalize(values[c]) for c in MY_COLUMNS))
    return expected


def _db_name(request: pytest.FixtureRequest) -> str:
    import hashlib

    return (
        "src_" + hashlib.sha1(request.node.nodeid.encode(), usedforsecurity=False).hexdigest()[:12]
    )


@pytest.mark.parametrize("warehouse", WAREHOUSES)
def test_mariadb_source_values_round_trip(
    warehouse: str,
    mariadb_server: MariaDBServer,
    make_warehouse: Callable[[str], str],
    request: pytest.FixtureRequest,
) -> None:
    source_url = _mariadb_source(mariadb_server, _db_name(request))
    warehouse_url = make_warehouse(warehouse)

    _load("mysql", source_url, warehouse_url)

    assert _bronze(warehouse_url, MY_COLUMNS) == _mariadb_expected()


def test_mariadb_time_beyond_a_day_fails_the_load(
    mariadb_server: MariaDBServer,
    make_warehouse: Callable[[str], str],
    request: pytest.FixtureRequest,
) -> None:
    url = mariadb_server.create_database(_db_name(request))
    _execute(url, "CREATE TABLE fidelity (id INT, t TIME(6))",
             "INSERT INTO fidelity VALUES (1, '12:34:56.5'), (2, '30:00:00')")  # fmt: skip
    with pytest.raises(LoadFailed, match=r"column 't' .*duration, not a time of day"):
        _load("mysql", url, make_warehouse("duckdb"))


def test_mariadb_zero_dates_and_bit64(
    mariadb_server: MariaDBServer,
    make_warehouse: Callable[[str], str],
    request: pytest.FixtureRequest,
) -> None:
    """Zero dates are MySQL's "no date": NULL in bronze; BIT(64) is beyond int64."""
    url = mariadb_server.create_database(_db_name(request))
    _execute(url, "SET SESSION sql_mode = ''",
             "CREATE TABLE fidelity (id INT PRIMARY KEY, day DATE, moment DATETIME(6), "
             "stamp TIMESTAMP(3) NULL, bits BIT(64))",
             "INSERT INTO fidelity VALUES (1, '0000-00-00', '0000-00-00 00:00:00', "
             f"'0000-00-00 00:00:00', b'{'1' * 64}'), "
             "(2, '2024-02-29', '2024-02-29 12:00:00.5', '2024-02-29 12:00:00.5', "
             "b'0')")  # fmt: skip
    warehouse_url = make_warehouse("duckdb")
    _load("mysql", url, warehouse_url)
    assert _bronze(warehouse_url, ["id", "day", "moment", "stamp", "bits"]) == [
        (1, None, None, None, Decimal(2**64 - 1)),
        (2, dt.date(2024, 2, 29), dt.datetime(2024, 2, 29, 12, 0, 0, 500000),
         dt.datetime(2024, 2, 29, 12, 0, 0, 500000), Decimal(0)),
    ]  # fmt: skip


def test_mariadb_partial_zero_date_fails_the_load(
    mariadb_server: MariaDBServer,
    make_warehouse: Callable[[str], str],
    request: pytest.FixtureRequest,
) -> None:
    url = mariadb_server.create_database(_db_name(request))
    _execute(url, "SET SESSION sql_mode = ''", "CREATE TABLE fidelity (id INT, day DATE)",
             "INSERT INTO fidelity VALUES (1, '2024-00-00')")  # fmt: skip
    with pytest.raises(LoadFailed, match=r"column 'day' .*'2024-00-00'"):
        _load("mysql", url, make_warehouse("duckdb"))


# --- SQLite -------------------------------------------------------------------------------

SQ_COLUMNS = ["id", "d12", "d18", "ts", "day", "flag", "doc", "uid", "raw", "txt", "big", "f8"]
#: SQLite stores decimals as REAL or INTEGER (NUMERIC affinity): 38 digits do not survive
#: inside SQLite itself, so its extremes are int64's.
SQ_ROWS: list[tuple[Any, ...]] = [
    (1, 1234567890.12, BIG, "0001-01-01 00:00:00", "0001-01-01", 1, JSON_TEXT, str(UID),
     ALL_BYTES, PG_ROWS[0]["txt"], BIG, 0.1),
    (2, -0.01, -BIG - 1, "9999-12-31 23:59:59.999999", "9999-12-31", 0, "[]", str(UID), b"",
     "", -BIG - 1, -1.7976931348623157e308),
    (3, 0, 0, "2024-02-29T12:00:00.5+01:00", "2000-02-29", 1, '"s"', str(UID), b"\x00",
     LONG_TEXT, 0, 5e-324),
    (4, None, None, None, None, None, None, None, None, None, None, None),
]  # fmt: skip


def _sqlite_expected() -> list[tuple[Any, ...]]:
    def ts(text_value: str | None) -> dt.datetime | None:
        if text_value is None:
            return None
        moment = dt.datetime.fromisoformat(text_value)
        return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment

    expected = []
    for row in SQ_ROWS:
        (id_, d12, d18, stamp, day, flag, doc, uid, raw, txt, big, f8) = row
        expected.append(
            (
                id_,
                None if d12 is None else Decimal(repr(d12)).quantize(Decimal("0.01")),
                None if d18 is None else Decimal(d18),
                ts(stamp),
                None if day is None else dt.date.fromisoformat(day),
                None if flag is None else bool(flag),
                doc,
                uid,
                raw,
                txt,
                big,
                f8,
            )
        )
    return expected


@pytest.mark.parametrize("warehouse", WAREHOUSES)
def test_sqlite_source_values_round_trip(
    warehouse: str, tmp_path: Path, make_warehouse: Callable[[str], str]
) -> None:
    path = tmp_path / "fidelity.db"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE fidelity (id INTEGER PRIMARY KEY, d12 DECIMAL(12, 2), "
            "d18 DECIMAL(19, 0), ts TIMESTAMP, day DATE, flag BOOLEAN, doc JSON, uid UUID, "
            "raw BLOB, txt TEXT, big BIGINT, f8 REAL)"
        )
        conn.executemany(f"INSERT INTO fidelity VALUES ({', '.join('?' * 12)})", SQ_ROWS)
    conn.close()
    warehouse_url = make_warehouse(warehouse)

    _load("sqlite", f"sqlite:///{path}", warehouse_url)

    assert _bronze(warehouse_url, SQ_COLUMNS) == _sqlite_expected()


def test_postgres_writer_without_pgpq_writes_the_same_values(
    pg_source: str, make_warehouse: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fallback writer (psycopg's binary `write_row`, no pgpq) is exact too."""
    import datakits.writers.postgres as pg_writer

    monkeypatch.setattr(pg_writer, "_encoder", lambda: None)
    source_url, warehouse_url = _pg_source(pg_source), make_warehouse("postgres")

    _load("postgres", source_url, warehouse_url)

    assert _bronze(warehouse_url, PG_COLUMNS) == _pg_expected(source_url)


@pytest.mark.parametrize("warehouse", WAREHOUSES)
def test_sqlite_mysql_style_columns_load_as_documented(
    warehouse: str, tmp_path: Path, make_warehouse: Callable[[str], str]
) -> None:
    """The MySQL edge matrix on SQLite, whose declared types are affinities only."""
    path = tmp_path / "edges.db"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE fidelity (id INTEGER PRIMARY KEY, ubig BIGINT UNSIGNED, d65 DECIMAL(65, "
            "30), bits BIT(8), doc JSON, yr YEAR, day DATE, moment DATETIME)"
        )
        conn.executemany(
            "INSERT INTO fidelity VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (1, BIG, "12345678901234567890123456789012345.123456789012345678901234567891",
                 255, JSON_TEXT, 2024, "0000-00-00", "0000-00-00 00:00:00"),
                (2, 0, 0.5, 0, "[]", 1901, "2024-02-29", "2024-02-29 12:00:00.5"),
            ],
        )  # fmt: skip
    conn.close()
    warehouse_url = make_warehouse(warehouse)
    _load("sqlite", f"sqlite:///{path}", warehouse_url)
    got = _bronze(warehouse_url, ["id", "ubig", "d65", "bits", "doc", "yr", "day", "moment"])
    assert got == [  # SQLite's NUMERIC affinity stored the 65-digit text as a REAL
        (1, BIG, "1.234567890123457e+34",
         Decimal(255), JSON_TEXT, "2024", None, None),
        (2, 0, "0.5", Decimal(0), "[]", "1901", dt.date(2024, 2, 29),
         dt.datetime(2024, 2, 29, 12, 0, 0, 500000)),
    ]  # fmt: skip


def test_sqlite_unsigned_beyond_int64_fails_the_load(
    tmp_path: Path, make_warehouse: Callable[[str], str]
) -> None:
    """SQLite keeps 2^64 - 1 only as a float: refused, never rounded into an integer."""
    url = sqlite_table_url(tmp_path, "CREATE TABLE fidelity (id INTEGER, ubig BIGINT UNSIGNED)",
                           [(1, 18_446_744_073_709_551_615.0)])  # what SQLite stores  # fmt: skip
    with pytest.raises(LoadFailed, match=r"column 'ubig'"):
        _load("sqlite", url, make_warehouse("duckdb"))


def test_postgres_writer_without_pgpq_writes_arrays_money_and_real(
    pg_source: str, make_warehouse: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fallback writer knows the list and float4 columns too."""
    import datakits.writers.postgres as pg_writer

    monkeypatch.setattr(pg_writer, "_encoder", lambda: None)
    _execute(pg_source, "CREATE TABLE edges (id integer, ints int[], texts text[], "
             "nums numeric(12, 2)[], reals real[], cash money, f4 real, code char(4))",
             "INSERT INTO edges VALUES (1, '{1,NULL}', '{a,NULL}', '{1.50}', '{0.1}', 1.25, "
             "0.1, 'x'), (2, NULL, '{}', NULL, NULL, NULL, NULL, NULL)")  # fmt: skip
    warehouse_url = make_warehouse("postgres")
    _edge_load(pg_source, warehouse_url, "postgres")
    got = _as_text(warehouse_url, ["ints", "texts", "nums", "reals", "cash", "f4", "code"], "edges")
    assert got == [
        ("{1,NULL}", "{a,NULL}", "{1.50}", "{0.1}", "1.25", "0.1", "x"),
        (None, "{}", None, None, None, None, None),
    ]

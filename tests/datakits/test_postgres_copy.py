"""The PostgreSQL COPY fast path: same rows and values as the cursor path, WHERE included.

The cursor path (`SqlTableReader.batches`) is the reference: COPY must read exactly the
rows `statement()` selects, with the same Arrow values, only faster. Also the stream
plumbing it rides on (`datakits.sources.arrowstream`).
"""

from __future__ import annotations

import struct
import threading
import time
from collections.abc import Iterator

import pyarrow as pa
import pytest

from datakits.errors import LoadFailed
from datakits.sources.arrowstream import prefetch, rebatch
from datakits.sources.postgres import COPY_ENV, PostgresReader
from datakits.spec import TableSpec
from tests.datakits.bronze_state import execute

TYPES_DDL = (
    "CREATE TABLE typed (id bigint PRIMARY KEY, small smallint, i integer, r real, "
    "d double precision, n numeric(12, 3), loose numeric, wide numeric(50, 5), "
    "t text, v varchar(10), c char(3), b boolean, day date, ts timestamp(3), "
    "tz timestamptz, clock time, j json, jb jsonb, u uuid, raw bytea, "
    "mood mood, span interval)"
)
TYPES_ROWS = (
    "INSERT INTO typed SELECT g, (g % 32000)::smallint, g * 3, g / 7.0, g / 3.0, "
    "round(g / 9.0, 3), CASE WHEN g % 5 = 0 THEN 'NaN'::numeric ELSE g * 1e-9 END, "
    "g * 1e30 + 0.5, 'text ' || g || ' ü 😀', 'v' || (g % 1000), 'ab', g % 2 = 0, "
    "DATE '2000-01-01' + g, TIMESTAMP '2020-01-01' + g * interval '1.001 s', "
    "TIMESTAMPTZ '2020-01-01 00:00+02' + g * interval '1 min', TIME '00:00' + g * interval '1 s', "
    "json_build_object('g', g, 'x', 1.10), jsonb_build_object('g', g, 'big', 1e20), "
    "md5(g::text)::uuid, decode(md5(g::text), 'hex'), "
    "(ARRAY['sad', 'ok', 'happy'])[1 + g % 3]::mood, g * interval '1 minute' "
    "FROM generate_series(1, 2500) g"
)


def _read(url: str, spec: TableSpec, *, copy: bool, monkeypatch: pytest.MonkeyPatch) -> pa.Table:
    monkeypatch.setenv(COPY_ENV, "1" if copy else "0")
    with PostgresReader(url, spec) as reader:
        return pa.Table.from_batches(list(reader.batches()), schema=reader.schema)


def test_copy_path_reads_what_the_cursor_path_reads(
    pg_source: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    execute(
        pg_source,
        "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')",
        TYPES_DDL,
        TYPES_ROWS,
        "INSERT INTO typed (id) VALUES (0)",  # a row of NULLs
    )
    spec = TableSpec(name="typed", batch_size=1000)

    fast = _read(pg_source, spec, copy=True, monkeypatch=monkeypatch)
    slow = _read(pg_source, spec, copy=False, monkeypatch=monkeypatch)

    assert fast.num_rows == 2501
    # Two documented differences: the interval's text is PostgreSQL's own (`00:01:00`) on
    # COPY, Python's timedelta (`0:01:00`) on the cursor path; and a `real` is widened
    # bit-exactly on COPY, while the cursor path parses the server's shortest text for it.
    same = [name for name in fast.schema.names if name not in ("span", "r")]
    fast, slow = fast.sort_by("id"), slow.sort_by("id")
    assert fast.select(same).equals(slow.select(same))
    assert fast.column("span").to_pylist()[1:3] == ["00:01:00", "00:02:00"]
    float32 = struct.unpack("f", struct.pack("f", 1 / 7))[0]
    assert fast.column("r").to_pylist()[1] == float32 == 0.1428571492433548


def test_copy_path_bounds_batches_by_batch_size(
    pg_source: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    execute(pg_source, "CREATE TABLE big AS SELECT g AS id FROM generate_series(1, 1234) g")
    monkeypatch.setenv(COPY_ENV, "1")
    with PostgresReader(pg_source, TableSpec(name="big", batch_size=100)) as reader:
        batches = list(reader.batches())
    # one driver batch of 1,234 rows, cut into slices of batch_size rows
    assert [b.num_rows for b in batches] == [100] * 12 + [34]
    assert pa.Table.from_batches(batches).column("id").to_pylist() == list(range(1, 1235))


@pytest.mark.parametrize("copy", [True, False], ids=["copy", "cursor"])
def test_where_values_are_quoted_not_spliced(
    pg_source: str, monkeypatch: pytest.MonkeyPatch, copy: bool
) -> None:
    """Values with quotes, percent signs and backslashes select rows; they never run."""
    nasty = ["it's", "100%", "back\\slash", "'); DROP TABLE notes; --", "%(x)s", "{0}"]
    execute(pg_source, "CREATE TABLE notes (id integer, body text)")
    execute(
        pg_source,
        "INSERT INTO notes VALUES "
        + ", ".join(f"({i}, {_pg_literal(body)})" for i, body in enumerate(nasty)),
        "INSERT INTO notes VALUES (100, 'plain')",
    )
    spec = TableSpec.model_validate(
        {"name": "notes", "filter": [{"column": "body", "op": "in", "value": nasty}]}
    )
    monkeypatch.setenv(COPY_ENV, "1" if copy else "0")
    from datakits.filters import filter_conditions

    with PostgresReader(pg_source, spec) as reader:
        reader.where = tuple(filter_conditions(reader.source_table, spec.filter))
        rows = pa.Table.from_batches(list(reader.batches()), schema=reader.schema)
    assert sorted(rows.column("body").to_pylist()) == sorted(nasty)
    execute(pg_source, "SELECT count(*) FROM notes")  # the table is still there


def _pg_literal(text: str) -> str:
    """A PostgreSQL string literal for test data (standard_conforming_strings is on)."""
    return "'" + text.replace("'", "''") + "'"


def test_psycopg2_url_reads_through_the_cursor_path(
    pg_source: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """COPY renders its WHERE with psycopg 3's quoting: a psycopg2 URL takes the cursor path."""
    execute(pg_source, "CREATE TABLE t (id integer, doc jsonb)",
            """INSERT INTO t VALUES (1, '{"a": 1.10}'), (2, NULL)""")  # fmt: skip
    monkeypatch.setenv(COPY_ENV, "1")
    url = pg_source.replace("postgresql+psycopg://", "postgresql+psycopg2://")
    with PostgresReader(url, TableSpec(name="t")) as reader:
        rows = pa.Table.from_batches(list(reader.batches()), schema=reader.schema)
    assert rows.to_pylist() == [{"id": 1, "doc": '{"a": 1.10}'}, {"id": 2, "doc": None}]


def test_copy_read_error_is_load_failed(pg_source: str, monkeypatch: pytest.MonkeyPatch) -> None:
    execute(pg_source, "CREATE TABLE t (id integer, v numeric(5, 2))",
            "INSERT INTO t VALUES (1, 1.5), (2, 'NaN')")  # fmt: skip
    monkeypatch.setenv(COPY_ENV, "1")
    with (
        PostgresReader(pg_source, TableSpec(name="t")) as reader,
        pytest.raises(LoadFailed, match=r"source table t: column 'v' cannot be loaded"),
    ):
        list(reader.batches())


# --- stream plumbing ----------------------------------------------------------------------


def _batches(*sizes: int) -> list[pa.RecordBatch]:
    start, out = 0, []
    for size in sizes:
        out.append(pa.record_batch({"n": pa.array(range(start, start + size), pa.int64())}))
        start += size
    return out


def _inside(piece: pa.RecordBatch, batches: list[pa.RecordBatch]) -> bool:
    """`piece`'s values lie in one of `batches`' buffers: a slice of it, not a copy."""
    address = piece.column(0).buffers()[1].address
    for batch in batches:
        data = batch.column(0).buffers()[1]
        if data.address <= address < data.address + data.size:
            return True
    return False


def test_rebatch_cuts_to_at_most_size_in_order_without_copying() -> None:
    given = _batches(7, 3, 15, 1, 0, 4)
    got = list(rebatch(given, 5))
    # 7 -> 5 + 2, 15 -> 3 x 5; smaller batches pass whole, empty ones are dropped
    assert [b.num_rows for b in got] == [5, 2, 3, 5, 5, 5, 1, 4]
    assert pa.Table.from_batches(got).column("n").to_pylist() == list(range(30))
    assert all(_inside(b, given) for b in got)
    assert [b.num_rows for b in rebatch(_batches(12), 5)] == [5, 5, 2]
    assert list(rebatch([], 5)) == []


def test_rebatch_lowers_the_size_for_wide_rows() -> None:
    wide = pa.record_batch({"s": pa.array(["x" * 1000] * 100)})  # ~1 kB per row
    got = list(rebatch([wide, wide], 80, max_bytes=20_000))
    assert [b.num_rows for b in got] == [16, 16, 17, 17, 17, 17] * 2  # 100 -> 6 of <= 19
    # a size lowered by the byte budget cuts evenly: no tail of a few rows per batch
    assert [b.num_rows for b in rebatch([wide], 200, max_bytes=95_000)] == [50, 50]
    # the byte budget above the row count: batch_size binds, exact slices
    assert [b.num_rows for b in rebatch(_batches(30), 8, max_bytes=1 << 20)] == [8, 8, 8, 6]


def test_prefetch_yields_everything_in_order() -> None:
    assert list(prefetch(iter(range(100)), depth=2)) == list(range(100))


def test_prefetch_reraises_the_producers_error_in_order() -> None:
    def produce() -> Iterator[int]:
        yield 1
        yield 2
        raise LoadFailed("source went away")

    got: list[int] = []
    with pytest.raises(LoadFailed, match="source went away"):
        for item in prefetch(produce()):
            got.append(item)
    assert got == [1, 2]


def test_prefetch_stops_the_producer_when_the_consumer_stops() -> None:
    produced: list[int] = []
    closed = threading.Event()

    def produce() -> Iterator[int]:
        try:
            for i in range(1_000_000):
                produced.append(i)
                yield i
        finally:
            closed.set()

    stream = prefetch(produce(), depth=2)
    assert next(stream) == 0
    stream.close()
    assert closed.wait(5)
    time.sleep(0.2)
    assert len(produced) < 10  # at most a few items ahead, never the whole stream

"""A failed load leaves the previous bronze table and audit exactly as they were."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from datakits.errors import LoadFailed
from datakits.load import load_table
from tests.datakits.conftest import make_spec, query, sqlite_table, table_names

N = 1_200


def _events(path: Path) -> str:
    return sqlite_table(
        path,
        "CREATE TABLE events (id INTEGER, v INTEGER, note TEXT)",
        [(i, i * 10, f"note {i}") for i in range(N)],
    )


def _state(url: str) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]], list[str]]:
    return (
        query(url, "SELECT id, v, note, _batch_id FROM bronze.events ORDER BY id"),
        query(url, "SELECT batch_id, rows, status FROM meta.load_audit"),
        table_names(url, "bronze"),
    )


@pytest.fixture(params=["duckdb", "postgres"])
def loaded(
    request: pytest.FixtureRequest, tmp_path: Path, make_warehouse: Callable[[str], str]
) -> tuple[str, str, str]:
    """A warehouse whose bronze.events holds one good load; returns (kind, source, warehouse)."""
    kind = request.param
    source_url, warehouse_url = _events(tmp_path / "events.db"), make_warehouse(kind)
    spec = make_spec("sqlite", kind, {"name": "events", "batch_size": 100})
    load_table(spec, spec.tables[0], source_url, warehouse_url)
    return kind, source_url, warehouse_url


def test_bad_value_mid_stream_rolls_back(loaded: tuple[str, str, str], tmp_path: Path) -> None:
    kind, source_url, warehouse_url = loaded
    before = _state(warehouse_url)
    assert len(before[0]) == N
    with sqlite3.connect(tmp_path / "events.db") as conn:  # batch 11 of 12 goes bad
        conn.execute("UPDATE events SET v = 'oops' WHERE id = 1050")
    conn.close()
    spec = make_spec("sqlite", kind, {"name": "events", "batch_size": 100})

    with pytest.raises(LoadFailed, match=r"column 'v' cannot be loaded as int64 \(value 'oops'\)"):
        load_table(spec, spec.tables[0], source_url, warehouse_url)

    assert _state(warehouse_url) == before
    assert before[2] == ["events"]  # no staging table left behind


def test_interrupt_mid_stream_rolls_back(loaded: tuple[str, str, str]) -> None:
    """A crash (here KeyboardInterrupt, as on SIGINT) after two batches changes nothing."""
    kind, source_url, warehouse_url = loaded
    before = _state(warehouse_url)

    class _Interrupt:
        calls = 0

        def start(self, label: str) -> None:
            pass

        def advance(self, rows: int, nbytes: int) -> None:
            self.calls += 1
            if self.calls == 3:
                raise KeyboardInterrupt

        def finish(self, summary: str) -> None:
            pass

    spec = make_spec("sqlite", kind, {"name": "events", "batch_size": 100})
    with pytest.raises(KeyboardInterrupt):
        load_table(spec, spec.tables[0], source_url, warehouse_url, progress=_Interrupt())

    assert _state(warehouse_url) == before


def test_warehouse_rejecting_a_row_rolls_back(
    tmp_path: Path, make_warehouse: Callable[[str], str]
) -> None:
    """PostgreSQL text cannot hold NUL: COPY fails in the 3rd batch, inside the swap txn."""
    source_url = sqlite_table(
        tmp_path / "notes.db",
        "CREATE TABLE notes (id INTEGER, body TEXT)",
        [(i, f"body {i}") for i in range(300)],
    )
    warehouse_url = make_warehouse("postgres")
    spec = make_spec("sqlite", "postgres", {"name": "notes", "batch_size": 100})
    good = load_table(spec, spec.tables[0], source_url, warehouse_url)
    with sqlite3.connect(tmp_path / "notes.db") as conn:
        conn.execute("UPDATE notes SET body = ? WHERE id = 250", ("nul \x00 here",))
    conn.close()

    with pytest.raises(
        LoadFailed, match=r"^loading bronze\.notes failed and was rolled back"
    ) as exc:
        load_table(spec, spec.tables[0], source_url, warehouse_url)

    assert "\n" not in str(exc.value)
    assert query(warehouse_url, "SELECT count(*), min(_batch_id) FROM bronze.notes") == [
        (300, good.batch_id)
    ]
    assert query(warehouse_url, "SELECT batch_id FROM meta.load_audit") == [(good.batch_id,)]
    assert table_names(warehouse_url, "bronze") == ["notes"]


@pytest.mark.parametrize("kind", ["duckdb", "postgres"])
def test_failed_first_load_creates_nothing(
    kind: str, tmp_path: Path, make_warehouse: Callable[[str], str]
) -> None:
    source_url = sqlite_table(tmp_path / "bad.db", "CREATE TABLE bad (id INTEGER)", [(1,), ("x",)])
    warehouse_url = make_warehouse(kind)
    spec = make_spec("sqlite", kind, {"name": "bad"})

    with pytest.raises(LoadFailed):
        load_table(spec, spec.tables[0], source_url, warehouse_url)

    assert table_names(warehouse_url, "bronze") == []

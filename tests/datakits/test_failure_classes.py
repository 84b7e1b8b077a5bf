"""Every failure of `runner extract` gets a contract exit code, never "unexpected" (1).

Through the real runner against real servers: permanent spec mistakes exit 2 on every
source (PostgreSQL, MariaDB, SQLite), a source connection killed mid-COPY exits 3, a
DuckDB file on a full disk exits 4 with the disk's own error, a DuckDB path that cannot
exist exits 2. Each case checks the exit code, the one line, and that bronze, its
watermark and the audit are as the last good load left them.
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from datakits.load import load_table
from devtools.mariadb import MariaDBServer
from devtools.postgres import PostgresCluster
from tests.datakits.bronze_state import audit_count, checksum, execute, watermark
from tests.datakits.conftest import make_spec
from tests.datakits.runner_proc import run_extract, start_extract

INCREMENTAL = {"mode": "incremental", "cursor": "ver", "primary_key": ["id"]}
SOURCES = ["postgres", "mysql", "sqlite"]


def _state(warehouse: str) -> tuple[Any, ...]:
    return checksum(warehouse, "ev"), watermark(warehouse, "ev"), audit_count(warehouse, "ev")


@pytest.fixture
def source(
    request: pytest.FixtureRequest,
    pg_source: str,
    tmp_path: Path,
) -> tuple[str, str]:
    """(kind, url) of a source holding `ev` (1,000 rows), of the parametrised kind."""
    kind = request.param
    ddl = "CREATE TABLE ev (id bigint PRIMARY KEY, v varchar(20), ver bigint NOT NULL)"
    rows = [(i, f"v{i}", i) for i in range(1, 1001)]
    if kind == "postgres":
        url = pg_source
    elif kind == "mysql":
        server: MariaDBServer = request.getfixturevalue("mariadb_server")
        digest = hashlib.sha1(request.node.nodeid.encode(), usedforsecurity=False).hexdigest()
        url = server.create_database(f"src_{digest[:12]}")
    else:
        path = tmp_path / "source.db"
        with contextlib.closing(sqlite3.connect(path)) as conn, conn:
            conn.execute(ddl)
            conn.executemany("INSERT INTO ev VALUES (?, ?, ?)", rows)
        return kind, f"sqlite:///{path}"
    execute(url, ddl)
    values = ", ".join(f"({i}, 'v{i}', {i})" for i, _, _ in rows)
    execute(url, f"INSERT INTO ev VALUES {values}")
    return kind, url


@pytest.fixture
def loaded(source: tuple[str, str], make_warehouse: Callable[[str], str]) -> tuple[str, str, str]:
    """(source kind, source url, DuckDB warehouse url) after one good load of `ev`."""
    kind, url = source
    warehouse = make_warehouse("duckdb")
    spec = make_spec(kind, "duckdb", {"name": "ev", **INCREMENTAL})
    load_table(spec, spec.tables[0], url, warehouse)
    return kind, url, warehouse


def _fails(loaded: tuple[str, str, str], code: int, table: dict[str, Any], **source: Any) -> str:
    kind, url, warehouse = loaded
    before = _state(warehouse)
    spec = make_spec(kind, "duckdb", {"name": "ev", **INCREMENTAL, **table}, **source)
    done = run_extract(spec, str(table.get("name", "ev")), url, warehouse)
    assert done.returncode == code, done.stderr
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert _state(warehouse) == before  # bronze, watermark and audit untouched
    return lines[0]


ALL = pytest.mark.parametrize("source", SOURCES, indirect=True)


@ALL
def test_missing_source_schema_is_permanent(loaded: tuple[str, str, str]) -> None:
    """MariaDB answered `unknown database "public"` and PostgreSQL "no table": both exit 2."""
    line = _fails(loaded, 2, {}, schema="nosuchschema")
    assert line.startswith("runner extract: source schema nosuchschema does not exist in ")
    assert "(schemas: " in line
    assert line.endswith("fix `source.schema` in the tenant's spec")


@ALL
def test_missing_table_is_permanent(loaded: tuple[str, str, str]) -> None:
    line = _fails(loaded, 2, {"name": "evs"})
    assert line.startswith("runner extract: source table evs does not exist in ")
    assert line.endswith("(tables: ev)")


@ALL
def test_missing_column_is_permanent(loaded: tuple[str, str, str]) -> None:
    line = _fails(loaded, 2, {"columns": ["id", "ver", "colour"]})
    assert line == "runner extract: source table ev has no column colour (columns: id, v, ver)"


@ALL
def test_missing_filter_column_is_permanent(loaded: tuple[str, str, str]) -> None:
    line = _fails(loaded, 2, {"filter": [{"column": "colour", "op": "=", "value": "red"}]})
    assert line == (
        "runner extract: filter on source table ev: no column colour (columns: id, v, ver)"
    )


@pytest.mark.parametrize("source", ["postgres", "mysql"], indirect=True)
def test_missing_source_database_is_permanent(loaded: tuple[str, str, str]) -> None:
    kind, url, warehouse = loaded
    line = _fails((kind, url.rsplit("/", 1)[0] + "/nosuchdb", warehouse), 2, {})
    assert line.startswith("runner extract: the source database nosuchdb does not exist on ")
    assert line.endswith("fix the database name in the source connection")


# --- the source connection lost mid-COPY -----------------------------------------------------


def test_source_killed_mid_copy_is_unavailable(
    pg_cluster: PostgresCluster, pg_source: str, make_warehouse: Callable[[str], str]
) -> None:
    """`pg_terminate_backend` on the COPY's session: exit 3, bronze as the last good load."""
    warehouse = make_warehouse("duckdb")
    execute(
        pg_source,
        "CREATE TABLE ev (id bigint PRIMARY KEY, v text, ver bigint NOT NULL)",
        "INSERT INTO ev SELECT g, repeat('x', 100), g FROM generate_series(1, 1000) g",
    )
    spec = make_spec("postgres", "duckdb", {"name": "ev", **INCREMENTAL, "batch_size": 5000})
    load_table(spec, spec.tables[0], pg_source, warehouse)
    execute(
        pg_source,
        "INSERT INTO ev SELECT g, repeat('x', 100), g FROM generate_series(1001, 3000000) g",
    )
    before = _state(warehouse)
    database = pg_source.rsplit("/", 1)[1]
    proc = start_extract(spec, "ev", pg_source, warehouse, RUNNER_PROGRESS_INTERVAL="0")
    assert proc.stderr is not None
    killed = 0
    try:
        with psycopg.connect(pg_cluster.dsn("postgres"), autocommit=True) as admin:
            for line in proc.stderr:  # a progress line per batch: rows are flowing
                if "rows" in line and not killed:
                    killed = admin.execute(
                        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) "
                        # Only the COPY's own session: a parallel plan adds workers
                        # that show the same query (they end with their leader).
                        "FROM pg_stat_activity WHERE datname = %s AND query LIKE 'COPY%%' "
                        "AND backend_type = 'client backend'",
                        (database,),
                    ).fetchone()[0]  # type: ignore[index]
                    break
        rest = proc.stderr.read()
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert killed == 1
    assert proc.returncode == 3, rest
    last = rest.splitlines()[-1]
    assert last.startswith("runner extract: reading source table ev: source connection lost after ")
    # libpq words it as the FATAL message or as the socket closing, depending on timing.
    assert any(
        why in last
        for why in ("terminating connection due to administrator command", "server closed")
    ), last
    assert int(last.split("lost after ")[1].split(" rows")[0].replace(",", "")) > 0
    assert last.endswith("; bronze unchanged")
    assert _state(warehouse) == before


# --- DuckDB warehouse paths and disks --------------------------------------------------------


@contextlib.contextmanager
def _tmpfs(path: Path, *options: str) -> Iterator[Path]:
    path.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", ",".join(("size=4m", *options)), "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip()}): needs root")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _sqlite_source(path: Path, rows: int) -> str:
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("CREATE TABLE ev (id INTEGER PRIMARY KEY, v TEXT, ver INTEGER NOT NULL)")
        conn.execute(
            "WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < ?) "
            "INSERT INTO ev SELECT i, printf('%.60d', i), i FROM g",
            (rows,),
        )
    return f"sqlite:///{path}"


def test_duckdb_path_under_a_file_is_permanent(tmp_path: Path) -> None:
    source = _sqlite_source(tmp_path / "source.db", 10)
    (tmp_path / "plain-file").write_text("not a directory")
    warehouse_path = tmp_path / "plain-file" / "wh" / "warehouse.duckdb"
    spec = make_spec("sqlite", "duckdb", {"name": "ev"})
    done = run_extract(spec, "ev", source, f"duckdb:///{warehouse_path}")
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        f"runner extract: the DuckDB warehouse {warehouse_path} cannot be created: its "
        f"directory {warehouse_path.parent} cannot be made (Not a directory): fix the "
        "warehouse path"
    ]
    assert (tmp_path / "plain-file").read_text() == "not a directory"


def test_duckdb_path_on_a_read_only_disk_is_permanent(tmp_path: Path) -> None:
    source = _sqlite_source(tmp_path / "source.db", 10)
    with _tmpfs(tmp_path / "ro", "ro") as disk:
        warehouse_path = disk / "warehouse.duckdb"
        spec = make_spec("sqlite", "duckdb", {"name": "ev"})
        done = run_extract(spec, "ev", source, f"duckdb:///{warehouse_path}")
        assert done.returncode == 2, done.stderr
        lines = done.stderr.splitlines()
        assert len(lines) == 1, done.stderr
        assert lines[0].startswith(f"runner extract: the DuckDB warehouse {warehouse_path} ")
        assert "Read-only file system" in lines[0]
        assert lines[0].endswith("fix the warehouse path or its directory's permissions")
        assert list(disk.iterdir()) == []


def test_duckdb_disk_full_keeps_the_real_cause(tmp_path: Path) -> None:
    """A full disk mid-INSERT: exit 4 naming the disk error, not "transaction is aborted"."""
    source = _sqlite_source(tmp_path / "source.db", 5)
    with _tmpfs(tmp_path / "disk") as disk:
        warehouse = f"duckdb:///{disk / 'warehouse.duckdb'}"
        spec = make_spec("sqlite", "duckdb", {"name": "ev", **INCREMENTAL})
        load_table(spec, spec.tables[0], source, warehouse)
        before = _state(warehouse)
        big = _sqlite_source(tmp_path / "big.db", 400_000)  # ~40 MB in bronze: > 4 MB disk
        done = run_extract(spec, "ev", big, warehouse)
        assert done.returncode == 4, done.stderr
        lines = done.stderr.splitlines()
        assert len(lines) == 1, done.stderr
        assert lines[0].startswith(
            "runner extract: loading bronze.ev failed and was rolled back (bronze unchanged): "
        )
        assert "No space left on device" in lines[0]
        assert "transaction is aborted" not in lines[0]
        assert _state(warehouse) == before


def test_duckdb_lock_wait_takes_the_whole_timeout(tmp_path: Path) -> None:
    """A held warehouse file with RUNNER_LOCK_TIMEOUT=T: exit 5, and only after T seconds."""
    source = _sqlite_source(tmp_path / "source.db", 10)
    warehouse_path = tmp_path / "warehouse.duckdb"
    spec = make_spec("sqlite", "duckdb", {"name": "ev", **INCREMENTAL})
    load_table(spec, spec.tables[0], source, f"duckdb:///{warehouse_path}")
    before = _state(f"duckdb:///{warehouse_path}")
    timeout = 3.0
    holder = subprocess.Popen(  # another process holds the file (DuckDB: one writer process)
        [
            sys.executable,
            "-c",
            "import sys, duckdb; c = duckdb.connect(sys.argv[1]); print('held', flush=True); "
            "sys.stdin.read()",
            str(warehouse_path),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        done = run_extract(
            spec, "ev", source, f"duckdb:///{warehouse_path}", RUNNER_LOCK_TIMEOUT=str(timeout)
        )
        waited = time.monotonic() - started
    finally:
        holder.communicate("")
    assert done.returncode == 5, done.stderr
    assert "is in use by another process" in done.stderr
    assert waited >= timeout  # the full timeout, never up to 2 s less
    assert _state(f"duckdb:///{warehouse_path}") == before

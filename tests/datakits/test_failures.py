"""Failures through the real runner: one line, a distinct exit code, and no partial data.

Exit codes (`datakits.errors`): 2 the spec does not match the source (missing table or
column: retrying cannot help), 3 the source cannot be reached or refuses the session
(server down, wrong password: retrying may help once someone fixes it), 4 the load
failed and was rolled back, 5 another load holds the table (see test_concurrency).

Each case first makes a good load, then fails a second one and checks that bronze, its
watermark and the audit are exactly as the good load left them.

Wrong credentials are real: a role with a SCRAM password, and a pg_hba rule that makes
the test cluster ask that role (only that role) for it.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from datakits.load import load_table
from devtools.postgres import PostgresCluster
from tests.datakits.bronze_state import audit_count, checksum, execute, watermark
from tests.datakits.conftest import make_spec, query
from tests.datakits.runner_proc import RUNNER, run_extract, runner_env

ROLE, PASSWORD = "dk_loader", "right-horse-battery"
INCREMENTAL = {"mode": "incremental", "cursor": "ver", "primary_key": ["id"]}


@pytest.fixture(scope="module")
def password_role(pg_cluster: PostgresCluster) -> Iterator[str]:
    """A login role that must give its password over TCP; the rule is removed afterwards."""
    admin = pg_cluster.dsn("postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        hba = Path(str(conn.execute("SHOW hba_file").fetchone()[0]))  # type: ignore[index]
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(ROLE)))
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(ROLE), sql.Literal(PASSWORD)
            )
        )
        original = hba.read_text()
        rule = f"host all {ROLE} 127.0.0.1/32 scram-sha-256\n"
        hba.write_text(rule + original)  # first match wins: before the `trust` lines
        conn.execute("SELECT pg_reload_conf()")
    try:
        yield ROLE
    finally:
        hba.write_text(original)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("SELECT pg_reload_conf()")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as(url: str, user: str, password: str) -> str:
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{user}:{password}@{rest.split('@', 1)[1]}"


def _state(warehouse: str) -> tuple[Any, ...]:
    return checksum(warehouse, "ev"), watermark(warehouse, "ev"), audit_count(warehouse, "ev")


@pytest.fixture(params=["postgres"])
def loaded(
    request: pytest.FixtureRequest,
    pg_source: str,
    make_warehouse: Callable[[str], str],
    password_role: str,
) -> tuple[str, str, str]:
    """(kind, source, warehouse) after one good incremental load of `ev`."""
    kind = request.param
    warehouse = make_warehouse(kind)
    execute(
        pg_source,
        "CREATE TABLE ev (id bigint PRIMARY KEY, v text, ver bigint NOT NULL)",
        "INSERT INTO ev SELECT g, 'v' || g, g FROM generate_series(1, 1000) g",
        f"GRANT SELECT ON ev TO {password_role}",
    )
    spec = make_spec("postgres", kind, {"name": "ev", **INCREMENTAL})
    load_table(spec, spec.tables[0], pg_source, warehouse)
    execute(pg_source, "UPDATE ev SET v = 'changed', ver = 2000 WHERE id <= 10")
    return kind, pg_source, warehouse


def _fails(kind: str, source: str, warehouse: str, table: dict[str, Any], code: int) -> str:
    before = _state(warehouse)
    spec = make_spec("postgres", kind, {"name": "ev", **INCREMENTAL, **table})
    done = run_extract(spec, str(table.get("name", "ev")), source, warehouse)
    assert done.returncode == code, done.stderr
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert _state(warehouse) == before  # nothing partial, watermark unmoved
    return lines[0]


def test_source_down(loaded: tuple[str, str, str]) -> None:
    kind, source, warehouse = loaded
    down = _as(source, "postgres", "pw-not-shown").replace(
        source.split("@", 1)[1].split("/", 1)[0], f"127.0.0.1:{_closed_port()}"
    )
    line = _fails(kind, down, warehouse, {}, 3)
    assert line.startswith("runner extract: cannot connect to the source postgresql+psycopg://")
    assert "pw-not-shown" not in line


BOTH = pytest.mark.parametrize("loaded", ["postgres", "duckdb"], indirect=True)


@BOTH
def test_wrong_password(loaded: tuple[str, str, str], password_role: str) -> None:
    kind, source, warehouse = loaded
    line = _fails(kind, _as(source, password_role, "wrong-secret"), warehouse, {}, 3)
    assert f'password authentication failed for user "{password_role}"' in line
    assert "wrong-secret" not in line
    # The same role with its password is let in: it was the password, not the setup.
    ok = run_extract(
        make_spec("postgres", kind, {"name": "ev", **INCREMENTAL}),
        "ev",
        _as(source, password_role, PASSWORD),
        warehouse,
    )
    assert ok.returncode == 0, ok.stderr
    assert query(warehouse, "SELECT count(*) FROM bronze.ev WHERE v = 'changed'") == [(10,)]


def test_missing_table(loaded: tuple[str, str, str]) -> None:
    kind, source, warehouse = loaded
    line = _fails(kind, source, warehouse, {"name": "evs"}, 2)
    assert line == (f"runner extract: source table evs does not exist in {source} (tables: ev)")


@BOTH
def test_missing_column(loaded: tuple[str, str, str]) -> None:
    kind, source, warehouse = loaded
    line = _fails(kind, source, warehouse, {"columns": ["id", "ver", "colour"]}, 2)
    assert line == "runner extract: source table ev has no column colour (columns: id, v, ver)"


def test_missing_cursor_column(loaded: tuple[str, str, str]) -> None:
    kind, source, warehouse = loaded
    line = _fails(kind, source, warehouse, {"cursor": "updated_at"}, 2)
    assert line == (
        "runner extract: source table ev has no cursor column updated_at (columns: id, v, ver)"
    )


def test_invalid_table_spec(loaded: tuple[str, str, str]) -> None:
    """A spec the runner cannot accept never reaches the source or the warehouse."""
    kind, source, warehouse = loaded
    before = _state(warehouse)
    spec = make_spec("postgres", kind, {"name": "ev"})
    env_json = spec.to_env_json().replace('"name":"ev"', '"name":"ev","mode":"incremental"')
    env = runner_env(spec, source, warehouse)
    env["RUNNER_SPEC"] = env_json
    done = subprocess.run(
        [RUNNER, "extract", "--table", "ev"], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "runner extract: RUNNER_SPEC is invalid at tables.0: Value error, mode incremental "
        "needs `cursor`: the column whose value grows when a row is added or changed (e.g. "
        "an id or an updated_at timestamp)"
    ]
    assert _state(warehouse) == before

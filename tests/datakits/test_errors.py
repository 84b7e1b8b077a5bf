"""Each expected failure is the right class with one clear line, and never a password."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from datakits.errors import ConfigError, SourceUnavailable
from datakits.load import load_table
from datakits.spec import LoadSpec
from devtools.postgres import PostgresCluster
from tests.datakits.conftest import make_spec, sqlite_table


def _load(spec: LoadSpec, source_url: str, warehouse_url: str) -> None:
    load_table(spec, spec.tables[0], source_url, warehouse_url)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("source", ["sqlite", "postgres"])
def test_missing_table_names_what_exists(
    source: str, make_source: Callable[[str], str], tmp_path: Path
) -> None:
    spec = make_spec(source, "duckdb", {"name": "nope"})
    with pytest.raises(ConfigError, match=r"source table nope does not exist .*\(tables: sample\)"):
        _load(spec, make_source(source), f"duckdb:///{tmp_path / 'w.duckdb'}")
    assert not (tmp_path / "w.duckdb").exists()  # nothing was written


def test_missing_schema_is_named(pg_source: str, tmp_path: Path) -> None:
    spec = make_spec("postgres", "duckdb", {"name": "sample"}, schema="nowhere")
    with pytest.raises(ConfigError, match=r"source schema nowhere does not exist .*\(schemas: "):
        _load(spec, pg_source, f"duckdb:///{tmp_path / 'w.duckdb'}")


@pytest.mark.parametrize("source", ["sqlite", "postgres"])
def test_missing_column_names_what_exists(
    source: str, make_source: Callable[[str], str], tmp_path: Path
) -> None:
    spec = make_spec(source, "duckdb", {"name": "sample", "columns": ["id", "colour"]})
    with pytest.raises(
        ConfigError, match=r"source table sample has no column colour \(columns: id, name, amount"
    ):
        _load(spec, make_source(source), f"duckdb:///{tmp_path / 'w.duckdb'}")


def test_unreachable_postgres_source_hides_password(tmp_path: Path) -> None:
    url = f"postgres://loader:s3cret-pw@127.0.0.1:{_closed_port()}/shop"
    spec = make_spec("postgres", "duckdb", {"name": "sample"})
    with pytest.raises(SourceUnavailable) as exc:
        _load(spec, url, f"duckdb:///{tmp_path / 'w.duckdb'}")
    message = str(exc.value)
    assert message.startswith("cannot connect to the source postgresql+psycopg://loader:***@")
    assert "s3cret" not in message
    assert "\n" not in message


def test_missing_database_is_a_config_error(pg_cluster: PostgresCluster, tmp_path: Path) -> None:
    # The server refuses the session (FATAL at connect time), but a retry cannot help:
    # the URL names a database that is not there (exit 2, not 3).
    url = f"postgresql://postgres:pw@127.0.0.1:{pg_cluster.port}/no_such_db"
    spec = make_spec("postgres", "duckdb", {"name": "sample"})
    with pytest.raises(ConfigError, match=r'database "no_such_db" does not exist'):
        _load(spec, url, f"duckdb:///{tmp_path / 'w.duckdb'}")


def test_unreachable_postgres_warehouse(make_source: Callable[[str], str]) -> None:
    spec = make_spec("sqlite", "postgres", {"name": "sample"})
    url = f"postgresql://u:hunter2@127.0.0.1:{_closed_port()}/wh"
    with pytest.raises(SourceUnavailable, match=r"^cannot connect to the warehouse") as exc:
        _load(spec, make_source("sqlite"), url)
    assert "hunter2" not in str(exc.value)


def test_missing_sqlite_file_is_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    spec = make_spec("sqlite", "duckdb", {"name": "sample"})
    with pytest.raises(SourceUnavailable, match=f"sqlite database {missing} does not exist"):
        _load(spec, f"sqlite:///{missing}", f"duckdb:///{tmp_path / 'w.duckdb'}")
    assert not missing.exists()


def test_sqlite_source_is_opened_read_only(tmp_path: Path) -> None:
    from datakits.sources.sqlite import SqliteReader
    from datakits.spec import TableSpec

    url = sqlite_table(tmp_path / "s.db", "CREATE TABLE t (id INTEGER)", [(1,)])
    with SqliteReader(url, TableSpec(name="t")) as reader:
        from sqlalchemy import text
        from sqlalchemy.exc import OperationalError

        assert reader._conn is not None
        with pytest.raises(OperationalError, match="readonly"):
            reader._conn.execute(text("DELETE FROM t"))


def test_url_of_the_wrong_kind_is_a_config_error(tmp_path: Path) -> None:
    spec = make_spec("postgres", "duckdb", {"name": "sample"})
    with pytest.raises(ConfigError, match=r"is a sqlite URL, but the spec declares a postgresql"):
        _load(spec, f"sqlite:///{tmp_path / 'x.db'}", f"duckdb:///{tmp_path / 'w.duckdb'}")


def test_garbage_url_is_a_config_error_without_echo(tmp_path: Path) -> None:
    spec = make_spec("postgres", "duckdb", {"name": "sample"})
    with pytest.raises(ConfigError, match="not a valid SQLAlchemy URL") as exc:
        _load(spec, "not a url with secret", f"duckdb:///{tmp_path / 'w.duckdb'}")
    assert "secret" not in str(exc.value)


def test_reserved_column_name_is_a_config_error(tmp_path: Path) -> None:
    url = sqlite_table(tmp_path / "s.db", "CREATE TABLE t (id INTEGER, _batch_id TEXT)", [])
    spec = make_spec("sqlite", "duckdb", {"name": "t"})
    with pytest.raises(ConfigError, match="_batch_id, reserved for the load columns"):
        _load(spec, url, f"duckdb:///{tmp_path / 'w.duckdb'}")

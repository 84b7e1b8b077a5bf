"""Fixtures shared by the whole suite: the PostgreSQL cluster this test run owns."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import pytest

# Airflow reads its configuration when first imported: give the test run a home of its own.
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="airflow-home-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
# Validated tenant specs are cached on disk; the test run keeps its own cache.
os.environ.setdefault("DAG_FACTORY_CACHE_DIR", tempfile.mkdtemp(prefix="dag-factory-cache-"))

from devtools.mariadb import MariaDBServer
from devtools.postgres import PostgresCluster, free_port


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    """One real PostgreSQL for the session, on its own port and data dir, removed at the end."""
    cluster = PostgresCluster(port=int(os.environ.get("TEST_PG_PORT", "0")) or free_port())
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def mariadb_server() -> Iterator[MariaDBServer]:
    """One real MariaDB for the session, on its own port and data dir, removed at the end."""
    server = MariaDBServer(port=int(os.environ.get("TEST_MARIADB_PORT", "0")) or None)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_database(pg_cluster: PostgresCluster, request: pytest.FixtureRequest) -> str:
    """A fresh database named after the test; returns its SQLAlchemy URL."""
    name = "t_" + "".join(c if c.isalnum() else "_" for c in request.node.name.lower())[:50]
    return pg_cluster.create_database(name)

"""Fixtures shared by the whole suite: the PostgreSQL cluster this test run owns."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from devtools.postgres import PostgresCluster


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    """One real PostgreSQL for the session, on its own port and data dir, removed at the end."""
    cluster = PostgresCluster(port=int(os.environ.get("TEST_PG_PORT", "55432")))
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pg_database(pg_cluster: PostgresCluster, request: pytest.FixtureRequest) -> str:
    """A fresh database named after the test; returns its SQLAlchemy URL."""
    name = "t_" + "".join(c if c.isalnum() else "_" for c in request.node.name.lower())[:50]
    return pg_cluster.create_database(name)

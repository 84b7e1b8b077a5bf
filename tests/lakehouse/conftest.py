"""Fixtures of the lakehouse tests: a real S3-compatible server and SQLite sources."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from itertools import count
from pathlib import Path

import pytest

from datakits.spec import LoadSpec
from devtools.s3 import S3Server

_buckets = count()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """`moto_server` on 127.0.0.1, started by the test run and stopped after it."""
    server = S3Server().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def bucket(s3_server: S3Server) -> str:
    """A new bucket per test: tests never see each other's tables."""
    return s3_server.create_bucket(f"lake-test-{next(_buckets)}")


@pytest.fixture
def lake_url(s3_server: S3Server, bucket: str) -> str:
    return s3_server.warehouse_url(bucket)


def make_source(path: Path, rows: int, *, start: int = 1, extra_column: bool = False) -> str:
    """A SQLite source with table `events(id, amount, note, updated)`; returns its URL."""
    with sqlite3.connect(path) as conn:
        extra = ", tag TEXT" if extra_column else ""
        conn.execute(
            "CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY NOT NULL, "
            f"amount NUMERIC(12, 2), note TEXT, updated INTEGER NOT NULL{extra})"
        )
        values = [
            (i, f"{i}.25", f"note {i}", i, *(("t",) if extra_column else ()))
            for i in range(start, start + rows)
        ]
        marks = ", ".join("?" * len(values[0])) if values else ""
        if values:
            conn.executemany(f"INSERT OR REPLACE INTO events VALUES ({marks})", values)
    return f"sqlite:///{path}"


def make_spec(tenant: str = "lake", **table: object) -> LoadSpec:
    return LoadSpec.model_validate(
        {
            "tenant": tenant,
            "source": {"kind": "sqlite", "connection": {"env": "SRC"}},
            "warehouse": {"kind": "lakehouse", "connection": {"env": "WH"}},
            "tables": [{"name": "events", **table}],
        }
    )


@pytest.fixture(scope="session")
def spark_java() -> str:
    """Java for Spark local mode (pyspark ships Spark's jars, not a JVM); skip without it."""
    import shutil

    java = shutil.which("java")
    if java is None:
        pytest.skip("Spark needs Java 17 (`java` is not on PATH): apt-get install openjdk-17-jre")
    pytest.importorskip("pyspark", reason="the `spark` extra is not installed (make install)")
    return java

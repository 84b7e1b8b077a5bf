"""Fixtures shared by the whole suite: the servers this test run owns, and Airflow."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# Airflow reads its configuration when first imported: give the test run a home of its own.
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="airflow-home-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
# Validated tenant specs are cached on disk; the test run keeps its own cache.
os.environ.setdefault("DAG_FACTORY_CACHE_DIR", tempfile.mkdtemp(prefix="dag-factory-cache-"))

from devtools.compiled import LOCAL_OUTPUT
from devtools.mariadb import MariaDBServer
from devtools.postgres import PostgresCluster, free_port

REPO = Path(__file__).resolve().parents[1]

# pytester runs sample suites in-process: tests/dag_factory/test_markers.py proves the
# derived marks below on one.
pytest_plugins = ["pytester"]

# What a test needs is read off the fixtures it uses (directly or through other fixtures),
# so a test that starts a server can't forget its mark, and `make test-fast` can leave out
# every one of them (its FAST_MARKS: `not (postgres or mariadb or ... or s3)`).
SERVER_MARKS: dict[str, tuple[frozenset[str], str]] = {
    "postgres": (
        frozenset({"pg_cluster", "pg_database"}),
        "starts the PostgreSQL cluster the test run owns (derived from its fixtures)",
    ),
    "mariadb": (
        frozenset({"mariadb_server"}),
        "starts the MariaDB server the test run owns (derived from its fixtures)",
    ),
    "docker": (
        frozenset({"docker_engine", "image_registry", "runner_images"}),
        "starts the Docker engine and image registry the test run owns (derived)",
    ),
    "airflow": (
        frozenset({"airflow_env", "airflow_server", "airflow_server_fab"}),
        "runs real Airflow: `airflow dags test` or `airflow standalone` (derived)",
    ),
    "browser": (
        frozenset({"browser"}),
        "drives a real headless Chromium (derived from its fixtures)",
    ),
    "prometheus": (
        frozenset({"prometheus_stack"}),
        "starts a real Prometheus and Pushgateway (derived from its fixtures)",
    ),
    "s3": (
        frozenset({"s3_server"}),
        "starts the S3-compatible server (moto) the test run owns (derived)",
    ),
    "spark": (
        frozenset({"spark_java"}),
        "runs Spark in local mode (a JVM; needs Java 17 and the `spark` extra) (derived)",
    ),
}


def _committed_tenants() -> Path:
    """A copy of the repository's tenants folder without local build output.

    `make demo` and `dag-factory dbt compile` write `warehouses/<tenant>/compiled/`, which
    turns a tenant's layer tasks into model tasks: the suite must give the same result on
    a fresh clone and in a checkout where the demo ran first.
    """
    view = Path(tempfile.mkdtemp(prefix="tenants-")) / "warehouses"
    shutil.copytree(REPO / "warehouses", view, ignore=shutil.ignore_patterns(*LOCAL_OUTPUT))
    return view


def pytest_configure(config: pytest.Config) -> None:
    """Register the derived marks here, beside the table they come from (--strict-markers);
    point the DAG file at the committed tenants (`_committed_tenants`)."""
    for mark, (_, meaning) in SERVER_MARKS.items():
        config.addinivalue_line("markers", f"{mark}: {meaning}")
    config.addinivalue_line("markers", DBT_MARK)
    os.environ.setdefault("DAG_FACTORY_WAREHOUSES", str(_committed_tenants()))


#: Modules whose tests run whole dbt invocations (3-10 s each, no server): marked `dbt`, so
#: `make test` runs them and `make test-fast` (a minute's budget) leaves them out.
DBT_MODULES = frozenset(
    {
        "tests/benchmarks/test_dbt_project_gen.py",
        "tests/dag_factory/test_compile.py",
        "tests/dag_factory/test_docs.py",
        "tests/runners/test_dbt.py",
        "tests/runners/test_dbt_failures.py",
        "tests/runners/test_dbt_graph.py",
        "tests/runners/test_layers.py",
        "tests/runners/test_report_nodes.py",
    }
)
DBT_MARK = "dbt: runs real dbt builds, seconds each (tests/conftest.py DBT_MODULES)"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test by the servers its fixture closure starts, and `dbt` by module.

    `item.fixturenames` is the whole closure: a fixture that depends on `pg_cluster`
    (pg_source, make_warehouse, ...) marks its tests `postgres` too.
    """
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        for mark, (fixtures, _) in SERVER_MARKS.items():
            if used & fixtures:
                item.add_marker(mark)
        module = Path(str(item.fspath)).resolve()
        if module.is_relative_to(REPO) and module.relative_to(REPO).as_posix() in DBT_MODULES:
            item.add_marker("dbt")


_DESELECTED = pytest.StashKey[int]()


def pytest_deselected(items: list[pytest.Item]) -> None:
    """Count what -m (or -k) left out, for pytest_sessionfinish."""
    if items:
        config = items[0].config
        config.stash[_DESELECTED] = config.stash.get(_DESELECTED, 0) + len(items)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A mark expression that leaves nothing to run is a result, not an error.

    `make test-fast tests/containers/test_images.py` collects only tests that start a server;
    pytest's exit code 5 (no tests) would fail the make target. It stays 5 when nothing was
    collected at all (a wrong path) or when -k chose (a mistyped keyword).
    """
    config = session.config
    if (
        exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED
        and config.stash.get(_DESELECTED, 0) > 0
        and config.option.markexpr
        and not config.option.keyword
    ):
        session.exitstatus = pytest.ExitCode.OK
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            expr = config.option.markexpr
            reporter.write_line(f"nothing to run: -m {expr!r} left out every collected test")


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The env of a real Airflow with a migrated metadata DB of its own (one per module),
    reading the repository's DAG file and its committed tenants: for `airflow dags test`."""
    home = tmp_path_factory.mktemp("airflow")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "DAG_FACTORY_WAREHOUSES": os.environ["DAG_FACTORY_WAREHOUSES"],
    }
    airflow = Path(sys.executable).parent / "airflow"
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True)
    yield env


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
def pg_database(pg_cluster: PostgresCluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh database named after the test; returns its SQLAlchemy URL. Dropped after
    the test: ~300 of them (7-10 MB each, empty) kept 3 GB on disk to the session's end."""
    name = "t_" + "".join(c if c.isalnum() else "_" for c in request.node.name.lower())[:50]
    yield pg_cluster.create_database(name)
    pg_cluster.drop_database(name)

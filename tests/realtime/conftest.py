"""A real Airflow (`airflow standalone`) and a real browser, shared by the realtime tests.

`airflow dags test` ignores pools, schedules and the UI; these fixtures run what users
run: the scheduler, dag-processor, triggerer and API server on a home of their own, the
repository's DAG file over a temporary copy of `warehouses/` (so a test can add tenants
beside the real ones), and the embedded demo's SQLite source and DuckDB warehouse.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devtools.airflow_server import TRIGGERED_RUNS_ONLY, AirflowServer, start_server
from devtools.browser import Browser, chromium_binary
from devtools.compiled import LOCAL_OUTPUT

REPO = Path(__file__).resolve().parents[2]
DEMO_ORDERS = 2000
#: A tenant file beside the valid ones with a typo (`retires`): it must show as invalid.
BROKEN_TENANT = "broken"
#: The committed tenants: the server compiles their dbt graphs first, as `make ui` does, so
#: their DAGs are model-level (the broken tenant and those a test adds keep layer tasks).
COMPILED_TENANTS = tuple(
    sorted(p.parent.name for p in (REPO / "warehouses").glob("*/warehouse.yaml"))
)


@dataclass
class RealAirflow:
    server: AirflowServer
    warehouses: Path
    data: Path
    source_url: str
    warehouse_url: str

    @property
    def url(self) -> str:
        return self.server.url


def write_broken_tenant(warehouses: Path) -> Path:
    """The demo tenant under another id, with `retries` misspelt."""
    text = (warehouses / "demo" / "warehouse.yaml").read_text(encoding="utf-8")
    text = text.replace("tenant: demo", f"tenant: {BROKEN_TENANT}").replace(
        "pool: tenant_demo", "retires: 3"
    )
    assert "retires: 3" in text, "the demo tenant file changed: update write_broken_tenant"
    file = warehouses / BROKEN_TENANT / "warehouse.yaml"
    file.parent.mkdir()
    file.write_text(text, encoding="utf-8")
    return file


@pytest.fixture(scope="session")
def airflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealAirflow]:
    """`airflow standalone` with the tenants of `warehouses/` plus one broken tenant file,
    their dbt graphs compiled (`dag-factory dbt compile`), their pools created by
    `dag-factory pools`, the demo data generated; stopped (its
    whole process group) at the end of the session."""
    data = tmp_path_factory.mktemp("realtime")
    warehouses = data / "warehouses"
    # without a developer's local output (a stale compiled graph among it)
    shutil.copytree(REPO / "warehouses", warehouses, ignore=shutil.ignore_patterns(*LOCAL_OUTPUT))
    write_broken_tenant(warehouses)
    source_url = f"sqlite:///{data}/shop.sqlite"
    warehouse_url = f"duckdb:///{data}/warehouse.duckdb"
    subprocess.run(
        [sys.executable, "-m", "devtools.shop", "--url", source_url, "--orders", str(DEMO_ORDERS)],
        check=True,
        capture_output=True,
        cwd=REPO,
    )
    home = data / "airflow"
    home.mkdir()
    server = start_server(
        home,
        warehouses,
        {
            "DEMO_SOURCE_URL": source_url,
            "DEMO_WAREHOUSE_URL": warehouse_url,
            # the tenant test_scheduler adds reads the same data through its own env vars
            # (a tenant may name only `<TENANT>_…` ones: dag_factory/isolation.py)
            "NEWSHOP_SOURCE_URL": source_url,
            "NEWSHOP_WAREHOUSE_URL": warehouse_url,
            # test_model_tasks' tenant: the same source, a DuckDB file of its own
            "MODELSHOP_SOURCE_URL": source_url,
            "MODELSHOP_WAREHOUSE_URL": f"duckdb:///{data}/modelshop.duckdb",
            **TRIGGERED_RUNS_ONLY,
        },
        compile_tenants=COMPILED_TENANTS,
    )
    try:
        server.wait_ready({"tenant_demo", "tenant_acme", f"tenant_{BROKEN_TENANT}"})
        yield RealAirflow(server, warehouses, data, source_url, warehouse_url)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    """Headless chromium driven over the DevTools protocol; stopped at the end."""
    if chromium_binary() is None:
        pytest.skip("no chromium: scripts/services/chromium.sh installs it")
    profile = tmp_path_factory.mktemp("chromium") / "profile"
    instance = Browser(profile)
    instance.start()
    try:
        yield instance
    finally:
        instance.stop()

"""Airflow's UI in a real browser: the tenants' DAGs listed, a broken tenant's error shown.

Screenshots go to the test's tmp dir; with `UPDATE_SCREENSHOTS=1` they replace the ones
committed under docs/img/ (look at them before committing).
"""

from __future__ import annotations

import os
from pathlib import Path

from devtools.browser import Browser
from tests.realtime.conftest import BROKEN_TENANT, REPO, RealAirflow


def _shot_dir(tmp_path: Path) -> Path:
    return REPO / "docs" / "img" if os.environ.get("UPDATE_SCREENSHOTS") == "1" else tmp_path


def test_dag_list_and_the_invalid_tenant_page(
    airflow_server: RealAirflow, browser: Browser, tmp_path: Path
):
    dag_id = f"tenant_{BROKEN_TENANT}"
    page = browser.new_page()
    page.goto(f"{airflow_server.url}/dags")
    page.wait_for_text("tenant_demo", "tenant_acme", dag_id, "invalid-tenant-file")
    shot = page.screenshot(_shot_dir(tmp_path) / "ui-dag-list.png")
    assert shot.stat().st_size > 10_000  # a rendered page, not a blank one

    page.goto(f"{airflow_server.url}/dags/{dag_id}")
    page.wait_for_text(dag_id, "invalid_tenant_file")
    page.click("Dag Docs")
    text = page.wait_for_text("Tenant file is invalid", "retires", "did you mean `retries`")
    assert f"{BROKEN_TENANT}/warehouse.yaml" in text
    page.screenshot(_shot_dir(tmp_path) / "ui-invalid-tenant.png")

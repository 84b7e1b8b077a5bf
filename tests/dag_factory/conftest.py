"""A scratch warehouses folder with the repository's real defaults.yaml."""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

VALID_TENANT = """\
tenant: {name}
source:
  kind: sqlite
  connection:
    env: {env}_SOURCE_URL
warehouse:
  kind: duckdb
  connection:
    env: {env}_WAREHOUSE_URL
tables:
  - name: customers
  - name: orders
"""

WriteTenant = Callable[..., Path]


@pytest.fixture
def warehouses(tmp_path: Path) -> Path:
    folder = tmp_path / "warehouses"
    folder.mkdir()
    shutil.copy(REPO / "warehouses" / "defaults.yaml", folder / "defaults.yaml")
    return folder


@pytest.fixture
def write_tenant(warehouses: Path) -> WriteTenant:
    """Write `<name>/warehouse.yaml` (dedented) and a dbt project stub beside it."""

    def write(name: str, text: str | None = None) -> Path:
        folder = warehouses / name
        (folder / "dbt").mkdir(parents=True, exist_ok=True)
        (folder / "dbt" / "dbt_project.yml").write_text(f"name: {name}\nprofile: {name}\n")
        file = folder / "warehouse.yaml"
        body = (
            VALID_TENANT.format(name=name, env=name.upper())
            if text is None
            else textwrap.dedent(text)
        )
        file.write_text(body)
        return file

    return write

"""A copy of the repository's warehouses folder (defaults, acme, demo, the shared dbt
project) beside which a test writes hostile tenant files, and `validate`: the real
`dag-factory validate --format json` on that folder."""

from __future__ import annotations

import json
import shutil
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from dag_factory.cli import app

REPO = Path(__file__).resolve().parents[2]

#: A tenant of its own: SQLite → DuckDB through its own env vars, the shared dbt project.
OWN = """\
tenant: {name}
source: {{kind: sqlite, connection: {{env: {env}_SOURCE_URL}}}}
warehouse: {{kind: duckdb, connection: {{env: {env}_WAREHOUSE_URL}}}}
tables: [{{name: orders}}]
dbt: {{project: ../_dbt/shop}}
"""

Write = Callable[..., Path]
Validate = Callable[[], dict[str, list[str]]]


@pytest.fixture
def warehouses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "warehouses"
    shutil.copytree(REPO / "warehouses", folder)
    monkeypatch.setenv("DAG_FACTORY_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("DAG_FACTORY_EXECUTOR", raising=False)
    return folder


@pytest.fixture
def write(warehouses: Path) -> Write:
    """`write(name, text=None, **extra)`: `<name>/warehouse.yaml` holding `text` (dedented),
    or the tenant's own valid file merged with `extra` (mappings key by key; a
    `connection` replaces the tenant's)."""

    def _write(name: str, text: str | None = None, **extra: Any) -> Path:
        folder = warehouses / name
        folder.mkdir(exist_ok=True)
        if text is None:
            data = yaml.safe_load(OWN.format(name=name, env=name.upper()))
            data = _merge(data, extra)
            text = yaml.safe_dump(data, sort_keys=False)
        file = folder / "warehouse.yaml"
        file.write_text(textwrap.dedent(text))
        return file

    return _write


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if key != "connection" and isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


@pytest.fixture
def validate(warehouses: Path) -> Validate:
    """Run `dag-factory validate --format json -w <copy>`; the messages by tenant folder."""

    def _validate() -> dict[str, list[str]]:
        result = CliRunner().invoke(
            app, ["validate", "--format", "json", "-w", str(warehouses)], catch_exceptions=False
        )
        payload = json.loads(result.stdout)
        assert result.exit_code == (1 if payload["problems"] else 0)
        found: dict[str, list[str]] = {Path(f).parent.name: [] for f in payload["valid"]}
        for problem in payload["problems"]:
            found.setdefault(Path(problem["file"]).parent.name, []).append(
                f"{problem['field']}: {problem['message']}"
            )
        return found

    return _validate

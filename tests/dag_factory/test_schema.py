"""The committed JSON Schema is current, and every tenant file names it."""

from __future__ import annotations

import json

from dag_factory.loader import discover
from dag_factory.schema import MODELINE, SCHEMA_FILE, render_schema
from tests.dag_factory.conftest import REPO

WAREHOUSES = REPO / "warehouses"


def test_committed_schema_is_current():
    committed = (WAREHOUSES / SCHEMA_FILE).read_text()
    assert committed == render_schema(), (
        "warehouses/schema.json is stale: run `.venv/bin/dag-factory schema --write`"
    )


def test_every_tenant_file_names_the_schema():
    files = discover(WAREHOUSES)
    assert files, "no tenant files found"
    for file in files:
        assert file.read_text().splitlines()[0] == MODELINE, f"{file} lacks the modeline"


def test_schema_forbids_unknown_keys_and_knows_every_field():
    schema = json.loads(render_schema())
    assert schema["additionalProperties"] is False
    assert {"tenant", "source", "warehouse", "tables", "schedule", "alerting"} <= set(
        schema["properties"]
    )

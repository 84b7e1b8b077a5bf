"""The JSON Schema of tenant files, exported from the pydantic models for editors and CI.

Committed as `warehouses/schema.json` and named by a `yaml-language-server` modeline in
every tenant file, so an editor completes and checks keys as you type. A test fails
when the committed file is stale: regenerate with `dag-factory schema --write`.
"""

from __future__ import annotations

import json
from typing import Any

from dag_factory.spec import TenantSpec

SCHEMA_FILE = "schema.json"
#: The first line of every tenant file, relative to `warehouses/<tenant>/`.
MODELINE = f"# yaml-language-server: $schema=../{SCHEMA_FILE}"


def tenant_json_schema() -> dict[str, Any]:
    schema = TenantSpec.model_json_schema(by_alias=True, mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Tenant file (warehouses/<tenant>/warehouse.yaml)",
        "description": (
            "One tenant of the container-runner framework: source, tables, warehouse, dbt "
            "project, schedule, resources and alerting. warehouses/defaults.yaml is merged "
            "under it; its required keys may come from there."
        ),
        **{k: v for k, v in schema.items() if k != "title"},
    }


def render_schema() -> str:
    return json.dumps(tenant_json_schema(), indent=2, sort_keys=True) + "\n"

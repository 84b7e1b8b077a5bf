"""`dag-factory new TENANT`: a valid, commented tenant to start from.

Writes `warehouses/<tenant>/warehouse.yaml` and a minimal dbt project whose silver model
reads the one example table from bronze, so the new tenant validates and plans at once.
"""

from __future__ import annotations

from pathlib import Path

from dag_factory.schema import MODELINE

TENANT_TEMPLATE = """\
{modeline}
# Tenant `{tenant}`. warehouses/defaults.yaml is merged under this file: only what
# differs from the defaults needs saying. Check it with `dag-factory validate`.
tenant: {tenant}
description: What this tenant's data is and who uses it.
owners: [data-platform]

# Where the data comes from. A connection is a reference, never a URL or password:
# `env: NAME` (an env var on the worker) or `airflow_conn: ID` (an Airflow connection).
source:
  kind: postgres            # sqlite | postgres
  schema: public
  connection:
    airflow_conn: {tenant}_source

# Where bronze, silver and gold live.
warehouse:
  kind: postgres            # duckdb | postgres
  connection:
    airflow_conn: {tenant}_warehouse
  schemas:
    bronze: {tenant}_bronze
    silver: {tenant}_silver
    gold: {tenant}_gold
    meta: {tenant}_meta

# One extract task per table, all upstream of dbt silver, then gold.
tables:
  - name: orders
    # columns: [order_id, customer_id, status, ordered_at]   # default: every column
    # task: {{timeout: 30m, resources: {{limits: {{memory: 1Gi}}}}}}   # per-table override

dbt:
  project: dbt              # relative to this folder

schedule: "0 3 * * *"       # cron, a preset (@daily), {{assets: [tenant://other/gold]}} or null
# alerting:
#   on_failure:
#     email: [data-oncall@example.com]
#     slack: {{connection: slack_alerts, channel: "#data-alerts"}}
"""

DBT_PROJECT = """\
name: {tenant}
profile: {tenant}
version: "1.0.0"
config-version: 2
model-paths: ["models"]
macro-paths: ["macros"]
models:
  {tenant}:
    +materialized: table
"""

SILVER_MODEL = """\
-- Silver: the cleaned, typed copy of bronze.orders. Replace with real cleaning.
select * from {{{{ source('bronze', 'orders') }}}}
"""


def scaffold_tenant(warehouses: Path, tenant: str) -> list[Path]:
    """Create the tenant's files; refuse to overwrite an existing tenant."""
    folder = warehouses / tenant
    if folder.exists():
        raise FileExistsError(f"{folder} exists already")
    files = {
        folder / "warehouse.yaml": TENANT_TEMPLATE.format(tenant=tenant, modeline=MODELINE),
        folder / "dbt" / "dbt_project.yml": DBT_PROJECT.format(tenant=tenant),
        folder / "dbt" / "models" / "silver" / "orders.sql": SILVER_MODEL.format(),
        folder / "dbt" / "models" / "gold" / ".gitkeep": "",
    }
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return list(files)

"""The single Airflow DAG file: one DAG per tenant under warehouses/ (see dag_factory).

`DAG_FACTORY_WAREHOUSES` points at another tenants folder; by default it is the
repository's own `warehouses/`, next to this `dags/` folder.
"""

import os
from pathlib import Path

from dag_factory.build import build_dags

WAREHOUSES = Path(
    os.environ.get("DAG_FACTORY_WAREHOUSES", Path(__file__).parents[1] / "warehouses")
)

globals().update(build_dags(WAREHOUSES))

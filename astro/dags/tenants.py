"""The single Airflow DAG file of the Astro project: one DAG per tenant (see dag_factory).

The tenants' files are in the image at `include/warehouses/` (copied there by
`astro/build_wheels.sh`); under `astro dev start` the repository's own `warehouses/` is
mounted over that folder, so an edited tenant file shows without a rebuild.
`DAG_FACTORY_WAREHOUSES` (set in the Dockerfile) names another folder.
"""

import os
from pathlib import Path

from dag_factory.build import build_dags

WAREHOUSES = Path(
    os.environ.get("DAG_FACTORY_WAREHOUSES", Path(__file__).parents[1] / "include" / "warehouses")
)

globals().update(build_dags(WAREHOUSES))

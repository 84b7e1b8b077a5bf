"""dbt-duckdb source plugin: bronze Delta tables on S3 read through `deltalake`.

DuckDB's own `delta` and `httpfs` extensions are downloaded at run time from DuckDB's
extension site, which runner images (and this project's machines) cannot reach, and the
wheels on PyPI that package them are built for DuckDB 1.4, not the 2.0 the images ship.
The `deltalake` package that writes bronze also reads it: this plugin opens each bronze
source as a `DeltaTable` (latest version), hands its Arrow dataset to DuckDB, and
dbt-duckdb materialises it as `<bronze>.<table>` in the DuckDB file before the models
that select from it run (`materialization: table`, so the file stays readable after dbt
exits: a view would point at an Arrow object of this process).

The profile (`runners.dbt_profile.LakehouseProfile`) configures it: `root` (s3://bucket),
`options` (endpoint, region, HTTP: JSON, no secret), `key` and `secret` from the
`env_var()` lookups dbt renders in profiles.yml only. Sources name it in their `meta`
(`plugin: lakehouse`, `lake_path: <tenant>/<bronze>/<table>`, see `runners.dbt_project`).
"""

from __future__ import annotations

import json
from typing import Any

from dbt.adapters.duckdb.plugins import BasePlugin
from dbt.adapters.duckdb.utils import SourceConfig


class Plugin(BasePlugin):
    def initialize(self, plugin_config: dict[str, Any]) -> None:
        self.root = str(plugin_config["root"]).rstrip("/")
        options = json.loads(plugin_config.get("options") or "{}")
        if plugin_config.get("key"):
            options["AWS_ACCESS_KEY_ID"] = plugin_config["key"]
        if plugin_config.get("secret"):
            options["AWS_SECRET_ACCESS_KEY"] = plugin_config["secret"]
        self.storage_options: dict[str, str] = options

    def load(self, source_config: SourceConfig) -> Any:
        from deltalake import DeltaTable

        path = f"{self.root}/{source_config['lake_path']}"
        return DeltaTable(path, storage_options=self.storage_options).to_pyarrow_dataset()

    def default_materialization(self) -> str:
        return "table"

"""`runner spark`: a lakehouse tenant's silver and gold with dbt-spark, in one Spark session.

For tenants whose silver and gold outgrow one machine's DuckDB. The same tenant dbt
project, the same bronze Delta tables, another engine:

1. a Spark session (`runners.spark_conf`: local mode in tests, Kubernetes in production);
2. each bronze table's latest Delta snapshot registered as `global_temp.<table>`
   (`runners.spark_bronze`: the files `deltalake` resolves, read by Spark as Parquet);
3. dbt-spark's `session` method, which runs every model's SQL in that same session
   (`SparkSession.builder.getOrCreate()` returns ours), silver and gold materialised as
   Parquet tables under `spark.sql.warehouse.dir` (the lake in production);
4. the result line: dbt's node counts and the bronze versions the run read.

The dbt project is prepared like `runner dbt` does (`runners.dbt_project`: sources from
the spec, the schema macro), then its bronze sources point at `global_temp`.

Why dbt-spark's `session` method and not Thrift or Spark Connect: no server to run and
secure beside the cluster, the driver is the runner process (its exit code, its result
line), and `dbt-spark[session]` installs with our dbt-core pins.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from datakits.errors import ConfigError, LoadFailed
from datakits.spec import LoadSpec, WarehouseKind
from runners.dbt_project import LAYERS, SOURCES_FILE, prepare_project
from runners.spark_bronze import BronzeAccess, register
from runners.spark_conf import spark_conf

#: `copy` or `s3a` (`runners.spark_bronze.BronzeAccess`); default `s3a`.
BRONZE_ACCESS_ENV = "RUNNER_SPARK_BRONZE"
#: Where silver and gold tables are written (`spark.sql.warehouse.dir`).
WAREHOUSE_DIR_ENV = "RUNNER_SPARK_WAREHOUSE"
#: dbt flags the runner sets itself.
_OWNED = ("--project-dir", "--profiles-dir", "--target-path", "--log-path", "--target")


def _profile(name: str, schema: str) -> str:
    """profiles.yml for dbt-spark's session method (no host, no credentials)."""
    output = {"type": "spark", "method": "session", "host": "NA", "schema": schema, "threads": 1}
    return yaml.safe_dump({name: {"target": "spark", "outputs": {"spark": output}}})


def _point_sources_at(project_dir: Path, schema: str) -> None:
    """The generated bronze sources, read from `schema` (`global_temp`) instead."""
    for path in project_dir.rglob(SOURCES_FILE):
        doc = yaml.safe_load(path.read_text())
        for source in doc["sources"]:
            source["schema"] = schema
            for table in source["tables"]:
                table.pop("meta", None)  # dbt-duckdb's plugin meta: not Spark's business
        path.write_text(yaml.safe_dump(doc, sort_keys=False))


def _locate_layers(project_dir: Path, name: str, warehouse_dir: str, spec: LoadSpec) -> None:
    """Each layer folder's tables at `<warehouse>/<schema>.db/<table>` (`location_root`).

    An explicit location makes every model an external table that a later run rebuilds
    in place (CTAS into its own directory, `spark.sql.legacy.allowNonEmptyLocationInCTAS`),
    and is where `register_built` finds it: the session's catalog does not outlive it.
    """
    path = project_dir / "dbt_project.yml"
    doc = yaml.safe_load(path.read_text())
    models = doc.setdefault("models", {}) or {}
    doc["models"] = models
    block = models.setdefault(name, {}) or {}
    models[name] = block
    root = warehouse_dir.rstrip("/")
    for layer in LAYERS:
        schema = getattr(spec.warehouse.schemas, layer)
        folder = block.setdefault(layer, {}) or {}
        folder["+location_root"] = f"{root}/{schema}.db"
        block[layer] = folder
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def run_spark(
    spec: LoadSpec,
    project_dir: Path,
    dbt_args: list[str],
    warehouse_url: str,
    *,
    access: BronzeAccess | None = None,
    warehouse_dir: str | None = None,
    tests_warn: bool = False,
) -> dict[str, Any]:
    """Run `dbt <dbt_args>` (e.g. `build --select silver`) with dbt-spark over bronze.

    `tests_warn`: the project's tests at severity `warn` (`dbt.on_test_failure: warn`)."""
    from datakits.writers.lakehouse import lake_location
    from runners.dbt import DBT_DEFAULTS, summarise

    if spec.warehouse.kind is not WarehouseKind.lakehouse:
        raise ConfigError(
            f"runner spark builds lakehouse tenants; {spec.tenant}'s warehouse is "
            f"{spec.warehouse.kind}: use `runner dbt`"
        )
    if not dbt_args or dbt_args[0].startswith("-"):
        raise ConfigError("give a dbt command first, e.g. `run --select silver gold`")
    owned = [a for a in dbt_args if a.split("=", 1)[0] in _OWNED]
    if owned:
        raise ConfigError(f"the runner sets {', '.join(owned)} itself: leave it out")
    location = lake_location(warehouse_url)
    access = access or BronzeAccess(os.environ.get(BRONZE_ACCESS_ENV, BronzeAccess.s3a))
    schemas = spec.warehouse.schemas
    with tempfile.TemporaryDirectory(prefix=f"runner-spark-{spec.tenant}-") as tmp:
        work = Path(tmp)
        target_dir = warehouse_dir or os.environ.get(WAREHOUSE_DIR_ENV)
        if not target_dir:
            target_dir = f"s3a://{location.bucket}/{spec.tenant}/spark-warehouse"
        conf = spark_conf(location, target_dir, access=access, work_dir=work)
        from pyspark.sql import SparkSession

        builder = SparkSession.builder.appName(f"runner-spark-{spec.tenant}")
        for key, value in conf.items():
            builder = builder.config(key, value)
        spark = builder.getOrCreate()
        try:
            versions = register(
                spark,
                location,
                spec.tenant,
                schemas.bronze,
                [t.name for t in spec.tables],
                access,
                work / "bronze",
            )
            print(f"runner spark: bronze versions {versions}", file=sys.stderr)
            built = register_built(spark, target_dir, [schemas.silver, schemas.gold])
            if built:
                print(f"runner spark: tables of earlier runs {built}", file=sys.stderr)
            project = prepare_project(Path(project_dir), work, spec, tests_warn=tests_warn)
            _point_sources_at(project.dir, "global_temp")
            _locate_layers(project.dir, project.name, target_dir, spec)
            profiles = work / "profiles"
            profiles.mkdir()
            (profiles / "profiles.yml").write_text(_profile(project.profile, schemas.silver))
            args = [
                *dbt_args,
                "--project-dir",
                str(project.dir),
                "--profiles-dir",
                str(profiles),
                "--target-path",
                str(work / "target"),
                "--log-path",
                str(work / "logs"),
            ]
            res = _invoke(args, DBT_DEFAULTS)
        finally:
            spark.stop()
    command = " ".join(dbt_args)
    if res.exception is not None:
        raise ConfigError(f"dbt {command} (spark): {res.exception}".splitlines()[0])
    results = list(getattr(res.result, "results", None) or [])
    summary = summarise(results, builds=dbt_args[0] in ("build", "run"))
    failures, messages = summary.pop("failures"), summary.pop("messages")
    if failures or not res.success:
        first = f" - first error: {messages[0]}" if messages else ""
        raise LoadFailed(f"dbt {command} (spark): failed {', '.join(failures)}{first}")
    return {
        "tenant": spec.tenant,
        "engine": "spark",
        "dbt_command": list(dbt_args),
        "bronze_versions": versions,
        **summary,
    }


def register_built(spark: Any, warehouse_dir: str, schemas: list[str]) -> list[str]:
    """Register the silver and gold tables earlier runs wrote under the warehouse dir.

    The session's catalog is in memory (no metastore to run): without this, a `gold` run
    after a separate `silver` run (the DAG's two tasks) would not find `silver.*`. The
    tables are Parquet directories `<warehouse>/<schema>.db/<table>`, listed through
    Hadoop's file system (local here, s3a in production), registered as external tables
    so that dbt-spark's drop + create of a model rebuilds it in place.
    """
    jvm = spark._jvm  # Hadoop's FileSystem API, through pyspark's gateway
    hadoop = spark._jsc.hadoopConfiguration()
    found: list[str] = []
    for schema in schemas:
        root = jvm.org.apache.hadoop.fs.Path(f"{warehouse_dir.rstrip('/')}/{schema}.db")
        fs = root.getFileSystem(hadoop)
        if not fs.exists(root):
            continue
        spark.sql(f"CREATE DATABASE IF NOT EXISTS `{schema}`")
        for status in fs.listStatus(root):
            name = status.getPath().getName()
            if not status.isDirectory() or name.startswith(("_", ".")):
                continue
            spark.catalog.createTable(
                f"{schema}.{name}", path=str(status.getPath().toString()), source="parquet"
            )
            found.append(f"{schema}.{name}")
    return found


def _invoke(args: list[str], env: dict[str, str]) -> Any:
    import contextlib

    from dbt.cli.main import dbtRunner

    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            return dbtRunner().invoke(args)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

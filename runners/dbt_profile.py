"""profiles.yml for the runner's dbt invocation (DESIGN.md, contract 6).

The file is static per warehouse kind (one builder per kind below, named by the kind's
registry entry in `datakits.kinds`): every connection value is an `env_var()` lookup,
so no URL or password is ever written to disk. `profile_env` turns the warehouse URL
into those env vars; the caller sets them only while dbt runs.

The password travels in `DBT_ENV_SECRET_RUNNER_PASSWORD`: dbt scrubs the values of
`DBT_ENV_SECRET_*` variables from its log output, and allows them only in profiles.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from sqlalchemy import URL, make_url
from sqlalchemy.exc import ArgumentError

from datakits.contract import WAREHOUSE_URL_ENV
from datakits.errors import ConfigError
from datakits.kinds import warehouse_kind
from datakits.spec import WarehouseKind

TARGET = "runner"
THREADS = 4

HOST_ENV = "RUNNER_DBT_HOST"
PORT_ENV = "RUNNER_DBT_PORT"
USER_ENV = "RUNNER_DBT_USER"
PASSWORD_ENV = "DBT_ENV_SECRET_RUNNER_PASSWORD"  # noqa: S105 - a name, not a value
DBNAME_ENV = "RUNNER_DBT_DBNAME"
SSLMODE_ENV = "RUNNER_DBT_SSLMODE"
PATH_ENV = "RUNNER_DBT_PATH"
SCHEMA_ENV = "RUNNER_DBT_SCHEMA"
#: lakehouse: the bucket's URL and the S3 options that are no secret (JSON).
LAKE_ROOT_ENV = "RUNNER_DBT_LAKE_ROOT"
LAKE_OPTIONS_ENV = "RUNNER_DBT_LAKE_OPTIONS"

#: Every env var this module may set, so a caller can scope and restore all of them.
PROFILE_ENV_VARS = (
    HOST_ENV,
    PORT_ENV,
    USER_ENV,
    PASSWORD_ENV,
    DBNAME_ENV,
    SSLMODE_ENV,
    PATH_ENV,
    SCHEMA_ENV,
    LAKE_ROOT_ENV,
    LAKE_OPTIONS_ENV,
)


def _env(name: str, default: str | None = None) -> str:
    if default is None:
        return f'{{{{ env_var("{name}") }}}}'
    return f'{{{{ env_var("{name}", "{default}") }}}}'


class DuckDBProfile:
    """dbt-duckdb: a file path and a schema."""

    def output(self, *, sslmode: bool = False) -> dict[str, object]:
        return {"type": "duckdb", "path": _env(PATH_ENV), "schema": _env(SCHEMA_ENV)}

    def env(self, url: URL) -> dict[str, str]:
        """A relative DuckDB path is resolved against the current working directory."""
        if not url.database or url.database == ":memory:":
            raise ConfigError(
                f"{WAREHOUSE_URL_ENV} must name a DuckDB file (duckdb:///path/to/file.duckdb)"
            )
        return {PATH_ENV: str((Path.cwd() / Path(url.database).expanduser()).resolve())}

    def prepare(self, env: dict[str, str]) -> None:
        """dbt-duckdb creates the file, not its folder."""
        Path(env[PATH_ENV]).parent.mkdir(parents=True, exist_ok=True)


class PostgresProfile:
    """dbt-postgres: host, port, user, password (scrubbed from dbt's logs), database."""

    def output(self, *, sslmode: bool = False) -> dict[str, object]:
        output: dict[str, object] = {
            "type": "postgres",
            "host": _env(HOST_ENV),
            "port": f'{{{{ env_var("{PORT_ENV}") | as_number }}}}',
            "user": _env(USER_ENV),
            "password": _env(PASSWORD_ENV, ""),
            "dbname": _env(DBNAME_ENV),
            "schema": _env(SCHEMA_ENV),
        }
        if sslmode:
            output["sslmode"] = _env(SSLMODE_ENV)
        return output

    def env(self, url: URL) -> dict[str, str]:
        query_host = url.query.get("host")
        host = url.host or (query_host if isinstance(query_host, str) else None) or "localhost"
        if not url.username:
            raise ConfigError(f"{WAREHOUSE_URL_ENV} has no user name: dbt-postgres needs one")
        if not url.database:
            raise ConfigError(f"{WAREHOUSE_URL_ENV} has no database name")
        env = {
            HOST_ENV: host,
            PORT_ENV: str(url.port or warehouse_kind("postgres").default_port),
            USER_ENV: url.username,
            PASSWORD_ENV: url.password or "",
            DBNAME_ENV: url.database,
        }
        sslmode = url.query.get("sslmode")
        if isinstance(sslmode, str):
            env[SSLMODE_ENV] = sslmode
        return env

    def prepare(self, env: dict[str, str]) -> None:
        """Nothing to create: the server holds the database."""


class LakehouseProfile:
    """dbt-duckdb over the lake: bronze Delta tables read from S3, silver and gold in a
    DuckDB file.

    Why a DuckDB file and not the lake for silver and gold: DuckDB cannot write Delta
    (and its httpfs extension, needed to write Parquet to S3, cannot be downloaded by
    runner images), while a DuckDB file is what the `duckdb` kind already serves; the
    file is a per-tenant serving copy, rebuilt from bronze by every `dbt build`, and the
    lake stays the system of record. Its path is the warehouse URL's `duckdb` parameter.

    Bronze is read by the `runners.dbt_lakehouse` plugin (through `deltalake`, offline);
    the S3 secret reaches it as `DBT_ENV_SECRET_RUNNER_PASSWORD`, scrubbed from dbt's logs.
    """

    def output(self, *, sslmode: bool = False) -> dict[str, object]:
        plugin = {
            "module": "runners.dbt_lakehouse",
            "alias": "lakehouse",
            "config": {
                "root": _env(LAKE_ROOT_ENV),
                "options": _env(LAKE_OPTIONS_ENV),
                "key": _env(USER_ENV, ""),
                "secret": _env(PASSWORD_ENV, ""),
            },
        }
        # One thread: dbt-duckdb materialises a source when a model using it compiles, and
        # two threads creating `bronze` (or one bronze table) at once hit DuckDB's
        # "Catalog write-write conflict". Silver and gold of one tenant are small enough.
        return {**DUCKDB.output(), "plugins": [plugin], "threads": 1}

    def env(self, url: URL) -> dict[str, str]:
        from datakits.writers.lakehouse import lake_location

        location = lake_location(url.render_as_string(hide_password=False))
        if not location.duckdb_path:
            raise ConfigError(
                f"{WAREHOUSE_URL_ENV} has no `duckdb` parameter: a lakehouse builds silver and "
                "gold in a DuckDB file (s3://KEY:SECRET@host/bucket?duckdb=/path/lake.duckdb)"
            )
        options = {
            k: v
            for k, v in location.storage_options().items()
            if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
        }
        path = (Path.cwd() / Path(location.duckdb_path).expanduser()).resolve()
        return {
            PATH_ENV: str(path),
            LAKE_ROOT_ENV: location.root,
            LAKE_OPTIONS_ENV: json.dumps(options, sort_keys=True),
            USER_ENV: location.access_key or "",
            PASSWORD_ENV: location.secret_key or "",
        }

    def prepare(self, env: dict[str, str]) -> None:
        DUCKDB.prepare(env)

    def source_meta(self, tenant: str, bronze: str, table: str) -> dict[str, str]:
        """The `meta` of a bronze source table: read it from the lake through the plugin."""
        from datakits.writers.lakehouse import table_path

        return {"plugin": "lakehouse", "lake_path": table_path(tenant, bronze, table)}


#: The builders the registry names (`datakits.kinds.WAREHOUSES[...].dbt_profile`).
DUCKDB = DuckDBProfile()
POSTGRES = PostgresProfile()
LAKEHOUSE = LakehouseProfile()


def builder(kind: WarehouseKind) -> DuckDBProfile | PostgresProfile | LakehouseProfile:
    """The dbt profile builder of a warehouse kind, from the registry."""
    return warehouse_kind(kind).dbt_profile_builder()


def profiles_yml(profile: str, kind: WarehouseKind, *, sslmode: bool = False) -> str:
    """The text of profiles.yml: one profile, one target, values from env vars only."""
    output = {"threads": THREADS, **builder(kind).output(sslmode=sslmode)}
    doc = {profile: {"target": TARGET, "outputs": {TARGET: output}}}
    return yaml.safe_dump(doc, sort_keys=False)


def profile_env(kind: WarehouseKind, warehouse_url: str, schema: str) -> dict[str, str]:
    """The env vars `profiles_yml(kind)` reads, taken from a SQLAlchemy warehouse URL."""
    try:
        url = make_url(warehouse_url)
    except (ArgumentError, ValueError):
        raise ConfigError(f"{WAREHOUSE_URL_ENV} is not a SQLAlchemy URL") from None
    backend = url.get_backend_name()
    entry = warehouse_kind(kind)
    if backend != entry.backend and backend not in entry.schemes:
        raise ConfigError(
            f"{WAREHOUSE_URL_ENV} is a {backend!r} URL but the spec's warehouse is {entry.name}"
        )
    return {SCHEMA_ENV: schema, **builder(kind).env(url)}


def prepare_profile(kind: WarehouseKind, env: dict[str, str]) -> None:
    """What the warehouse needs before dbt connects (DuckDB: the file's folder)."""
    builder(kind).prepare(env)

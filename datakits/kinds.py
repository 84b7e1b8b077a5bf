"""The registry of source kinds and warehouse kinds: one small frozen entry per kind.

Everything that differs between database kinds is declared here, once — the SQLAlchemy
driver the images ship, the URL schemes and Airflow connection types that mean the kind,
the default TCP port (None for a file database: no network egress), the reader or
writer, the dbt profile builder, whether loads must run one at a time. The rest of the
code asks the registry instead of branching on a kind: `datakits.spec` builds its
`SourceKind` / `WarehouseKind` enums from it, `datakits.urls` and `dag_factory.secrets`
pick drivers from it, `dag_factory.k8s_objects` egress ports, `runners.dbt_profile`
profiles, the planner the serial-only rule.

Adding a kind is one entry here (and its reader/writer module, and tests). Readers,
writers and dbt profiles are dotted paths, resolved only when used (`pkgutil.resolve_name`):
each pulls in its own driver, and `datakits` never imports `runners`.

This module imports nothing of the project, so an entry registered before
`datakits.spec` is imported becomes a valid `kind` everywhere (tests/datakits/test_kinds.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pkgutil import resolve_name
from typing import Any


@dataclass(frozen=True)
class Kind:
    """What every database kind declares, source or warehouse."""

    #: The `kind:` value in a tenant file.
    name: str
    #: The SQLAlchemy drivername used when a URL names only the database (`postgres://`).
    driver: str
    #: URL schemes without a driver that mean this kind (`postgres`, `postgresql`).
    schemes: tuple[str, ...]
    #: Airflow connection types that map to this kind.
    conn_types: tuple[str, ...]
    #: The TCP port a runner connects to; None for a file database (nothing to reach).
    default_port: int | None
    #: A URL of this kind to show in a fix (`export X=<this>`), without real credentials.
    example_url: str = ""

    @property
    def backend(self) -> str:
        """SQLAlchemy's backend name of `driver` (`postgresql+psycopg` → `postgresql`)."""
        return self.driver.partition("+")[0]

    @property
    def file_based(self) -> bool:
        return self.default_port is None

    @property
    def egress_ports(self) -> tuple[int, ...]:
        """The ports a Kubernetes NetworkPolicy must open for this kind (none for a file)."""
        return () if self.default_port is None else (self.default_port,)


@dataclass(frozen=True)
class SourceKindEntry(Kind):
    #: "module:Class" of its `SqlTableReader`.
    reader: str = ""

    def reader_class(self) -> Any:
        return resolve_name(self.reader)


@dataclass(frozen=True)
class WarehouseKindEntry(Kind):
    #: "module:Class" of its bronze writer.
    writer: str = ""
    #: "module:object" of its dbt profile builder (`runners.dbt_profile.DbtProfile`).
    dbt_profile: str = ""
    #: One writer at a time per warehouse (DuckDB locks its file): a tenant's tasks run
    #: one at a time.
    serial_loads: bool = False
    #: "module:object" of the `TemporalBounds` the warehouse stores (where ±infinity is
    #: clamped); empty: the range every warehouse stores.
    temporal_bounds: str = ""

    def bounds(self) -> Any:
        if not self.temporal_bounds:
            from datakits.types import common_bounds

            return common_bounds()
        return resolve_name(self.temporal_bounds)

    def writer_class(self) -> Any:
        return resolve_name(self.writer)

    def dbt_profile_builder(self) -> Any:
        return resolve_name(self.dbt_profile)


_POSTGRES = {
    "name": "postgres",
    "driver": "postgresql+psycopg",
    "schemes": ("postgres", "postgresql"),
    "conn_types": ("postgres", "postgresql"),
    "default_port": 5432,
    "example_url": "postgres://user:password@host:5432/dbname",
}

#: Source kinds by name, in the order error messages list them.
SOURCES: dict[str, SourceKindEntry] = {
    e.name: e
    for e in (
        SourceKindEntry(
            name="sqlite",
            driver="sqlite",
            schemes=("sqlite",),
            conn_types=("sqlite",),
            default_port=None,
            example_url="sqlite:////path/to/source.sqlite",
            reader="datakits.sources.sqlite:SqliteReader",
        ),
        SourceKindEntry(**_POSTGRES, reader="datakits.sources.postgres:PostgresReader"),
        SourceKindEntry(
            # MySQL or MariaDB: one reader serves both (`mariadb+pymysql://` included)
            name="mysql",
            driver="mysql+pymysql",
            schemes=("mysql", "mariadb"),
            conn_types=("mysql", "mariadb"),
            default_port=3306,
            example_url="mysql://user:password@host:3306/dbname",
            reader="datakits.sources.mysql:MySqlReader",
        ),
    )
}

#: Warehouse kinds by name.
WAREHOUSES: dict[str, WarehouseKindEntry] = {
    e.name: e
    for e in (
        WarehouseKindEntry(
            name="duckdb",
            driver="duckdb",
            schemes=("duckdb",),
            conn_types=("duckdb",),
            default_port=None,
            example_url="duckdb:////path/to/warehouse.duckdb",
            writer="datakits.writers.duckdb:DuckDBWriter",
            dbt_profile="runners.dbt_profile:DUCKDB",
            serial_loads=True,
            temporal_bounds="datakits.types:DUCKDB_BOUNDS",
        ),
        WarehouseKindEntry(
            **_POSTGRES,
            writer="datakits.writers.postgres:PostgresWriter",
            temporal_bounds="datakits.types:POSTGRES_BOUNDS",
            dbt_profile="runners.dbt_profile:POSTGRES",
        ),
        WarehouseKindEntry(
            # Bronze as Delta tables on S3 or MinIO; silver and gold in DuckDB (dbt-duckdb).
            # The port is HTTPS S3's; a MinIO endpoint names its own in the URL.
            name="lakehouse",
            driver="s3",
            schemes=("s3",),
            conn_types=("aws", "s3"),
            default_port=443,
            example_url="s3://KEY:SECRET@host:9000/bucket?duckdb=/path/to/lake.duckdb",
            writer="datakits.writers.lakehouse:LakehouseWriter",
            dbt_profile="runners.dbt_profile:LAKEHOUSE",
        ),
    )
}


def source_kind(name: str) -> SourceKindEntry:
    return SOURCES[str(name)]


def warehouse_kind(name: str) -> WarehouseKindEntry:
    return WAREHOUSES[str(name)]


def all_kinds() -> tuple[Kind, ...]:
    return (*SOURCES.values(), *WAREHOUSES.values())


def default_driver(scheme: str) -> str | None:
    """The driver for a URL scheme given without one (`postgres` → `postgresql+psycopg`)."""
    return next((k.driver for k in all_kinds() if scheme in k.schemes), None)


def kind_for_conn_type(conn_type: str) -> Kind | None:
    """The kind an Airflow connection type maps to, or None."""
    return next((k for k in all_kinds() if conn_type in k.conn_types), None)


def conn_types() -> tuple[str, ...]:
    return tuple(sorted({t for k in all_kinds() for t in k.conn_types}))

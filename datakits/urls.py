"""Connection URLs: from the string in an env var to a SQLAlchemy engine and connection.

URLs come from secrets (`RUNNER_SOURCE_URL`, `RUNNER_WAREHOUSE_URL`), so they are written
by people and by Airflow connections in several spellings. This module accepts the common
ones (`postgres://`, `mysql://` without a driver), picks the driver the image ships, and
makes every connection failure a `SourceUnavailable` whose message shows the URL with its
password hidden.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from sqlalchemy import URL, Connection, Engine, create_engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from sqlalchemy.pool import NullPool

from datakits import kinds
from datakits.errors import ConfigError, SourceUnavailable
from datakits.messages import reason

#: Seconds to wait for a TCP connection before calling the server unreachable.
CONNECT_TIMEOUT = 10


def parse_url(raw: str | URL) -> URL:
    """Parse a URL string and fill in the default driver.

    The raw string is never echoed in errors: it may contain a password.
    """
    if isinstance(raw, URL):
        url = raw
    else:
        try:
            url = make_url(raw.strip())
        except (ArgumentError, ValueError):
            raise ConfigError(
                "the connection URL is not a valid SQLAlchemy URL "
                "(expected e.g. postgresql://user@host:5432/db or sqlite:///path/to/file.db)"
            ) from None
    # the driver the images ship, when the URL names only the database (`postgres://`)
    driver = None if "+" in url.drivername else kinds.default_driver(url.drivername)
    return url.set(drivername=driver) if driver else url


def engine_url(raw: str | URL) -> URL:
    """The SQLAlchemy URL to give `create_engine` for a URL string (default driver filled in).

    The public name for tools outside the load (reports, tests) that open a warehouse.
    """
    return parse_url(raw)


def safe(url: URL) -> str:
    """The URL as it may appear in logs and error messages."""
    return url.render_as_string(hide_password=True)


def backend(url: URL) -> str:
    """The database family of a URL: `postgresql`, `sqlite`, `duckdb`, `mysql`, ..."""
    return url.get_backend_name()


def require_backend(url: URL, expected: str, role: str) -> None:
    """Fail early when the URL does not match the kind the spec declares."""
    if backend(url) != expected:
        raise ConfigError(
            f"the {role} URL {safe(url)} is a {backend(url)} URL, "
            f"but the spec declares a {expected} {role}"
        )


def _read_only_sqlite(url: URL) -> URL:
    """Open an existing SQLite file read-only, so a source is never created or changed."""
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return url
    path = Path(database)
    if not path.is_file():
        raise SourceUnavailable(f"sqlite database {path} does not exist")
    return url.set(
        database=f"file:{quote(str(path.resolve()))}",
        query={**url.query, "mode": "ro", "uri": "true"},
    )


def _server_backend(name: str) -> bool:
    """A database behind a TCP connection (not a file): one that may keep us waiting."""
    return any(
        not k.file_based and (name == k.backend or name in k.schemes) for k in kinds.all_kinds()
    )


def make_engine(url: URL, *, read_only_file: bool = False) -> Engine:
    """An engine for one load: no pool (one process, one connection per side).

    `read_only_file` opens a SQLite source read-only and refuses a missing file, instead
    of SQLite's default of silently creating an empty database.
    """
    connect_args: dict[str, object] = {}
    if backend(url) == "sqlite" and read_only_file:
        url = _read_only_sqlite(url)
    if _server_backend(backend(url)) and "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = CONNECT_TIMEOUT
    try:
        return create_engine(url, poolclass=NullPool, connect_args=connect_args)
    except NoSuchModuleError:
        raise ConfigError(f"no SQLAlchemy dialect for {url.drivername!r} in {safe(url)}") from None
    except ImportError as exc:
        raise ConfigError(f"the driver for {safe(url)} is not installed: {exc}") from None


def connect(engine: Engine, role: str) -> Connection:
    """Open a connection; unreachable servers and refused credentials → `SourceUnavailable`."""
    try:
        return engine.connect()
    except DBAPIError as exc:
        raise SourceUnavailable(
            f"cannot connect to the {role} {safe(engine.url)}: {reason(exc, engine.url.password)}"
        ) from None

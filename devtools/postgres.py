"""A throwaway PostgreSQL cluster owned by one test or benchmark run.

PostgreSQL refuses to run as root, and our machines' sessions are root, so the cluster
is made and started as the `postgres` system user (STACK.md). It lives in its own data
directory on its own port, so it never touches a packaged cluster, and `stop()` removes it.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg import sql


def free_port() -> int:
    """A TCP port nothing listens on now (the kernel's pick), for a server we start."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise RuntimeError(
        "PostgreSQL server binaries not found: run `make services` (apt-get install postgresql)"
    )


class PostgresCluster:
    """initdb + pg_ctl start on `port`; `url` is a superuser SQLAlchemy URL (trust auth)."""

    def __init__(self, port: int = 55432, user: str = "postgres") -> None:
        self.port = port
        self.user = user
        self.bin = _bin_dir()
        self.dir = Path(tempfile.mkdtemp(prefix=f"pgcluster-{port}-"))
        self._as_root = os.geteuid() == 0

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/postgres"

    def _run(self, *argv: str) -> None:
        cmd = [str(self.bin / argv[0]), *argv[1:]]
        if self._as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, text=True)

    def start(self) -> PostgresCluster:
        if self._as_root:
            shutil.chown(self.dir, "postgres", "postgres")
        data = self.dir / "data"
        self._run("initdb", "-D", str(data), "--auth=trust", "-U", self.user, "-E", "UTF8")
        # a throwaway server: no fsync, and WAL recycled at 256 MB instead of 1 GB (disk)
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c max_wal_size=256MB -c min_wal_size=32MB"
        )
        self._run(
            "pg_ctl", "-D", str(data), "-o", options, "-l", str(self.dir / "log"), "-w", "start"
        )
        self._wait_ready()
        return self

    def _wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                psycopg.connect(self.dsn("postgres"), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def dsn(self, database: str) -> str:
        return f"host=127.0.0.1 port={self.port} user={self.user} dbname={database}"

    def create_database(
        self, name: str, *, owner: str | None = None, password: str | None = None
    ) -> str:
        """Create (or recreate) a database; returns its SQLAlchemy URL. With `owner`, a login
        role of that name (and `password`) is (re)created, owns the database, and is the
        URL's user: a warehouse as a tenant's runner would reach it."""
        user = owner or self.user
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            ident = sql.Identifier(name)
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
            if owner is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(ident))
            else:
                role = sql.Identifier(owner)
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(role))
                conn.execute(
                    sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(role, sql.Literal(password))
                )
                conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(ident, role))
        secret = f":{password}" if owner is not None and password else ""
        return f"postgresql+psycopg://{user}{secret}@127.0.0.1:{self.port}/{name}"

    def drop_database(self, name: str) -> None:
        """Drop a database (its sessions ended first), if it exists."""
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            ident = sql.Identifier(name)
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.dir / "data"), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PostgresCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

"""A throwaway MariaDB server owned by one test or benchmark run.

Like `devtools.postgres`: its own data directory and port, so it never touches a
packaged server, and `stop()` removes it. `mariadb-install-db` creates the system tables
(about a second); `mariadbd` runs as the `mysql` system user (our sessions are root, and
the server refuses root without `--user`). Root connects over TCP without a password.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pymysql

from devtools.postgres import free_port


def _binary(name: str) -> str:
    found = shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/usr/bin") / name) if p.exists()), None
    )
    if found is None:
        raise RuntimeError(
            f"MariaDB server binary {name} not found: run `make services` "
            "(apt-get install mariadb-server)"
        )
    return found


class MariaDBServer:
    """mariadb-install-db + mariadbd on `port`; `url(db)` is a root SQLAlchemy URL."""

    def __init__(self, port: int | None = None, user: str = "mysql") -> None:
        self.port = port or free_port()
        self.user = user
        self.dir = Path(tempfile.mkdtemp(prefix=f"mariadb-{self.port}-"))
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def data(self) -> Path:
        return self.dir / "data"

    def url(self, database: str = "mysql") -> str:
        return f"mysql+pymysql://root@127.0.0.1:{self.port}/{database}?charset=utf8mb4"

    def start(self) -> MariaDBServer:
        self.data.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.dir, self.user, self.user)
            shutil.chown(self.data, self.user, self.user)
        subprocess.run(
            [
                _binary("mariadb-install-db"),
                f"--user={self.user}",
                f"--datadir={self.data}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        log = (self.dir / "server.log").open("wb")
        self._proc = subprocess.Popen(
            [
                _binary("mariadbd"),
                "--no-defaults",  # the packaged /etc/mysql config is not ours
                f"--user={self.user}",
                f"--datadir={self.data}",
                f"--socket={self.dir / 'sock'}",
                f"--port={self.port}",
                "--bind-address=127.0.0.1",
                f"--pid-file={self.dir / 'pid'}",
                "--skip-name-resolve",
                "--innodb-flush-log-at-trx-commit=0",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self._wait_ready()
        return self

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self._proc is not None and self._proc.poll() is not None:
                tail = (self.dir / "server.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"mariadbd exited with {self._proc.returncode}: {tail}")
            try:
                self.connect().close()
                return
            except pymysql.err.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def connect(self, database: str | None = None) -> pymysql.connections.Connection:
        return pymysql.connect(
            host="127.0.0.1",
            port=self.port,
            user="root",
            database=database,
            charset="utf8mb4",
            autocommit=True,
            connect_timeout=2,
        )

    def create_database(self, name: str) -> str:
        """Create (or recreate) a database; returns its SQLAlchemy URL."""
        conn = self.connect()
        try:
            with conn.cursor() as cursor:
                if not re.fullmatch(r"[a-z_][a-z0-9_]{0,63}", name):
                    raise ValueError(f"not a plain database name: {name!r}")
                cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
                cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        finally:
            conn.close()
        return self.url(name)

    def stop(self) -> None:
        try:
            if self._proc is not None and self._proc.poll() is None:
                self._proc.send_signal(signal.SIGTERM)
                try:
                    self._proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait()
        finally:
            self._proc = None
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> MariaDBServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

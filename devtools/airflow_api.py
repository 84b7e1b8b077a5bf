"""A throwaway Airflow API server behind the FAB auth manager, owned by one test run.

What it takes for the API to answer as in production: a metadata DB migrated with the FAB
auth manager configured (its tables: users, roles, permissions), the tenants' roles
(`dag-factory roles`), users (`airflow users create`), the DAGs stored (`airflow dags
reserialize`, which also syncs each DAG's `access_control` as the dag-processor would),
then `airflow api-server` on a free port.
SQLite, so each step runs alone: two writers at once would meet "database is locked".
`stop()` ends the server's whole process group (uvicorn runs workers under it).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from devtools.postgres import free_port

FAB_AUTH_MANAGER = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class User:
    username: str
    password: str
    role: str

    def argv(self) -> list[str]:
        """`airflow users create` arguments (one role: FAB's CLI takes one)."""
        return [
            *("--username", self.username, "--password", self.password),
            *("--role", self.role, "--email", f"{self.username}@example.com"),
            *("--firstname", self.username, "--lastname", "test"),
        ]


class AirflowApiServer:
    """`setup()` the home (DB, roles, users, DAGs), then `start()`; `stop()` always."""

    def __init__(self, home: Path, dags_folder: Path, warehouses: Path, port: int = 0) -> None:
        self.home = home
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = home / "api-server.log"
        self.env = {
            **os.environ,
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__AUTH_MANAGER": FAB_AUTH_MANAGER,
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__BASE_URL": self.url,
            # The token-signing secret, long enough for HS512 (PyJWT warns under 64 bytes).
            "AIRFLOW__API_AUTH__JWT_SECRET": "s" * 64,
            # A user's permissions are cached for 30 s by default: a test sees a change now.
            "AIRFLOW__FAB__CACHE_TTL": "0",
            "DAG_FACTORY_WAREHOUSES": str(warehouses),
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        self._proc: subprocess.Popen[bytes] | None = None

    def run(self, *argv: str) -> str:
        """One CLI command in this home (`airflow ...`, `dag-factory ...`); its output, or a
        RuntimeError with the tail of it."""
        done = subprocess.run(
            [str(BIN / argv[0]), *argv[1:]],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0:
            tail = (done.stdout + done.stderr).strip().splitlines()[-15:]
            raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}:\n" + "\n".join(tail))
        return done.stdout

    def setup(self, users: list[User]) -> None:
        self.run("airflow", "db", "migrate")
        self.run("dag-factory", "roles")  # the roles and each DAG's grants, kept in FAB
        for user in users:  # `users import` takes no passwords
            self.run("airflow", "users", "create", *user.argv())
        self.run("airflow", "dags", "reserialize")

    def start(self, timeout: float = 120) -> AirflowApiServer:
        with self.log.open("wb") as log:
            self._proc = subprocess.Popen(
                [str(BIN / "airflow"), "api-server", "-H", "127.0.0.1", "-p", str(self.port)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() ends the workers too
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"airflow api-server exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/api/v2/monitor/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"airflow api-server not ready in {timeout}s; see {self.log}")

    def stop(self, timeout: float = 20) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def client(self, username: str, password: str) -> httpx.Client:
        """An HTTP client carrying `username`'s bearer token from the API's token endpoint."""
        response = httpx.post(
            f"{self.url}/auth/token", json={"username": username, "password": password}
        )
        response.raise_for_status()
        token = response.json()["access_token"]
        return httpx.Client(
            base_url=f"{self.url}/api/v2",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )

    def __enter__(self) -> AirflowApiServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

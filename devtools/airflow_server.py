"""A real local Airflow for tests and `make ui`: `airflow standalone` on a home of its own.

`airflow dags test` runs a DAG in-process and ignores pools, schedules and the UI, so a
DAG that names a missing pool passes it and then waits forever under a real scheduler.
This starts Airflow's own processes instead (scheduler, dag-processor, triggerer, API
server with the UI) and talks to them through the REST API, as a user would.

    python -m devtools.airflow_server ui      # what `make ui` runs (foreground, Ctrl-C)

Standalone starts its components as `airflow ...` from PATH: the virtualenv's `bin/`
goes first on PATH. Every process runs in one new process group, so stopping the server
signals that group and leaves nothing running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx

from devtools.postgres import free_port

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
#: How often the dag-processor looks for new files and re-parses changed ones (seconds):
#: short, so a tenant added while the server runs appears within a few seconds.
REFRESH_SECONDS = 5


class AirflowError(RuntimeError):
    """The server did not start, or an API call did not do what it should."""


def airflow_env(
    home: Path,
    port: int,
    warehouses: Path,
    extra: dict[str, str] | None = None,
    dags_folder: Path = REPO / "dags",
) -> dict[str, str]:
    """The environment of every Airflow process (and of `dag-factory pools`) for one home."""
    return {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": str(REFRESH_SECONDS),
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": str(REFRESH_SECONDS),
        "DAG_FACTORY_WAREHOUSES": str(warehouses),
        **(extra or {}),
    }


def migrate(env: dict[str, str]) -> None:
    """Create the metadata database first, so pools exist before the scheduler looks."""
    done = subprocess.run(
        [VENV_BIN / "airflow", "db", "migrate"], env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise AirflowError(f"airflow db migrate failed:\n{done.stderr[-2000:]}")


def compile_dbt(env: dict[str, str], tenants: Iterable[str] = ()) -> None:
    """`dag-factory dbt compile` for `tenants` (default: all) of this home's tenants folder,
    so their DAGs are model-level (one task per dbt model) as in a deployment: without a
    compiled graph a tenant keeps its layer tasks. Parses each dbt project (seconds each),
    connects to no warehouse."""
    done = subprocess.run(
        [VENV_BIN / "dag-factory", "dbt", "compile", *tenants],
        env=env,
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    if done.returncode != 0:
        raise AirflowError(f"dag-factory dbt compile failed:\n{done.stdout}{done.stderr}")


def create_pools(env: dict[str, str], *extra_args: str) -> subprocess.CompletedProcess[str]:
    """`dag-factory pools` against this home: every pool the tenants name, idempotently."""
    return subprocess.run(
        [VENV_BIN / "dag-factory", "pools", *extra_args],
        env=env,
        capture_output=True,
        text=True,
        cwd=REPO,
    )


class AirflowServer:
    """`airflow standalone` in its own process group, with a small REST client."""

    def __init__(self, home: Path, env: dict[str, str], port: int) -> None:
        self.home = home
        self.env = env
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_file = home / "standalone.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._client: httpx.Client | None = None

    # --- processes ---------------------------------------------------------------------

    def start(self) -> None:
        with self.log_file.open("ab") as log:
            self.proc = subprocess.Popen(
                [VENV_BIN / "airflow", "standalone"],
                env=self.env,
                cwd=self.home,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: stop() signals all of it
            )

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM the whole group, then SIGKILL whatever is left after `timeout`."""
        if self._client is not None:
            self._client.close()
            self._client = None
        if self.proc is None:
            return
        pgid = self.proc.pid  # a session leader: its pid is the group id
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10)):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and _group_alive(pgid):
                self.proc.poll()  # reaps the leader once it exits
                time.sleep(0.2)
            if not _group_alive(pgid):
                break
        self.proc.wait(timeout=5)
        self.proc = None

    def log_tail(self, lines: int = 60) -> str:
        text = self.log_file.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def _check_running(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise AirflowError(
                f"airflow standalone exited ({self.proc.returncode}):\n{self.log_tail()}"
            )

    # --- REST API ------------------------------------------------------------------------

    def token(self) -> str:
        """A JWT from the simple auth manager (all-admins: `GET /auth/token`, no login)."""
        response = httpx.get(f"{self.url}/auth/token", timeout=10)
        response.raise_for_status()
        return response.json()["access_token"]

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(
                base_url=f"{self.url}/api/v2",
                headers={"Authorization": f"Bearer {self.token()}"},
                timeout=30,
            )
        return self._client

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.client.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise AirflowError(f"{method} {path}: {response.status_code} {response.text[:500]}")
        return response.json() if response.content else None

    def wait_ready(self, dag_ids: Iterable[str], timeout: float = 180) -> None:
        """Until the API answers and every DAG in `dag_ids` is parsed and listed."""
        wanted = set(dag_ids)
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            self._check_running()
            try:
                health = httpx.get(f"{self.url}/api/v2/monitor/health", timeout=5)
                if health.status_code == 200:
                    listed = self.dag_ids()
                    if wanted <= listed:
                        return
                    last = f"DAGs listed so far: {sorted(listed)}"
            except httpx.TransportError as exc:
                last = f"API not answering: {exc}"
            time.sleep(1)
        raise AirflowError(f"Airflow not ready after {timeout:.0f}s ({last}):\n{self.log_tail()}")

    def dag_ids(self) -> set[str]:
        return {d["dag_id"] for d in self.api("GET", "/dags", params={"limit": 1000})["dags"]}

    def wait_dag(self, dag_id: str, timeout: float = 60) -> dict[str, Any]:
        """Until `dag_id` is listed (a file added while the server runs); its DAG record."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_running()
            response = self.client.get(f"/dags/{dag_id}")
            if response.status_code == 200:
                return response.json()
            time.sleep(1)
        raise AirflowError(f"DAG {dag_id} not listed after {timeout:.0f}s")

    def unpause(self, dag_id: str) -> None:
        self.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})

    def trigger(self, dag_id: str, run_id: str | None = None) -> str:
        body: dict[str, Any] = {"logical_date": None}
        if run_id:
            body["dag_run_id"] = run_id
        return self.api("POST", f"/dags/{dag_id}/dagRuns", json=body)["dag_run_id"]

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 240) -> dict[str, Any]:
        """Until the run is `success` or `failed`; its record (stuck runs time out)."""
        deadline = time.monotonic() + timeout
        run: dict[str, Any] = {}
        while time.monotonic() < deadline:
            self._check_running()
            run = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")
            if run["state"] in ("success", "failed"):
                return run
            time.sleep(2)
        states = self.task_states(dag_id, run_id)
        raise AirflowError(
            f"run {dag_id}/{run_id} still {run.get('state')} after {timeout:.0f}s; tasks: {states}"
        )

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        found = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
        return {ti["task_id"]: ti["state"] for ti in found["task_instances"]}

    def import_errors(self) -> list[dict[str, Any]]:
        return self.api("GET", "/importErrors", params={"limit": 1000})["import_errors"]


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


#: For tests: no runs from schedules, only the ones a test triggers (unpausing a `@daily`
#: DAG would otherwise start a run for the last interval, doubling a test's wait).
TRIGGERED_RUNS_ONLY = {"AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False"}


def start_server(
    home: Path,
    warehouses: Path,
    extra_env: dict[str, str] | None = None,
    port: int | None = None,
    compile_tenants: Iterable[str] | None = (),
) -> AirflowServer:
    """Compile the tenants' dbt graphs (`compile_tenants`: those ids, () every tenant, None
    none), migrate, create the tenants' pools, start standalone; not yet waited for."""
    port = port or free_port()
    env = airflow_env(home, port, warehouses, extra_env)
    if compile_tenants is not None:
        compile_dbt(env, compile_tenants)
    migrate(env)
    pools = create_pools(env)
    if pools.returncode != 0:
        raise AirflowError(f"dag-factory pools failed:\n{pools.stdout}{pools.stderr}")
    server = AirflowServer(home, env, port)
    server.start()
    return server


def _acme_connections(orders: int) -> tuple[Any, dict[str, str]]:
    """A throwaway PostgreSQL with ACME's shop, and the `AIRFLOW_CONN_*` env that names it
    (ACME reads its connections from Airflow); (None, {}) where PostgreSQL is missing."""
    from devtools.postgres import PostgresCluster
    from devtools.shop import generate_shop

    try:
        cluster = PostgresCluster(port=free_port()).start()
    except Exception as exc:  # no server binaries: the UI still runs the demo tenant
        print(f"no PostgreSQL for tenant acme ({exc}); scripts/services/postgresql.sh installs it")
        return None, {}
    env = {}
    for database in ("acme_source", "acme_warehouse"):
        url = cluster.create_database(database)
        env[f"AIRFLOW_CONN_{database.upper()}"] = (
            f"postgres://{cluster.user}@127.0.0.1:{cluster.port}/{database}"
        )
        if database == "acme_source":
            generate_shop(url, orders=orders, schema="shop")
    return cluster, env


def ui(data: Path, port: int, orders: int) -> int:
    """`make ui`: the tenants of warehouses/ in a local Airflow until Ctrl-C."""
    from devtools.shop import generate_shop

    # Ctrl-C, and a plain `kill`, both end in the cleanup below (a shell that started us in
    # the background may have left SIGINT ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    data.mkdir(parents=True, exist_ok=True)
    shop = data / "shop.sqlite"
    if not shop.exists():
        generate_shop(f"sqlite:///{shop}", orders=orders)
    cluster, conn_env = _acme_connections(orders)
    home = data / "airflow"
    home.mkdir(exist_ok=True)
    extra = {
        "DEMO_SOURCE_URL": f"sqlite:///{shop}",
        "DEMO_WAREHOUSE_URL": f"duckdb:///{data}/warehouse.duckdb",
        **conn_env,
    }
    print("dag-factory dbt compile: each tenant's DAG gets one task per dbt model...", flush=True)
    server = start_server(home, REPO / "warehouses", extra, port)
    try:
        server.wait_ready(["tenant_demo"], timeout=300)
        print(
            f"\nAirflow is up: {server.url}\n"
            "login: none needed — every visitor is admin "
            "(AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS=True, local use only)\n"
            f"AIRFLOW_HOME={home}  log: {server.log_file}\n"
            "unpause and trigger tenant_demo in the UI; Ctrl-C stops everything.",
            flush=True,
        )
        while server.proc is not None and server.proc.poll() is None:
            time.sleep(1)
        print(f"airflow standalone exited:\n{server.log_tail()}")
        return 1
    except KeyboardInterrupt:
        print("\nstopping Airflow...")
        return 0
    finally:
        server.stop()
        if cluster is not None:
            cluster.stop()


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m devtools.airflow_server")
    parser.add_argument("command", choices=["ui"])
    parser.add_argument("--data", type=Path, default=REPO / ".data" / "ui")
    parser.add_argument("--port", type=int, default=int(os.environ.get("UI_PORT", "8080")))
    parser.add_argument("--orders", type=int, default=2000)
    args = parser.parse_args(argv)
    return ui(args.data.resolve(), args.port, args.orders)


if __name__ == "__main__":
    sys.exit(main())

"""Run every check of every tenant, as concurrently as the checks allow.

Per tenant: connection references resolve (Airflow-side calls on one thread of their
own, see `airflow_side`), then the source tables, the warehouse and the dbt layers are
checked in parallel, each as soon as the URL it needs is known; the pool check runs on
the Airflow thread meanwhile. A check that crashes becomes a problem line, never a
traceback that hides the other checks.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from dag_factory.doctor.airflow_side import check_pool, resolve_ref
from dag_factory.doctor.findings import Finding, Status
from dag_factory.doctor.graph import CHECK, check_graph
from dag_factory.doctor.layers import finish_listings, start_listings
from dag_factory.doctor.servers import check_source, check_warehouse
from dag_factory.loader import Tenant
from dag_factory.plan import plan_tenant
from datakits.messages import one_line
from datakits.spec import ConnectionRef

_Resolved = tuple[str | None, Finding]
#: Tenants whose dbt layers are listed at once: each `ls` is a dbt process parsing the
#: project (~3 s of CPU, ~200 MB), one per layer.
DBT_TENANTS_AT_ONCE = 2


def _guarded(tenant: str, check: str, work: Callable[[], list[Finding]]) -> list[Finding]:
    try:
        return work()
    except Exception as exc:  # a bug or an unforeseen driver error: still one line
        message = f"the check failed unexpectedly: {type(exc).__name__}: {one_line(str(exc))}"
        return [Finding(tenant, check, Status.problem, message)]


class Doctor:
    """Checks tenants against the Airflow and the servers of the machine it runs on."""

    def __init__(self, root: Path) -> None:
        #: The runner's working directory: the folder holding `warehouses/`.
        self.root = root
        self._airflow = ThreadPoolExecutor(max_workers=1, thread_name_prefix="doctor-airflow")
        self._work = ThreadPoolExecutor(max_workers=8, thread_name_prefix="doctor")
        self._dbt_slots = threading.BoundedSemaphore(DBT_TENANTS_AT_ONCE)

    def __enter__(self) -> Doctor:
        return self

    def __exit__(self, *exc: object) -> None:
        self._airflow.shutdown()
        self._work.shutdown()

    def _resolve(self, tenant: str, field: str, ref: ConnectionRef, kind: str) -> Future[_Resolved]:
        if ref.airflow_conn is not None:  # imports Airflow: on the Airflow thread
            return self._airflow.submit(resolve_ref, tenant, field, ref, kind)
        done: Future[_Resolved] = Future()
        done.set_result(resolve_ref(tenant, field, ref, kind))
        return done

    def start(self, tenant: Tenant) -> Callable[[], list[Finding]]:
        """Start every check of `tenant`; the returned call waits for their findings."""
        spec, name = tenant.spec, tenant.spec.tenant
        source_url = self._resolve(
            name, "source.connection", spec.source.connection, spec.source.kind
        )
        warehouse_url = self._resolve(
            name, "warehouse.connection", spec.warehouse.connection, spec.warehouse.kind
        )
        pool = self._airflow.submit(_guarded, name, "pool", lambda: [check_pool(name, spec.pool)])
        graph = _guarded(name, CHECK, lambda: [check_graph(tenant, self.root)])

        def source() -> list[Finding]:
            url, resolved = source_url.result()
            if url is None:
                return [resolved, Finding(name, "source", Status.skipped, "no source URL")]
            return [resolved, *check_source(name, spec, url)]

        def warehouse_and_dbt() -> list[Finding]:
            url, resolved = warehouse_url.result()
            if url is None:
                why = "no warehouse URL"
                return [
                    resolved,
                    Finding(name, "warehouse", Status.skipped, why),
                    Finding(name, "dbt", Status.skipped, why),
                ]
            with self._dbt_slots:
                listings = start_listings(plan_tenant(tenant, self.root), self.root, url)
                try:
                    reached = check_warehouse(name, spec, url)  # while dbt parses
                    return [resolved, reached, *finish_listings(name, listings)]
                finally:  # a crash above must not leave dbt processes behind
                    for listing in listings:
                        if listing.process.poll() is None:
                            listing.process.kill()

        parts = [
            self._work.submit(_guarded, name, "source", source),
            self._work.submit(_guarded, name, "warehouse", warehouse_and_dbt),
            pool,
        ]
        return lambda: [*graph, *(finding for part in parts for finding in part.result())]

"""The Airflow pools the tenants name: created or updated from the tenant files.

A tenant's `pool:` caps how many of its tasks run at once across all of its runs. A task
whose pool does not exist is never queued: it stays "scheduled" and the UI says nothing.
So every pool a tenant names must exist before its DAG runs, and adding a tenant must not
mean editing a second file (`astro/airflow_settings.yaml` used to be that file).

Why a command (`dag-factory pools`), run by `make demo`, `make ui` and a deployment's
start path, and not something else:

* Not at parse time: the DAG file must parse without a database (the dag-processor of
  Airflow 3 has none, and a thousand tenants parse in seconds only without I/O).
* Through Airflow's own model, `Pool.create_or_update_pool`, against the metadata
  database, rather than the REST API: it runs before the API server is up (`make ui`
  migrates, creates the pools, then starts Airflow), needs no credentials of a user, and
  is the same call `airflow pools set` makes — one process for all pools instead of one
  `airflow` process (seconds of imports) per pool.
* Idempotent: it sets each pool to what the tenant says (slots = the tenant's
  `concurrency`, 1 for DuckDB tenants that take one writer at a time), so running it on
  every start is safe and a changed concurrency reaches the pool.

A tenant without `pool:` runs in Airflow's `default_pool`; invalid tenant files are
skipped (their placeholder DAG has no pool). Pools no tenant names are left alone: an
operator may have made them.
"""

from __future__ import annotations

from dataclasses import dataclass

from dag_factory.loader import Tenant


@dataclass(frozen=True)
class PoolSpec:
    """A pool as the tenants want it."""

    name: str
    slots: int
    description: str


def wanted_pools(tenants: list[Tenant]) -> list[PoolSpec]:
    """One pool per pool name; a name shared by several tenants gets the largest slots."""
    pools: dict[str, PoolSpec] = {}
    for tenant in tenants:
        spec = tenant.spec
        if not spec.enabled or spec.pool is None:
            continue
        slots = 1 if spec.serial_only else spec.concurrency
        why = f"{spec.warehouse.kind.value} warehouse" + (
            ", one writer" if spec.serial_only else ""
        )
        current = pools.get(spec.pool)
        if current is None:
            pools[spec.pool] = PoolSpec(
                spec.pool, slots, f"Task slots of tenant {spec.tenant} ({why})"
            )
        else:
            pools[spec.pool] = PoolSpec(
                spec.pool,
                max(current.slots, slots),
                f"{current.description}; tenant {spec.tenant} ({why})",
            )
    return sorted(pools.values(), key=lambda p: p.name)


def existing_pools() -> dict[str, int]:
    """Pool name → slots, read from Airflow's metadata database."""
    from airflow.models.pool import Pool

    return {pool.pool: pool.slots for pool in Pool.get_pools()}


def apply_pools(pools: list[PoolSpec]) -> None:
    """Create or update every pool in one transaction."""
    from airflow.models.pool import Pool
    from airflow.utils.session import create_session

    with create_session() as session:
        for pool in pools:
            Pool.create_or_update_pool(
                pool.name, pool.slots, pool.description, include_deferred=False, session=session
            )

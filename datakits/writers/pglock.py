"""PostgreSQL advisory locks with a timeout: how two loads of one table never interleave.

The lock is transaction-scoped (`pg_advisory_xact_lock`): commit, rollback or a dead
session (a killed runner) releases it, so no lock outlives its load. A second load waits
for it, but not forever: `lock_timeout` is set for the one statement that waits (and
restored after it, so the load's own DDL is not affected), and a timeout becomes
`WarehouseBusy` with one line instead of a driver error.
"""

from __future__ import annotations

import time

from sqlalchemy import Connection, func, literal, select
from sqlalchemy.exc import OperationalError

from datakits.errors import WarehouseBusy

#: SQLSTATE of "canceling statement due to lock timeout".
_LOCK_NOT_AVAILABLE = "55P03"


def advisory_xact_lock(conn: Connection, lock_name: str, timeout: float) -> None:
    """Hold `lock_name` until the transaction ends; `WarehouseBusy` after `timeout` seconds."""
    key = func.hashtext(literal(lock_name))
    if conn.execute(select(func.pg_try_advisory_xact_lock(key))).scalar_one():
        return
    previous = conn.execute(select(func.current_setting("lock_timeout"))).scalar_one()
    # 0 would mean "wait forever" to PostgreSQL: the smallest real wait is 1 ms.
    millis = max(1, round(timeout * 1000))
    conn.execute(select(func.set_config("lock_timeout", f"{millis}ms", True)))
    started = time.monotonic()
    try:
        conn.execute(select(func.pg_advisory_xact_lock(key)))
    except OperationalError as exc:
        if getattr(exc.orig, "sqlstate", None) != _LOCK_NOT_AVAILABLE:
            raise
        what = lock_name.removeprefix("datakits:load:")
        if what.startswith("datakits:bootstrap:"):
            what = f"the set-up of schema {what.removeprefix('datakits:bootstrap:')}"
        raise WarehouseBusy(
            f"another load holds the lock of {what}: gave up after waiting "
            f"{time.monotonic() - started:.1f} s (lock timeout {timeout:g} s)"
        ) from None
    conn.execute(select(func.set_config("lock_timeout", previous, True)))

"""The facts of a runner's result on its task's asset events, once for every adapter.

Each task's outlet (`tenant://<t>/bronze/<table>`, `tenant://<t>/silver`, ...) gets an
asset event when the task succeeds; without extra it says only *that* something was
loaded. The local, Docker and Kubernetes operators call `publish` with the parsed runner
result (`datakits.contract.parse_result`) after a successful run, so a platform team sees
in Airflow's asset view what each load did: rows, bytes, seconds, batch id, the committed
watermark and when the source read started (extract); models built and tests passed or
failed (dbt). The extra is a copy of facts the warehouse already holds: the load audit and
the watermark table in the tenant's meta schema stay the source of truth
(`dag-factory status` reads those).

Why not mirror the watermark into Airflow 3.3's asset state store
(`context["asset_state_store"][asset].set("watermark", ...)`) as well: the store is
mutable key/value state meant to be *read back by the next run* — exactly the role of the
warehouse's watermark table, which commits in the same transaction as the bronze rows.
A second copy written after that commit can lag or diverge (a task killed between the
commit and the store write, a `--full-refresh` that resets the table's watermark, a load
run by hand with `runner extract` outside Airflow), and a reader of the store could not
tell a stale value from a true one. The asset event is immutable and stamped with its run:
"watermark W was committed by batch B in run R" stays true forever, so it carries the
watermark and the store is left alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

#: The extract result's fields copied onto the bronze asset's event.
EXTRACT_FACTS = ("mode", "rows", "bytes", "seconds", "batch_id", "watermark", "read_at", "target")
#: The dbt result's fields copied onto the layer asset's event.
DBT_FACTS = ("nodes", "passed", "failed", "skipped", "warned", "tests_failed", "tests_passed")


def facts(result: dict[str, Any]) -> dict[str, Any]:
    """The asset-event extra of a runner result: JSON values only, no secret (a result
    line never holds one: DESIGN.md contract 4)."""
    command = result.get("command")
    if command == "extract":
        picked = {k: result[k] for k in EXTRACT_FACTS if k in result}
    elif command == "dbt":
        picked = {k: result[k] for k in DBT_FACTS if k in result}
        if "models" in result:
            picked["models"] = list(result["models"])
            picked["models_built"] = len(result["models"])
        if "dbt_command" in result:
            picked["dbt_command"] = " ".join(result["dbt_command"])
    else:
        return {}
    return {"command": command, "status": result.get("status"), **picked}


def publish(context: Any, outlets: Iterable[Any], result: dict[str, Any] | None) -> None:
    """Put the facts of `result` on the event each outlet asset gets for this task.

    Airflow 3's `context["outlet_events"][asset].extra` is what the task runner sends
    with the asset event when the task succeeds."""
    extra = facts(result or {})
    if not extra:
        return
    events = context["outlet_events"]
    for outlet in outlets:
        events[outlet].extra.update(extra)

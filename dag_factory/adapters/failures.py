"""How every adapter ends a task whose runner failed: one mapping, from the contract.

`datakits.contract` says which exit codes are permanent; here they become Airflow's
`AirflowFailException` (the task fails at once, retries left or not) and every other
code `AirflowException` (retried). The local, Docker and Kubernetes adapters all raise
through `runner_failure`, so a bad spec is never retried on any executor.
"""

from __future__ import annotations

from airflow.sdk.exceptions import AirflowException, AirflowFailException

from datakits.contract import describe, is_permanent


def runner_failure(code: int | None, reason: str = "") -> AirflowException:
    """The exception to raise for a runner that ended with `code` (None: unknown)."""
    message = f"runner failed with {describe(code)}" + (f": {reason}" if reason else "")
    return AirflowFailException(message) if is_permanent(code) else AirflowException(message)

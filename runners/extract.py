"""`runner extract --table X`: one load of one table, with progress on stderr.

Thin on purpose: the engine is `datakits.load`; this module only reads the runner's
tuning env vars, chooses the stderr progress and turns the result into the dict the CLI
prints as its JSON line.

* `RUNNER_LOCK_TIMEOUT`: seconds to wait for another load of the same table (PostgreSQL
  advisory lock) or for the DuckDB file, before failing with exit code 5. Default 600.
* `RUNNER_PROGRESS_INTERVAL`: seconds between progress lines in a log. Default 30;
  0 writes one after every batch.
"""

from __future__ import annotations

import math
import os
from typing import Any

from datakits.contract import LOCK_TIMEOUT_ENV, PROGRESS_INTERVAL_ENV
from datakits.errors import ConfigError
from datakits.load import load_table
from datakits.progress import DEFAULT_INTERVAL, StderrProgress
from datakits.spec import LoadSpec, TableSpec
from datakits.writers import DEFAULT_LOCK_TIMEOUT

__all__ = ["LOCK_TIMEOUT_ENV", "PROGRESS_INTERVAL_ENV", "env_seconds", "run_extract"]


def env_seconds(name: str, default: float) -> float:
    """A non-negative number of seconds from env var `name`; ConfigError if it is not one."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"{name} must be a number of seconds (0 or more), got {raw!r}")
    return value


def run_extract(
    spec: LoadSpec, table: TableSpec, source_url: str, warehouse_url: str
) -> dict[str, Any]:
    """Load `table` into bronze; returns tenant, table, mode, rows, bytes, seconds,
    batch_id, watermark and target for the runner's result line."""
    lock_timeout = env_seconds(LOCK_TIMEOUT_ENV, DEFAULT_LOCK_TIMEOUT)
    interval = env_seconds(PROGRESS_INTERVAL_ENV, DEFAULT_INTERVAL)
    with StderrProgress(interval=interval) as progress:
        result = load_table(
            spec, table, source_url, warehouse_url, progress=progress, lock_timeout=lock_timeout
        )
    return result.as_dict()

"""`runner extract --table X`: one load of one table, with progress on stderr.

Thin on purpose: the engine is `datakits.load`; this module only reads the runner's
tuning env vars, chooses the stderr progress and turns the result into the dict the CLI
prints as its JSON line.

* `RUNNER_LOCK_TIMEOUT`: seconds to wait for another load of the same table (PostgreSQL
  advisory lock) or for the DuckDB file, before failing with exit code 5. Default 600.
* `RUNNER_PROGRESS_INTERVAL`: seconds between progress lines in a log. Default 30;
  0 writes one after every batch. The planner sets it from the tenant's
  `tasks.extract.progress_interval` or the table's `task.progress_interval`.

A load that reads the whole source table (full refresh, or `--full-refresh`) asks the
source for its row estimate once the reader is open (`SqlTableReader.row_estimate`: one
catalog query on the reader's connection, not a connection of its own), so its progress
lines carry a percentage; an incremental or append load reads a slice whose
size no statistic gives, so its lines show rows and rows/s only.

Start-up runs without Python's cyclic garbage collector (`runners.cli.main` pauses it
for `extract`): importing SQLAlchemy, pyarrow, pydantic, deltalake and the drivers
allocates hundreds of thousands of long-lived objects, and the collections they trigger
scan them again and again — 184 collections, 0.03-0.05 s of CPU of every extract task
(counted with `gc.callbacks` on a 1M-row lakehouse load; 23 collections, 0.003 s,
after). `resume_gc` turns it back on when rows start to flow, with everything allocated
so far frozen (`gc.freeze`: modules, classes, reflected tables live until the process
exits), so the load's own collections stay small.

The result adds `read_at`: when the source read started (UTC, ISO 8601), i.e. how fresh
the snapshot loaded into bronze is — what a freshness check wants, rather than when the
task ran.
"""

from __future__ import annotations

import gc
import math
import os
from typing import Any

from datakits.contract import LOCK_TIMEOUT_ENV, PROGRESS_INTERVAL_ENV
from datakits.errors import ConfigError
from datakits.load import load_table
from datakits.progress import DEFAULT_INTERVAL, StderrProgress
from datakits.sources import SourceReader
from datakits.spec import LoadMode, LoadSpec, TableSpec
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


def resume_gc() -> None:
    """End the start-up pause of the cyclic GC (see the module docstring); idempotent."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


class _ExtractProgress(StderrProgress):
    """`StderrProgress` that resumes the GC when the load starts reading the source."""

    def start(self, label: str) -> None:
        resume_gc()
        super().start(label)


def run_extract(
    spec: LoadSpec,
    table: TableSpec,
    source_url: str,
    warehouse_url: str,
    *,
    full_reload: bool = False,
) -> dict[str, Any]:
    """Load `table` into bronze; returns tenant, table, mode, rows, bytes, seconds,
    batch_id, watermark and target for the runner's result line."""
    lock_timeout = env_seconds(LOCK_TIMEOUT_ENV, DEFAULT_LOCK_TIMEOUT)
    interval = env_seconds(PROGRESS_INTERVAL_ENV, DEFAULT_INTERVAL)
    whole_table = (full_reload or table.mode is LoadMode.full_refresh) and not table.filter
    with _ExtractProgress(interval=interval) as progress:

        def estimate(reader: SourceReader) -> None:
            progress.total = reader.row_estimate()

        result = load_table(
            spec,
            table,
            source_url,
            warehouse_url,
            progress=progress,
            lock_timeout=lock_timeout,
            full_reload=full_reload,
            on_source_open=estimate if whole_table else None,
        )
    read_at = progress.started_at.isoformat() if progress.started_at else None
    return {**result.as_dict(), "read_at": read_at}

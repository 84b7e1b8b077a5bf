"""`runner extract --table X`: one full-refresh load of one table, with progress on stderr.

Thin on purpose: the engine is `datakits.load`; this module only chooses the stderr
progress and turns the result into the dict the CLI prints as its JSON line.
"""

from __future__ import annotations

from typing import Any

from datakits.load import load_table
from datakits.progress import StderrProgress
from datakits.spec import LoadSpec, TableSpec


def run_extract(
    spec: LoadSpec, table: TableSpec, source_url: str, warehouse_url: str
) -> dict[str, Any]:
    """Load `table` into bronze; returns tenant, table, mode, rows, bytes, seconds,
    batch_id, watermark and target for the runner's result line."""
    with StderrProgress() as progress:
        result = load_table(spec, table, source_url, warehouse_url, progress=progress)
    return result.as_dict()

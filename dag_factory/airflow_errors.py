"""Broken tenant files as Airflow import errors, keyed by the tenant file itself.

Why not another channel (checked in Airflow 3.3.2's `airflow/dag_processing/`):
* an import error keyed by the DAG file (`dags/tenants.py`) marks *every* DAG of that file
  as having import errors — it would hide all tenants for one broken file;
* warnings captured while parsing (`DagBag.captured_warnings`) never reach the database,
  and DagWarning rows come only from Airflow's own checks.

An import error keyed by *another* path shows in the UI's import-error list and touches
no DAG; the dag-processor drops it at its next bundle refresh (the path is not a DAG
file) and this module adds it again on the next parse while the file is still broken.

The errors of one parse are collected by the importer in a local `DagImportResult`
(`importers/python_importer.py`: `import_file` → `_load_modules_from_file`, as `result`).
`report_import_errors` finds that object on the call stack and appends one
`DagImportError` per broken tenant file. **This relies on Airflow 3.3 internals**; it is a
no-op (returns False) when no such frame is found — outside Airflow, or after Airflow
changes — and `tests/dag_factory/test_airflow_errors.py` fails when that happens.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import FrameType
from typing import Any

from dag_factory.errors import TenantFileError

#: The modules whose frames may hold the active import result.
_IMPORTER_MODULE_PREFIX = "airflow.dag_processing."
ERROR_TYPE = "tenant_file"


def _active_import() -> tuple[Any, Path | None] | None:
    """The DagImportResult of the DAG file Airflow is importing now, and the bundle path."""
    try:
        from airflow.dag_processing.importers.base import DagImportResult
    except ImportError:
        return None
    result: Any = None
    bundle_path: Path | None = None
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        if frame.f_globals.get("__name__", "").startswith(_IMPORTER_MODULE_PREFIX):
            local = frame.f_locals
            if result is None and isinstance(local.get("result"), DagImportResult):
                result = local["result"]
            if bundle_path is None and local.get("bundle_path") is not None:
                bundle_path = Path(local["bundle_path"])
        frame = frame.f_back
    return (result, bundle_path) if result is not None else None


def tenant_file_key(file: Path, bundle_path: Path | None) -> str:
    """The import-error key of a tenant file: relative to the bundle when there is one
    (like Airflow's own keys; `../warehouses/<tenant>/warehouse.yaml` for a dags folder
    beside `warehouses/`), else the absolute path (as `get_relative_path` gives then)."""
    if bundle_path is None:
        return str(file)
    return os.path.relpath(file, bundle_path)


def report_import_errors(errors: list[TenantFileError]) -> bool:
    """Add one import error per broken tenant file to the import Airflow is running;
    False (and nothing done) when not called from inside an Airflow DAG-file import."""
    active = _active_import()
    if active is None:
        return False
    from airflow.dag_processing.importers.base import DagImportError

    result, bundle_path = active
    for error in errors:
        first = error.problems[0] if error.problems else None
        result.errors.append(
            DagImportError(
                file_path=tenant_file_key(error.file, bundle_path),
                message=f"Invalid tenant file {error.file}:\n{error}",
                error_type=ERROR_TYPE,
                line_number=first.line if first and first.file == error.file else None,
                column_number=first.column if first and first.file == error.file else None,
            )
        )
    return True

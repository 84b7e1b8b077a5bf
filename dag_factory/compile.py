"""`dag-factory dbt compile`: write each tenant's compiled dbt graph (issue 14, contract A).

The graph is the runner's to write (`runner dbt-graph`, in `runners/dbt_graph.py`):
dag_factory never imports runners, so each tenant's graph is one subprocess, started the
way the local adapter starts a runner (argv + env, a clean environment, the folder
holding `warehouses/` as working directory). No credentials: dbt parses against the
warehouse kind's example URL and never connects.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dag_factory.loader import Tenant
from dag_factory.plan import project_path
from datakits.contract import RUNNER_SPEC_ENV, parse_result

#: The folder, beside a tenant's warehouse.yaml, that holds its compiled graph.
COMPILED_DIR = "compiled"
#: Worker variables the runner needs to start (as the local adapter passes them).
_INHERITED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")


@dataclass(frozen=True)
class Compiled:
    """One tenant's outcome: `ok`, and the runner's result or its one-line error."""

    tenant: str
    ok: bool
    line: str
    result: dict[str, Any]


def compiled_dir(tenant: Tenant, out_root: Path | None = None) -> Path:
    """`warehouses/<tenant>/compiled/`, or `<out_root>/<tenant>/` when given."""
    if out_root is not None:
        return out_root / tenant.spec.tenant
    return tenant.folder / COMPILED_DIR


def compile_argv(tenant: Tenant, root: Path, out: Path) -> list[str]:
    """The runner argv that writes the tenant's graph to `out`."""
    layers = json.dumps(tenant.spec.dbt.layers, separators=(",", ":"))
    return [
        "dbt-graph",
        "--project-dir",
        project_path(tenant, root),
        "--layers",
        layers,
        # recorded in the graph: `make images` builds the tenant's image on its engine's base
        "--engine",
        tenant.spec.dbt.engine.value,
        "--out",
        str(out.absolute()),
    ]


def compile_tenant(tenant: Tenant, root: Path, out_root: Path | None = None) -> Compiled:
    """Run `runner dbt-graph` for one tenant; its last stderr line is the error."""
    out = compiled_dir(tenant, out_root)
    env = {name: os.environ[name] for name in _INHERITED_ENV if name in os.environ}
    env[RUNNER_SPEC_ENV] = tenant.spec.runner_spec_json()
    proc = subprocess.run(
        [sys.executable, "-m", "runners", *compile_argv(tenant, root, out)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    name = tenant.spec.tenant
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        last = lines[-1] if lines else f"runner exited {proc.returncode}"
        return Compiled(name, False, f"{name}: {last.removeprefix('runner dbt-graph: ')}", {})
    result = parse_result(proc.stdout)
    line = f"{name}: {result['nodes']} nodes, {result['tests']} tests → {out}"
    return Compiled(name, True, line, result)

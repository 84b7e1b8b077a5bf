"""Check the tenant's dbt project through the runner: it parses, and each layer's
selection matches at least one model.

`dag_factory` never imports `runners` (import-linter): the check runs the same runner
command as the dbt task, as a subprocess with the env the planner builds, with `ls` in
place of `build`, and reads the runner's JSON result line (`listed`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from dag_factory.doctor.findings import Finding, Status
from dag_factory.plan import PlannedTask, TaskKind, TenantPlan
from datakits.messages import one_line
from datakits.spec import WAREHOUSE_URL_ENV

#: dbt parses the whole project for `ls`: seconds on a small project, more on a big one.
DBT_TIMEOUT = 300


def ls_argv(task: PlannedTask) -> tuple[str, list[str]]:
    """The layer a dbt task selects, and the runner argv listing the models it selects."""
    argv = list(task.argv)
    layer = argv[argv.index("--select") + 1]
    command = argv.index("build")
    listing = [*argv[:command], "ls", "--select", layer, "--resource-type", "model"]
    return layer, [*listing, "--output", "name"]


@dataclass
class _Listing:
    layer: str
    project: str
    process: subprocess.Popen[str]


def start_listings(plan: TenantPlan, root: Path, warehouse_url: str) -> list[_Listing]:
    """Start one `runner dbt … ls` per dbt layer, all at once (each one parses the project)."""
    listings = []
    for task in plan.tasks:
        if task.kind is not TaskKind.dbt:
            continue
        layer, argv = ls_argv(task)
        env = {**os.environ, **task.env_dict, WAREHOUSE_URL_ENV: warehouse_url}
        process = subprocess.Popen(
            [sys.executable, "-m", "runners", *argv],
            cwd=root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        listings.append(_Listing(layer, argv[argv.index("--project-dir") + 1], process))
    return listings


def _result(listing: _Listing) -> tuple[dict | None, str]:
    """The runner's JSON result (None on failure) and its last stderr line."""
    try:
        out, err = listing.process.communicate(timeout=DBT_TIMEOUT)
    except subprocess.TimeoutExpired:
        listing.process.kill()
        listing.process.communicate()
        return None, f"dbt ls took longer than {DBT_TIMEOUT} s"
    last_err = next((line for line in reversed(err.splitlines()) if line.strip()), "")
    lines = out.strip().splitlines()
    if listing.process.returncode != 0 or not lines:
        return None, last_err or f"the runner exited with code {listing.process.returncode}"
    try:
        return json.loads(lines[-1]), last_err
    except json.JSONDecodeError:
        return None, f"the runner printed no JSON result: {one_line(lines[-1])}"


def finish_listings(tenant: str, listings: list[_Listing]) -> list[Finding]:
    """One finding per layer, once its `ls` has ended."""
    findings = []
    for listing in listings:
        result, reason = _result(listing)
        check = f"dbt {listing.layer}"
        if result is None:
            message = f"dbt project {listing.project} does not parse: {one_line(reason)}"
            findings.append(Finding(tenant, check, Status.problem, message))
            continue
        listed = result.get("listed", [])
        if not listed:
            message = (
                f"layer {listing.layer} selects no model in {listing.project}: add models "
                f"under models/{listing.layer} (the layer is selected by its folder)"
            )
            findings.append(Finding(tenant, check, Status.problem, message))
            continue
        shown = ", ".join(listed[:5]) + (", …" if len(listed) > 5 else "")
        message = f"layer {listing.layer} selects {len(listed)} model(s): {shown}"
        findings.append(Finding(tenant, check, Status.ok, message))
    return findings

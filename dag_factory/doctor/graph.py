"""The doctor's check of a tenant's compiled dbt graph (`dag-factory dbt compile`).

The DAG file trusts the graph without hashing the project (that would cost the parse
budget, `dag_factory.plan.stale_graph`); the doctor is where a stale graph is caught:
a spec that no longer matches it, or project files edited after it was written.
"""

from __future__ import annotations

from pathlib import Path

from dag_factory.build import executor_for, read_graph
from dag_factory.dbt_graph import graph_path
from dag_factory.doctor.findings import Finding, Status
from dag_factory.images import CONTAINER_EXECUTORS
from dag_factory.loader import Tenant
from dag_factory.plan import project_path, stale_graph

CHECK = "dbt graph"
#: Build output inside a dbt project: not an edit of the project.
_OUTPUT = {"target", "logs", "dbt_packages", "__pycache__", ".git"}


def _newest_edit(project: Path) -> tuple[float, Path | None]:
    newest, which = 0.0, None
    for path in project.rglob("*"):
        if path.is_file() and not _OUTPUT & set(path.relative_to(project).parts):
            mtime = path.stat().st_mtime
            if mtime > newest:
                newest, which = mtime, path
    return newest, which


def check_graph(tenant: Tenant, root: Path) -> Finding:
    """OK with the node count; a problem when the graph cannot be used or is stale, or
    when a container executor has none (its dbt image is named by the graph)."""
    name = tenant.spec.tenant
    fix = f"run `dag-factory dbt compile {name}`"
    graph, error = read_graph(tenant)
    if error is not None:
        return Finding(name, CHECK, Status.problem, f"{error}")
    if graph is None:
        if executor_for(tenant) in CONTAINER_EXECUTORS:
            return Finding(
                name,
                CHECK,
                Status.problem,
                f"none: its containers have no dbt image without it: {fix}, then `make images`",
            )
        return Finding(
            name, CHECK, Status.ok, f"none: one task per dbt layer ({fix} for one per model)"
        )
    project = project_path(tenant, root)
    reason = stale_graph(graph, tenant.spec, project)
    if reason is not None:
        return Finding(name, CHECK, Status.problem, f"stale ({reason}): {fix}")
    compiled_at = graph_path(tenant.file.parent).stat().st_mtime
    edited_at, edited = _newest_edit(root / project)
    if edited is not None and edited_at > compiled_at:
        shown = edited.relative_to(root).as_posix()
        return Finding(
            name, CHECK, Status.problem, f"stale ({shown} changed after it was compiled): {fix}"
        )
    grain = tenant.spec.dbt.tasks.value
    return Finding(name, CHECK, Status.ok, f"{len(graph.nodes)} dbt nodes, one task per {grain}")

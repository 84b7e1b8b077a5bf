"""The reader of a tenant's compiled dbt graph (`warehouses/<tenant>/compiled/dbt_graph.json`).

`dag-factory dbt compile` writes the file outside parsing (it runs `runner dbt-graph`,
which dbt-parses the tenant's prepared project); the DAG file only reads it. That is how a
tenant gets one Airflow task per dbt model with zero dbt at parse time: this module
imports neither dbt nor Airflow, and reads one small JSON file.

The format is contract A of issue 14 (version 1). A file of another version is an error
that says to compile again, never a guess.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: The version of the format this reader understands.
GRAPH_VERSION = 1
#: The compiled folder beside a tenant file, and the graph file in it.
COMPILED_DIR = "compiled"
GRAPH_FILE = "dbt_graph.json"


class GraphError(ValueError):
    """A graph file that cannot be used; the message says what to run or fix."""


@dataclass(frozen=True)
class GraphNode:
    """One model, seed or snapshot of the graph, and what the DAG needs of it."""

    unique_id: str
    name: str
    resource_type: str
    layer: str
    materialized: str
    #: Parents among the graph's nodes (unique ids).
    depends_on: tuple[str, ...]
    #: Bronze tables it reads through `source('bronze', ...)`.
    sources: tuple[str, ...]
    #: Unique ids of the tests attached to it.
    tests: tuple[str, ...]
    #: Its file in the project (`models/marts/finance/fct_orders.sql`); "" in a graph
    #: compiled before files were recorded.
    path: str = ""


@dataclass(frozen=True)
class DbtGraph:
    tenant: str
    #: The dbt project folder, relative to the folder holding `warehouses/`.
    project: str
    project_hash: str
    inputs_hash: str
    dbt_version: str
    #: Layer name → dbt selector, in build order.
    layers: Mapping[str, str] = field(hash=False)
    #: unique id → node, in the file's order.
    nodes: Mapping[str, GraphNode] = field(hash=False)
    #: The `dbt.engine` it was compiled for (`make images` builds the tenant's image on
    #: that engine's base image); "warehouse" in a graph written before it was recorded.
    engine: str = "warehouse"


def graph_path(tenant_dir: Path) -> Path:
    """Where `dag-factory dbt compile` writes the graph of the tenant in `tenant_dir`."""
    return Path(tenant_dir) / COMPILED_DIR / GRAPH_FILE


def _node(unique_id: str, raw: Mapping[str, Any]) -> GraphNode:
    return GraphNode(
        unique_id=unique_id,
        name=raw["name"],
        resource_type=raw["resource_type"],
        layer=raw["layer"],
        materialized=raw.get("materialized", ""),
        depends_on=tuple(raw.get("depends_on", ())),
        sources=tuple(raw.get("sources", ())),
        tests=tuple(raw.get("tests", ())),
        path=str(raw.get("path", "")),
    )


def parse(text: str, where: str = "dbt_graph.json") -> DbtGraph:
    """The graph in `text`; `GraphError` naming `where` when it is not a version-1 graph."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise GraphError(
            f"{where}: not JSON ({exc.msg}, line {exc.lineno}): run `dag-factory dbt compile`"
        ) from None
    if not isinstance(raw, dict):
        raise GraphError(f"{where}: not a dbt graph (a JSON object is expected)")
    version = raw.get("version")
    if version != GRAPH_VERSION:
        raise GraphError(
            f"{where}: graph version {version!r}, this dag-factory reads version "
            f"{GRAPH_VERSION}: run `dag-factory dbt compile` with this dag-factory"
        )
    try:
        nodes = {uid: _node(uid, node) for uid, node in raw["nodes"].items()}
        return DbtGraph(
            tenant=raw["tenant"],
            project=raw["project"],
            project_hash=raw.get("project_hash", ""),
            inputs_hash=raw.get("inputs_hash", ""),
            dbt_version=raw.get("dbt_version", ""),
            layers=dict(raw["layers"]),
            nodes=nodes,
            engine=str(raw.get("engine", "warehouse")),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise GraphError(
            f"{where}: not a version-{GRAPH_VERSION} dbt graph (bad or missing {exc}): "
            "run `dag-factory dbt compile` again"
        ) from None


def load(path: Path) -> DbtGraph | None:
    """The graph at `path`, or None when there is none (the tenant was not compiled)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    return parse(text, str(path))


def tenant_graph(tenant_dir: Path) -> tuple[DbtGraph | None, str | None]:
    """The compiled graph of the tenant in `tenant_dir` (None when it has none) and, for a
    file that cannot be used, the error that says why: the tenant then keeps its layer
    tasks. The DAG build, `dag-factory plan`/`render` and the doctor read it this way."""
    try:
        return load(graph_path(tenant_dir)), None
    except GraphError as exc:
        return None, str(exc)

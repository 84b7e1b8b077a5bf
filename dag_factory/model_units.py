"""Which dbt nodes share an Airflow task: the grain of a model-level DAG (`dbt.tasks`).

A compiled tenant's DAG has one producer (`dbt_build`: one `dbt build` of every layer)
and then one light task per *unit*, which passes on the producer's report or builds its
nodes itself (`dag_factory.adapters.model_task`). The grain says what a unit is:

* `model`: one node (model, seed or snapshot). Every model is an Airflow task: its own
  status, logs, retry and asset event. Airflow itself costs about 30 ms a task in
  `airflow dags test` and a worker process a task under a scheduler, so on a large project
  of quick models the light tasks can cost more than dbt does (`benchmarks/dbt_dag.py`).
* `folder`: the nodes of one project folder (`models/marts/finance` → task
  `gold.marts_finance`), as dbt's own style guide groups models by business area. A few
  tasks a layer instead of hundreds; a failure fails the folder's task (and the folders
  that depend on it), and its retry builds the folder again.

Folder units can depend on each other in a cycle (a model in A reads one in B that reads
another in A); the units of such a cycle become one unit (`a__b`), because Airflow tasks
must form a DAG. Pure and dbt-free: the DAG file calls it at every parse.
"""

from __future__ import annotations

import graphlib
import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from dag_factory.dbt_graph import DbtGraph, GraphNode
from dag_factory.spec import DbtTaskGrain as Grain

#: What a folder name may keep in a task id (Airflow allows letters, digits, `_`, `-`, `.`;
#: the dot separates a TaskGroup from its task, so it is replaced too).
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
#: Joins the folder names of units merged out of a dependency cycle.
MERGED = "__"


@dataclass(frozen=True)
class ModelUnit:
    """The nodes one model task covers, in the graph's order."""

    #: The task's name within its layer's TaskGroup.
    name: str
    #: The layer whose TaskGroup holds it (the first layer among its nodes').
    layer: str
    nodes: tuple[GraphNode, ...]

    @property
    def unique_ids(self) -> tuple[str, ...]:
        return tuple(n.unique_id for n in self.nodes)

    @property
    def tests(self) -> tuple[str, ...]:
        return tuple(t for n in self.nodes for t in n.tests)


def folder_name(node: GraphNode) -> str:
    """The task name of a node's folder: its path without the resource folder and file,
    `_`-joined (`models/marts/finance/x.sql` → `marts_finance`); a file right in the
    resource folder gives that folder's name (`models`, `seeds`, `snapshots`)."""
    parts = posixpath.dirname(node.path).split("/")
    inner = [p for p in parts[1:] if p]
    name = "_".join(inner) if inner else (parts[0] or node.resource_type)
    return _UNSAFE.sub("_", name).strip("_") or node.resource_type


def model_units(graph: DbtGraph, grain: Grain) -> tuple[ModelUnit, ...]:
    """The units of `graph` at `grain`, each holding at least one node."""
    if grain is Grain.model:
        return tuple(ModelUnit(n.name, n.layer, (n,)) for n in graph.nodes.values())
    order = list(graph.layers)
    members: dict[tuple[str, str], list[GraphNode]] = {}
    for node in graph.nodes.values():
        members.setdefault((node.layer, folder_name(node)), []).append(node)
    return _merge_cycles(graph, members, order)


def _merge_cycles(
    graph: DbtGraph, members: dict[tuple[str, str], list[GraphNode]], order: list[str]
) -> tuple[ModelUnit, ...]:
    """Units whose dependencies form a DAG: each cycle `graphlib` finds is merged into
    one unit, until none is left (each merge removes at least one unit, so this ends)."""
    while True:
        unit_of = {n.unique_id: key for key, nodes in members.items() for n in nodes}
        sorter = graphlib.TopologicalSorter(_unit_parents(graph, members, unit_of))
        try:
            sorter.prepare()
        except graphlib.CycleError as exc:
            cycle: list[tuple[str, str]] = list(dict.fromkeys(exc.args[1]))
            merged = [n for key in cycle for n in members.pop(key)]
            layer = min((key[0] for key in cycle), key=order.index)
            name = MERGED.join(sorted({key[1] for key in cycle}))
            members.setdefault((layer, name), []).extend(merged)
            continue
        position = {uid: i for i, uid in enumerate(graph.nodes)}
        return tuple(
            ModelUnit(name, layer, tuple(sorted(nodes, key=lambda n: position[n.unique_id])))
            for (layer, name), nodes in members.items()
        )


def _unit_parents(
    graph: DbtGraph,
    members: Mapping[tuple[str, str], Iterable[GraphNode]],
    unit_of: Mapping[str, tuple[str, str]],
) -> dict[tuple[str, str], set[tuple[str, str]]]:
    parents: dict[tuple[str, str], set[tuple[str, str]]] = {}
    for key, nodes in members.items():
        parents[key] = {unit_of[p] for n in nodes for p in n.depends_on if p in graph.nodes}
        parents[key].discard(key)
    return parents

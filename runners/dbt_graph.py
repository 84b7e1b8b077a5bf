"""The compiled dbt graph of a tenant (issue 14, contract A): written once, read by the
DAG file (model tasks) and by every `runner dbt` run (layer routing without a parse).

`runner dbt-graph --out DIR` prepares the tenant's project copy exactly as a run does
(`runners.dbt.workspace`: sources from the spec, the routing macro, a profile of the
warehouse kind whose URL is the kind's example: parsing never connects), parses it with
dbt, lists each layer's nodes on that manifest (`runners.dbt.layer_nodes`: no parse per
layer: one parse), and writes to DIR:

- `dbt_graph.json`: the nodes the layers select, their layer, parents, bronze sources
  and attached tests, with `project_hash` and `inputs_hash` (below) and the tenant's
  `engine` (`--engine`: which runner image its tenant image is built on);
- `manifest.json`: dbt's own manifest from that parse.

Why no partial-parse state for runs: dbt accepts a saved parse only when the profile's
connection values hash the same (`profile_hash` covers `connection_info()`: DuckDB path
and database, PostgreSQL host, user and dbname), and rightly so, since each node's
`database` is taken from the profile when it parses. The graph is parsed with the
kind's example URL (compile has no credentials), so its state would always be rejected
("profile has changed"; measured). A run still parses once: the graph spares it the
routing parse.

`inputs_hash` covers what shapes the parse and the routing: the project's files, the
spec's bronze tables, `dbt.layers` (in order) and the warehouse kind. A run that finds a
graph with another `inputs_hash` (or none) routes by parsing, as before.
"""

from __future__ import annotations

import contextlib
import graphlib
import hashlib
import json
import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datakits.errors import ConfigError
from datakits.kinds import warehouse_kind
from datakits.spec import LoadSpec, Schemas
from runners.dbt import _classify, _invoke, layer_nodes, workspace

VERSION = 1
#: The `dbt.engine` values a graph records (`engine`): the tenant image's base is the dbt
#: runner image for `warehouse`, the Spark runner image for `spark` (runners.tenant_images).
ENGINES = ("warehouse", "spark")
GRAPH_FILE = "dbt_graph.json"
MANIFEST_FILE = "manifest.json"
#: Where a run looks for the tenant's graph when `--graph` is not given, relative to
#: its working directory (the folder holding `warehouses/`, as the plan runs it).
DEFAULT_GRAPH = "warehouses/{tenant}/compiled/" + GRAPH_FILE
#: Names skipped when hashing a project: build output and local state, as the copy skips.
_SKIPPED = frozenset({"target", "logs", "dbt_packages", ".user.yml", "__pycache__", ".git"})
#: The resource types that become graph nodes (tasks); tests are attached to them.
_BUILT = frozenset({"model", "seed", "snapshot"})
_TESTS = frozenset({"test", "data_test", "unit_test"})
#: The generated bronze source (`runners.dbt_project.sources_yml`).
_BRONZE = "bronze"


def _project_files(project_dir: Path) -> Iterator[tuple[str, Path]]:
    for root, dirs, files in os.walk(project_dir):
        dirs[:] = [d for d in dirs if d not in _SKIPPED]
        for name in files:
            if name not in _SKIPPED:
                path = Path(root) / name
                yield path.relative_to(project_dir).as_posix(), path


def project_hash(project_dir: Path) -> str:
    """sha256 of a dbt project's content: for every file in sorted relative posix path
    order, its path, a NUL, its size, a NUL and its bytes. Build output and local state
    (`target/`, `logs/`, `dbt_packages/`, `.user.yml`, `__pycache__`, `.git`) are
    skipped, so the hash names the project's source, wherever it is checked out."""
    digest = hashlib.sha256()
    for relative, path in sorted(_project_files(Path(project_dir))):
        data = path.read_bytes()
        digest.update(f"{relative}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


def inputs_hash(project: str, spec: LoadSpec, layers: Mapping[str, str]) -> str:
    """sha256 of `project` (a `project_hash`) and the spec parts that shape the parse."""
    doc = {
        "project_hash": project,
        "bronze_tables": [table.name for table in spec.tables],
        "layers": [[name, selector] for name, selector in layers.items()],
        "warehouse_kind": str(spec.warehouse.kind),
    }
    return hashlib.sha256(json.dumps(doc, separators=(",", ":")).encode()).hexdigest()


@dataclass(frozen=True)
class CompiledGraph:
    """A graph file that matches the run's project and spec."""

    path: Path
    doc: dict[str, Any]

    def routing(self, schemas: Schemas) -> dict[str, str]:
        """Node unique id → the schema of its layer (what the schema macro needs); a test
        goes with the node it is attached to (where `store_failures` would write)."""
        routed: dict[str, str] = {}
        for uid, node in self.doc["nodes"].items():
            schema = schemas.layer_schema(node["layer"])
            routed[uid] = schema
            routed.update(dict.fromkeys(node.get("tests", ()), schema))
        return routed


def read_graph(path: Path) -> dict[str, Any]:
    """A graph file's JSON, or a ConfigError saying what is wrong with it."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path} is not a readable dbt graph file: {exc}") from None
    if not isinstance(doc, dict) or doc.get("version") != VERSION:
        raise ConfigError(
            f"{path} is not a version {VERSION} dbt graph: run `dag-factory dbt compile` again"
        )
    return doc


def matching_graph(
    spec: LoadSpec, project_dir: Path, layers: Mapping[str, str] | None, path: Path | None
) -> CompiledGraph | None:
    """The tenant's compiled graph if it was compiled from this project and spec.

    `path` given (`--graph`) must exist; the default location may be absent. A graph of
    other inputs is ignored with a line on stderr: the run then routes by parsing.
    """
    if layers is None:  # no routing asked for: the folder rule routes, nothing to reuse
        return None
    explicit = path is not None
    path = path or Path(DEFAULT_GRAPH.format(tenant=spec.tenant))
    if not path.is_file():
        if explicit:
            raise ConfigError(f"--graph {path} does not exist: run `dag-factory dbt compile`")
        return None
    doc = read_graph(path)
    expected = inputs_hash(project_hash(project_dir), spec, layers)
    if doc.get("tenant") != spec.tenant or doc.get("inputs_hash") != expected:
        print(
            f"runner dbt: {path} was compiled from another project or spec: routing by "
            "parsing (run `dag-factory dbt compile` to refresh it)",
            file=sys.stderr,
        )
        return None
    return CompiledGraph(path=path, doc=doc)


def _topological(parents: Mapping[str, list[str]]) -> dict[str, int]:
    order = graphlib.TopologicalSorter({k: set(v) for k, v in parents.items()}).static_order()
    return {uid: index for index, uid in enumerate(order)}


def graph_nodes(manifest: Any, layer_of: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Contract A's `nodes` from a parsed dbt Manifest and each selected node's layer.

    Only models, seeds and snapshots that a layer selects are nodes; their `depends_on`
    keeps parents among them. A test goes to its one parent node, or, when it has several
    (a relationships test), to the one built last in topological order: only then are all
    the rows it compares there.
    """
    nodes: dict[str, dict[str, Any]] = {}
    for uid, layer in layer_of.items():
        node = manifest.nodes.get(uid)
        kind = str(getattr(getattr(node, "resource_type", None), "value", ""))
        if node is None or kind not in _BUILT:
            continue
        parents = list(node.depends_on.nodes)
        sources = {
            manifest.sources[p].name
            for p in parents
            if p in manifest.sources and manifest.sources[p].source_name == _BRONZE
        }
        nodes[uid] = {
            "name": node.name,
            "resource_type": kind,
            "layer": layer,
            "materialized": str(node.config.materialized),
            # its file in the project (`models/marts/finance/fct_x.sql`): its folder is
            # its model group under `dbt.tasks: folder`
            "path": str(node.original_file_path),
            "depends_on": parents,
            "sources": sorted(sources),
            "tests": [],
        }
    for entry in nodes.values():
        entry["depends_on"] = sorted(p for p in entry["depends_on"] if p in nodes)
    order = _topological({uid: entry["depends_on"] for uid, entry in nodes.items()})
    tests = [
        test
        for test in (*manifest.nodes.values(), *manifest.unit_tests.values())
        if str(getattr(test.resource_type, "value", "")) in _TESTS
    ]
    for test in tests:
        parents = [p for p in test.depends_on.nodes if p in nodes]
        if parents:
            nodes[max(parents, key=order.__getitem__)]["tests"].append(test.unique_id)
    for entry in nodes.values():
        entry["tests"].sort()
    return nodes


def _relative(project_dir: Path) -> str:
    """The project path as the graph names it: relative to the working directory (the
    folder holding `warehouses/`) when it is under it."""
    path = Path(os.path.normpath(project_dir.absolute()))
    with contextlib.suppress(ValueError):
        return path.relative_to(Path.cwd()).as_posix()
    return path.as_posix()


def write_graph(
    spec: LoadSpec,
    project_dir: Path,
    layers: Mapping[str, str],
    out: Path,
    *,
    engine: str = "warehouse",
) -> dict[str, Any]:
    """Parse the tenant's prepared project and write the graph files to `out` (see the
    module doc). Raises ConfigError for a project that does not parse or a layer that
    selects nothing."""
    from dbt.version import __version__ as dbt_version

    url = warehouse_kind(spec.warehouse.kind).example_url
    with workspace(spec, project_dir, url) as ws:
        parsed = _invoke(["--quiet", "parse", *ws.common])
        if parsed.exception is not None or not parsed.success:
            raise _classify(parsed.exception or RuntimeError("dbt parse failed"), "parse")
        layer_of = layer_nodes(ws.common, parsed.result, layers)
        empty = [name for name in layers if name not in set(layer_of.values())]
        if empty:
            shown = ", ".join(f"{name} ({layers[name]})" for name in empty)
            raise ConfigError(
                f"dbt layer {shown} selects no node of {project_dir}: fix dbt.layers or the project"
            )
        project = project_hash(project_dir)
        doc = {
            "version": VERSION,
            "tenant": spec.tenant,
            "project": _relative(project_dir),
            "project_hash": project,
            "inputs_hash": inputs_hash(project, spec, layers),
            "dbt_version": dbt_version,
            "engine": engine,
            "layers": dict(layers),
            "nodes": graph_nodes(parsed.result, layer_of),
        }
        out.mkdir(parents=True, exist_ok=True)
        manifest = ws.artifacts().get("manifest")
        if manifest is None:
            raise ConfigError(f"dbt parse of {project_dir} wrote no manifest.json")
        (out / MANIFEST_FILE).write_text(manifest, encoding="utf-8")
        (out / GRAPH_FILE).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return {
        "tenant": spec.tenant,
        "out": str(out),
        "nodes": len(doc["nodes"]),
        "tests": sum(len(n["tests"]) for n in doc["nodes"].values()),
        "project_hash": project,
        "inputs_hash": doc["inputs_hash"],
    }

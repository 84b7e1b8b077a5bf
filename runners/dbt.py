"""`runner dbt …`: run a dbt command in-process against the tenant's warehouse.

The project dir is never written to: the runner works on a temp copy completed from the
spec (`runners.dbt_project`), with a temp profiles.yml whose values are `env_var()`
lookups (`runners.dbt_profile`), and target/ and logs/ in the temp dir. dbt's console
output goes to stderr, so the runner's JSON result stays the last stdout line.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from datakits.contract import SOURCE_URL_ENV, WAREHOUSE_URL_ENV
from datakits.errors import ConfigError, DatakitsError, LoadFailed, SourceUnavailable
from datakits.spec import LoadSpec, Schemas
from runners.dbt_artifacts import normalise, store_artifacts
from runners.dbt_docs import check_docs_command, copy_site
from runners.dbt_profile import (
    PROFILE_ENV_VARS,
    SSLMODE_ENV,
    prepare_profile,
    profile_env,
    profiles_yml,
)
from runners.dbt_project import DEFAULT_LAYERS, Project, prepare_project, write_schema_macro

#: Defaults for dbt's own flags, as env vars so that flags in `dbt_args` still win.
DBT_DEFAULTS = {
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    "DBT_USE_COLORS": "false",
    "DBT_PARTIAL_PARSE": "false",
    # A test runs in the build that selects all its parents or their ancestors, not in
    # the first that selects one (dbt's default, eager): a layer build of staging ran a
    # mart's relationships test against a mart not built yet (fails on a fresh warehouse,
    # checks a stale mart after). A flag given in dbt's argv still wins.
    "DBT_INDIRECT_SELECTION": "buildable",
}
#: The runner's connection URLs (the contract's env names): never visible to dbt's models.
CONNECTION_URL_ENV_VARS = (SOURCE_URL_ENV, WAREHOUSE_URL_ENV)
#: dbt scrubs these from its logs and refuses them outside profiles.yml.
DBT_SECRET_PREFIX = "DBT_ENV_SECRET_"  # noqa: S105 - a name prefix, not a value
#: Flags the runner sets itself; `dbt_args` may not carry them.
OWNED_FLAGS = ("--project-dir", "--profiles-dir", "--target-path", "--log-path", "--target")
#: Commands whose successful model nodes are tables built in the warehouse.
BUILDING_COMMANDS = frozenset({"build", "run"})

_PASSED = {"success", "pass", "warn", "no-op", "reused"}
_FAILED = {"error", "fail", "runtime error", "partial success"}
_MAX_LINE = 1000
#: Characters of a node's message in the `--report-nodes` result (contract B).
_NODE_MESSAGE = 300
#: The dbt artifacts every run keeps (`runners.dbt_artifacts`).
ARTIFACTS = ("manifest", "run_results")
#: dbt's resource types of tests (`data_test` since 1.8, `test` before; unit tests).
_TESTS = {"test", "data_test", "unit_test"}


@contextlib.contextmanager
def _scoped_env(values: Mapping[str, str], clear: tuple[str, ...] = ()) -> Iterator[None]:
    """Set `values` (and unset `clear`) in os.environ for the block, then restore."""
    names = set(values) | set(clear)
    saved = {name: os.environ.get(name) for name in names}
    try:
        for name in clear:
            os.environ.pop(name, None)
        os.environ.update(values)
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _credential_vars(warehouse_url: str) -> tuple[str, ...]:
    """Every env var dbt must not see: the runner's connection URLs and any variable whose
    value holds the warehouse URL or its password.

    A tenant's model can read any variable with `env_var()` and write it into a table, and
    dbt scrubs only `DBT_ENV_SECRET_*` values (which it also refuses in models). So while
    dbt runs, the one copy of the password is the `DBT_ENV_SECRET_` variable the profile
    reads; everything else that could carry it is unset, then restored afterwards.
    """
    from sqlalchemy import make_url

    try:
        password = make_url(warehouse_url).password or ""
    except Exception:  # a malformed URL fails later with its own message
        password = ""
    needles = [n for n in (warehouse_url, password) if n and len(n) >= 4]
    holding = {
        name
        for name, value in os.environ.items()
        if not name.startswith(DBT_SECRET_PREFIX) and any(n in value for n in needles)
    }
    return tuple(sorted({*CONNECTION_URL_ENV_VARS, *holding}))


def _one_line(text: object) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= _MAX_LINE else line[: _MAX_LINE - 1] + "…"


def _status(result: Any) -> str:
    status = getattr(result, "status", "")
    return str(getattr(status, "value", status))


def _node_label(node: Any) -> str:
    resource = str(getattr(getattr(node, "resource_type", ""), "value", "node"))
    return f"{resource} {getattr(node, 'name', None) or getattr(node, 'unique_id', '?')}"


def summarise(results: list[Any], *, builds: bool = True) -> dict[str, Any]:
    """Counts and built models of a dbt RunExecutionResult's `results`."""
    passed = failed = skipped = warned = 0
    models: list[str] = []
    failures: list[str] = []
    messages: list[str] = []
    for result in results:
        status = _status(result)
        node = getattr(result, "node", None)
        if status in _FAILED:
            failed += 1
            failures.append(f"{_node_label(node)} ({status})")
            if getattr(result, "message", None):
                messages.append(_one_line(result.message))
        elif status == "skipped":
            skipped += 1
        elif status in _PASSED:
            passed += 1
            warned += status == "warn"
            resource = str(getattr(getattr(node, "resource_type", ""), "value", ""))
            if builds and resource == "model" and status == "success":
                models.append(f"{node.schema}.{node.name}")
    return {
        "nodes": len(results),
        "passed": passed,
        "failed": failed,
        "skipped": skipped,
        "warned": warned,
        "models": models,
        "failures": failures,
        "messages": messages,
    }


class OnTestFailure(StrEnum):
    """What a failing dbt test does to the task (`dbt.on_test_failure` in the tenant spec).

    `fail`: the task fails with exit 2 (permanent: the data breaks the test until someone
    fixes it, so a retry only repeats it), naming the failed tests. `warn`: dbt runs the
    tests at severity `warn` (so models downstream of them still build) and the task
    succeeds with the count in `tests_failed`.
    """

    fail = "fail"
    warn = "warn"


def _classify(exc: BaseException, command: str) -> DatakitsError:
    """The runner error for an exception dbt raised before or instead of running nodes.

    Parse and compile errors, a wrong project or profile and a bad dbt flag are permanent
    (exit 2): the project is the same on a retry.
    """
    from dbt.adapters.exceptions.connection import FailedToConnectError
    from dbt.cli.exceptions import DbtUsageException
    from dbt.exceptions import ParsingError
    from dbt_common.exceptions import CompilationError, DbtConfigError, DbtValidationError

    line = f"dbt {command} failed: {_one_line(exc)}"
    if isinstance(exc, FailedToConnectError):
        return SourceUnavailable(line)
    permanent = (
        DbtConfigError,  # dbt_project.yml or profile is wrong
        CompilationError,
        ParsingError,
        DbtValidationError,
        DbtUsageException,
    )
    if isinstance(exc, permanent):
        return ConfigError(f"{line}: fix the dbt project")
    return LoadFailed(line)


def _failure_kind(result: Any) -> str:
    """Why a node failed: `test` (data failed a test), `compile` (the SQL or Jinja is
    wrong), `dependents` (PostgreSQL refuses a drop because views use the table) - all
    permanent - or `runtime` (the database failed running it: may pass on a retry)."""
    status = _status(result)
    message = str(getattr(result, "message", "") or "")
    if status == "fail":
        return "test"
    if "Compilation Error" in message:
        return "compile"
    if "other objects depend on it" in message:
        return "dependents"
    return "runtime"


def _selectors(dbt_args: list[str]) -> list[str]:
    """The values of `--select`/`-s`/`--models`/`-m` in dbt's argv."""
    found: list[str] = []
    taking = False
    for arg in dbt_args:
        if arg in ("--select", "-s", "--models", "-m"):
            taking = True
            continue
        if arg.startswith("--select="):
            found.append(arg.split("=", 1)[1])
            continue
        if taking and not arg.startswith("-"):
            found.append(arg)
        else:
            taking = False
    return found


def _watch_selection(unmatched: list[str]) -> Callable[[Any], None]:
    """A dbt event callback noting each selection criterion that matched no node.

    dbt only warns (`NoNodesForSelectionCriteria`) and exits green doing nothing: for a
    scheduled layer that is a silent stop, so the runner makes it a failure.
    """

    def callback(event: Any) -> None:
        if event.info.name == "NoNodesForSelectionCriteria":
            unmatched.append(str(event.data.spec_raw))

    return callback


def _no_nodes(
    command: str, selectors: list[str], layers: list[str], layer: str | None
) -> ConfigError:
    shown = ", ".join(layers) or "none"
    which = f" (layer {layer})" if layer else ""
    return ConfigError(
        f"dbt {command}{which}: the selection {' '.join(selectors)} matches no node of the project "
        f"(layer folders: {shown}): select an existing layer or model, or add models there"
    )


def _invoke(args: list[str], callbacks: list[Callable[[Any], None]] | None = None) -> Any:
    from dbt.cli.main import dbtRunner  # dbt is heavy: import it only for `runner dbt`

    with contextlib.redirect_stdout(sys.stderr):
        return dbtRunner(callbacks=callbacks).invoke(args)


def layer_nodes(common: list[str], manifest: Any, layers: Mapping[str, str]) -> dict[str, str]:
    """Node unique id → the first layer whose selector picks it, on a parsed manifest.

    dbt's own selection decides (any selector: `path:`, `tag:`, `resource_type:`, ...),
    through `dbt ls` on the given manifest: no parse, no warehouse.
    """
    from dbt.cli.main import dbtRunner

    listing = dbtRunner(manifest=manifest)
    found: dict[str, str] = {}
    ls = ["--quiet", "ls", "--output", "json", "--output-keys", "unique_id", *common]
    with contextlib.redirect_stdout(sys.stderr):
        for layer, selector in layers.items():
            res = listing.invoke([*ls, "--select", selector])
            for line in res.result or ():
                found.setdefault(json.loads(line)["unique_id"], layer)
    return found


def _layer_routing(
    common: list[str],
    layers: Mapping[str, str],
    schemas: Schemas,
    callbacks: Sequence[Callable[[Any], None]] = (),
) -> dict[str, str]:
    """Node unique id → the schema of the first layer whose selector picks it.

    The fallback when no compiled graph matches (`runners.dbt_graph`): the project is
    parsed once here and each layer listed on that manifest. A project that does not
    parse routes nothing: the command itself then fails with dbt's error and its exit
    class.
    """
    parsed = _invoke(["--quiet", "parse", *common], callbacks=list(callbacks))
    if parsed.exception is not None or not parsed.success:
        return {}
    found = layer_nodes(common, parsed.result, layers)
    return {node: schemas.layer_schema(layer) for node, layer in found.items()}


@dataclass(frozen=True)
class Workspace:
    """A prepared run of dbt: the project copy, the dbt flags that point at it, and the
    temp dir that holds target/ and logs/."""

    project: Project
    work: Path
    common: list[str]
    #: The project dir as the runner was given it (artifacts name it, not the temp copy).
    source: str

    @property
    def target(self) -> Path:
        return self.work / "target"

    def artifacts(self) -> dict[str, str]:
        """The run's `manifest.json` and `run_results.json` texts (those dbt wrote)."""
        found = {}
        for kind in ARTIFACTS:
            path = self.target / f"{kind}.json"
            if path.is_file():
                text = path.read_text(encoding="utf-8")
                found[kind] = normalise(text, str(self.work), self.source)
        return found


@contextlib.contextmanager
def workspace(
    spec: LoadSpec, project_dir: Path, warehouse_url: str, *, tests_warn: bool = False
) -> Iterator[Workspace]:
    """A temp copy of `project_dir` completed from the spec, its profiles.yml, and the
    env dbt reads while the block runs (profile values set, credentials hidden).

    The one place that prepares dbt, shared by `run_dbt` and the graph writer, so the
    compiled graph is parsed from exactly the files a run parses.
    """
    kind = spec.warehouse.kind
    env = profile_env(kind, warehouse_url, spec.warehouse.schemas.silver)
    with tempfile.TemporaryDirectory(prefix=f"runner-dbt-{spec.tenant}-") as tmp:
        work = Path(tmp)
        project = prepare_project(project_dir, work, spec, tests_warn=tests_warn)
        profiles_dir = work / "profiles"
        profiles_dir.mkdir()
        (profiles_dir / "profiles.yml").write_text(
            profiles_yml(project.profile, kind, sslmode=SSLMODE_ENV in env)
        )
        common = [
            "--project-dir",
            str(project.dir),
            "--profiles-dir",
            str(profiles_dir),
            "--target-path",
            str(work / "target"),
            "--log-path",
            str(work / "logs"),
        ]
        hidden = (*PROFILE_ENV_VARS, *_credential_vars(warehouse_url))
        with _scoped_env({**DBT_DEFAULTS, **env}, clear=hidden):
            yield Workspace(
                project=project, work=work, common=common, source=project_dir.as_posix()
            )


def _scrubbed(text: str, warehouse_url: str) -> str:
    """`text` without the warehouse URL or its password (dbt scrubs only its own secrets)."""
    from sqlalchemy import make_url

    try:
        password = make_url(warehouse_url).password or ""
    except Exception:
        password = ""
    for needle in (warehouse_url, password):
        if needle and len(needle) >= 4:
            text = text.replace(needle, "***")
    return text


def node_report(results: list[Any], warehouse_url: str) -> dict[str, dict[str, Any]]:
    """Contract B's `nodes`: each result's dbt status, seconds, one-line message (≤ 300
    characters, secrets removed) and, for tests, the failing row count."""
    report: dict[str, dict[str, Any]] = {}
    for result in results:
        node = getattr(result, "node", None)
        unique_id = getattr(node, "unique_id", None)
        if not unique_id:
            continue
        message = " ".join(_scrubbed(str(result.message or ""), warehouse_url).split())
        entry: dict[str, Any] = {
            "status": _status(result),
            "seconds": round(float(getattr(result, "execution_time", 0) or 0), 3),
            "message": message if len(message) <= _NODE_MESSAGE else message[:299] + "…",
        }
        if str(getattr(node.resource_type, "value", "")) in _TESTS:
            entry["failures"] = getattr(result, "failures", None) or 0
        report[unique_id] = entry
    return report


def run_dbt(
    spec: LoadSpec,
    project_dir: Path,
    dbt_args: list[str],
    warehouse_url: str,
    *,
    on_test_failure: OnTestFailure = OnTestFailure.fail,
    layer: str | None = None,
    layers: Mapping[str, str] | None = None,
    report_nodes: bool = False,
    graph: Path | None = None,
    callbacks: Sequence[Callable[[Any], None]] = (),
    docs_out: Path | None = None,
) -> dict[str, Any]:
    """Run `dbt <dbt_args>` on a temp copy of `project_dir` against `warehouse_url`.

    `docs_out`: with `docs generate`, where to copy the docs site (`runners.dbt_docs`)
    before the temp dir goes.

    `layers` (name → dbt selector, in order; default with `layer`: the `silver` and
    `gold` folders): every node a layer selects builds into that layer's schema
    (`Schemas.layer_schema`), whatever its folder; the selection itself is still
    `--select` in `dbt_args`, so one build may cover every layer. `layer` is a label
    (one of `layers`) for the log and the result.

    The routing comes from the tenant's compiled graph (`graph`, default
    `warehouses/<tenant>/compiled/dbt_graph.json` under the working directory) when its
    `inputs_hash` matches this project and spec: then no routing parse (one parse per
    run: the build's own). Otherwise the runner parses to route (see
    `_layer_routing`).

    `report_nodes`: the result carries `nodes` (unique id → status, seconds, message,
    failures) and failed nodes do not fail the command; errors of the whole project
    (parse, empty selection, unreachable warehouse) still raise. `callbacks`: dbt event
    callbacks (tests count parses with them).

    Every run in which dbt ran (no project-level error) keeps `manifest.json` and
    `run_results.json` in the warehouse's meta schema (`runners.dbt_artifacts`).

    Raises `ConfigError` (exit 2, permanent) for a parse or compile error, a selection
    that matches nothing, views blocking a drop, and failing tests under `fail`;
    `LoadFailed` (exit 4) when the database failed running a model.
    """
    if not dbt_args or dbt_args[0].startswith("-"):
        raise ConfigError("give a dbt command first, e.g. `build --select silver`")
    owned = [a for a in dbt_args if a.split("=", 1)[0] in OWNED_FLAGS]
    if owned:
        raise ConfigError(
            f"the runner sets {', '.join(owned)} itself: leave it out of the dbt args"
        )
    if docs_out is not None:
        check_docs_command(dbt_args)
    if layers is not None or layer is not None:
        layers = dict(layers or DEFAULT_LAYERS)
        if layer is not None and layer not in layers:
            raise ConfigError(
                f"layer {layer} is not one of the tenant's dbt layers ({', '.join(layers)})"
            )
    from runners import dbt_graph  # it imports this module

    compiled = dbt_graph.matching_graph(spec, Path(project_dir), layers, graph)
    kind = spec.warehouse.kind
    prepare_profile(kind, profile_env(kind, warehouse_url, spec.warehouse.schemas.silver))
    warn = on_test_failure is OnTestFailure.warn
    with workspace(spec, Path(project_dir), warehouse_url, tests_warn=warn) as ws:
        project, common = ws.project, ws.common
        args = [*dbt_args, *common]
        shown = f", layer {layer}" if layer else ""
        print(f"runner dbt: dbt {' '.join(dbt_args)} ({project.name}{shown})", file=sys.stderr)
        unmatched: list[str] = []
        if compiled is not None:  # the compiled graph knows each node's layer: no parse
            write_schema_macro(project, spec, compiled.routing(spec.warehouse.schemas))
            print(f"runner dbt: layer routing from {compiled.path}", file=sys.stderr)
        elif layers is not None:
            routed = _layer_routing(common, layers, spec.warehouse.schemas, callbacks)
            write_schema_macro(project, spec, routed)
        res = _invoke(args, callbacks=[_watch_selection(unmatched), *callbacks])
        artifacts = ws.artifacts()
        site = (
            copy_site(ws.target, docs_out)
            if docs_out is not None and res.exception is None
            else None
        )

    command = " ".join(dbt_args)
    if res.exception is not None:
        raise _classify(res.exception, command) from res.exception
    store_artifacts(spec, warehouse_url, artifacts)  # dbt ran: its record is worth keeping
    if dbt_args[0] in ("ls", "list"):  # its result is the selected nodes' names
        listed = [str(name) for name in res.result or ()]
        return {"tenant": spec.tenant, "dbt_command": list(dbt_args), "listed": listed}
    at: dict[str, Any] = {"layer": layer} if layer else {}
    if site is not None:
        at["docs_site"] = {"dir": str(docs_out), "files": site}
    results = list(getattr(res.result, "results", None) or [])
    selectors = _selectors(dbt_args)
    if unmatched or (selectors and not results and res.result is not None):
        raise _no_nodes(command, unmatched or selectors, project.layers, layer)
    summary = summarise(results, builds=dbt_args[0] in BUILDING_COMMANDS)
    failures, messages = summary.pop("failures"), summary.pop("messages")
    summary["tests_failed"] = sum(
        1
        for r in results
        if _status(r) in ("fail", "warn")
        and str(getattr(getattr(r.node, "resource_type", ""), "value", "")) in _TESTS
        and (getattr(r, "failures", None) or 0) > 0
    )
    summary["tests_passed"] = sum(
        1
        for r in results
        if _status(r) == "pass"
        and str(getattr(getattr(r.node, "resource_type", ""), "value", "")) in _TESTS
    )
    if report_nodes:  # the producer of model tasks: node failures are its consumers' to judge
        summary["node_count"] = summary.pop("nodes")
        summary["nodes"] = node_report(results, warehouse_url)
        return {"tenant": spec.tenant, "dbt_command": list(dbt_args), **at, **summary}
    if failures or not res.success:
        what = ", ".join(failures) if failures else "dbt reported a failure"
        first = f" - first error: {messages[0]}" if messages else ""
        line = f"dbt {command}: {summary['failed']} of {len(results)} failed: {what}{first}"
        kinds = {_failure_kind(r) for r in results if _status(r) in _FAILED}
        if not failures or "runtime" in kinds:
            raise LoadFailed(_one_line(line))
        hint = (
            "; fix the data or the test, or set dbt.on_test_failure: warn"
            if kinds == {"test"}
            else "; fix the dbt project (permanent: a retry fails the same way)"
        )
        raise ConfigError(_one_line(line + hint))
    return {"tenant": spec.tenant, "dbt_command": list(dbt_args), **at, **summary}

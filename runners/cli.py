"""`runner`: the entrypoint of every runner image and of the local adapter's subprocess.

Everything comes from argv and env (DESIGN.md, contract 4): the tenant's load spec as
JSON in `RUNNER_SPEC`, credentials in `RUNNER_SOURCE_URL` / `RUNNER_WAREHOUSE_URL`.
Progress goes to stderr; the last stdout line is one JSON object; a failure exits
non-zero with one line (codes and env names: `datakits.contract`).
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from datakits.spec import LoadSpec

#: Set (unless the task's env sets it) before pydantic loads: pydantic would otherwise
#: scan every installed distribution's entry points for plugins at its first model
#: (~10 ms of every task, for plugins a runner image does not have). An operator who
#: wants one (e.g. logfire) sets `PYDANTIC_DISABLE_PLUGINS=` (empty) in the task's env.
PYDANTIC_PLUGINS_ENV = "PYDANTIC_DISABLE_PLUGINS"

app = typer.Typer(
    name="runner",
    help="Run one task of a tenant: extract a table to bronze, or build dbt models.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def load_spec() -> LoadSpec:
    """The tenant's load spec from `RUNNER_SPEC`, validated; ConfigError says what is wrong.

    pydantic, the spec models and the contract are imported here and in `_emit`, not at
    module level: `runner --help` (and typer's usage errors) need none of them."""
    from pydantic import ValidationError

    from datakits.contract import RUNNER_SPEC_ENV
    from datakits.errors import ConfigError
    from datakits.spec import LoadSpec

    raw = os.environ.get(RUNNER_SPEC_ENV)
    if not raw:
        raise ConfigError(f"{RUNNER_SPEC_ENV} is not set: it must hold the tenant's load spec")
    try:
        return LoadSpec.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "spec"
        raise ConfigError(f"{RUNNER_SPEC_ENV} is invalid at {where}: {first['msg']}") from None


def require_env(name: str) -> str:
    from datakits.errors import ConfigError

    value = os.environ.get(name)
    if not value:
        raise ConfigError(f"{name} is not set: the adapter must pass the connection URL in it")
    return value


def _emit(
    command: str,
    work: Callable[[], dict[str, Any]],
    table: str | None = None,
    args: list[str] | None = None,
) -> None:
    """Run `work`, print its result as the last stdout line, map failures to exit codes.

    Each run's outcome is pushed as metrics when a Pushgateway is configured
    (`runners.metrics`; a no-op otherwise, and never a reason to fail), and as
    OpenLineage START/COMPLETE/FAIL events when a lineage backend is (`runners.lineage`)."""
    from datakits.contract import DEBUG_ENV, RESULT_FILE_ENV, ExitCode, RunnerResult
    from datakits.errors import DatakitsError
    from runners import lineage, metrics

    started = time.perf_counter()
    run = lineage.start(command, table, args)
    result, code = None, int(ExitCode.unexpected)
    try:
        result = work()
        code = ExitCode.ok
    except DatakitsError as exc:
        code = exc.exit_code
        print(f"runner {command}: {exc}", file=sys.stderr)
        raise typer.Exit(exc.exit_code) from None
    except Exception as exc:  # the one-line contract holds for bugs too
        if os.environ.get(DEBUG_ENV):
            raise
        print(f"runner {command}: unexpected {type(exc).__name__}: {exc}", file=sys.stderr)
        raise typer.Exit(ExitCode.unexpected) from None
    finally:
        metrics.push(command, table, result, code, time.perf_counter() - started, args)
        lineage.finish(run, result, code)
    result = {"status": "ok", "command": command, **result}
    result.setdefault("seconds", round(time.perf_counter() - started, 3))
    RunnerResult.model_validate(result)  # the contract's shape (`parse_result` reads it)
    line = json.dumps(result, default=str)
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
    result_file = os.environ.get(RESULT_FILE_ENV)
    if result_file:  # e.g. the KubernetesPodOperator's XCom file
        Path(result_file).write_text(line, encoding="utf-8")


@app.command()
def extract(
    table: Annotated[str, typer.Option("--table", "-t", help="Source table to load into bronze.")],
    full_refresh: Annotated[
        bool,
        typer.Option(
            "--full-refresh",
            help="Reload an append/incremental table from scratch: every source row, its "
            "watermark reset in the same transaction.",
        ),
    ] = False,
) -> None:
    """Copy one source table into the tenant's bronze schema (atomic, streamed)."""
    from datakits.contract import SOURCE_URL_ENV, WAREHOUSE_URL_ENV
    from datakits.errors import ConfigError
    from runners.extract import run_extract

    def work() -> dict[str, Any]:
        spec = load_spec()
        try:
            table_spec = spec.table(table)
        except KeyError as exc:
            raise ConfigError(exc.args[0]) from None
        return run_extract(
            spec,
            table_spec,
            require_env(SOURCE_URL_ENV),
            require_env(WAREHOUSE_URL_ENV),
            full_reload=full_refresh,
        )

    _emit("extract", work, table=table)


class TestFailurePolicy(StrEnum):
    """`--on-test-failure`: the values of `runners.dbt.OnTestFailure`, declared here so
    that `runner extract` does not import the dbt module to build its argv parser."""

    __test__ = False  # not a pytest class
    fail = "fail"
    warn = "warn"


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def dbt(
    ctx: typer.Context,
    project_dir: Annotated[
        Path, typer.Option("--project-dir", help="The tenant's dbt project (read only).")
    ],
    on_test_failure: Annotated[
        TestFailurePolicy,
        typer.Option(
            "--on-test-failure",
            help="A failing dbt test fails the task (exit 2) or only warns (counted in "
            "`tests_failed`).",
        ),
    ] = TestFailurePolicy.fail,
    layer: Annotated[
        str | None,
        typer.Option(
            "--layer",
            help="A label for the log and result: the layer this command builds (one of "
            "--layers). Routing covers every layer either way.",
        ),
    ] = None,
    layers: Annotated[
        str | None,
        typer.Option(
            "--layers",
            help='Every layer of the tenant, in order, as JSON: {"silver": "<dbt selector>", '
            "...}: each layer's nodes build into its schema (default with --layer: the silver "
            "and gold folders).",
        ),
    ] = None,
    report_nodes: Annotated[
        bool,
        typer.Option(
            "--report-nodes",
            help="Report every node's status in the result (`nodes`) and exit 0 when dbt "
            "ran, even if nodes failed (the producer of model tasks).",
        ),
    ] = False,
    graph: Annotated[
        Path | None,
        typer.Option(
            "--graph",
            help="The tenant's compiled dbt graph (default: warehouses/<tenant>/compiled/"
            "dbt_graph.json if present): when it matches, no routing parse.",
        ),
    ] = None,
    docs_out: Annotated[
        Path | None,
        typer.Option(
            "--docs-out",
            help="With `docs generate`: copy the docs site (index.html, static_index.html, "
            "manifest.json, catalog.json) to this folder.",
        ),
    ] = None,
) -> None:
    """Run a dbt command (e.g. `build --select silver`) against the tenant's warehouse.

    The runner writes profiles.yml from env and generates the bronze sources from the spec.
    """
    from datakits.contract import WAREHOUSE_URL_ENV
    from datakits.errors import ConfigError
    from runners.dbt import OnTestFailure, run_dbt

    def work() -> dict[str, Any]:
        if not ctx.args:
            raise ConfigError("give a dbt command, e.g. `runner dbt build --select silver`")
        return run_dbt(
            load_spec(),
            project_dir,
            list(ctx.args),
            require_env(WAREHOUSE_URL_ENV),
            on_test_failure=OnTestFailure(on_test_failure.value),
            layer=layer,
            layers=None if layers is None else _layers_option(layers),
            docs_out=docs_out,
            report_nodes=report_nodes,
            graph=graph,
        )

    _emit("dbt", work, args=list(ctx.args))


@app.command("dbt-graph")
def dbt_graph(
    project_dir: Annotated[
        Path, typer.Option("--project-dir", help="The tenant's dbt project (read only).")
    ],
    out: Annotated[Path, typer.Option("--out", help="The folder to write the graph files to.")],
    layers: Annotated[
        str | None,
        typer.Option(
            "--layers",
            help='The tenant\'s layers, in order, as JSON: {"silver": "<dbt selector>", ...} '
            "(default: the silver and gold folders).",
        ),
    ] = None,
    engine: Annotated[
        str,
        typer.Option(
            "--engine",
            help="The tenant's dbt.engine (warehouse or spark), recorded in the graph: "
            "`make images` builds the tenant's image on that engine's base image.",
        ),
    ] = "warehouse",
) -> None:
    """Parse the tenant's project (no warehouse) and write dbt_graph.json, manifest.json
    to --out (`dag-factory dbt compile` runs this)."""
    from datakits.errors import ConfigError
    from runners.dbt_graph import ENGINES, write_graph
    from runners.dbt_project import DEFAULT_LAYERS

    def work() -> dict[str, Any]:
        if engine not in ENGINES:
            raise ConfigError(f"--engine {engine!r}: give one of {', '.join(ENGINES)}")
        chosen = DEFAULT_LAYERS if layers is None else _layers_option(layers)
        return write_graph(load_spec(), project_dir, chosen, out, engine=engine)

    _emit("dbt-graph", work)


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def spark(
    ctx: typer.Context,
    project_dir: Annotated[
        Path, typer.Option("--project-dir", help="The tenant's dbt project (read only).")
    ],
    on_test_failure: Annotated[
        TestFailurePolicy,
        typer.Option(
            "--on-test-failure",
            help="A failing dbt test fails the task, or only warns (as `runner dbt`).",
        ),
    ] = TestFailurePolicy.fail,
) -> None:
    """Build a lakehouse tenant's silver and gold with dbt-spark (e.g. `build --select
    silver`): bronze is read from the Delta tables' latest versions (`runners.spark`)."""
    from datakits.contract import WAREHOUSE_URL_ENV
    from runners.spark import run_spark

    def work() -> dict[str, Any]:
        return run_spark(
            load_spec(),
            project_dir,
            list(ctx.args),
            require_env(WAREHOUSE_URL_ENV),
            tests_warn=on_test_failure is TestFailurePolicy.warn,
        )

    _emit("spark", work, args=list(ctx.args))


@app.command(hidden=True)
def executor() -> None:
    """A Spark executor: what Spark's executor pods run (`runners.spark_executor`). It
    replaces this process (no result line: Spark's driver watches the executor)."""
    from datakits.errors import DatakitsError
    from runners.spark_executor import exec_executor

    try:
        exec_executor()
    except DatakitsError as exc:
        print(f"runner executor: {exc}", file=sys.stderr)
        raise typer.Exit(exc.exit_code) from None


def _layers_option(text: str) -> dict[str, str]:
    """`--layers` JSON → {layer: selector}, in order; a ConfigError says what is wrong."""
    from datakits.errors import ConfigError

    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if (
        not isinstance(value, dict)
        or not value
        or not all(isinstance(k, str) and isinstance(v, str) and v for k, v in value.items())
    ):
        raise ConfigError(
            f'--layers must be a JSON object of layer names to dbt selectors, like {{"silver": '
            f'"path:models/staging"}}, got {text[:200]!r}'
        )
    return value


def main() -> None:
    """The `runner` console script.

    After `extract` the process ends through `os._exit`, skipping the interpreter's
    teardown: by then the load has committed or rolled back, closed its connections and
    files, and printed its result, and tearing down SQLAlchemy, pyarrow and DuckDB took
    a quarter of a second of every extract task (measured: 0.23-0.33 s after the result
    line). `dbt` exits normally: dbt and its adapters clean up at exit.

    Before anything imports pydantic, its plugin scan is switched off
    (`PYDANTIC_PLUGINS_ENV`, unless the env already says otherwise). `extract` starts
    with the cyclic GC paused until its rows flow (`runners.extract.resume_gc`).
    """
    os.environ.setdefault(PYDANTIC_PLUGINS_ENV, "__all__")
    if sys.argv[1:2] == ["extract"]:
        gc.disable()
    try:
        app()
        code: object = 0
    except SystemExit as exc:
        code = exc.code
    if sys.argv[1:2] != ["extract"]:
        sys.exit(code)
    if isinstance(code, str):  # SystemExit("message"): what `sys.exit` would print
        print(code, file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code if isinstance(code, int) else 0 if code is None else 1)


if __name__ == "__main__":
    main()

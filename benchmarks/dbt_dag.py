"""Our dbt DAG against Cosmos 1.15 (parse) and against a plain `dbt build` (run).

    make bench-deps          # astronomer-cosmos==1.15.1 (benchmarks/requirements-dbt-dag.txt)
    .venv/bin/python benchmarks/dbt_dag.py --models 200 --repeat 3 --tenants 100

In one temp folder: a generated tenant `bench` (`benchmarks/dbt_project_gen.py`: N models
in three layers, views and tables, tests on a quarter) and the shop project as tenant
`demo`, both SQLite → DuckDB on the demo shop data. For each tenant:

- parse: Cosmos `DbtDag` (`LoadMode.DBT_MANIFEST` on the tenant's manifest, execution
  modes LOCAL and WATCHER) against our DAG file's `build_dags()` for that tenant
  (`DAG_FACTORY_TENANTS`); each in a fresh process, timed after the imports, median of
  `--repeat`. When `dag-factory dbt compile` exists it runs first, so our DAG is the
  model-level one and Cosmos reads the manifest of that same parse; otherwise ours is the
  layer DAG (one task per layer) and the manifest comes from a parse of the runner's
  prepared project. Which mode ran is printed.
- run: `airflow dags test` of the tenant (local adapter, temp AIRFLOW_HOME) against a plain
  `dbt build` of the same prepared project (runner's sources yml and schema routing), each
  from the same DuckDB file (copied back before every run), alternating. Extract tasks
  are excluded from ours: our time runs from the end of the last extract task to the end
  of the last dbt task (Airflow's scheduling gap and every task's start-up count as ours);
  the plain build is the whole `dbt` process with an empty target dir (a full parse, like
  our runner's, which parses with `DBT_PARTIAL_PARSE=false`). The generated project runs
  twice: as `bench` (one task per model) and as `benchdirs` (`dbt.tasks: folder`, one
  task per domain folder, 14 tasks for 200 models). `run_overhead_vs_dbt_build` is the
  worse of the shop per model and the 200 models per folder, the grains we advise for
  each size; `run_overhead_model_grain` is the 200 models per model, and `airflow_floor`
  what Airflow alone costs for that many tasks.
- memory: peak RSS of the process parsing our DAG file for `--tenants` copies of `bench`.

Prints a table on stderr and, as the last stdout line, one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(REPO))

from benchmarks.dbt_project_gen import (  # noqa: E402
    copy_tenant,
    env_names,
    generate_tenant,
)

#: One parse in a fresh process: imports first (not timed), then the DAG(s); peak RSS too.
PARSE_CHILD = textwrap.dedent(
    """
    import json, logging, sys, time, warnings
    from pathlib import Path
    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)
    what, conf = sys.argv[1], json.loads(sys.argv[2])
    import airflow.sdk  # Airflow itself is loaded before any DAG file, in both cases

    def peak_mb():  # VmHWM: this process's own peak (ru_maxrss keeps the forking parent's)
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024

    started = time.perf_counter()
    if what == "ours":
        from dag_factory.build import build_dags

        def build():
            return list(build_dags(Path(conf["warehouses"])).values())
    else:
        from cosmos import DbtDag, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
        from cosmos.constants import ExecutionMode, LoadMode

        def build():
            return [DbtDag(
                dag_id="cosmos_" + conf["tenant"],
                project_config=ProjectConfig(dbt_project_path=conf["project_dir"],
                                             manifest_path=conf["manifest"]),
                profile_config=ProfileConfig(
                    profile_name=conf["profile"], target_name="runner",
                    profiles_yml_filepath=conf["profiles_yml"]),
                execution_config=ExecutionConfig(execution_mode=ExecutionMode[conf["mode"]]),
                render_config=RenderConfig(load_method=LoadMode.DBT_MANIFEST),
                schedule="@daily", catchup=False,
            )]
    imported = time.perf_counter()
    rss_imports = peak_mb()
    dags = build()  # timed: the first build in the process, lazy imports included
    first = time.perf_counter()
    rss_built = peak_mb()
    build()  # the same again in this process: the steady state, no one-time costs
    warm = time.perf_counter() - first
    tasks = [t.task_id for d in dags for t in d.tasks]
    print(json.dumps({
        "seconds": first - imported, "warm_seconds": warm, "import_seconds": imported - started,
        "dags": len(dags), "tasks": len(tasks),
        "extract_tasks": sum(t.startswith("extract_") for t in tasks),
        "sample": sorted(tasks)[:3] + sorted(tasks)[-3:],
        "rss_mb": rss_built, "rss_imports_mb": rss_imports,
    }))
    """
)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- setup -------------------------------------------------------------------------------


@dataclass
class Tenant:
    """One benchmarked tenant: its env and the plain dbt project prepared from it."""

    name: str
    env: dict[str, str]  # the source and warehouse URLs the tenant file names
    warehouse_file: Path
    plain_dir: Path = Path()
    profiles_dir: Path = Path()
    profile: str = ""
    dbt_env: dict[str, str] | None = None
    manifest: Path = Path()
    models: int = 0
    tests: int = 0


#: The generated tenant again with `dbt.tasks: folder` (one task per domain folder): run
#: only, its parse is the same project's.
FOLDERS = "benchdirs"


def setup(work: Path, models: int, orders: int) -> tuple[Path, list[Tenant]]:
    from devtools.shop import generate_shop

    generated = generate_tenant(work, models)
    warehouses = generated.warehouses
    shutil.copytree(REPO / "warehouses" / "demo", warehouses / "demo")
    shutil.copytree(REPO / "warehouses" / "_dbt" / "shop", warehouses / "_dbt" / "shop")
    copy_tenant(warehouses, "bench", FOLDERS, tasks="folder")
    data = work / "data"
    data.mkdir()
    source = f"sqlite:///{data}/shop.sqlite"
    generate_shop(source, orders=orders)
    tenants = []
    for name, source_env, warehouse_env in (
        ("bench", *env_names("bench")),
        (FOLDERS, *env_names(FOLDERS)),
        ("demo", "DEMO_SOURCE_URL", "DEMO_WAREHOUSE_URL"),
    ):
        file = data / f"{name}.duckdb"
        env = {source_env: source, warehouse_env: f"duckdb:///{file}"}
        tenants.append(Tenant(name=name, env=env, warehouse_file=file))
    return warehouses, tenants


def compile_graphs(warehouses: Path, tenants: list[Tenant]) -> str:
    """Run `dag-factory dbt compile` when it exists; say which mode this run measures."""
    cli = shutil.which("dag-factory", path=str(BIN))
    probe = subprocess.run(
        [cli or "dag-factory", "dbt", "compile", "--help"],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    if cli is None or probe.returncode != 0:
        return "layer tasks (no `dag-factory dbt compile` on this branch)"
    env = {**os.environ, "DAG_FACTORY_WAREHOUSES": str(warehouses)}
    for tenant in tenants:
        env.update(tenant.env)
    done = subprocess.run(
        [cli, "dbt", "compile", *(t.name for t in tenants)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd=warehouses.parent,
    )
    if done.returncode != 0:
        raise SystemExit(f"dag-factory dbt compile failed:\n{done.stderr[-3000:]}")
    return "compiled graph (`dag-factory dbt compile` ran)"


def prepare_plain(warehouses: Path, tenant: Tenant, out: Path) -> None:
    """The project a plain `dbt build` runs: the runner's own copy of the tenant's project
    (bronze sources yml, schema routing of every layer), with a profiles.yml. Built with
    the runner's helpers so both sides build the same nodes into the same schemas."""
    from dag_factory.loader import Loader
    from runners.dbt import DBT_DEFAULTS, _invoke, _layer_routing, _scoped_env
    from runners.dbt_profile import prepare_profile, profile_env, profiles_yml
    from runners.dbt_project import prepare_project, write_schema_macro

    loaded = Loader(warehouses).load(warehouses / tenant.name / "warehouse.yaml")
    spec = loaded.spec.load_spec()
    kind = spec.warehouse.kind
    warehouse_url = next(v for k, v in tenant.env.items() if "WAREHOUSE" in k)
    dbt_env = {**DBT_DEFAULTS, **profile_env(kind, warehouse_url, spec.warehouse.schemas.silver)}
    prepare_profile(kind, dbt_env)
    out.mkdir(parents=True)
    project = prepare_project(loaded.dbt_project_dir, out, spec)
    profiles = out / "profiles"
    profiles.mkdir()
    (profiles / "profiles.yml").write_text(profiles_yml(project.profile, kind))
    common = ["--project-dir", str(project.dir), "--profiles-dir", str(profiles)]
    common += ["--target-path", str(out / "target"), "--log-path", str(out / "logs")]
    with _scoped_env(dbt_env):
        routed = _layer_routing(common, dict(loaded.spec.dbt.layers), spec.warehouse.schemas)
        write_schema_macro(project, spec, routed)
        parsed = _invoke(["--quiet", "parse", *common])
    if not parsed.success:
        raise SystemExit(f"dbt parse of {tenant.name}'s prepared project failed")
    manifest = parsed.result
    tenant.plain_dir, tenant.profiles_dir, tenant.profile = project.dir, profiles, project.profile
    tenant.dbt_env = dbt_env
    tenant.models = sum(1 for n in manifest.nodes.values() if n.resource_type == "model")
    tenant.tests = sum(1 for n in manifest.nodes.values() if n.resource_type == "test")
    compiled = warehouses / tenant.name / "compiled" / "manifest.json"
    tenant.manifest = compiled if compiled.exists() else out / "target" / "manifest.json"


# --- parse -------------------------------------------------------------------------------


def parse_once(what: str, conf: dict[str, str], env: dict[str, str]) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", PARSE_CHILD, what, json.dumps(conf)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    if done.returncode != 0:
        raise SystemExit(f"{what} parse failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def parse_median(what: str, conf: dict[str, str], env: dict[str, str], repeat: int) -> dict:
    runs = [
        parse_once(what, conf, {**env, "DAG_FACTORY_CACHE_DIR": f"{env['_CACHE']}/{what}{i}"})
        for i in range(repeat)
    ]
    row = dict(runs[0])
    for key in ("seconds", "warm_seconds", "import_seconds"):
        row[key] = statistics.median(r[key] for r in runs)
    row["rss_mb"] = max(r["rss_mb"] for r in runs)
    return row


def parse_env(work: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(work / "airflow"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
        "DO_NOT_TRACK": "1",
        "PYTHONPATH": str(REPO),
        "_CACHE": str(work / "spec-cache"),
    }
    env.pop("DAG_FACTORY_TENANTS", None)
    return env


# --- run ---------------------------------------------------------------------------------


def _ts(value: str | None) -> float:
    return datetime.fromisoformat(value).timestamp() if value else 0.0


def task_times(airflow_db: Path, dag_id: str) -> list[tuple[str, float, float, str]]:
    """(task id, start, end, state) of the tasks of the DAG's latest run."""
    with sqlite3.connect(airflow_db) as conn:
        (run_id,) = conn.execute(
            "select run_id from dag_run where dag_id = ? order by id desc limit 1", (dag_id,)
        ).fetchone()
        rows = conn.execute(
            "select task_id, start_date, end_date, state from task_instance "
            "where dag_id = ? and run_id = ?",
            (dag_id, run_id),
        ).fetchall()
    return [(t, _ts(s), _ts(e), state or "") for t, s, e, state in rows]


def run_ours(
    tenant: Tenant, env: dict[str, str], airflow_db: Path, log_file: Path | None = None
) -> dict:
    started = time.perf_counter()
    done = subprocess.run(
        [BIN / "airflow", "dags", "test", f"tenant_{tenant.name}"],
        env={**env, **tenant.env, "DAG_FACTORY_TENANTS": tenant.name},
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    wall = time.perf_counter() - started
    if log_file is not None:  # the tasks' logs, for where the time goes (`--keep`)
        log_file.write_text(done.stdout + done.stderr)
    tasks = task_times(airflow_db, f"tenant_{tenant.name}")
    failed = [t for t, _, _, state in tasks if state != "success"]
    if done.returncode != 0 or failed:
        raise SystemExit(
            f"airflow dags test tenant_{tenant.name} failed ({failed}):\n"
            + done.stdout[-2000:]
            + done.stderr[-3000:]
        )
    extracts = [t for t in tasks if t[0].startswith("extract_")]
    dbt = [t for t in tasks if not t[0].startswith("extract_")]
    bronze_ready = max(end for _, _, end, _ in extracts)
    return {
        "seconds": max(end for _, _, end, _ in dbt) - bronze_ready,
        "wall": wall,
        "extract_seconds": bronze_ready - min(start for _, start, _, _ in extracts),
        "dbt_tasks": len(dbt),
        "task_seconds": {t: end - start for t, start, end, _ in dbt},
        "gap_to_first_dbt": min(start for _, start, _, _ in dbt) - bronze_ready,
    }


#: A DAG of `tasks` no-op tasks, all but the first downstream of the first (the widest
#: shape, which `airflow dags test` schedules in the fewest loops): what Airflow itself
#: costs per task, whatever the task does — a lower bound for the model tasks' share.
FLOOR_DAG = """
import datetime as dt
from airflow.sdk import DAG, BaseOperator

class Noop(BaseOperator):
    def execute(self, context):
        return None

with DAG("airflow_floor", schedule=None, start_date=dt.datetime(2026, 1, 1)):
    root = Noop(task_id="t0")
    for i in range(1, {tasks}):
        root >> Noop(task_id=f"t{{i}}")
"""


def run_floor(tasks: int, env: dict[str, str], airflow_db: Path, folder: Path) -> float:
    """Seconds `airflow dags test` takes for `tasks` no-op tasks (first start to last end):
    the least any design with one Airflow task per dbt model can cost on top of dbt."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "airflow_floor.py").write_text(FLOOR_DAG.format(tasks=tasks))
    subprocess.run(
        [BIN / "airflow", "dags", "test", "airflow_floor"],
        env={**env, "AIRFLOW__CORE__DAGS_FOLDER": str(folder)},
        capture_output=True,
        check=True,
        cwd=REPO,
    )
    times = task_times(airflow_db, "airflow_floor")
    return max(end for _, _, end, _ in times) - min(start for _, start, _, _ in times)


def run_plain(tenant: Tenant, out: Path) -> dict:
    target = out / "target-plain"
    shutil.rmtree(target, ignore_errors=True)
    started = time.perf_counter()
    done = subprocess.run(
        [
            BIN / "dbt",
            "--quiet",
            "build",
            "--project-dir",
            str(tenant.plain_dir),
            "--profiles-dir",
            str(tenant.profiles_dir),
            "--target-path",
            str(target),
            "--log-path",
            str(out / "logs-plain"),
        ],
        env={**os.environ, **(tenant.dbt_env or {})},
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"plain dbt build of {tenant.name} failed:\n{done.stdout[-3000:]}")
    results = json.loads((target / "run_results.json").read_text())
    return {
        "seconds": seconds,
        "dbt_elapsed": results["elapsed_time"],
        "nodes": len(results["results"]),
    }


def alternate(
    repeat: int, reset: Callable[[], None], ours: Callable[[], dict], plain: Callable[[], dict]
) -> tuple[list[dict], list[dict]]:
    """ours, plain, plain, ours, ...: each from the same reset state, neither always first."""
    mine: list[dict] = []
    theirs: list[dict] = []
    for i in range(repeat):
        order = [(ours, mine), (plain, theirs)]
        for run, into in order if i % 2 == 0 else order[::-1]:
            reset()
            into.append(run())
            name = getattr(run, "func", run).__name__
            log(f"  run {i + 1}/{repeat}: {name} {into[-1]['seconds']:.2f} s")
    return mine, theirs


# --- main --------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--tenants", type=int, default=100, help="copies for the memory row")
    parser.add_argument("--orders", type=int, default=20_000, help="shop orders (bronze size)")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="dbt-dag-bench-"))
    try:
        result = bench(work, args)
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result))


def bench(work: Path, args: argparse.Namespace) -> dict:
    warehouses, tenants = setup(work, args.models, args.orders)
    mode = compile_graphs(warehouses, tenants)
    log(f"mode: {mode}")
    with contextlib.redirect_stdout(sys.stderr):  # dbt ls prints its nodes on stdout
        for tenant in tenants:
            prepare_plain(warehouses, tenant, work / "plain" / tenant.name)

    env = parse_env(work)
    parse_rows: dict[str, dict[str, dict]] = {}
    for tenant in (t for t in tenants if t.name != FOLDERS):
        log(f"{tenant.name}: parse rows ({tenant.models} models, {tenant.tests} tests)")
        rows = parse_rows.setdefault(tenant.name, {})
        ours_env = {**env, **tenant.env, "DAG_FACTORY_TENANTS": tenant.name}
        rows["ours"] = parse_median("ours", {"warehouses": str(warehouses)}, ours_env, args.repeat)
        cosmos = {
            "tenant": tenant.name,
            "project_dir": str(tenant.plain_dir),
            "manifest": str(tenant.manifest),
            "profile": tenant.profile,
            "profiles_yml": str(tenant.profiles_dir / "profiles.yml"),
        }
        for mode_name in ("LOCAL", "WATCHER"):
            try:
                rows[f"cosmos {mode_name}"] = parse_median(
                    "cosmos", {**cosmos, "mode": mode_name}, env, args.repeat
                )
            except SystemExit as exc:  # WATCHER may need more than a manifest at parse
                log(f"cosmos {mode_name} did not render for {tenant.name}: {str(exc)[-300:]}")

    # memory: our DAG file over --tenants copies of the generated tenant
    mem_root = work / "mem"
    mem = mem_root / "warehouses"
    shutil.copytree(warehouses / "_dbt" / "bench", mem / "_dbt" / "bench")
    shutil.copytree(warehouses / "bench", mem / "bench")  # one task per model: the largest
    for name in ("defaults.yaml", "schema.json"):
        shutil.copy(warehouses / name, mem / name)
    names = [f"bench{i:03d}" for i in range(args.tenants)]
    for name in names:
        copy_tenant(mem, "bench", name)
    shutil.rmtree(mem / "bench")
    log(f"parse rows done; parsing {args.tenants} copies of bench")
    tenants_row = parse_median("ours", {"warehouses": str(mem)}, env, 1)
    expected = args.tenants * parse_rows["bench"]["ours"]["tasks"]
    if tenants_row["dags"] != args.tenants or tenants_row["tasks"] != expected:
        raise SystemExit(
            f"the {args.tenants} copies parsed into {tenants_row['dags']} DAGs of "
            f"{tenants_row['tasks']} tasks, not {expected}: some are placeholders"
        )

    # run: a whole DAG run against a plain dbt build, from the same DuckDB file each time
    airflow_env = {
        **env,
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "DAG_FACTORY_WAREHOUSES": str(warehouses),
    }
    subprocess.run(
        [BIN / "airflow", "db", "migrate"], env=airflow_env, check=True, capture_output=True
    )
    subprocess.run([BIN / "dag-factory", "pools"], env=airflow_env, check=True, capture_output=True)
    airflow_db = work / "airflow" / "airflow.db"
    run_rows: dict[str, tuple[list[dict], list[dict]]] = {}
    for tenant in tenants:
        warm = run_ours(tenant, airflow_env, airflow_db)  # loads bronze, builds everything
        log(f"{tenant.name}: warm-up DAG run {warm['wall']:.1f} s")
        snapshot = work / f"{tenant.name}.start.duckdb"
        shutil.copy(tenant.warehouse_file, snapshot)

        def reset(tenant: Tenant = tenant, snapshot: Path = snapshot) -> None:
            for extra in (tenant.warehouse_file.with_suffix(".duckdb.wal"),):
                extra.unlink(missing_ok=True)
            shutil.copy(snapshot, tenant.warehouse_file)

        run_rows[tenant.name] = alternate(
            args.repeat,
            reset,
            functools.partial(
                run_ours, tenant, airflow_env, airflow_db, work / f"{tenant.name}.dags-test.log"
            ),
            functools.partial(run_plain, tenant, work / "plain" / tenant.name),
        )

    dbt_tasks = run_rows["bench"][0][-1]["dbt_tasks"]
    floor_s = statistics.median(
        run_floor(dbt_tasks, airflow_env, airflow_db, work / "floor")
        for _ in range(max(1, args.repeat))
    )
    log(f"airflow floor: {dbt_tasks} no-op tasks in {floor_s:.2f} s")
    return report(args, mode, tenants, parse_rows, tenants_row, run_rows, (dbt_tasks, floor_s))


def _ratio(rows: dict[str, dict], other: str, *keys: str) -> float | None:
    """`other`'s time over ours, summing `keys` (None when `other` did not render)."""
    if other not in rows:
        return None
    return round(sum(rows[other][k] for k in keys) / sum(rows["ours"][k] for k in keys), 2)


def report(
    args: argparse.Namespace,
    mode: str,
    tenants: list[Tenant],
    parse_rows: dict[str, dict[str, dict]],
    tenants_row: dict,
    run_rows: dict[str, tuple[list[dict], list[dict]]],
    floor: tuple[int, float],
) -> dict:
    log(f"\nmode: {mode}; median of {args.repeat}, fresh process each")
    log(
        f"{'tenant':8} {'parse':16} {'ms':>8} {'warm ms':>8} {'import ms':>9} {'tasks':>6} "
        f"{'extract':>7} {'peak MB':>8}"
    )
    for name, rows in parse_rows.items():
        for what, row in rows.items():
            log(
                f"{name:8} {what:16} {1000 * row['seconds']:8.1f} "
                f"{1000 * row['warm_seconds']:8.1f} {1000 * row['import_seconds']:9.1f} "
                f"{row['tasks']:6d} {row['extract_tasks']:7d} {row['rss_mb']:8.0f}"
            )
    for name, rows in parse_rows.items():
        for what, row in rows.items():
            log(f"  {name} {what} task ids: {', '.join(row['sample'])}, ...")
    log(
        f"ours, {tenants_row['dags']} tenants x {args.models} models: "
        f"{tenants_row['seconds']:.2f} s, {tenants_row['tasks']} tasks, peak RSS "
        f"{tenants_row['rss_mb']:.0f} MB ({tenants_row['rss_imports_mb']:.0f} MB after imports)"
    )
    log(
        f"\n{'tenant':8} {'models':>6} {'tests':>5} {'ours s':>7} {'plain s':>7} {'ratio':>6}"
        f" {'dbt own s':>9} {'gap s':>6} {'extract s':>9}"
    )
    run_detail = {}
    for tenant in tenants:
        mine, theirs = run_rows[tenant.name]
        ours_s = statistics.median(r["seconds"] for r in mine)
        plain_s = statistics.median(r["seconds"] for r in theirs)
        run_detail[tenant.name] = {
            "ours_s": round(ours_s, 2),
            "plain_s": round(plain_s, 2),
            "ratio": round(ours_s / plain_s, 3),
        }
        log(
            f"{tenant.name:8} {tenant.models:6d} {tenant.tests:5d} {ours_s:7.2f} {plain_s:7.2f}"
            f" {ours_s / plain_s:6.2f} {statistics.median(r['dbt_elapsed'] for r in theirs):9.2f}"
            f" {statistics.median(r['gap_to_first_dbt'] for r in mine):6.2f}"
            f" {statistics.median(r['extract_seconds'] for r in mine):9.2f}"
        )
        slowest = sorted(mine[-1]["task_seconds"].items(), key=lambda kv: -kv[1])[:5]
        log(
            "  ours, per task (last run, slowest): "
            + ", ".join(f"{t} {s:.2f}s" for t, s in slowest)
            + f"; {mine[-1]['dbt_tasks']} dbt tasks"
        )

    bench = parse_rows["bench"]
    ours = bench["ours"]["seconds"]
    cosmos_local = bench.get("cosmos LOCAL", {}).get("seconds")
    # what a tenant pays for its DAG, in the grain it would run: the shop at one task per
    # model, the 200-model project at one task per folder (`dbt.tasks: folder`); the
    # 200-model project at one task per model is `run_overhead_model_grain`
    overhead = max(run_detail["demo"]["ratio"], run_detail[FOLDERS]["ratio"])
    log(
        f"run overhead: shop (per model) {run_detail['demo']['ratio']}, {args.models} models "
        f"per folder {run_detail[FOLDERS]['ratio']}, per model {run_detail['bench']['ratio']}"
    )
    return {
        "parse_speedup_vs_cosmos": round(cosmos_local / ours, 2) if cosmos_local else None,
        "run_overhead_vs_dbt_build": overhead,
        "run_overhead_model_grain": run_detail["bench"]["ratio"],
        "parse_ms_per_tenant": round(1000 * ours, 1),
        # the same ratio in the steady state (a second build in the process), and with the
        # imports of each side's module (`dag_factory.build` vs `cosmos`) counted in
        "parse_speedup_vs_cosmos_warm": _ratio(bench, "cosmos LOCAL", "warm_seconds"),
        "parse_speedup_vs_cosmos_with_imports": _ratio(
            bench, "cosmos LOCAL", "seconds", "import_seconds"
        ),
        "parse_warm_ms_per_tenant": round(1000 * bench["ours"]["warm_seconds"], 1),
        "mode": mode,
        "models": args.models,
        "parse_ms": {
            name: {what: round(1000 * row["seconds"], 1) for what, row in rows.items()}
            for name, rows in parse_rows.items()
        },
        "parse_warm_ms": {
            name: {what: round(1000 * row["warm_seconds"], 1) for what, row in rows.items()}
            for name, rows in parse_rows.items()
        },
        "import_ms": {
            name: {what: round(1000 * row["import_seconds"], 1) for what, row in rows.items()}
            for name, rows in parse_rows.items()
        },
        "parse_tasks": {
            name: {what: row["tasks"] for what, row in rows.items()}
            for name, rows in parse_rows.items()
        },
        "speedup_vs_cosmos_by_tenant": {
            name: {
                what: round(row["seconds"] / rows["ours"]["seconds"], 2)
                for what, row in rows.items()
                if what != "ours"
            }
            for name, rows in parse_rows.items()
        },
        "many_tenants": {
            "tenants": tenants_row["dags"],
            "parse_s": round(tenants_row["seconds"], 3),
            "peak_rss_mb": round(tenants_row["rss_mb"]),
            "rss_after_imports_mb": round(tenants_row["rss_imports_mb"]),
        },
        "run": run_detail,
        # Airflow's own cost of as many no-op tasks as the bench DAG has dbt tasks, and the
        # ratio a plain dbt build plus that cost would give: the floor of any design with
        # one Airflow task per model
        "airflow_floor": {
            "tasks": floor[0],
            "seconds": round(floor[1], 2),
            "ms_per_task": round(1000 * floor[1] / floor[0], 1),
            "run_overhead_floor": round(
                (run_detail["bench"]["plain_s"] + floor[1]) / run_detail["bench"]["plain_s"], 3
            ),
        },
    }


if __name__ == "__main__":
    main()

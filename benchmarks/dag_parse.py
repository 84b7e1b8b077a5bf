"""How fast the tenants' DAG file parses, against astronomer dag-factory and a floor.

    .venv/bin/uv pip install --python .venv/bin/python -c constraints.txt \
        -r benchmarks/requirements.txt          # astronomer dag-factory
    .venv/bin/python benchmarks/dag_parse.py --tenants 1000

Generates N tenants x 20 tables into a temporary warehouses folder and times, each in a
fresh process (the parse itself: interpreter start and `import airflow` are excluded):

- ours, cold: a DagBag parse of `dags/tenants.py` with an empty spec cache;
- ours, warm: the same with the cache the cold run filled (what the scheduler sees);
- task parse: the parse a task run does, Airflow's parsing context naming one DAG;
- dag-factory: the same DAGs from equivalent YAML through astronomer dag-factory;
- floor: a hand-written loop building the same DAG objects from
  `yaml.load(..., Loader=yaml.CSafeLoader)` with no validation.

Prints a table and, as its last stdout line, one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
TABLES_PER_TENANT = 20

# Runs in a fresh process: import Airflow first (not timed), then time the DagBag parse.
CHILD = textwrap.dedent(
    """
    import json, sys, time, warnings
    warnings.simplefilter("ignore")
    from airflow.dag_processing.dagbag import DagBag
    started = time.perf_counter()
    bag = DagBag(dag_folder=sys.argv[1])
    seconds = time.perf_counter() - started
    tasks = sum(len(d.tasks) for d in bag.dags.values())
    print(json.dumps({"seconds": seconds, "dags": len(bag.dags), "tasks": tasks,
                      "errors": len(bag.import_errors)}))
    """
)

FLOOR_DAG_FILE = textwrap.dedent(
    """
    # The floor: the same DAG objects straight from YAML, no validation, no planning.
    # (The words airflow and DAG must appear for Airflow's safe-mode file filter.)
    import datetime as dt
    import json
    import os
    from pathlib import Path

    import yaml
    from airflow.sdk import DAG, Asset

    from dag_factory.adapters.local import RunnerProcessOperator

    WAREHOUSES = Path(os.environ["DAG_FACTORY_WAREHOUSES"])
    ROOT = str(WAREHOUSES.parent)
    for file in sorted(WAREHOUSES.glob("*/warehouse.yaml")):
        conf = yaml.load(file.read_text(), Loader=yaml.CSafeLoader)
        tenant = conf["tenant"]
        env = {"RUNNER_SPEC": json.dumps({k: conf[k] for k in
                                          ("tenant", "source", "warehouse", "tables")})}
        with DAG(
            dag_id=f"tenant_{tenant}", schedule=conf.get("schedule", "@daily"),
            start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC), catchup=False,
            max_active_runs=1, max_active_tasks=8,
            tags=[f"tenant:{tenant}"], default_args={"owner": "data-platform"},
        ) as dag:
            common = {"retries": 2, "retry_delay": dt.timedelta(minutes=5)}
            extracts = [
                RunnerProcessOperator(
                    task_id=f"extract_{t['name']}", argv=("extract", "--table", t["name"]),
                    runner_env=env, secrets=(), cwd=ROOT,
                    execution_timeout=dt.timedelta(hours=2),
                    outlets=[Asset(f"tenant://{tenant}/bronze/{t['name']}")], **common,
                )
                for t in conf["tables"]
            ]
            upstream = extracts
            for layer in ("silver", "gold"):
                task = RunnerProcessOperator(
                    task_id=f"dbt_{layer}",
                    argv=("dbt", "--project-dir", f"warehouses/{tenant}/dbt", "build",
                          "--select", layer),
                    runner_env=env, secrets=(), cwd=ROOT,
                    execution_timeout=dt.timedelta(hours=1),
                    outlets=[Asset(f"tenant://{tenant}/{layer}")], **common,
                )
                upstream >> task
                upstream = task
        globals()[dag.dag_id] = dag
    """
)

DAG_FACTORY_FILE = textwrap.dedent(
    """
    # astronomer dag-factory over one YAML file per tenant (airflow DAG file).
    import os
    from dagfactory import load_yaml_dags

    load_yaml_dags(globals_dict=globals(), dags_folder=os.environ["DAG_FACTORY_YAML_DIR"])
    """
)


def tenant_file(name: str) -> str:
    tables = "\n".join(f"  - name: table_{i:02d}" for i in range(TABLES_PER_TENANT))
    return (
        "# yaml-language-server: $schema=../schema.json\n"
        f"tenant: {name}\n"
        f"description: Generated tenant {name}.\n"
        "source:\n  kind: postgres\n  schema: shop\n"
        f"  connection:\n    airflow_conn: {name}_source\n"
        "warehouse:\n  kind: postgres\n"
        f"  connection:\n    airflow_conn: {name}_warehouse\n"
        f"  schemas: {{bronze: {name}_bronze, silver: {name}_silver, gold: {name}_gold, "
        f"meta: {name}_meta}}\n"
        f"tables:\n{tables}\n"
        'schedule: "0 3 * * *"\n'
    )


def dag_factory_yaml(name: str, root: Path) -> dict:
    """The same DAG for astronomer dag-factory: same operator, arguments and edges."""
    operator = "dag_factory.adapters.local.RunnerProcessOperator"
    tables = [f"table_{i:02d}" for i in range(TABLES_PER_TENANT)]
    spec = json.dumps({"tenant": name, "tables": [{"name": t} for t in tables]})
    common = {"runner_env": {"RUNNER_SPEC": spec}, "secrets": [], "cwd": str(root)}

    def timedelta(seconds: int) -> dict:
        return {"__type__": "datetime.timedelta", "seconds": seconds}

    def asset(uri: str) -> list[dict]:
        return [{"__type__": "airflow.sdk.Asset", "uri": uri}]

    tasks = {
        f"extract_{t}": {
            "operator": operator,
            "argv": ["extract", "--table", t],
            "execution_timeout": timedelta(7200),
            "outlets": asset(f"tenant://{name}/bronze/{t}"),
            **common,
        }
        for t in tables
    }
    upstream = [f"extract_{t}" for t in tables]
    for layer in ("silver", "gold"):
        tasks[f"dbt_{layer}"] = {
            "operator": operator,
            "argv": ["dbt", "--project-dir", f"warehouses/{name}/dbt", "build", "--select", layer],
            "execution_timeout": timedelta(3600),
            "outlets": asset(f"tenant://{name}/{layer}"),
            "dependencies": upstream,
            **common,
        }
        upstream = [f"dbt_{layer}"]
    return {
        f"tenant_{name}": {
            "default_args": {
                "owner": "data-platform",
                "start_date": "2026-01-01",
                "retries": 2,
                "retry_delay": timedelta(300),
            },
            "schedule": "0 3 * * *",
            "catchup": False,
            "max_active_runs": 1,
            "tags": [f"tenant:{name}"],
            "tasks": tasks,
        }
    }


def generate(workdir: Path, tenants: int) -> dict[str, Path]:
    warehouses = workdir / "warehouses"
    yaml_dir = workdir / "dagfactory_yaml"
    dags = workdir / "dags"
    for folder in (warehouses, yaml_dir, dags):
        folder.mkdir(parents=True)
    shutil.copy(REPO / "warehouses" / "defaults.yaml", warehouses / "defaults.yaml")
    for i in range(tenants):
        name = f"t{i:05d}"
        folder = warehouses / name
        (folder / "dbt").mkdir(parents=True)
        (folder / "dbt" / "dbt_project.yml").write_text(f"name: {name}\nprofile: {name}\n")
        (folder / "warehouse.yaml").write_text(tenant_file(name))
        (yaml_dir / f"{name}.yaml").write_text(
            yaml.safe_dump(dag_factory_yaml(name, workdir), sort_keys=False)
        )
    (dags / "floor.py").write_text(FLOOR_DAG_FILE)
    (dags / "dag_factory_yaml.py").write_text(DAG_FACTORY_FILE)
    return {"warehouses": warehouses, "yaml": yaml_dir, "dags": dags}


def parse(dag_file: Path, env: dict[str, str], repeat: int) -> dict:
    """The fastest of `repeat` fresh-process parses: noise only ever adds time."""
    return min((_parse_once(dag_file, env) for _ in range(repeat)), key=lambda r: r["seconds"])


def _parse_once(dag_file: Path, env: dict[str, str]) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(dag_file)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    if done.returncode != 0:
        raise SystemExit(f"parse of {dag_file} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tenants", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3, help="fresh-process runs per row")
    parser.add_argument(
        "--skip-dag-factory",
        action="store_true",
        help="when astronomer dag-factory is not installed",
    )
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="dag-parse-"))
    try:
        paths = generate(workdir, args.tenants)
        airflow_home = workdir / "airflow"
        cache = workdir / "cache"
        base = {
            **os.environ,
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            # no 30 s import timeout: the slowest contender must finish to be measured
            "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "0",
            "DAG_FACTORY_WAREHOUSES": str(paths["warehouses"]),
            "DAG_FACTORY_YAML_DIR": str(paths["yaml"]),
            "DAG_FACTORY_CACHE_DIR": str(cache),
            "PYTHONPATH": str(REPO),
        }
        base.pop("DAG_FACTORY_TENANTS", None)
        ours_file = REPO / "dags" / "tenants.py"
        one = f"tenant_t{args.tenants // 2:05d}"
        rows: dict[str, dict] = {}
        n = args.repeat
        rows["floor (CSafeLoader, no validation)"] = parse(paths["dags"] / "floor.py", base, n)
        # cold: every run gets an empty cache of its own
        rows["ours, cold cache"] = min(
            (
                _parse_once(ours_file, {**base, "DAG_FACTORY_CACHE_DIR": str(cache / f"cold{i}")})
                for i in range(n)
            ),
            key=lambda r: r["seconds"],
        )
        rows["ours, warm cache"] = parse(
            ours_file, {**base, "DAG_FACTORY_CACHE_DIR": str(cache / "cold0")}, n
        )
        rows["ours, task run (parsing context)"] = parse(
            ours_file, {**base, "_AIRFLOW_PARSING_CONTEXT_DAG_ID": one}, n
        )
        if not args.skip_dag_factory:
            rows["astronomer dag-factory"] = parse(paths["dags"] / "dag_factory_yaml.py", base, n)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    print(
        f"{args.tenants} tenants x {TABLES_PER_TENANT} tables; parse only, fresh process each, "
        f"best of {args.repeat}"
    )
    print(f"{'contender':38} {'seconds':>8} {'ms/DAG':>8} {'DAGs':>6} {'tasks':>7} {'errors':>6}")
    for name, row in rows.items():
        ms = 1000 * row["seconds"] / max(row["dags"], 1)
        print(
            f"{name:38} {row['seconds']:8.2f} {ms:8.2f} {row['dags']:6d} {row['tasks']:7d} "
            f"{row['errors']:6d}"
        )
    ours = rows["ours, cold cache"]
    floor = rows["floor (CSafeLoader, no validation)"]
    result = {
        "tenants": args.tenants,
        "ms_per_dag": round(1000 * ours["seconds"] / max(ours["dags"], 1), 3),
        "parse_vs_floor": round(ours["seconds"] / floor["seconds"], 3),
        "speedup_vs_dag_factory": (
            round(rows["astronomer dag-factory"]["seconds"] / ours["seconds"], 3)
            if "astronomer dag-factory" in rows
            else None
        ),
        "task_parse_vs_full": round(
            rows["ours, task run (parsing context)"]["seconds"] / ours["seconds"], 4
        ),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()

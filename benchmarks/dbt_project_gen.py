"""A generated tenant with a dbt project of N models in three layers, for the dbt benchmark.

    from benchmarks.dbt_project_gen import generate_tenant
    tenant = generate_tenant(Path("/tmp/x"), models=200)   # writes /tmp/x/warehouses/...

Why generated: the shop project has 5 models; the questions of issue 14 (parse time of a
DAG of one task per model against Cosmos, the run overhead against a plain `dbt build`)
only show at the size of a real project. The layout is the one users bring (not ours):

- `models/staging/<source table>/`: 20 % of the models, views, each over one bronze table
  (`source('bronze', ...)`), its key renamed `id` and a `bucket` column;
- `models/intermediate/<domain>/`: 50 %, tables, each a left join of 2-3 earlier staging
  or intermediate models on `id` (fan-in; joins on a unique key keep `id` unique);
- `models/marts/<domain>/`: 30 %, tables, each joining 2-4 intermediate (or staging) models;
- a `unique` and a `not_null` test on `id` of every fourth model.

The domains (finance, marketing, ...) are contiguous runs of models, as dbt's style guide
groups intermediate models and marts by business area; a model reads mostly the latest
ones, so most edges stay inside a domain and the rest point at earlier domains.

The tenant (`warehouses/<tenant>/warehouse.yaml`) reads the demo shop from SQLite
(`devtools.shop`, env `<TENANT>_SOURCE_URL`) into DuckDB (`<TENANT>_WAREHOUSE_URL`), maps the three
folders to the layers `silver`, `intermediate` and `gold` with `dbt.layers`, and names the
project as a shared one (`../_dbt/<tenant>`), so copies of the tenant share it too.
Deterministic: the same arguments write the same files.
"""

from __future__ import annotations

import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
#: The bronze tables (devtools.shop) and their keys.
SOURCES = {
    "customers": "customer_id",
    "products": "product_id",
    "orders": "order_id",
    "order_items": "order_item_id",
}


def env_names(tenant: str) -> tuple[str, str]:
    """The source and warehouse URL env vars of a tenant: a tenant may name only env vars
    that start with its own id (dag_factory.isolation)."""
    return f"{tenant.upper()}_SOURCE_URL", f"{tenant.upper()}_WAREHOUSE_URL"


#: The business areas of intermediate models and marts, in order.
DOMAINS = ("finance", "marketing", "product", "operations", "sales")

#: Layer name → (folder, selector, materialization, share of the models).
LAYERS = {
    "silver": ("staging", "path:models/staging", "view", 0.2),
    "intermediate": ("intermediate", "path:models/intermediate", "table", 0.5),
    "gold": ("marts", "path:models/marts", "table", 0.3),
}


@dataclass(frozen=True)
class GeneratedTenant:
    """Where the generator wrote what, and what dbt should find in it."""

    root: Path  # holds warehouses/
    tenant: str
    project_dir: Path
    models: dict[str, list[str]]  # layer → model names, in build order
    tested: tuple[str, ...]  # models with a unique and a not_null test

    @property
    def warehouses(self) -> Path:
        return self.root / "warehouses"

    @property
    def model_count(self) -> int:
        return sum(len(names) for names in self.models.values())

    @property
    def test_count(self) -> int:
        return 2 * len(self.tested)


def layer_sizes(models: int) -> dict[str, int]:
    """Models per layer: 20 / 50 / 30 %, at least one each, summing to `models`."""
    if models < 3:
        raise ValueError(f"models must be at least 3 (one per layer), got {models}")
    staging = max(1, round(models * LAYERS["silver"][3]))
    marts = max(1, round(models * LAYERS["gold"][3]))
    return {"silver": staging, "intermediate": models - staging - marts, "gold": marts}


def _join(parents: list[str]) -> str:
    """A left join of `parents` on `id`: the first one's rows, a bucket mixed from all."""
    first, rest = parents[0], parents[1:]
    mixed = " + ".join(
        ["p0.bucket", *(f"coalesce(p{i}.bucket, 0)" for i in range(1, len(parents)))]
    )
    joins = "\n".join(
        f"left join {{{{ ref('{name}') }}}} as p{i} on p{i}.id = p0.id"
        for i, name in enumerate(rest, start=1)
    )
    return (
        f"select p0.id, ({mixed}) % 997 as bucket\nfrom {{{{ ref('{first}') }}}} as p0\n{joins}\n"
    )


def _domain(index: int, count: int) -> str:
    """The domain of the `index`-th of `count` models: contiguous runs, one per domain."""
    return DOMAINS[index * len(DOMAINS) // count]


def _staging(index: int) -> tuple[str, str]:
    table = list(SOURCES)[index % len(SOURCES)]
    key = SOURCES[table]
    sql = (
        f"select cast({key} as bigint) as id, cast({key} as bigint) % {7 + index} as bucket\n"
        f"from {{{{ source('bronze', '{table}') }}}}\nwhere {key} is not null\n"
    )
    return f"stg_{index:03d}_{table}", sql


def write_project(project_dir: Path, models: int, *, seed: int = 14) -> dict[str, list[str]]:
    """The dbt project's files; returns the model names per layer."""
    rng = random.Random(seed)
    sizes = layer_sizes(models)
    name = project_dir.name
    project_dir.mkdir(parents=True, exist_ok=True)
    (project_dir / "dbt_project.yml").write_text(
        yaml.safe_dump(
            {
                "name": name,
                "profile": name,
                "version": "1.0.0",
                "config-version": 2,
                "model-paths": ["models"],
                "macro-paths": ["macros"],
                "models": {
                    name: {
                        folder: {"+materialized": materialized}
                        for folder, _, materialized, _ in LAYERS.values()
                    }
                },
            },
            sort_keys=False,
        )
    )
    names: dict[str, list[str]] = {layer: [] for layer in LAYERS}
    files: dict[str, str] = {}
    for i in range(sizes["silver"]):
        model, sql = _staging(i)
        names["silver"].append(model)
        files[f"staging/{model.split('_', 2)[2]}/{model}.sql"] = sql
    for i in range(sizes["intermediate"]):
        pool = names["silver"] + names["intermediate"]
        recent = pool[-12:]  # depth: mostly the latest models, sometimes any earlier one
        parents = rng.sample(recent, k=min(len(recent), rng.randint(2, 3)))
        if len(pool) > len(recent) and rng.random() < 0.3:
            parents[-1] = rng.choice(pool[: -len(recent)])
        model = f"int_{i:03d}"
        names["intermediate"].append(model)
        domain = _domain(i, sizes["intermediate"])
        files[f"intermediate/{domain}/{model}.sql"] = _join(list(dict.fromkeys(parents)))
    upstream = names["intermediate"] or names["silver"]
    for i in range(sizes["gold"]):
        parents = rng.sample(upstream, k=min(len(upstream), rng.randint(2, 4)))
        if rng.random() < 0.2:
            parents.append(rng.choice(names["silver"]))
        model = f"mart_{i:03d}"
        names["gold"].append(model)
        files[f"marts/{_domain(i, sizes['gold'])}/{model}.sql"] = _join(
            list(dict.fromkeys(parents))
        )
    for relative, sql in files.items():
        path = project_dir / "models" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(sql)
    return names


def _tests_yml(project_dir: Path, names: dict[str, list[str]]) -> tuple[str, ...]:
    """A unique and a not_null test on `id` of every fourth model, one yml per folder."""
    tested: list[str] = []
    for layer, models in names.items():
        folder = LAYERS[layer][0]
        picked = models[::4]
        tested.extend(picked)
        doc = {
            "version": 2,
            "models": [
                {"name": m, "columns": [{"name": "id", "data_tests": ["unique", "not_null"]}]}
                for m in picked
            ],
        }
        (project_dir / "models" / folder / f"_{folder}.yml").write_text(
            yaml.safe_dump(doc, sort_keys=False)
        )
    return tuple(tested)


def tenant_yaml(tenant: str, project: str, tasks: str = "model") -> str:
    source_env, warehouse_env = env_names(tenant)
    doc = {
        "tenant": tenant,
        "description": f"Generated dbt benchmark tenant {tenant}.",
        "source": {"kind": "sqlite", "connection": {"env": source_env}},
        "warehouse": {
            "kind": "duckdb",
            "connection": {"env": warehouse_env},
            "schemas": {"layers": {"intermediate": "intermediate"}},
        },
        "tables": [{"name": table} for table in SOURCES],
        "dbt": {
            "project": project,
            "layers": {layer: selector for layer, (_, selector, _, _) in LAYERS.items()},
            # `folder`: one Airflow task per domain folder (dag_factory.model_units)
            **({"tasks": tasks} if tasks != "model" else {}),
        },
        "schedule": "@daily",
    }
    return "# yaml-language-server: $schema=../schema.json\n" + yaml.safe_dump(doc, sort_keys=False)


def generate_tenant(
    root: Path, models: int = 200, *, tenant: str = "bench", seed: int = 14
) -> GeneratedTenant:
    """Write `root/warehouses/` (defaults.yaml, schema.json, the tenant, its dbt project)."""
    warehouses = root / "warehouses"
    warehouses.mkdir(parents=True, exist_ok=True)
    for name in ("defaults.yaml", "schema.json"):
        shutil.copy(REPO / "warehouses" / name, warehouses / name)
    project_dir = warehouses / "_dbt" / tenant
    names = write_project(project_dir, models, seed=seed)
    tested = _tests_yml(project_dir, names)
    folder = warehouses / tenant
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "warehouse.yaml").write_text(tenant_yaml(tenant, f"../_dbt/{tenant}"))
    return GeneratedTenant(
        root=root, tenant=tenant, project_dir=project_dir, models=names, tested=tested
    )


def copy_tenant(warehouses: Path, tenant: str, new: str, *, tasks: str | None = None) -> Path:
    """A copy of `tenant` named `new`, sharing its dbt project (and compiled graph, if any:
    it names no tenant-specific input but the tenant id), with env vars of its own;
    `tasks` sets its `dbt.tasks` (the grain of its model tasks)."""
    source = warehouses / tenant
    target = warehouses / new
    shutil.copytree(source, target)
    spec = target / "warehouse.yaml"
    text = spec.read_text().replace(f"tenant: {tenant}\n", f"tenant: {new}\n", 1)
    for old_env, new_env in zip(env_names(tenant), env_names(new), strict=True):
        text = text.replace(f"env: {old_env}\n", f"env: {new_env}\n")
    if tasks is not None:
        doc = yaml.safe_load(text)
        doc["dbt"]["tasks"] = tasks
        text = "# yaml-language-server: $schema=../schema.json\n" + yaml.safe_dump(
            doc, sort_keys=False
        )
    spec.write_text(text)
    graph = target / "compiled" / "dbt_graph.json"
    if graph.exists():
        graph.write_text(
            graph.read_text().replace(f'"tenant": "{tenant}"', f'"tenant": "{new}"', 1)
        )
    return target

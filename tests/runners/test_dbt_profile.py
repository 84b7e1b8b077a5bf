"""runners.dbt_profile and runners.dbt_project: what the runner writes, without running dbt."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from datakits.errors import ConfigError
from datakits.spec import LoadSpec, WarehouseKind
from runners import dbt_profile as p
from runners.dbt_project import prepare_project, read_project

REPO = Path(__file__).resolve().parents[2]


def _spec(**schemas: str) -> LoadSpec:
    return LoadSpec.model_validate(
        {
            "tenant": "acme",
            "source": {"kind": "postgres", "connection": {"env": "SRC"}},
            "warehouse": {
                "kind": "postgres",
                "connection": {"env": "WH"},
                "schemas": schemas or {},
            },
            "tables": [{"name": "orders"}, {"name": "customers"}],
        }
    )


def test_postgres_env_from_url() -> None:
    env = p.profile_env(
        WarehouseKind.postgres,
        "postgresql+psycopg://etl:p%40ss@db.internal:6543/wh?sslmode=require",
        "acme_silver",
    )
    assert env == {
        "RUNNER_DBT_SCHEMA": "acme_silver",
        "RUNNER_DBT_HOST": "db.internal",
        "RUNNER_DBT_PORT": "6543",
        "RUNNER_DBT_USER": "etl",
        "DBT_ENV_SECRET_RUNNER_PASSWORD": "p@ss",
        "RUNNER_DBT_DBNAME": "wh",
        "RUNNER_DBT_SSLMODE": "require",
    }
    assert set(env) <= set(p.PROFILE_ENV_VARS)


def test_duckdb_relative_path_resolves_against_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    env = p.profile_env(WarehouseKind.duckdb, "duckdb:///.data/wh.duckdb", "silver")
    assert env == {
        "RUNNER_DBT_SCHEMA": "silver",
        "RUNNER_DBT_PATH": str(tmp_path / ".data/wh.duckdb"),
    }


@pytest.mark.parametrize(
    ("kind", "url", "match"),
    [
        (WarehouseKind.duckdb, "postgresql://u@h/db", "is a 'postgresql' URL"),
        (WarehouseKind.postgres, "duckdb:///x.duckdb", "is a 'duckdb' URL"),
        (WarehouseKind.duckdb, "duckdb:///:memory:", "must name a DuckDB file"),
        (WarehouseKind.postgres, "postgresql://h/db", "no user name"),
        (WarehouseKind.postgres, "not a url", "not a SQLAlchemy URL"),
    ],
)
def test_bad_urls_are_config_errors(kind: WarehouseKind, url: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        p.profile_env(kind, url, "silver")


def test_profiles_yml_holds_only_env_lookups() -> None:
    doc = yaml.safe_load(p.profiles_yml("acme", WarehouseKind.postgres, sslmode=True))
    output = doc["acme"]["outputs"][doc["acme"]["target"]]
    assert output["type"] == "postgres"
    assert output["threads"] == 4
    for key in ("host", "port", "user", "password", "dbname", "schema", "sslmode"):
        assert "env_var(" in output[key], key
    duck = yaml.safe_load(p.profiles_yml("demo", WarehouseKind.duckdb))["demo"]["outputs"]
    assert duck["runner"]["path"] == '{{ env_var("RUNNER_DBT_PATH") }}'


def test_prepare_project_writes_sources_and_schema_macro(tmp_path: Path) -> None:
    spec = _spec(bronze="acme_bronze", silver="acme_silver", gold="acme_gold", meta="acme_meta")
    project = prepare_project(REPO / "warehouses/_dbt/shop", tmp_path, spec)
    assert (project.name, project.profile) == ("shop", "shop")
    sources = yaml.safe_load((project.dir / "models/_bronze_sources.yml").read_text())
    (bronze,) = sources["sources"]
    assert bronze["name"] == "bronze"
    assert bronze["schema"] == "acme_bronze"
    assert [t["name"] for t in bronze["tables"]] == ["orders", "customers"]
    macro = (project.dir / "macros/_runner_schemas.sql").read_text()
    assert '{"silver": "acme_silver", "gold": "acme_gold"}' in macro
    assert "macro generate_schema_name(custom_schema_name, node)" in macro


def test_project_errors_are_config_errors(tmp_path: Path) -> None:
    project = tmp_path / "project"
    with pytest.raises(ConfigError, match="does not exist"):
        read_project(project)
    project.mkdir()
    with pytest.raises(ConfigError, match=r"no dbt_project\.yml"):
        read_project(project)
    (project / "dbt_project.yml").write_text("name: x\n")
    with pytest.raises(ConfigError, match="no `profile`"):
        read_project(project)
    (project / "dbt_project.yml").write_text("name: x\nprofile: x\n")
    (project / "macros").mkdir()
    (project / "macros/schemas.sql").write_text(
        "{% macro generate_schema_name(custom_schema_name, node) %}x{% endmacro %}"
    )
    (tmp_path / "work").mkdir()
    with pytest.raises(ConfigError, match="defines generate_schema_name"):
        prepare_project(project, tmp_path / "work", _spec())

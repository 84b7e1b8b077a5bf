"""No credential reaches tenant code: a dbt model reads every variable the runner knows.

A tenant's model can call `env_var()` on any name and write the value into a table, where
dbt's log scrubbing no longer hides it. So the test builds a model that selects every
variable name of the runner contract and of the generated profile (plus the usual
suspects), runs it through `run_dbt` against a real PostgreSQL with a password in the URL,
and reads the table back: neither the URL nor the password may be in it. The one variable
that holds the password, `DBT_ENV_SECRET_*`, is refused by dbt itself in a model.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

import datakits.contract as contract
from datakits.errors import ConfigError
from datakits.spec import LoadSpec
from devtools.postgres import PostgresCluster
from runners.dbt import _scoped_env, run_dbt
from runners.dbt_profile import PASSWORD_ENV, PROFILE_ENV_VARS

PASSWORD = "Leak-Canary-7d41e"
ROLE = "leaky_dbt"
DATABASE = "runners_leak"

#: Every env var name the runner knows: the contract's and the profile's, and the names a
#: model author would try first.
RUNNER_NAMES = sorted(
    {
        *(v for k, v in vars(contract).items() if k.endswith("_ENV") and isinstance(v, str)),
        *(n for n in PROFILE_ENV_VARS if not n.startswith("DBT_ENV_SECRET_")),
        "RUNNER_SOURCE_URL",
        "RUNNER_WAREHOUSE_URL",
        "DATABASE_URL",
        "PGPASSWORD",
        "LEAKY_COPY_OF_THE_URL",
    }
)


def _project(root: Path, model_sql: str) -> Path:
    project = root / "leak"
    (project / "models" / "silver").mkdir(parents=True)
    (project / "models" / "gold").mkdir(parents=True)
    (project / "dbt_project.yml").write_text(
        "name: leak\nversion: '1.0'\nconfig-version: 2\nprofile: leak\n"
    )
    (project / "models" / "silver" / "leak.sql").write_text(model_sql)
    return project


def _spec() -> LoadSpec:
    return LoadSpec.model_validate(
        {
            "tenant": "leak",
            "source": {"kind": "sqlite", "connection": {"env": "LEAK_SOURCE_URL"}},
            "warehouse": {
                "kind": "postgres",
                "connection": {"env": "LEAK_WAREHOUSE_URL"},
                "schemas": {
                    "bronze": "leak_bronze",
                    "silver": "leak_silver",
                    "gold": "leak_gold",
                    "meta": "leak_meta",
                },
            },
            "tables": [{"name": "orders"}],
        }
    )


@pytest.fixture(scope="module")
def warehouse_url(pg_cluster: PostgresCluster) -> Iterator[str]:
    yield pg_cluster.create_database(DATABASE, owner=ROLE, password=PASSWORD)


def _runner_env(url: str) -> contextlib.AbstractContextManager[None]:
    """The env a runner process has: the contract's URL variables, and one more copy of
    the URL under a name the runner does not know (as a careless deployment might)."""
    names = {"RUNNER_WAREHOUSE_URL": url, "RUNNER_SOURCE_URL": url, "LEAKY_COPY_OF_THE_URL": url}
    return _scoped_env(names)


def test_a_model_reading_every_runner_variable_finds_no_credential(
    tmp_path: Path, warehouse_url: str
) -> None:
    columns = ",\n".join(
        f'\'{{{{ env_var("{name}", "unset") }}}}\' as {name.lower()}' for name in RUNNER_NAMES
    )
    project = _project(tmp_path, f"select\n{columns}\n")
    with _runner_env(warehouse_url), contextlib.redirect_stdout(io.StringIO()):
        result = run_dbt(_spec(), project, ["build", "--select", "silver"], warehouse_url)
        # The variables are back for the rest of the runner once dbt is done.
        assert os.environ["RUNNER_WAREHOUSE_URL"] == warehouse_url
    assert result["models"] == ["leak_silver.leak"]

    with psycopg.connect(warehouse_url.replace("+psycopg", "")) as conn:
        row = conn.execute("SELECT * FROM leak_silver.leak").fetchone()
        names = [c.name for c in conn.execute("SELECT * FROM leak_silver.leak").description]
    seen = dict(zip(names, row, strict=True))
    leaked = {name: value for name, value in seen.items() if PASSWORD in str(value)}
    assert leaked == {}, f"credentials readable by a model: {sorted(leaked)}"
    assert seen["runner_warehouse_url"] == "unset"
    assert seen["runner_source_url"] == "unset"
    assert seen["leaky_copy_of_the_url"] == "unset"
    # Non-secret profile values stay readable (dbt needs them; they name no credential).
    assert seen["runner_dbt_user"] == ROLE


def test_the_password_variable_is_refused_in_a_model(tmp_path: Path, warehouse_url: str) -> None:
    project = _project(tmp_path, f"select '{{{{ env_var(\"{PASSWORD_ENV}\") }}}}' as p\n")
    with (
        _runner_env(warehouse_url),
        contextlib.redirect_stdout(io.StringIO()),
        pytest.raises(ConfigError) as failure,
    ):
        run_dbt(_spec(), project, ["build", "--select", "silver"], warehouse_url)
    assert PASSWORD not in str(failure.value)
    assert "DBT_ENV_SECRET" in str(failure.value)

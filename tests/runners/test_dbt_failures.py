"""`runner dbt` failures a retry cannot fix exit 2 (permanent), with what to fix.

Real dbt on a real DuckDB warehouse filled by the shop generator: a parse error, a
compile error, a selection that matches nothing, and a failing test under
`on_test_failure: fail` (exit 2 naming it) and `warn` (exit 0, counted). Each checks
that bronze is untouched and that nothing was built where dbt stopped.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from datakits.errors import ConfigError
from devtools.shop import generate_shop
from runners.dbt import OnTestFailure, run_dbt
from tests.runners.test_dbt import REPO, SHOP, _spec

RUNNER = Path(sys.executable).parent / "runner"
FAILING_TEST = "select * from {{ ref('customers') }}\n"  # every customer "fails" it


def _bronze(path: Path) -> list[tuple[object, ...]]:
    with duckdb.connect(str(path), read_only=True) as conn:
        return conn.execute(
            "SELECT count(*), sum(hash(order_id, customer_id, status)) FROM bronze.orders"
        ).fetchall()


def _schemas(path: Path) -> set[str]:
    with duckdb.connect(str(path), read_only=True) as conn:
        rows = conn.execute("SELECT schema_name FROM information_schema.schemata").fetchall()
    return {r[0] for r in rows}


@pytest.fixture
def shop(tmp_path: Path) -> tuple[Path, Path]:
    """(project copy, DuckDB file with a fresh bronze and nothing built yet)."""
    project = tmp_path / "dbt"
    shutil.copytree(SHOP, project)
    path = tmp_path / "wh.duckdb"
    generate_shop(f"duckdb:///{path}", orders=50, schema="bronze")
    return project, path


@pytest.mark.parametrize(
    ("sql", "words"),
    [
        ("select {{ 1 + }} as broken\n", "Compilation Error"),  # Jinja cannot parse it
        ("select * from {{ ref('no_such_model') }}\n", "no_such_model"),
    ],
    ids=["jinja", "missing-ref"],
)
def test_parse_and_compile_errors_are_permanent(
    shop: tuple[Path, Path], sql: str, words: str
) -> None:
    project, path = shop
    (project / "models" / "silver" / "broken.sql").write_text(sql)
    before = _bronze(path)
    with pytest.raises(ConfigError) as raised:
        run_dbt(
            _spec("demo", "duckdb"), project, ["build", "--select", "silver"], f"duckdb:///{path}"
        )
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("dbt build --select silver")
    assert words in message
    assert "fix the dbt project" in message
    assert _bronze(path) == before
    assert "silver" not in _schemas(path)  # dbt stopped before building anything


def test_selection_without_nodes_is_permanent(shop: tuple[Path, Path]) -> None:
    """dbt only warns and does nothing: a scheduled layer would stay silently stale."""
    project, path = shop
    before = _bronze(path)
    with pytest.raises(ConfigError) as raised:
        run_dbt(
            _spec("demo", "duckdb"), project, ["build", "--select", "platinum"], f"duckdb:///{path}"
        )
    assert str(raised.value) == (
        "dbt build --select platinum: the selection platinum matches no node of the project "
        "(layer folders: gold, silver): select an existing layer or model, or add models there"
    )
    assert _bronze(path) == before
    assert "silver" not in _schemas(path)


def _cli(project: Path, path: Path, *options: str) -> subprocess.CompletedProcess[str]:
    env = {
        **{k: v for k, v in os.environ.items() if k != "RUNNER_DEBUG"},
        "RUNNER_SPEC": _spec("demo", "duckdb").to_env_json(),
        "RUNNER_WAREHOUSE_URL": f"duckdb:///{path}",
    }
    return subprocess.run(
        [
            str(RUNNER),
            "dbt",
            "--project-dir",
            str(project),
            *options,
            "build",
            "--select",
            "silver",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_failing_test_fails_the_task_permanently(shop: tuple[Path, Path]) -> None:
    project, path = shop
    (project / "tests").mkdir()
    (project / "tests" / "no_customers.sql").write_text(FAILING_TEST)
    before = _bronze(path)
    done = _cli(project, path)  # the default: --on-test-failure fail
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stdout == ""
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("runner dbt: dbt build --select silver: 1 of ")
    assert "test no_customers (fail)" in last
    assert last.endswith("fix the data or the test, or set dbt.on_test_failure: warn")
    assert _bronze(path) == before


def test_failing_test_only_warns_when_told(shop: tuple[Path, Path]) -> None:
    project, path = shop
    (project / "tests").mkdir()
    (project / "tests" / "no_customers.sql").write_text(FAILING_TEST)
    before = _bronze(path)
    done = _cli(project, path, "--on-test-failure", "warn")
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["tests_failed"] == 1
    assert result["failed"] == 0
    assert result["skipped"] == 0  # the models after the test still built
    assert len(result["models"]) == 4
    assert _bronze(path) == before
    # The project dir itself is not changed by the severity override.
    assert "severity" not in (project / "dbt_project.yml").read_text()


def test_passing_tests_count_zero(shop: tuple[Path, Path]) -> None:
    project, path = shop
    result = run_dbt(
        _spec("demo", "duckdb"),
        project,
        ["build", "--select", "silver"],
        f"duckdb:///{path}",
        on_test_failure=OnTestFailure.warn,
    )
    assert result["tests_failed"] == 0
    assert result["failed"] == 0

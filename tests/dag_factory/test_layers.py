"""The layers at run time, beside the static import-linter contracts in pyproject.toml:
importing a module also runs its parents' `__init__` and whatever it imports dynamically,
which a static graph does not see. Each check runs in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
NO_AIRFLOW = "the tenant spec, loader and planner know nothing of Airflow"


def _contract(name: str) -> dict[str, Any]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    return next(c for c in config["tool"]["importlinter"]["contracts"] if c["name"] == name)


#: The modules that contract names: the DAG file's parse path up to the plan, and the
#: CLI's offline commands.
PURE = _contract(NO_AIRFLOW)["source_modules"]
PROBE = (
    "import importlib, json, sys\n"
    "for name in sys.argv[1:]:\n"
    "    importlib.import_module(name)\n"
    "tops = {m.split('.')[0] for m in sys.modules}\n"
    "print(json.dumps(sorted(tops & {'airflow', 'dag_factory', 'runners'})))"
)


def _top_level_imports(*modules: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *modules], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_spec_loader_and_planner_import_no_airflow() -> None:
    assert "dag_factory.plan" in PURE and "dag_factory.loader" in PURE
    assert "airflow" not in _top_level_imports(*PURE)


def test_runner_side_imports_neither_airflow_nor_dag_factory() -> None:
    """What a runner image runs: no Airflow in it, and dag_factory is deleted from it."""
    assert _top_level_imports("runners.cli", "runners.dbt", "datakits.load") == ["runners"]

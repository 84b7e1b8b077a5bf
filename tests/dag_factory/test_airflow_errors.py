"""Broken tenant files reach Airflow's import errors through Airflow 3.3 internals
(`dag_factory/airflow_errors.py`): these tests fail when Airflow changes them."""

from __future__ import annotations

import inspect
import shutil
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.dag_processing.importers.base import DagImportError, DagImportResult
from airflow.dag_processing.importers.python_importer import PythonDagImporter

from dag_factory.airflow_errors import report_import_errors
from dag_factory.errors import Problem, TenantFileError
from tests.dag_factory.conftest import REPO


def test_the_internals_it_relies_on_are_there():
    load = inspect.signature(PythonDagImporter._load_modules_from_file).parameters
    assert "result" in load  # the DagImportResult being filled, a local of the frame
    assert "bundle_path" in inspect.signature(PythonDagImporter.import_file).parameters
    assert {"file_path", "message", "line_number"} <= set(
        inspect.signature(DagImportError).parameters
    )
    assert "errors" in DagImportResult.__dataclass_fields__


def test_outside_an_airflow_import_it_does_nothing():
    error = TenantFileError(
        Path("/x/warehouse.yaml"), [Problem(Path("/x/warehouse.yaml"), 1, 1, (), "bad")]
    )
    assert report_import_errors([error]) is False


def test_keyed_by_the_tenant_file_relative_to_the_bundle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """As the dag-processor parses: a bundle (here `dags/`) beside `warehouses/`."""
    (tmp_path / "dags").mkdir()
    shutil.copy(REPO / "dags" / "tenants.py", tmp_path / "dags" / "tenants.py")
    shutil.copytree(REPO / "warehouses", tmp_path / "warehouses")
    broken = tmp_path / "warehouses" / "evil" / "warehouse.yaml"
    broken.parent.mkdir()
    broken.write_text("tenant: evil\nretires: 3\n")
    monkeypatch.setenv("DAG_FACTORY_WAREHOUSES", str(tmp_path / "warehouses"))
    bag = DagBag(
        dag_folder=str(tmp_path / "dags"), bundle_path=tmp_path / "dags", bundle_name="dags-folder"
    )
    assert list(bag.import_errors) == ["../warehouses/evil/warehouse.yaml"]
    assert (
        "evil/warehouse.yaml:2:1: retires: unknown key"
        in bag.import_errors["../warehouses/evil/warehouse.yaml"]
    )
    valid = {f"tenant_{f.parent.name}" for f in (tmp_path / "warehouses").glob("*/warehouse.yaml")}
    assert valid == set(bag.dag_ids)  # every tenant, the broken one as its placeholder

"""DAG integrity, Astro style: Airflow's DagBag over this project's `dags/` folder.

No import error, no invalid-tenant placeholder, one DAG per tenant, every DAG tagged with
its tenant and every task retried at least twice.

It runs in two places. Inside the image (`astro dev pytest`) the tenants are those baked
into `include/warehouses/` and the executor is the deployment's (`DAG_FACTORY_EXECUTOR`).
From the repository root (`pytest`, CI) the tenants are the repository's `warehouses/`
and the DAG file is parsed once per executor that has an adapter, so the file this image
ships is checked against the tenants that are committed.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# Outside the image Airflow needs a home of its own before it is first imported.
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="airflow-home-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

from airflow.dag_processing.dagbag import DagBag

from dag_factory.adapters import adapter_for
from dag_factory.build import INVALID_TAG, TENANTS_ENV, tenant_tag
from dag_factory.isolation import EXECUTOR_ENV
from dag_factory.spec import DAG_ID_PREFIX, Executor

ASTRO = Path(__file__).resolve().parents[2]
DAGS = ASTRO / "dags"
#: The repository's tenants when this runs from a checkout; the image's copy otherwise.
REPO_WAREHOUSES = ASTRO.parent / "warehouses"
IMAGE_WAREHOUSES = ASTRO / "include" / "warehouses"
MIN_RETRIES = 2


def _warehouses() -> Path:
    if os.environ.get("DAG_FACTORY_WAREHOUSES"):
        return Path(os.environ["DAG_FACTORY_WAREHOUSES"])
    return REPO_WAREHOUSES if REPO_WAREHOUSES.is_dir() else IMAGE_WAREHOUSES


def _has_adapter(executor: Executor) -> bool:
    try:
        adapter_for(executor)
    except NotImplementedError:
        return False
    return True


def _executors() -> list[str]:
    if os.environ.get(EXECUTOR_ENV):  # a deployment: the executor it runs
        return [os.environ[EXECUTOR_ENV]]
    return [executor.value for executor in Executor if _has_adapter(executor)]


def _expected_tenants(warehouses: Path) -> set[str]:
    tenants = {file.parent.name for file in warehouses.glob("*/warehouse.yaml")}
    listed = {t for t in os.environ.get(TENANTS_ENV, "").replace(" ", "").split(",") if t}
    return tenants & listed if listed else tenants


def _deployed(warehouses: Path, executor: str) -> Path:
    """The tenants as a deployment has them. The image's copy holds the compiled dbt
    graphs (`build_wheels.sh` compiles them); a checkout compiles them first (cached) for
    the container executors, whose dbt tasks run the tenant image the graph names."""
    compiled = any(warehouses.glob("*/compiled/dbt_graph.json"))
    if compiled or executor == Executor.local.value:
        return warehouses
    from devtools.compiled import compiled_tenants  # the repository's tools, not the image's

    return compiled_tenants(warehouses)


@pytest.fixture(scope="module", params=_executors())
def dagbag(request: pytest.FixtureRequest) -> Iterator[DagBag]:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DAG_FACTORY_WAREHOUSES", str(_deployed(_warehouses(), request.param)))
        env.setenv(EXECUTOR_ENV, request.param)
        yield DagBag(dag_folder=str(DAGS))


def test_no_import_errors(dagbag: DagBag):
    assert dagbag.import_errors == {}, "\n\n".join(
        f"{file}:\n{error}" for file, error in dagbag.import_errors.items()
    )


def test_no_invalid_tenant_file(dagbag: DagBag):
    invalid = {dag_id: dag.doc_md for dag_id, dag in dagbag.dags.items() if INVALID_TAG in dag.tags}
    assert not invalid, "\n".join(f"{dag_id}: {doc}" for dag_id, doc in invalid.items())


def test_one_dag_per_tenant(dagbag: DagBag):
    tenants = _expected_tenants(_warehouses())
    assert tenants, f"no tenant under {_warehouses()}"
    assert set(dagbag.dag_ids) == {DAG_ID_PREFIX + tenant for tenant in tenants}


def test_every_dag_is_tagged_with_its_tenant(dagbag: DagBag):
    untagged = {
        dag_id: sorted(dag.tags)
        for dag_id, dag in dagbag.dags.items()
        if tenant_tag(dag_id.removeprefix(DAG_ID_PREFIX)) not in dag.tags
    }
    assert not untagged, f"DAGs without their `tenant:<id>` tag: {untagged}"


def test_every_task_retries(dagbag: DagBag):
    few = {
        f"{dag_id}.{task.task_id}": task.retries
        for dag_id, dag in dagbag.dags.items()
        for task in dag.tasks
        if task.retries < MIN_RETRIES
    }
    assert not few, f"tasks with fewer than {MIN_RETRIES} retries: {few}"

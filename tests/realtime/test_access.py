"""A tenant's users see and trigger only their own DAGs, proven on a real Airflow API server.

The FAB auth manager, the repository's DAG file and tenants (`demo`, `acme`), roles made by
`dag-factory roles`, users `alice` (tenant_demo) and `bob` (tenant_acme) made by Airflow's
CLI, bearer tokens from the API's own token endpoint. Each 403 below is paired with the
same request by a user who may (200), so a test cannot pass on a broken route.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dag_factory.access import folder_dag_id, placeholder_role, spec_access_control, tenant_roles
from dag_factory.build import placeholder_dag
from dag_factory.errors import Problem, TenantFileError
from dag_factory.loader import Loader, Tenant
from devtools.airflow_api import AirflowApiServer, User
from devtools.compiled import LOCAL_OUTPUT
from tests.dag_factory.conftest import VALID_TENANT

REPO = Path(__file__).resolve().parents[2]
ADMIN = User("admin", "admin-pw", "Admin")
ALICE = User("alice", "alice-pw", "tenant_demo")
BOB = User("bob", "bob-pw", "tenant_acme")
TASK = "extract_orders"  # every shop tenant's DAG has it, model-level or not
RUN = "access_check"


@pytest.fixture(scope="module")
def airflow_server_fab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowApiServer]:
    """A real API server with the FAB auth manager over the repository's tenants, with a run
    of each tenant DAG (made by the admin; it need not execute) and an XCom in each."""
    warehouses = tmp_path_factory.mktemp("fab-tenants") / "warehouses"
    # without a developer's local output: `make demo` / `make ui` leave compiled graphs
    shutil.copytree(REPO / "warehouses", warehouses, ignore=shutil.ignore_patterns(*LOCAL_OUTPUT))
    server = AirflowApiServer(tmp_path_factory.mktemp("airflow-fab"), REPO / "dags", warehouses)
    server.setup([ADMIN, ALICE, BOB])
    with server.start():
        with server.client(ADMIN.username, ADMIN.password) as admin:
            for dag_id in ("tenant_demo", "tenant_acme"):
                made = admin.post(
                    f"/dags/{dag_id}/dagRuns", json={"dag_run_id": RUN, "logical_date": None}
                )
                assert made.status_code == 200, made.text
                xcom = admin.post(
                    f"/dags/{dag_id}/dagRuns/{RUN}/taskInstances/{TASK}/xcomEntries",
                    json={"key": "rows", "value": 42},
                )
                assert xcom.status_code in (200, 201), xcom.text
        yield server


@pytest.fixture(scope="module")
def alice(airflow_server_fab: AirflowApiServer) -> Iterator[httpx.Client]:
    with airflow_server_fab.client(ALICE.username, ALICE.password) as client:
        yield client


@pytest.fixture(scope="module")
def bob(airflow_server_fab: AirflowApiServer) -> Iterator[httpx.Client]:
    with airflow_server_fab.client(BOB.username, BOB.password) as client:
        yield client


def _ids(response: httpx.Response, key: str, field: str) -> set[str]:
    assert response.status_code == 200, response.text
    return {item[field] for item in response.json()[key]}


def test_each_user_lists_only_their_tenants_dags(alice: httpx.Client, bob: httpx.Client):
    assert _ids(alice.get("/dags"), "dags", "dag_id") == {"tenant_demo"}
    assert _ids(bob.get("/dags"), "dags", "dag_id") == {"tenant_acme"}
    # Runs of every DAG at once (`~`): filtered the same way.
    assert _ids(alice.get("/dags/~/dagRuns"), "dag_runs", "dag_id") == {"tenant_demo"}


RUN_PATH = f"/dags/{{dag}}/dagRuns/{RUN}"
TI_PATH = f"{RUN_PATH}/taskInstances/{TASK}"
READS = {
    "dag": "/dags/{dag}",
    "dag details": "/dags/{dag}/details",
    "runs": "/dags/{dag}/dagRuns",
    "run": RUN_PATH,
    "task instances": f"{RUN_PATH}/taskInstances",
    "task instance": TI_PATH,
    "xcoms": f"{TI_PATH}/xcomEntries",
    "xcom": f"{TI_PATH}/xcomEntries/rows",
}


@pytest.mark.parametrize("what", list(READS))
def test_reads_of_another_tenants_dag_are_forbidden(
    what: str, alice: httpx.Client, bob: httpx.Client
):
    path = READS[what]
    assert alice.get(path.format(dag="tenant_demo")).status_code == 200
    assert alice.get(path.format(dag="tenant_acme")).status_code == 403
    assert bob.get(path.format(dag="tenant_acme")).status_code == 200
    assert bob.get(path.format(dag="tenant_demo")).status_code == 403


def test_task_logs_of_another_tenant_are_forbidden(alice: httpx.Client):
    # The task never ran: its own tenant's user is told there is no log, not refused.
    logs = f"{TI_PATH}/logs/1"
    own = alice.get(logs.format(dag="tenant_demo"))
    assert own.status_code != 403, own.text
    assert alice.get(logs.format(dag="tenant_acme")).status_code == 403


def test_trigger_and_pause_only_own_dag(alice: httpx.Client):
    body = {"logical_date": None}
    assert alice.post("/dags/tenant_acme/dagRuns", json=body).status_code == 403
    assert alice.patch("/dags/tenant_acme", json={"is_paused": False}).status_code == 403
    made = alice.post("/dags/tenant_demo/dagRuns", json=body)
    assert made.status_code == 200, made.text
    assert made.json()["dag_id"] == "tenant_demo"
    assert alice.patch("/dags/tenant_demo", json={"is_paused": True}).status_code == 200


def test_writes_to_another_tenants_runs_are_forbidden(alice: httpx.Client):
    xcom = {"key": "forged", "value": 1}
    assert (
        alice.post(f"{TI_PATH}/xcomEntries".format(dag="tenant_acme"), json=xcom).status_code == 403
    )
    cleared = alice.post("/dags/tenant_acme/clearTaskInstances", json={"dry_run": True})
    assert cleared.status_code == 403
    assert alice.delete(RUN_PATH.format(dag="tenant_acme")).status_code == 403


def test_roles_sync_revokes_a_grant_made_outside_the_spec(
    airflow_server_fab: AirflowApiServer, bob: httpx.Client
):
    """The tenant specs are the whole truth: `dag-factory roles` (idempotent, run again
    here) takes back a DAG permission someone granted by hand."""
    server = airflow_server_fab
    server.run(
        "airflow", "roles", "add-perms", "tenant_acme", "-r", "DAG:tenant_demo", "-a", "can_read"
    )
    assert _ids(bob.get("/dags"), "dags", "dag_id") == {"tenant_acme", "tenant_demo"}
    server.run("dag-factory", "roles")
    assert _ids(bob.get("/dags"), "dags", "dag_id") == {"tenant_acme"}
    assert bob.get("/dags/tenant_demo").status_code == 403


def test_roles_dry_run_names_every_tenant():
    done = subprocess.run(
        [str(Path(sys.executable).parent / "dag-factory"), "roles", "--dry-run"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    plan = json.loads(done.stdout)
    assert plan["tenant_demo"] == {
        "tenant_demo": {"DAGs": ["can_edit", "can_read"], "DAG Runs": ["can_create", "can_read"]}
    }
    assert set(plan["tenant_acme"]) == {"tenant_acme"}


# --- the spec's `access` setting (no server) ----------------------------------------------


def _load(tmp_path: Path, access: str, defaults_access: str = "") -> Tenant:
    """Load one tenant `shop` whose file ends with `access`, under the repository's defaults
    plus `defaults_access`."""
    folder = tmp_path / "warehouses"
    (folder / "shop" / "dbt").mkdir(parents=True)
    (folder / "shop" / "dbt" / "dbt_project.yml").write_text("name: shop\nprofile: shop\n")
    defaults = (REPO / "warehouses" / "defaults.yaml").read_text() + defaults_access
    (folder / "defaults.yaml").write_text(defaults)
    file = folder / "shop" / "warehouse.yaml"
    file.write_text(VALID_TENANT.format(name="shop", env="SHOP") + access)
    return Loader(folder).load(file)


def _problems(tmp_path: Path, access: str, defaults_access: str = "") -> list[str]:
    with pytest.raises(TenantFileError) as caught:
        _load(tmp_path, access, defaults_access)
    return [str(problem) for problem in caught.value.problems]


def test_own_and_shared_roles_are_granted(tmp_path: Path):
    tenant = _load(
        tmp_path,
        "access:\n  roles: [tenant_shop-analysts, support]\n",
        "access:\n  shared_roles: [support]\n",
    )
    assert tenant_roles(tenant.spec) == ["tenant_shop", "tenant_shop-analysts", "support"]
    control = spec_access_control(tenant.spec)
    assert control["support"] == {
        "DAGs": {"can_read", "can_edit"},
        "DAG Runs": {"can_read", "can_create"},
    }


@pytest.mark.parametrize(
    "role",
    [
        "tenant_acme",  # another tenant's own role
        "tenant_shop_x",  # tenant `shop_x`'s own role, not one of shop's
        "Admin",  # not shared by defaults.yaml
    ],
)
def test_a_tenant_cannot_name_a_role_it_does_not_own(tmp_path: Path, role: str):
    [problem] = _problems(tmp_path, f"access:\n  roles: [{role}]\n")
    assert "warehouse.yaml:" in problem and "access" in problem
    assert "roles must be tenant_shop-<name> or listed in defaults.yaml's" in problem
    assert role in problem


def test_shared_roles_come_from_defaults_only(tmp_path: Path):
    [problem] = _problems(tmp_path, "access:\n  roles: [Admin]\n  shared_roles: [Admin]\n")
    assert "shop/warehouse.yaml:" in problem
    assert "access.shared_roles: can be set in defaults.yaml only" in problem


def test_a_shared_role_cannot_be_a_tenant_role(tmp_path: Path):
    [problem] = _problems(tmp_path, "", "access:\n  shared_roles: [tenant_acme]\n")
    assert "defaults.yaml:" in problem
    assert "shared roles may not start with 'tenant_'" in problem


def test_placeholder_dag_id_and_role_follow_the_folder(tmp_path: Path):
    file = tmp_path / "Odd Name" / "warehouse.yaml"
    dag = placeholder_dag(TenantFileError(file, [Problem(file, 1, 1, (), "broken")]))
    assert dag.dag_id == folder_dag_id("Odd Name") == "tenant_Odd_Name"
    assert placeholder_role(dag.dag_id) == "tenant_Odd_Name"
    # grants live in FAB (dag-factory roles), never on the DAG: a DAG naming a role that
    # does not exist yet would be an import error that hides every tenant
    assert dag.access_control is None


def test_a_tenant_added_before_its_role_hides_nothing(
    airflow_server_fab: AirflowApiServer, alice: httpx.Client
):
    """A new tenant file lands before `dag-factory roles` ran for it. Had the DAG carried
    `access_control` naming the missing role, the dag-processor would have stored an import
    error keyed by the DAG file and hidden every tenant; instead the new DAG is stored,
    visible to the admin only, and the others stay as they were."""
    warehouses = Path(airflow_server_fab.env["DAG_FACTORY_WAREHOUSES"])
    new = warehouses / "newshop"
    new.mkdir()
    text = (warehouses / "demo" / "warehouse.yaml").read_text()
    (new / "warehouse.yaml").write_text(
        text.replace("tenant: demo", "tenant: newshop")
        .replace("pool: tenant_demo", "")
        .replace("DEMO_", "NEWSHOP_")  # its own references (dag_factory.isolation)
    )
    airflow_server_fab.run("airflow", "dags", "reserialize")
    with airflow_server_fab.client(ADMIN.username, ADMIN.password) as admin:
        assert {"tenant_demo", "tenant_acme", "tenant_newshop"} <= _ids(
            admin.get("/dags"), "dags", "dag_id"
        )
        errors = admin.get("/importErrors")
        assert errors.status_code == 200 and errors.json()["total_entries"] == 0, errors.text
    assert _ids(alice.get("/dags"), "dags", "dag_id") == {"tenant_demo"}
    assert alice.get("/dags/tenant_newshop").status_code == 403

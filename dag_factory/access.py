"""Airflow access per tenant: a tenant's users see and trigger only their own DAG.

Each tenant's DAG gets FAB DAG-level permissions (`access_control`) for the role
`tenant_<id>` (the same name as the tenant's warehouse role, `dag-factory provision`) and
for the extra roles its spec names (`access.roles`, checked in `dag_factory.spec`). The
role itself holds only what every tenant user needs beside one DAG — read task instances,
logs, XComs, code — and no global permission on DAGs, so the FAB auth manager answers 403
for every other tenant's DAG, its runs, logs and XComs (it checks the DAG-level permission
on top of the global one for each of them).

Why FAB DAG-level permissions and not Airflow 3.3's multi-team mode: multi-team
(`[core] multi_team`, since 3.2) binds a team to a *DAG bundle*
(`dag_bundle_config_list[].team_name`, `dag_bundle_team_association_table`): every DAG of a
bundle belongs to that bundle's team. All our tenants come from one DAG file in one
bundle, so multi-team could only separate them with one bundle (and one copy of the
entry file, narrowed by `DAG_FACTORY_TENANTS`) per tenant, a `teams` row each, and a
dag-processor config that grows with every tenant. It also needs an auth manager that
implements `is_authorized_team`: the FAB one does not ("FAB has no multi-team support",
`fab_auth_manager.is_authorized_view`), and the simple one is for development only. FAB's
`access_control` works per DAG, inside the single file, with the production auth manager.
Its cost: Airflow flags DAG-level `access_control` with a `RemovedInAirflow4Warning`, so
the move to multi-team (with a per-tenant bundle) is due before Airflow 4.

Where the grants live: in FAB's tables, written by `dag-factory roles`, never on the DAG
objects the DAG file builds. With the FAB auth manager the dag-processor syncs a DAG's
`access_control` when it stores the DAG, and a DAG naming a role that does not exist yet
fails there — as an import error keyed by the DAG *file* (`dag_processing/collection.py`,
`_serialize_dag_capturing_errors`), which marks every tenant's DAG stale. One tenant added
before its role would hide them all. A DAG without `access_control` leaves the DAG-level
permissions in FAB as they are, so the DAG file stays parse-only and cannot fail this way.
`dag-factory roles` creates the roles and sets each DAG's permissions (revoking grants no
spec names), idempotently; run it on deploy and after adding a tenant. Until it has run
for a new tenant, its DAG is visible to Airflow's global roles (Admin, Op, ...) only:
tenant roles have no global permission on DAGs, so nothing leaks meanwhile.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from dag_factory.spec import DAG_ID_PREFIX, ROLE_PREFIX, TenantSpec

if TYPE_CHECKING:
    pass

#: role → resource ("DAGs" | "DAG Runs") → actions, as `DAG(access_control=...)` takes it.
AccessControl = dict[str, dict[str, set[str]]]

#: What a tenant's roles may do on the tenant's own DAG: see it; trigger, pause and clear it
#: (FAB asks `can_edit` on the DAG for any write to its runs and task instances); create and
#: read its runs. Not `can_delete` on the DAG: deleting a DAG stays with the platform.
DAG_ACTIONS = {"DAGs": ("can_read", "can_edit"), "DAG Runs": ("can_read", "can_create")}

#: The global permission a tenant role must not hold: any action on the resource "DAGs"
#: opens every tenant's DAG (the DAG-level permissions above stand in for it). Global
#: permissions on runs, task instances, logs and XComs are safe and needed: the FAB auth
#: manager asks for them *and* for the DAG-level one (e.g. reading a task instance needs
#: "DAG Runs" and "Task Instances" read globally, plus read on `DAG:<dag_id>`), and it
#: filters every list by the readable DAGs. Creating asset events is left out: an event on
#: another tenant's asset would schedule that tenant's DAGs.
_FORBIDDEN_RESOURCE = "DAGs"
_FORBIDDEN_PAIRS = {("can_create", "Assets")}


def tenant_role(tenant_id: str) -> str:
    return ROLE_PREFIX + tenant_id


def tenant_roles(spec: TenantSpec) -> list[str]:
    """The tenant's own role first, then the extra roles of its spec."""
    own = tenant_role(spec.tenant)
    return [own, *(r for r in dict.fromkeys(spec.access.roles) if r != own)]


def access_control(roles: Iterable[str]) -> AccessControl:
    return {role: {res: set(actions) for res, actions in DAG_ACTIONS.items()} for role in roles}


def spec_access_control(spec: TenantSpec) -> AccessControl:
    return access_control(tenant_roles(spec))


def placeholder_role(dag_id: str) -> str:
    """An invalid tenant's role, from its placeholder's dag id (`tenant_` + its folder name).
    Its spec is unreadable, so its extra roles lose access until the file is fixed."""
    return ROLE_PREFIX + dag_id.removeprefix(DAG_ID_PREFIX)


def role_permissions() -> list[tuple[str, str]]:
    """The global (not DAG-level) permissions of every tenant role: the FAB Viewer's and
    User's, less those on all DAGs (and asset-event creation). Derived from FAB's
    own role definitions so a resource FAB adds (e.g. HITL details) is not forgotten."""
    from airflow.providers.fab.auth_manager.security_manager.override import (
        FabAirflowSecurityManagerOverride as Fab,
    )

    perms = dict.fromkeys([*Fab.VIEWER_PERMISSIONS, *Fab.USER_PERMISSIONS])
    return [
        (action, resource)
        for action, resource in perms
        if (action, resource) not in _FORBIDDEN_PAIRS
        and (resource != _FORBIDDEN_RESOURCE or action == "menu_access")
    ]


class RoleSyncError(RuntimeError):
    """The roles could not be synced; the message says what to fix."""


def sync_roles(dag_access: Mapping[str, AccessControl]) -> list[str]:
    """Create every role that `dag_access` (dag id → access control) names, give each the
    tenant permissions (`role_permissions`), then set each DAG's DAG-level permissions —
    revoking those of roles no longer listed. Idempotent. Needs the FAB auth manager's
    tables (`airflow db migrate` with it configured). Returns the roles, sorted."""
    from airflow.providers.fab.auth_manager.cli_commands.utils import get_application_builder

    roles = sorted({role for control in dag_access.values() for role in control})
    perms = role_permissions()
    try:
        with get_application_builder() as appbuilder:
            sm: Any = appbuilder.sm
            sm.bulk_sync_roles([{"role": role, "perms": perms} for role in roles])
            for dag_id, control in dag_access.items():
                sm.sync_perm_for_dag(dag_id, control)
    except Exception as exc:
        first = " ".join(str(exc).split())[:300]
        raise RoleSyncError(f"{type(exc).__name__}: {first}") from exc
    return roles


_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def folder_dag_id(folder: str) -> str:
    """The dag id of a tenant folder's placeholder (as `build.placeholder_dag` names it)."""
    return DAG_ID_PREFIX + _UNSAFE.sub("_", folder)

"""`dag-factory`: check and inspect tenant files without starting Airflow.

dag-factory validate [PATH ...]     every problem of every file; exit 1 if any
dag-factory list                    the tenants and what they run
dag-factory plan TENANT             the planned tasks: id, image, argv, env, upstreams
dag-factory provision TENANT        the tenant's warehouse roles (PostgreSQL); --sql to review
dag-factory doctor [TENANT ...]     check tenants against this worker's Airflow and servers
dag-factory pools [--check]         create/update the Airflow pools the tenants name
dag-factory roles                   the tenants' Airflow roles and DAG permissions (FAB)
dag-factory status TENANT           per table: the last loads and the watermark (warehouse)
dag-factory docs TENANT [--out DIR] the tenant's dbt docs site as static files (warehouse)
dag-factory dbt compile [TENANT ...] each tenant's compiled dbt graph (warehouses/<t>/compiled/)
"""

from __future__ import annotations

import json
import os
import re
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.table import Table

from dag_factory.adapters import renderer_for
from dag_factory.dbt_graph import DbtGraph, tenant_graph
from dag_factory.errors import TenantFileError
from dag_factory.loader import TENANT_FILE, Loader, LoadReport, Tenant
from dag_factory.plan import PlatformOverrides, plan_tenant
from dag_factory.scaffold import scaffold_tenant
from dag_factory.schema import SCHEMA_FILE, render_schema
from dag_factory.spec import Executor, TenantSpec
from datakits.spec import TENANT_ID_MAX, TENANT_ID_PATTERN, WarehouseKind

app = typer.Typer(
    name="dag-factory",
    help="Validate and inspect the tenant files that become Airflow DAGs.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)

WarehousesOption = Annotated[
    Path,
    typer.Option("--warehouses", "-w", help="The tenants folder.", envvar="DAG_FACTORY_WAREHOUSES"),
]
DEFAULT_WAREHOUSES = Path("warehouses")


class OutputFormat(StrEnum):
    text = "text"
    json = "json"


def _load(warehouses: Path, paths: list[Path]) -> LoadReport:
    if not warehouses.is_dir():
        err.print(f"dag-factory: no tenants folder at {warehouses}")
        raise typer.Exit(2)
    loader = Loader(warehouses)
    if not paths:
        return loader.load_all()
    report = LoadReport()
    for path in paths:
        file = path / TENANT_FILE if path.is_dir() else path
        try:
            report.tenants.append(loader.load(file))
        except TenantFileError as exc:
            report.errors.append(exc)
        except FileNotFoundError:
            err.print(f"dag-factory: no such tenant file: {file}")
            raise typer.Exit(2) from None
    return report


@app.command()
def validate(
    paths: Annotated[list[Path] | None, typer.Argument(help="Tenant files or folders.")] = None,
    warehouses: WarehousesOption = DEFAULT_WAREHOUSES,
    output: Annotated[OutputFormat, typer.Option("--format", help="text or json.")] = (
        OutputFormat.text
    ),
) -> None:
    """Validate tenant files; print every problem; exit 1 if there is any."""
    report = _load(warehouses, paths or [])
    problems = [p for e in report.errors for p in e.problems]
    if output is OutputFormat.json:
        payload = {
            "valid": [str(t.file) for t in report.tenants],
            "problems": [
                {
                    "file": str(p.file),
                    "line": p.line,
                    "column": p.column,
                    "field": p.field,
                    "message": p.message,
                }
                for p in problems
            ],
        }
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
    else:
        for problem in problems:
            out.print(str(problem), highlight=False, soft_wrap=True)
        out.print(f"{len(report.tenants)} valid, {len(report.errors)} invalid tenant file(s)")
    raise typer.Exit(1 if problems else 0)


@app.command()
def doctor(
    tenants: Annotated[
        list[str] | None, typer.Argument(help="Tenant ids; every enabled tenant if none.")
    ] = None,
    warehouses: WarehousesOption = DEFAULT_WAREHOUSES,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Also print the checks that passed.")
    ] = False,
    output: Annotated[OutputFormat, typer.Option("--format", help="text or json.")] = (
        OutputFormat.text
    ),
) -> None:
    """Check tenants where they will run: tenant file, pool, connections, source tables and
    columns, warehouse, dbt layers. One line per problem with its fix; exit 1 if any."""
    from dag_factory.doctor import Doctor, Finding, Status

    report = _load(warehouses, [warehouses / t for t in tenants or []])
    checked = [t for t in report.tenants if tenants or t.spec.enabled]
    findings: list[Finding] = [
        Finding(e.file.parent.name, "spec", Status.problem, str(p))
        for e in report.errors
        for p in e.problems
    ]
    with Doctor(warehouses.resolve().parent) as doc:
        waits = [doc.start(tenant) for tenant in checked]
        for tenant, wait in zip(checked, waits, strict=True):
            valid = Finding(tenant.spec.tenant, "spec", Status.ok, f"{tenant.file} is valid")
            findings += [valid, *wait()]
    problems = [f for f in findings if f.status is Status.problem]
    if output is OutputFormat.json:
        payload = {"ok": not problems, "findings": [f.as_dict() for f in findings]}
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
    else:
        for found in findings if verbose else problems:
            out.print(found.line(), highlight=False, soft_wrap=True, markup=False)
        names = len(checked) + len(report.errors)
        out.print(f"{names} tenant(s) checked, {len(problems)} problem(s)", highlight=False)
    raise typer.Exit(1 if problems else 0)


@app.command("list")
def list_tenants(warehouses: WarehousesOption = DEFAULT_WAREHOUSES) -> None:
    """List the tenants: source, warehouse, tables, schedule, executor."""
    report = _load(warehouses, [])
    table = Table("tenant", "source → warehouse", "tables", "schedule", "executor", "status")
    for tenant in report.tenants:
        s = tenant.spec
        table.add_row(
            s.tenant,
            f"{s.source.kind.value} → {s.warehouse.kind.value}",
            str(len(s.tables)),
            str(s.schedule),
            s.platform.executor.value,
            "ok",
        )
    for error in report.errors:
        table.add_row(error.file.parent.name, "", "", "", "", "[red]invalid[/red]")
    out.print(table)


@app.command()
def plan(
    tenant: Annotated[str, typer.Argument(help="Tenant id (its folder name).")],
    warehouses: WarehousesOption = DEFAULT_WAREHOUSES,
) -> None:
    """Show the tasks a tenant's DAG runs: id, image, argv, env names, upstreams."""
    loaded = _one_tenant(warehouses, tenant)
    planned = plan_tenant(
        loaded,
        warehouses.resolve().parent,
        PlatformOverrides.from_env(),
        _compiled_graph(loaded),
    )
    if planned.fallback is not None:
        err.print(f"{tenant}: layer tasks: {planned.fallback}", highlight=False, soft_wrap=True)
    table = Table(
        "task", "image", "runner argv", "env", "secrets", "upstream", title=planned.dag_id
    )
    for task in planned.tasks:
        table.add_row(
            task.task_id,
            task.image,
            " ".join(task.argv),
            ", ".join(task.env_dict),
            ", ".join(s.env for s in task.secrets),
            ", ".join(task.upstream) or "-",
        )
    out.print(table)


def _compiled_graph(tenant: Tenant) -> DbtGraph | None:
    """The tenant's compiled dbt graph, as the DAG file reads it (`plan`, `render` show
    what the DAG runs: model tasks and the tenant's own dbt image when there is one)."""
    graph, problem = tenant_graph(tenant.file.parent)
    if problem is not None:
        err.print(f"{tenant.spec.tenant}: {problem}", highlight=False, soft_wrap=True)
    return graph


def _one_tenant(warehouses: Path, tenant: str) -> Tenant:
    report = _load(warehouses, [warehouses / tenant])
    if report.errors:
        for problem in report.errors[0].problems:
            err.print(str(problem), highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    return report.tenants[0]


@app.command()
def render(
    tenant: Annotated[str, typer.Argument(help="Tenant id (its folder name).")],
    executor: Annotated[
        Executor, typer.Option("--executor", "-e", help="local, docker or kubernetes.")
    ] = Executor.local,
    warehouses: WarehousesOption = DEFAULT_WAREHOUSES,
) -> None:
    """Print what each task's operator would send; secrets appear only as references.

    For kubernetes, the pod manifests as YAML documents."""
    loaded = _one_tenant(warehouses, tenant)
    root = warehouses.resolve().parent
    planned = plan_tenant(loaded, root, PlatformOverrides.from_env(), _compiled_graph(loaded))
    renderer = renderer_for(executor)
    documents = [renderer(task) for task in planned.tasks]
    sys.stdout.write(yaml.safe_dump_all(documents, sort_keys=False))


@app.command()
def k8s(
    tenant: Annotated[str, typer.Argument(help="Tenant id (its folder name).")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="The folder to write.")],
    warehouses: WarehousesOption = DEFAULT_WAREHOUSES,
) -> None:
    """Write the tenant's cluster objects as a kustomize folder (`kubectl apply -k DIR`):
    Namespace, ServiceAccount(s), Role + RoleBinding, ResourceQuota, LimitRange,
    NetworkPolicy, and the names of the Secrets it expects (never their values). Exit 1
    when a server database has no egress destination (cidrs or selectors)."""
    from dag_factory.k8s_objects import EgressUndefined, write_tenant_objects

    loaded = _one_tenant(warehouses, tenant)
    try:
        written = write_tenant_objects(loaded, out_dir)
    except EgressUndefined as exc:
        err.print(f"{loaded.file}: {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    for path in written:
        out.print(f"wrote {path}")


@app.command()
def schema(
    write: Annotated[bool, typer.Option("--write", help="Write warehouses/schema.json.")] = False,
    warehouses: WarehousesOption = DEFAULT_WAREHOUSES,
) -> None:
    """Print (or write) the JSON Schema that tenant files are validated against."""
    text = render_schema()
    if write:
        (warehouses / SCHEMA_FILE).write_text(text, encoding="utf-8")
        err.print(f"wrote {warehouses / SCHEMA_FILE}")
    else:
        sys.stdout.write(text)


@app.command()
def new(
    tenant: Annotated[str, typer.Argument(help="The new tenant's id (a-z, 0-9, _).")],
    warehouses: WarehousesOption = DEFAULT_WAREHOUSES,
) -> None:
    """Scaffold a valid, commented tenant and a minimal dbt project."""
    if not re.fullmatch(TENANT_ID_PATTERN, tenant) or len(tenant) > TENANT_ID_MAX:
        err.print(
            f"dag-factory: {tenant!r} is not a tenant id (a-z, 0-9 and single _ between "
            f"them; a letter first, a letter or digit last; at most {TENANT_ID_MAX})"
        )
        raise typer.Exit(2)
    try:
        files = scaffold_tenant(warehouses, tenant)
    except FileExistsError as exc:
        err.print(f"dag-factory: {exc}")
        raise typer.Exit(1) from None
    for file in files:
        out.print(f"created {file}")


@app.command()
def provision(
    tenant: Annotated[str, typer.Argument(help="Tenant id (its folder name).")],
    sql: Annotated[
        bool, typer.Option("--sql", help="Print the statements instead of applying them.")
    ] = False,
    admin_url_env: Annotated[
        str,
        typer.Option(
            "--admin-url-env",
            help="Env var holding the admin SQLAlchemy URL of the warehouse database.",
        ),
    ] = "DAG_FACTORY_ADMIN_URL",
    admin_conn: Annotated[
        str | None,
        typer.Option("--admin-conn", help="An Airflow connection id to use as admin instead."),
    ] = None,
    password_env: Annotated[
        str | None,
        typer.Option(
            "--password-env",
            help="Env var holding the tenant role's password; without it, auth is external.",
        ),
    ] = None,
    database_setup: Annotated[
        bool,
        typer.Option(
            "--database-setup/--no-database-setup",
            help="Also revoke PUBLIC's rights on the database and on schema public.",
        ),
    ] = True,
    shared_table: Annotated[
        list[str] | None,
        typer.Option(
            "--shared-table",
            help="SCHEMA.TABLE of a mart shared by tenants (column tenant_id): row-level "
            "security lets this tenant see and write only its own rows. Repeatable.",
        ),
    ] = None,
    warehouses: WarehousesOption = DEFAULT_WAREHOUSES,
) -> None:
    """Create the tenant's login role (owner of its schemas, nothing else) and its
    read-only gold role on a PostgreSQL warehouse. Idempotent; `--sql` prints the SQL."""
    from dag_factory import provision as prov

    spec = _one_tenant(warehouses, tenant).spec
    if spec.warehouse.kind is not WarehouseKind.postgres:
        out.print(
            f"{tenant}: a {spec.warehouse.kind.value} warehouse is one file per tenant; its "
            "isolation is that file's permissions, so there is nothing to provision.",
            soft_wrap=True,
        )
        raise typer.Exit(0)
    try:
        roles = prov.TenantRoles.of(spec.tenant)
        shared = [prov.parse_shared_table(t) for t in shared_table or []]
        statements = prov.tenant_statements(
            spec, database_setup=database_setup, shared_tables=shared
        )
    except prov.ProvisionError as exc:
        err.print(f"dag-factory: {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    if sql:
        note = prov.password_note(roles, password_env)
        sys.stdout.write(prov.render_script(statements, [note]))
        return
    _apply_provision(prov, roles, statements, admin_url_env, admin_conn, password_env)


def _apply_provision(
    prov: Any,
    roles: Any,
    statements: list[str],
    admin_url_env: str,
    admin_conn: str | None,
    password_env: str | None,
) -> None:
    from sqlalchemy import create_engine
    from sqlalchemy.exc import DBAPIError

    from dag_factory.secrets import SecretResolutionError, resolve
    from datakits.spec import ConnectionRef

    password = None
    if password_env:
        password = os.environ.get(password_env)
        if not password:
            err.print(f"dag-factory: env var {password_env} (--password-env) is not set")
            raise typer.Exit(2)
    ref = ConnectionRef(airflow_conn=admin_conn) if admin_conn else ConnectionRef(env=admin_url_env)
    try:
        engine = create_engine(resolve(ref))
    except SecretResolutionError as exc:
        err.print(f"dag-factory: admin connection: {exc}")
        raise typer.Exit(2) from None
    if engine.dialect.name != "postgresql":
        err.print(f"dag-factory: the admin connection is {engine.dialect.name}, not PostgreSQL")
        raise typer.Exit(2)
    try:
        with engine.begin() as conn:  # all or nothing
            prov.apply(conn, statements)
            if password is not None:
                prov.set_password(conn, roles.owner, password)
    except (DBAPIError, prov.ProvisionError) as exc:
        first = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        err.print(
            f"dag-factory: provisioning {roles.owner} failed, nothing changed: {first}",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(1) from None
    finally:
        engine.dispose()
    if password is None:
        err.print(f"{roles.owner}: no password set: authentication is external (pg_hba.conf)")
    out.print(
        f"provisioned {roles.owner} (owns its schemas) and {roles.reader} (reads gold): "
        f"{len(statements)} statements"
    )


@app.command()
def pools(
    check: Annotated[
        bool, typer.Option("--check", help="Only report missing pools; exit 1 if any.")
    ] = False,
    warehouses: WarehousesOption = DEFAULT_WAREHOUSES,
) -> None:
    """Create or update the Airflow pools the tenants name (slots = concurrency, DuckDB 1).

    Uses the metadata database of the Airflow configured by AIRFLOW_HOME / AIRFLOW__*;
    run it after `airflow db migrate` and whenever a tenant is added."""
    from dag_factory.build import selected_tenants
    from dag_factory.pools import apply_pools, existing_pools, wanted_pools

    report = _load(warehouses, [])
    only = selected_tenants()
    wanted = wanted_pools([t for t in report.tenants if only is None or t.spec.tenant in only])
    for error in report.errors:
        err.print(f"skipped invalid tenant file {error.file} (dag-factory validate shows why)")
    existing = existing_pools()
    missing = [p for p in wanted if p.name not in existing]
    if check:
        for pool in missing:
            out.print(
                f"missing pool {pool.name} ({pool.slots} slots): {pool.description}",
                soft_wrap=True,
            )
        out.print(f"{len(wanted) - len(missing)} of {len(wanted)} pool(s) exist")
        raise typer.Exit(1 if missing else 0)
    apply_pools(wanted)
    for pool in wanted:
        verb = "created" if pool.name in {p.name for p in missing} else "updated"
        out.print(f"{verb} pool {pool.name}: {pool.slots} slot(s)")


FAB_AUTH_MANAGER = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"


@app.command()
def roles(
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Print each DAG's roles and permissions as JSON only."),
    ] = False,
    warehouses: WarehousesOption = DEFAULT_WAREHOUSES,
) -> None:
    """Create each tenant's Airflow role `tenant_<id>` (and the extra roles its spec names)
    in the FAB auth manager and grant it its own DAG only. Idempotent. Run it before the
    dag-processor stores the DAGs: Airflow refuses a DAG that names a missing role."""
    from dag_factory import access

    report = _load(warehouses, [])
    dag_access = {
        t.spec.dag_id: access.spec_access_control(t.spec) for t in report.tenants if t.spec.enabled
    }
    for error in report.errors:  # an invalid tenant's placeholder DAG keeps its own role
        dag_id = access.folder_dag_id(error.file.parent.name)
        dag_access[dag_id] = access.access_control([access.placeholder_role(dag_id)])
    if dry_run:
        plain = {
            d: {r: {k: sorted(v) for k, v in c.items()} for r, c in ac.items()}
            for d, ac in sorted(dag_access.items())
        }
        sys.stdout.write(json.dumps(plain, indent=2) + "\n")
        return
    from airflow.configuration import conf

    manager = conf.get("core", "auth_manager")
    if manager != FAB_AUTH_MANAGER:
        err.print(
            f"dag-factory: Airflow's auth manager is {manager}, not the FAB one: set "
            f"AIRFLOW__CORE__AUTH_MANAGER={FAB_AUTH_MANAGER} (per-tenant DAG access needs it)",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(2)
    try:
        synced = access.sync_roles(dag_access)
    except access.RoleSyncError as exc:
        err.print(f"dag-factory: syncing Airflow roles failed: {exc}", highlight=False)
        raise typer.Exit(1) from None
    out.print(f"synced {len(synced)} roles on {len(dag_access)} DAGs: {', '.join(synced)}")


def _status_origin(spec: TenantSpec) -> str:
    """Where `status` read the loads: the meta schema, or a lakehouse's Delta commit log."""
    if spec.warehouse.kind == "lakehouse":
        return "Delta commit log"
    return f"meta schema {spec.warehouse.schemas.meta}"


@app.command()
def status(
    tenant: Annotated[str, typer.Argument(help="Tenant id (its folder name).")],
    last: Annotated[
        int, typer.Option("--last", "-n", min=1, help="Loads shown per table, newest first.")
    ] = 5,
    output: Annotated[OutputFormat, typer.Option("--format", help="text or json.")] = (
        OutputFormat.text
    ),
    warehouses: WarehousesOption = DEFAULT_WAREHOUSES,
) -> None:
    """Per table, the last loads (mode, rows, seconds, watermark, batch, status) and the
    current watermark, read from the tenant's meta schema with its own credentials."""
    from dag_factory.secrets import SecretResolutionError
    from dag_factory.status import StatusError, tenant_status

    spec = _one_tenant(warehouses, tenant).spec
    try:
        tables = tenant_status(spec, last=last)
    except (SecretResolutionError, StatusError) as exc:
        err.print(f"dag-factory: {tenant}: {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    if output is OutputFormat.json:
        doc = {"tenant": spec.tenant, "tables": [t.as_json() for t in tables]}
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    view = Table(
        "table",
        "finished (UTC)",
        "mode",
        "rows",
        "seconds",
        "watermark",
        "batch",
        "status",
        title=f"{spec.tenant}: last {last} loads per table ({_status_origin(spec)})",
    )
    for t in tables:
        name = t.table if t.in_spec else f"{t.table} [dim](not in the tenant file)[/dim]"
        if not t.loads:
            view.add_row(name, "[yellow]never loaded[/yellow]", "", "", "", "", "", "")
        for i, load in enumerate(t.loads):
            view.add_row(
                name if i == 0 else "",
                load.finished_at.strftime("%Y-%m-%d %H:%M:%S"),
                load.mode,
                f"{load.rows:,}",
                f"{load.seconds:.2f}",
                "" if load.watermark is None else f"{t.cursor_column} = {load.watermark}",
                load.batch_id[:12],
                load.status,
            )
    out.print(view)


@app.command()
def docs(
    tenant: Annotated[str, typer.Argument(help="Tenant id (its folder name).")],
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Where to write the site (default: .data/docs/TENANT)."),
    ] = None,
    warehouses: WarehousesOption = DEFAULT_WAREHOUSES,
) -> None:
    """Build the tenant's dbt docs site (dbt docs generate --static) as static files:
    static_index.html alone is the whole site; index.html + manifest.json + catalog.json
    are the same for a web server. Reads the warehouse with the tenant's own credentials."""
    from dag_factory.docs import DocsError, build_docs

    loaded = _one_tenant(warehouses, tenant)
    root = warehouses.resolve().parent
    target = out_dir or root / ".data" / "docs" / tenant
    try:
        site = build_docs(loaded, root, target)
    except DocsError as exc:
        err.print(f"dag-factory: {tenant}: docs not built: {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    if not site.catalog_nodes:
        err.print(
            f"dag-factory: {tenant}: the warehouse holds none of its dbt models yet: the site "
            "lists them without columns (build the tenant's dbt layers first)",
            highlight=False,
            soft_wrap=True,
        )
    out.print(
        f"{site.index} ({', '.join(site.files)}; {site.seconds:.1f} s)",
        highlight=False,
        soft_wrap=True,
    )


dbt_app = typer.Typer(help="The tenants' dbt projects.", no_args_is_help=True)
app.add_typer(dbt_app, name="dbt")


@dbt_app.command("compile")
def dbt_compile(
    tenants: Annotated[
        list[str] | None, typer.Argument(help="Tenant ids (default: every tenant).")
    ] = None,
    out_root: Annotated[
        Path | None,
        typer.Option(
            "--out-root",
            help="Write <out-root>/<tenant>/ instead of warehouses/<tenant>/compiled/.",
        ),
    ] = None,
    warehouses: WarehousesOption = DEFAULT_WAREHOUSES,
) -> None:
    """Parse each tenant's dbt project (no warehouse) and write its compiled graph
    (dbt_graph.json + manifest.json), which gives the DAG one task per dbt model.
    Exit 1 when a tenant fails, with one line per failing tenant."""
    from dag_factory.compile import compile_tenant

    report = _load(warehouses, [warehouses / t for t in tenants or ()])
    failed = 0
    for problem in report.errors:
        first = str(problem.problems[0]) if problem.problems else "invalid tenant file"
        err.print(first, highlight=False, soft_wrap=True)
        failed += 1
    root = warehouses.resolve().parent
    for tenant in report.tenants:
        done = compile_tenant(tenant, root, out_root)
        (out if done.ok else err).print(done.line, highlight=False, soft_wrap=True)
        failed += not done.ok
    if failed:
        raise typer.Exit(1)


def main() -> None:
    app()


if __name__ == "__main__":
    main()

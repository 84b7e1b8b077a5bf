"""`dag-factory provision` on a real PostgreSQL, with two tenants and a hostile third.

alpha and beta share one warehouse database, each provisioned with its own role; both
load their shop through the real `runner extract` and build silver and gold with the
real `runner dbt`, each under its own role. Then alpha's credentials are turned against
beta's schemas, and `evil` (a tenant file naming alpha's schemas) is provisioned.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest
import yaml
from psycopg import errors as pg_errors
from typer.testing import CliRunner

from dag_factory.cli import app
from dag_factory.loader import Loader
from dag_factory.provision import split_script, tenant_statements
from datakits.spec import RUNNER_SPEC_ENV, SOURCE_URL_ENV, WAREHOUSE_URL_ENV
from devtools.postgres import PostgresCluster
from devtools.shop import generate_shop

REPO = Path(__file__).resolve().parents[2]
RUNNER = str(Path(sys.executable).parent / "runner")
SHOP_TABLES = ("customers", "products", "orders", "order_items")
PASSWORDS = {"alpha": "Alpha-Secret-71c", "beta": "Beta-Secret-93e"}
ADMIN_ENV = "PROVISION_TEST_ADMIN_URL"
DENIED = pg_errors.InsufficientPrivilege


def _tenant_file(tenant: str, schemas_of: str) -> dict[str, Any]:
    return {
        "tenant": tenant,
        "source": {"kind": "sqlite", "connection": {"env": f"{tenant.upper()}_SOURCE_URL"}},
        "warehouse": {
            "kind": "postgres",
            "connection": {"env": f"{tenant.upper()}_WAREHOUSE_URL"},
            "schemas": {
                layer: f"{schemas_of}_{layer}" for layer in ("bronze", "silver", "gold", "meta")
            },
        },
        "tables": [{"name": t} for t in SHOP_TABLES],
        "dbt": {"project": "../_dbt/shop"},
    }


def _write_warehouses(root: Path) -> Path:
    folder = root / "warehouses"
    folder.mkdir()
    shutil.copy(REPO / "warehouses" / "defaults.yaml", folder / "defaults.yaml")
    shutil.copytree(REPO / "warehouses" / "_dbt", folder / "_dbt")
    # evil names alpha's schemas in the same warehouse; alpha_reader's role would be
    # alpha's read-only role.
    for tenant, schemas_of in [
        ("alpha", "alpha"),
        ("beta", "beta"),
        ("evil", "alpha"),
        ("alpha_reader", "ar"),
    ]:
        (folder / tenant).mkdir()
        (folder / tenant / "warehouse.yaml").write_text(
            yaml.safe_dump(_tenant_file(tenant, schemas_of))
        )
    demo = folder / "demo"
    demo.mkdir()
    shutil.copy(REPO / "warehouses" / "demo" / "warehouse.yaml", demo / "warehouse.yaml")
    return folder


def _cli(*argv: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(app, list(argv), env=env, catch_exceptions=False)


def _url(cluster: PostgresCluster, database: str, role: str, password: str) -> str:
    return f"postgresql+psycopg://{role}:{password}@127.0.0.1:{cluster.port}/{database}"


def _dsn(cluster: PostgresCluster, database: str, role: str, password: str = "") -> str:
    auth = f" password={password}" if password else ""
    return f"host=127.0.0.1 port={cluster.port} dbname={database} user={role}{auth}"


def _runner(
    argv: list[str], spec_json: str, shop_url: str, warehouse_url: str
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        RUNNER_SPEC_ENV: spec_json,
        SOURCE_URL_ENV: shop_url,
        WAREHOUSE_URL_ENV: warehouse_url,
    }
    env.pop("RUNNER_DEBUG", None)
    return subprocess.run(
        [RUNNER, *argv], env=env, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.fixture(scope="module")
def wh(
    pg_cluster: PostgresCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SimpleNamespace]:
    """alpha and beta provisioned in one database, loaded and built under their own roles.

    The test cluster trusts every login, so a password is not what is tested here: the
    server enforces the privileges of the role a session logs in as, and that is."""
    root = tmp_path_factory.mktemp("provision")
    warehouses = _write_warehouses(root)
    database = "provision_wh"
    admin_url = pg_cluster.create_database(database)
    shop_url = f"sqlite:///{root / 'shop.sqlite'}"
    counts = generate_shop(shop_url, orders=300)
    env = {ADMIN_ENV: admin_url, "ALPHA_PW": PASSWORDS["alpha"], "BETA_PW": PASSWORDS["beta"]}
    provisioned = {}
    for tenant in ("alpha", "beta"):
        result = _cli(
            "provision",
            tenant,
            "-w",
            str(warehouses),
            "--admin-url-env",
            ADMIN_ENV,
            "--password-env",
            f"{tenant.upper()}_PW",
            env=env,
        )
        assert result.exit_code == 0, result.output
        provisioned[tenant] = result.output
    loader = Loader(warehouses)
    specs = {
        t: loader.load(warehouses / t / "warehouse.yaml").spec for t in ("alpha", "beta", "evil")
    }
    urls = {t: _url(pg_cluster, database, f"tenant_{t}", PASSWORDS[t]) for t in ("alpha", "beta")}
    runs: dict[str, list[subprocess.CompletedProcess[str]]] = {}
    for tenant in ("alpha", "beta"):
        spec_json = specs[tenant].runner_spec_json()
        runs[tenant] = [
            _runner(["extract", "--table", table], spec_json, shop_url, urls[tenant])
            for table in SHOP_TABLES
        ] + [
            _runner(
                [
                    "dbt",
                    "--project-dir",
                    str(warehouses / "_dbt" / "shop"),
                    "build",
                    "--select",
                    layer,
                ],
                spec_json,
                shop_url,
                urls[tenant],
            )
            for layer in ("silver", "gold")
        ]
    # A BI login that is granted alpha's read-only role, as the platform would do.
    with psycopg.connect(pg_cluster.dsn(database), autocommit=True) as admin:
        admin.execute("DROP ROLE IF EXISTS bi_alpha")
        admin.execute("CREATE ROLE bi_alpha LOGIN IN ROLE tenant_alpha_reader")
    yield SimpleNamespace(
        cluster=pg_cluster,
        database=database,
        admin_url=admin_url,
        warehouses=warehouses,
        specs=specs,
        urls=urls,
        runs=runs,
        counts=counts,
        env=env,
        provisioned=provisioned,
    )
    with psycopg.connect(pg_cluster.dsn("postgres"), autocommit=True) as admin:
        for name in ("provision_wh", "provision_psql", "provision_cli"):
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute("DROP ROLE IF EXISTS bi_alpha")
        for role in ("tenant_alpha", "tenant_beta", "tenant_alpha_reader", "tenant_beta_reader"):
            admin.execute(f'DROP ROLE IF EXISTS "{role}"')


def _as(wh: SimpleNamespace, role: str) -> psycopg.Connection[Any]:
    return psycopg.connect(_dsn(wh.cluster, wh.database, role), autocommit=True)


def _denied(conn: psycopg.Connection[Any], statement: str) -> str:
    with pytest.raises(DENIED) as caught:
        conn.execute(statement)
    return str(caught.value)


def test_each_tenant_loads_and_builds_under_its_own_role(wh: SimpleNamespace) -> None:
    for tenant in ("alpha", "beta"):
        for run in wh.runs[tenant]:
            assert run.returncode == 0, (tenant, run.args, run.stderr[-2000:])
        with _as(wh, f"tenant_{tenant}") as conn:
            for table in SHOP_TABLES:
                (n,) = conn.execute(f"SELECT count(*) FROM {tenant}_silver.{table}").fetchone()
                assert n == wh.counts[table], (tenant, table)
            (gold,) = conn.execute(
                f"SELECT count(*) FROM {tenant}_gold.revenue_per_customer_month"
            ).fetchone()
            assert gold > 0
            owners = conn.execute(
                "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname LIKE %s",
                [f"{tenant}_%"],
            ).fetchall()
            assert owners == [(f"tenant_{tenant}",)]
    assert "no password" not in wh.provisioned["alpha"]


def test_a_tenant_cannot_read_or_write_another_tenants_schemas(wh: SimpleNamespace) -> None:
    with _as(wh, "tenant_alpha") as alpha:
        for schema in ("beta_bronze", "beta_silver", "beta_gold", "beta_meta"):
            assert "permission denied for schema " + schema in _denied(
                alpha, f"CREATE TABLE {schema}.stolen (x int)"
            )
        assert "permission denied" in _denied(alpha, "SELECT * FROM beta_bronze.customers")
        assert "permission denied" in _denied(
            alpha, "SELECT * FROM beta_gold.revenue_per_customer_month"
        )
        _denied(alpha, "INSERT INTO beta_bronze.customers (customer_id) VALUES (-1)")
        _denied(alpha, "DELETE FROM beta_meta.watermarks")
        _denied(alpha, "DROP TABLE beta_bronze.customers")
        _denied(alpha, "ALTER SCHEMA beta_gold RENAME TO mine")
        _denied(alpha, "CREATE SCHEMA alpha_extra")  # no CREATE on the database
        _denied(alpha, "CREATE TABLE public.shared (x int)")
        _denied(alpha, "GRANT tenant_beta TO tenant_alpha")
        _denied(alpha, "SET ROLE tenant_beta")
    with _as(wh, "tenant_beta") as beta:  # and beta's data is still all there
        (n,) = beta.execute("SELECT count(*) FROM beta_bronze.customers").fetchone()
        assert n == wh.counts["customers"]


def test_reader_selects_gold_and_nothing_else(wh: SimpleNamespace) -> None:
    # gold was built by dbt after provisioning: default privileges made it readable.
    with _as(wh, "bi_alpha") as bi:
        (rows,) = bi.execute(
            "SELECT count(*) FROM alpha_gold.revenue_per_customer_month"
        ).fetchone()
        assert rows > 0
        _denied(bi, "SELECT * FROM alpha_silver.customers")
        _denied(bi, "SELECT * FROM alpha_bronze.customers")
        _denied(bi, "SELECT * FROM beta_gold.revenue_per_customer_month")
        _denied(bi, "DELETE FROM alpha_gold.revenue_per_customer_month")
        _denied(bi, "CREATE TABLE alpha_gold.mine (x int)")
    with _as(wh, "tenant_beta") as beta:  # gold is readable by alpha's reader only
        _denied(beta, "SELECT * FROM alpha_gold.revenue_per_customer_month")
    with psycopg.connect(wh.cluster.dsn(wh.database)) as admin:
        grantees = admin.execute(
            "SELECT DISTINCT grantee FROM information_schema.role_table_grants "
            "WHERE table_schema = 'alpha_gold' ORDER BY grantee"
        ).fetchall()
    assert grantees == [("tenant_alpha",), ("tenant_alpha_reader",)]


def test_hostile_tenant_naming_anothers_schemas_is_refused(wh: SimpleNamespace) -> None:
    before = _snapshot(wh.cluster, wh.database)
    result = _cli(
        "provision", "evil", "-w", str(wh.warehouses), "--admin-url-env", ADMIN_ENV, env=wh.env
    )
    assert result.exit_code == 1
    assert "schema alpha_bronze belongs to role tenant_alpha" in result.output
    assert "nothing changed" in result.output
    assert _snapshot(wh.cluster, wh.database) == before
    with psycopg.connect(wh.cluster.dsn(wh.database)) as admin:
        assert (
            admin.execute("SELECT 1 FROM pg_roles WHERE rolname = 'tenant_evil'").fetchall() == []
        )


def test_tenant_id_that_names_a_reader_role_is_refused(wh: SimpleNamespace) -> None:
    result = _cli("provision", "alpha_reader", "-w", str(wh.warehouses), "--sql")
    assert result.exit_code == 1
    assert "names another tenant's read-only role" in result.output


def _snapshot(cluster: PostgresCluster, database: str) -> dict[str, Any]:
    """What provisioning decides in one database: schema owners and grants, default
    privileges, the database's grants, and the tenant roles' attributes."""
    with psycopg.connect(cluster.dsn(database)) as conn:
        q = conn.execute
        return {
            "schemas": q(
                "SELECT nspname, nspowner::regrole::text, nspacl::text FROM pg_namespace "
                "WHERE nspname NOT LIKE 'pg_%' ORDER BY 1"
            ).fetchall(),
            "default_acl": q(
                "SELECT defaclrole::regrole::text, defaclnamespace::regnamespace::text, "
                "defaclobjtype, defaclacl::text FROM pg_default_acl ORDER BY 1, 2, 3"
            ).fetchall(),
            "database_acl": q(
                "SELECT datacl::text FROM pg_database WHERE datname = current_database()"
            ).fetchall(),
            "roles": q(
                "SELECT rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, "
                "rolreplication, rolbypassrls FROM pg_roles "
                "WHERE rolname LIKE 'tenant_%' ORDER BY 1"
            ).fetchall(),
            "memberships": q(
                "SELECT roleid::regrole::text, member::regrole::text FROM pg_auth_members "
                "WHERE roleid::regrole::text LIKE 'tenant_%' "
                "OR member::regrole::text LIKE 'tenant_%' ORDER BY 1, 2"
            ).fetchall(),
            "policies": q(
                "SELECT schemaname, tablename, policyname, roles::text, cmd, qual, with_check "
                "FROM pg_policies ORDER BY 1, 2, 3"
            ).fetchall(),
            "rls": q(
                "SELECT relname, relrowsecurity, relforcerowsecurity, relacl::text FROM pg_class "
                "WHERE relrowsecurity ORDER BY 1"
            ).fetchall(),
            "tables": q(
                "SELECT schemaname, tablename, tableowner FROM pg_tables "
                "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2"
            ).fetchall(),
        }


def test_provision_twice_changes_nothing(wh: SimpleNamespace) -> None:
    before = _snapshot(wh.cluster, wh.database)
    result = _cli(
        "provision",
        "alpha",
        "-w",
        str(wh.warehouses),
        "--admin-url-env",
        ADMIN_ENV,
        "--password-env",
        "ALPHA_PW",
        env=wh.env,
    )
    assert result.exit_code == 0, result.output
    assert _snapshot(wh.cluster, wh.database) == before
    gold_acl = {name: acl for name, _, acl in before["schemas"]}["alpha_gold"]
    assert "tenant_alpha_reader=U/tenant_alpha" in gold_acl
    with psycopg.connect(wh.cluster.dsn(wh.database)) as admin:
        (verifier,) = admin.execute(
            "SELECT rolpassword FROM pg_authid WHERE rolname = 'tenant_alpha'"
        ).fetchone()
    assert verifier.startswith("SCRAM-SHA-256$")  # libpq's verifier, not the password
    assert PASSWORDS["alpha"] not in verifier


def test_sql_output_is_what_is_applied(wh: SimpleNamespace) -> None:
    """The printed script run by psql on one fresh database, and `provision` on another,
    leave the same catalog; the printed statements are the ones `provision` applies."""
    printed = _cli("provision", "beta", "-w", str(wh.warehouses), "--sql")
    assert printed.exit_code == 0, printed.output
    assert split_script(printed.output) == tenant_statements(wh.specs["beta"])
    assert PASSWORDS["beta"] not in printed.output

    by_psql = wh.cluster.create_database("provision_psql")
    script = Path(wh.warehouses.parent / "beta.sql")
    script.write_text(printed.output)
    psql = shutil.which("psql") or str(wh.cluster.bin / "psql")
    ran = subprocess.run(
        [
            psql,
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-1",
            "-f",
            str(script),
            wh.cluster.dsn("provision_psql"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    by_cli = wh.cluster.create_database("provision_cli")
    result = _cli(
        "provision",
        "beta",
        "-w",
        str(wh.warehouses),
        "--admin-url-env",
        ADMIN_ENV,
        env={**wh.env, ADMIN_ENV: by_cli},
    )
    assert result.exit_code == 0, result.output
    assert "no password set" in result.output
    psql_state = _snapshot(wh.cluster, "provision_psql")
    cli_state = _snapshot(wh.cluster, "provision_cli")
    assert psql_state == cli_state
    assert by_psql != by_cli
    owners = {name: owner for name, owner, _ in cli_state["schemas"]}
    assert {owners[f"beta_{layer}"] for layer in ("bronze", "silver", "gold", "meta")} == {
        "tenant_beta"
    }


def test_duckdb_warehouse_needs_no_roles(wh: SimpleNamespace) -> None:
    result = _cli("provision", "demo", "-w", str(wh.warehouses), env={ADMIN_ENV: ""})
    assert result.exit_code == 0
    assert "one file per tenant" in result.output
    assert "file's permissions" in result.output


def test_shared_mart_rows_are_fenced_by_row_level_security(wh: SimpleNamespace) -> None:
    with psycopg.connect(wh.cluster.dsn(wh.database), autocommit=True) as admin:
        admin.execute("CREATE SCHEMA marts")
        admin.execute("CREATE TABLE marts.revenue (tenant_id text NOT NULL, amount int)")
        admin.execute(
            "INSERT INTO marts.revenue VALUES ('alpha', 1), ('alpha', 2), ('beta', 30), ('evil', 9)"
        )
    for tenant, pw in (("alpha", "ALPHA_PW"), ("beta", "BETA_PW")):
        result = _cli(
            "provision",
            tenant,
            "-w",
            str(wh.warehouses),
            "--admin-url-env",
            ADMIN_ENV,
            "--password-env",
            pw,
            "--shared-table",
            "marts.revenue",
            env=wh.env,
        )
        assert result.exit_code == 0, result.output
    before = _snapshot(wh.cluster, wh.database)
    assert [p[2] for p in before["policies"]] == ["tenant_alpha", "tenant_beta"]
    assert before["rls"][0][:3] == ("revenue", True, True)

    with _as(wh, "tenant_alpha") as alpha:
        assert alpha.execute(
            "SELECT tenant_id, amount FROM marts.revenue ORDER BY 2"
        ).fetchall() == [("alpha", 1), ("alpha", 2)]
        alpha.execute("INSERT INTO marts.revenue VALUES ('alpha', 3)")
        assert "row-level security" in _denied(
            alpha, "INSERT INTO marts.revenue VALUES ('beta', 666)"
        )
        assert "row-level security" in _denied(alpha, "UPDATE marts.revenue SET tenant_id = 'beta'")
        assert alpha.execute("DELETE FROM marts.revenue WHERE tenant_id = 'beta'").rowcount == 0
        _denied(alpha, "ALTER TABLE marts.revenue DISABLE ROW LEVEL SECURITY")
        _denied(alpha, "DROP POLICY tenant_alpha ON marts.revenue")
    with _as(wh, "tenant_beta") as beta:
        assert beta.execute("SELECT tenant_id, amount FROM marts.revenue").fetchall() == [
            ("beta", 30)
        ]
    with _as(wh, "bi_alpha") as bi:
        assert bi.execute("SELECT sum(amount) FROM marts.revenue").fetchone() == (6,)
        _denied(bi, "INSERT INTO marts.revenue VALUES ('alpha', 4)")
    # Twice changes nothing, and the rows other tenants could not touch are all there.
    result = _cli(
        "provision",
        "alpha",
        "-w",
        str(wh.warehouses),
        "--admin-url-env",
        ADMIN_ENV,
        "--password-env",
        "ALPHA_PW",
        "--shared-table",
        "marts.revenue",
        env=wh.env,
    )
    assert result.exit_code == 0, result.output
    assert _snapshot(wh.cluster, wh.database) == before
    with psycopg.connect(wh.cluster.dsn(wh.database)) as admin:
        rows = admin.execute("SELECT tenant_id, amount FROM marts.revenue ORDER BY 2").fetchall()
    assert rows == [("alpha", 1), ("alpha", 2), ("alpha", 3), ("evil", 9), ("beta", 30)]

"""Warehouse roles per tenant: the statements that make PostgreSQL enforce tenant isolation.

Why: a tenant's runner connects with whatever credentials it is given; on a shared
PostgreSQL one role for everybody lets one tenant's tasks read and overwrite another's
schemas. `provision` gives each tenant a login role that *owns* its four schemas (bronze,
silver, gold, meta) and holds no other privilege, plus a read-only role for BI on gold.

The statements are a pure function of the tenant spec, so `dag-factory provision --sql`
prints exactly what is applied and a DBA can review (or run) it with psql. Each one is
idempotent on its own (PostgreSQL has no `CREATE ROLE IF NOT EXISTS`, hence the `DO`
blocks), and the script targets whichever database it runs in (`current_database()`):
the same reviewed text serves every copy of a warehouse. Identifiers are quoted by
SQLAlchemy's `IdentifierPreparer`, literals by SQLAlchemy's `String` literal processor.

The password is the one thing not in the script: it is read from an env var and sent as a
SCRAM-SHA-256 verifier computed by libpq (as psql's `\\password` does), so the plain text
never reaches a statement, a server log or the `--sql` output.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import psycopg
from sqlalchemy import String
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from dag_factory.spec import TenantSpec
from datakits.spec import IDENTIFIER_PATTERN

DIALECT = postgresql.dialect()
_PREPARER = DIALECT.identifier_preparer
_LITERAL = String().literal_processor(DIALECT)

ROLE_PREFIX = "tenant_"
READER_SUFFIX = "_reader"
#: Schema names a tenant file may never claim: PostgreSQL's own and the shared `public`.
RESERVED_SCHEMAS = frozenset({"public", "information_schema"})
#: The column of a shared mart that says which tenant a row belongs to.
TENANT_COLUMN = "tenant_id"


class ProvisionError(ValueError):
    """The tenant cannot be provisioned as written; the message says what to fix."""


def ident(name: str) -> str:
    """An identifier, always quoted by SQLAlchemy (never formatted by hand)."""
    return _PREPARER.quote_identifier(name)


def literal(value: str) -> str:
    """A string literal rendered by SQLAlchemy's PostgreSQL dialect."""
    assert _LITERAL is not None
    return str(_LITERAL(value))


@dataclass(frozen=True)
class TenantRoles:
    """The two roles of one tenant: `owner` logs in and owns the schemas, `reader` reads gold."""

    owner: str
    reader: str

    @classmethod
    def of(cls, tenant: str) -> TenantRoles:
        # `tenant_<id>_reader` would also be the login role of a tenant called
        # `<id>_reader`, who could then read (and set the password of) <id>'s gold.
        if tenant.endswith(READER_SUFFIX):
            raise ProvisionError(
                f"tenant id {tenant!r} ends with {READER_SUFFIX!r}, which names another "
                f"tenant's read-only role: rename the tenant"
            )
        owner = ROLE_PREFIX + tenant
        return cls(owner=owner, reader=owner + READER_SUFFIX)


def _ensure_role(role: str, *, login: bool) -> list[str]:
    # A role that exists already is kept; its attributes are then set again below, so a
    # role someone made by hand cannot keep SUPERUSER, CREATEROLE or BYPASSRLS.
    create = (
        f"DO $$BEGIN CREATE ROLE {ident(role)}; EXCEPTION WHEN duplicate_object THEN NULL; END$$"
    )
    attributes = "LOGIN" if login else "NOLOGIN"
    alter = (
        f"ALTER ROLE {ident(role)} WITH {attributes} NOSUPERUSER NOCREATEDB NOCREATEROLE "
        "NOREPLICATION NOBYPASSRLS INHERIT"
    )
    return [create, alter]


def _on_current_database(statement_head: str, tail: str) -> str:
    """`<head> <current database> <tail>` as dynamic SQL: the database is the one the
    script runs in, its name quoted by the server (`quote_ident`)."""
    return (
        f"DO $$BEGIN EXECUTE {literal(statement_head + ' ')} "
        f"|| quote_ident(current_database()) || {literal(' ' + tail)}; END$$"
    )


def database_setup_statements() -> list[str]:
    """Once per database (idempotent, so every provision repeats it): nobody but the roles
    granted here may connect, make temporary tables, or create in `public`."""
    return [
        _on_current_database("REVOKE ALL ON DATABASE", "FROM PUBLIC"),
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
    ]


def _guard_schema(schema: str, owner: str) -> str:
    """Refuse to hand over a schema that belongs to another role than the tenant's or the
    admin's: a hostile tenant file naming another tenant's schemas must not get them."""
    message = literal(f"schema {schema} belongs to role ")
    refusal = literal(f", not to {owner}: refusing to hand it over (fix the tenant's schemas)")
    return (
        "DO $$DECLARE current_owner name; BEGIN "
        "SELECT r.rolname INTO current_owner FROM pg_namespace n "
        f"JOIN pg_roles r ON r.oid = n.nspowner WHERE n.nspname = {literal(schema)}; "
        f"IF current_owner IS NOT NULL AND current_owner <> {literal(owner)} "
        "AND current_owner <> current_user THEN "
        f"RAISE EXCEPTION USING MESSAGE = {message} || current_owner || {refusal}; "
        "END IF; END$$"
    )


def tenant_schemas(spec: TenantSpec) -> list[str]:
    s = spec.warehouse.schemas
    names = [s.bronze, s.silver, s.gold, s.meta]
    reserved = sorted(n for n in names if n in RESERVED_SCHEMAS or n.startswith("pg_"))
    if reserved:
        raise ProvisionError(
            f"tenant {spec.tenant!r} names the shared schema(s) {', '.join(reserved)}: "
            "give it schemas of its own under warehouse.schemas"
        )
    return names


def parse_shared_table(text: str) -> tuple[str, str]:
    """`SCHEMA.TABLE` → (schema, table), both plain identifiers."""
    parts = text.split(".")
    if len(parts) != 2 or not all(re.fullmatch(IDENTIFIER_PATTERN, p) for p in parts):
        raise ProvisionError(
            f"--shared-table {text!r}: give SCHEMA.TABLE, lower-case identifiers (a-z, 0-9, _)"
        )
    return parts[0], parts[1]


def shared_table_statements(
    tenant: str, roles: TenantRoles, schema: str, table: str, column: str = TENANT_COLUMN
) -> list[str]:
    """Row-level security on a mart that several tenants share (owned by the platform):
    the tenant's roles see, and the owner role writes, only rows whose `column` is the
    tenant id. FORCE makes the table's owner obey the policies too (a superuser does not)."""
    target = f"{ident(schema)}.{ident(table)}"
    owner, reader = ident(roles.owner), ident(roles.reader)
    policy = ident(roles.owner)
    match = f"{ident(column)} = {literal(tenant)}"
    return [
        f"ALTER TABLE {target} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {target} FORCE ROW LEVEL SECURITY",
        f"GRANT USAGE ON SCHEMA {ident(schema)} TO {owner}, {reader}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON {target} TO {owner}",
        f"GRANT SELECT ON {target} TO {reader}",
        # No CREATE POLICY IF NOT EXISTS before PostgreSQL 17: replace it (in the same
        # transaction, so no moment without a policy: RLS without one shows no row at all).
        f"DROP POLICY IF EXISTS {policy} ON {target}",
        f"CREATE POLICY {policy} ON {target} TO {owner}, {reader} USING ({match}) "
        f"WITH CHECK ({match})",
    ]


def tenant_statements(
    spec: TenantSpec,
    *,
    database_setup: bool = True,
    shared_tables: Sequence[tuple[str, str]] = (),
) -> list[str]:
    """Every statement that provisions `spec`'s tenant, in order; each is idempotent."""
    roles = TenantRoles.of(spec.tenant)
    schemas = tenant_schemas(spec)
    owner, reader = ident(roles.owner), ident(roles.reader)
    gold = ident(spec.warehouse.schemas.gold)
    statements = list(database_setup_statements()) if database_setup else []
    statements += _ensure_role(roles.owner, login=True)
    statements += _ensure_role(roles.reader, login=False)
    # TEMPORARY: dbt's incremental models stage their changes in temporary tables.
    statements.append(_on_current_database("GRANT CONNECT, TEMPORARY ON DATABASE", f"TO {owner}"))
    statements.append(_on_current_database("GRANT CONNECT ON DATABASE", f"TO {reader}"))
    for schema in schemas:
        statements += [
            _guard_schema(schema, roles.owner),
            f"CREATE SCHEMA IF NOT EXISTS {ident(schema)} AUTHORIZATION {owner}",
            f"ALTER SCHEMA {ident(schema)} OWNER TO {owner}",
            f"REVOKE ALL ON SCHEMA {ident(schema)} FROM PUBLIC",
        ]
    statements += [
        f"GRANT USAGE ON SCHEMA {gold} TO {reader}",
        f"GRANT SELECT ON ALL TABLES IN SCHEMA {gold} TO {reader}",
        # Tables dbt makes later (a `table` model is rebuilt as a new table each run) are
        # readable by the reader at once, and by nobody else.
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {gold} GRANT SELECT ON TABLES "
        f"TO {reader}",
        # PUBLIC gets EXECUTE on new functions and USAGE on new types by default: not here.
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} REVOKE USAGE ON TYPES FROM PUBLIC",
    ]
    for schema, table in shared_tables:
        statements += shared_table_statements(spec.tenant, roles, schema, table)
    return statements


def password_note(roles: TenantRoles, password_env: str | None) -> str:
    """The comment `--sql` prints where the password step would be (never the password)."""
    if password_env:
        return (
            f"-- password of {roles.owner}: set from ${password_env} by `dag-factory provision` "
            f"as a SCRAM verifier (never printed); by hand in psql: \\password {roles.owner}"
        )
    return (
        f"-- {roles.owner} has no password: authentication is external "
        "(pg_hba.conf: cert, gss, ldap ...)"
    )


def render_script(statements: Iterable[str], notes: Sequence[str] = ()) -> str:
    """The `--sql` text: one statement a line, each ended by `;` (what psql runs)."""
    lines = [f"{s};" for s in statements]
    return "\n".join([*notes, *lines]) + "\n"


def split_script(text: str) -> list[str]:
    """The statements of a `render_script` text, without comments (for tests and review)."""
    return [line[:-1] for line in text.splitlines() if line and not line.startswith("--")]


def apply(conn: Connection, statements: Iterable[str]) -> None:
    """Run the statements on the admin connection, in its transaction, as written.

    The driver's own `execute` with no parameters: nothing in the text is parsed for
    placeholders, so what runs is byte for byte what `--sql` prints."""
    driver = conn.connection.driver_connection
    assert driver is not None
    cursor = driver.cursor()
    try:
        for statement in statements:
            try:
                cursor.execute(statement)
            except psycopg.Error as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
                raise ProvisionError(first) from None
    finally:
        cursor.close()


def set_password(conn: Connection, role: str, password: str) -> None:
    """Set `role`'s password as a SCRAM-SHA-256 verifier made by libpq on this side."""
    driver = conn.connection.driver_connection
    verifier = driver.pgconn.encrypt_password(  # type: ignore[union-attr]
        password.encode(), role.encode(), b"scram-sha-256"
    )
    apply(conn, [f"ALTER ROLE {ident(role)} PASSWORD {literal(verifier.decode())}"])

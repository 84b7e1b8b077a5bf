"""`dag-factory doctor`: check tenants where they will run, before their DAG does.

It runs on an Airflow worker (its env, its connections, its metadata DB) and checks what
a DAG run would otherwise discover one failed task at a time: the tenant file, the pool,
the connection references, the source tables and columns, the warehouse, and that each
dbt layer selects a model. One line per problem, each with its fix.
"""

from dag_factory.doctor.findings import Finding, Status
from dag_factory.doctor.run import Doctor

__all__ = ["Doctor", "Finding", "Status"]

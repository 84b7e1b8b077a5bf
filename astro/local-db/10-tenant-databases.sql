-- LOCAL DEVELOPMENT ONLY. Run once by the Astro Postgres container on an empty data
-- directory (mounted by docker-compose.override.yml): the databases of the tenants whose
-- connections in airflow_settings.yaml point at `tenant-postgres`.
CREATE DATABASE acme_source;
CREATE DATABASE acme_warehouse;

"""runners: the `runner` CLI, entrypoint of every runner image (no Airflow)."""

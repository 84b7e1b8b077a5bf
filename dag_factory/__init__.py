"""dag_factory: tenant files → validated specs → planned tasks → one Airflow DAG each."""

"""Connection references resolve into the SQLAlchemy URLs the runner reads."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError
from sqlalchemy import make_url

from dag_factory.secrets import SecretResolutionError, connection_url, resolve
from datakits.kinds import source_kind
from datakits.spec import ConnectionRef, SourceSpec
from datakits.urls import parse_url


def test_airflow_connection_fields_become_a_url():
    url = connection_url(
        "postgres", host="db", port=5432, login="app", password="p@ss/word", schema="shop"
    )
    assert url == "postgresql+psycopg://app:p%40ss%2Fword@db:5432/shop"
    assert (
        connection_url(
            "sqlite", host="/data/shop.sqlite", port=None, login=None, password=None, schema=None
        )
        == "sqlite:////data/shop.sqlite"
    )


def test_unsupported_connection_type_is_named():
    with pytest.raises(SecretResolutionError, match="connection type 'oracle' is not supported"):
        connection_url("oracle", host="h", port=None, login=None, password=None, schema=None)


def test_env_reference(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SHOP_URL", "sqlite:///x.sqlite")
    assert resolve(ConnectionRef(env="SHOP_URL")) == "sqlite:///x.sqlite"
    monkeypatch.delenv("SHOP_URL")
    with pytest.raises(
        SecretResolutionError,
        match=r"env var SHOP_URL \(named by source.connection in the tenant file\) is not set",
    ):
        resolve(ConnectionRef(env="SHOP_URL"), field="source.connection")


def test_airflow_connection_from_env(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AIRFLOW_CONN_SHOP_WH", "postgres://app:secret@db:5433/wh")
    assert resolve(ConnectionRef(airflow_conn="shop_wh")) == (
        "postgresql+psycopg://app:secret@db:5433/wh"
    )
    with pytest.raises(
        SecretResolutionError, match=r"'nope' .*warehouse\.connection.* cannot be read"
    ):
        resolve(ConnectionRef(airflow_conn="nope"), field="warehouse.connection")


def test_connection_extras_are_kept(monkeypatch: pytest.MonkeyPatch):
    """sslmode and friends reach the runner: dropping them would connect without TLS."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_SHOP_WH",
        json.dumps(
            {
                "conn_type": "postgres",
                "host": "db",
                "login": "app",
                "password": "pw",
                "schema": "wh",
                "extra": {"sslmode": "verify-full", "sslrootcert": "/etc/ssl/ca.pem"},
            }
        ),
    )
    url = make_url(resolve(ConnectionRef(airflow_conn="shop_wh")))
    assert url.drivername == "postgresql+psycopg"
    assert dict(url.query) == {"sslmode": "verify-full", "sslrootcert": "/etc/ssl/ca.pem"}


@pytest.mark.parametrize("conn_type", ["mysql", "mariadb"])
def test_mysql_and_mariadb_connections_use_the_registry_driver(conn_type: str):
    """One driver per kind, the one `datakits.urls` fills in for `mysql://` and `mariadb://`."""
    url = connection_url(conn_type, host="h", port=None, login="u", password=None, schema="d")
    assert url == f"{source_kind('mysql').driver}://u@h/d"
    assert parse_url(f"{conn_type}://u@h/d").drivername == source_kind("mysql").driver


def test_a_connection_url_in_the_tenant_file_says_what_to_write():
    with pytest.raises(ValidationError) as exc:
        SourceSpec.model_validate({"kind": "postgres", "connection": "postgres://u:pw@h/db"})
    message = str(exc.value)
    assert "{env: NAME}" in message and "{airflow_conn: ID}" in message
    assert "pw" not in message

"""Connection references resolve into the SQLAlchemy URLs the runner reads."""

from __future__ import annotations

import pytest

from dag_factory.secrets import SecretResolutionError, connection_url, resolve
from datakits.spec import ConnectionRef


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
    with pytest.raises(SecretResolutionError, match="env var SHOP_URL is not set on this worker"):
        resolve(ConnectionRef(env="SHOP_URL"))


def test_airflow_connection_from_env(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AIRFLOW_CONN_SHOP_WH", "postgres://app:secret@db:5433/wh")
    assert resolve(ConnectionRef(airflow_conn="shop_wh")) == (
        "postgresql+psycopg://app:secret@db:5433/wh"
    )
    with pytest.raises(SecretResolutionError, match="'nope' cannot be read"):
        resolve(ConnectionRef(airflow_conn="nope"))

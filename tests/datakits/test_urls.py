"""Connection URLs: default drivers and password-free rendering."""

from __future__ import annotations

import pytest

from datakits.urls import engine_url, parse_url, safe


@pytest.mark.parametrize(
    ("raw", "driver"),
    [
        ("postgres://u:p@h/db", "postgresql+psycopg"),
        ("postgresql://u:p@h/db", "postgresql+psycopg"),
        ("postgresql+psycopg2://u:p@h/db", "postgresql+psycopg2"),
        ("mysql://u:p@h/db", "mysql+pymysql"),
        ("sqlite:///tmp/x.db", "sqlite"),
        ("duckdb:///tmp/x.duckdb", "duckdb"),
    ],
)
def test_default_drivers(raw: str, driver: str) -> None:
    assert parse_url(raw).drivername == driver


def test_safe_hides_password() -> None:
    assert safe(parse_url("postgres://u:secret@h:5/db")) == "postgresql+psycopg://u:***@h:5/db"


def test_engine_url_is_ready_for_create_engine() -> None:
    assert engine_url("postgres://u@h/db").drivername == "postgresql+psycopg"

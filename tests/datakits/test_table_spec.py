"""TableSpec: load modes, cursor, key, lookback, NULL-cursor and drift policies, filters."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from pydantic import ValidationError

from datakits.spec import FilterOp, LoadMode, NullCursor, SchemaDrift, TableSpec


def _error(table: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as exc:
        TableSpec.model_validate({"name": "t", **table})
    return str(exc.value)


def test_defaults_are_a_full_refresh_that_evolves() -> None:
    table = TableSpec(name="t")
    assert table.mode is LoadMode.full_refresh
    assert (table.cursor, table.primary_key, table.lookback, table.filter) == (None, None, 0, ())
    assert table.null_cursor is NullCursor.fail
    assert table.schema_drift is SchemaDrift.evolve


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"mode": "incremental", "cursor": "u"}, "mode incremental needs `primary_key`"),
        ({"mode": "incremental", "primary_key": ["id"]}, "mode incremental needs `cursor`"),
        ({"mode": "append"}, "mode append needs `cursor`"),
        ({"cursor": "u"}, "are used by mode append or incremental, not full_refresh"),
        ({"lookback": 5}, "are used by mode append or incremental, not full_refresh"),
        (
            {"mode": "append", "cursor": "u", "lookback": "1h"},
            "`lookback` re-reads rows already loaded: it needs `primary_key`",
        ),
        (
            {"mode": "append", "cursor": "u", "null_cursor": "include"},
            "`null_cursor: include` re-reads rows with a NULL cursor every run: it needs",
        ),
        (
            {"mode": "incremental", "cursor": "u", "primary_key": ["id"], "columns": ["id"]},
            "cursor and primary_key columns must be among `columns`: add u",
        ),
        ({"primary_key": ["id", "id"]}, "primary_key lists a column twice"),
        ({"primary_key": []}, "at least 1 item"),
        ({"mode": "merge"}, "'full_refresh', 'append' or 'incremental'"),
        ({"null_cursor": "ignore"}, "'fail', 'include' or 'skip'"),
        ({"schema_drift": "allow"}, "'fail' or 'evolve'"),
        ({"mode": "append", "cursor": "u", "primary_key": ["i"], "lookback": -1}, "negative"),
        (
            {"mode": "append", "cursor": "u", "primary_key": ["i"], "lookback": "10 minutes"},
            "a whole number or a duration like 90s, 5m, 2h or 1d",
        ),
        ({"mode": "append", "cursor": "u", "primary_key": ["i"], "lookback": 1.5}, "lookback"),
        ({"cursor_column": "u"}, "Extra inputs are not permitted"),
    ],
)
def test_invalid_settings_are_explained(table: dict[str, Any], message: str) -> None:
    assert message in _error(table)


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"column": "x", "op": "like", "value": "a%"}, "'=', '!=', '<', '<=', '>', '>=', 'in'"),
        ({"column": "x", "op": "in", "value": "a"}, "filter `in` on x needs a non-empty list"),
        ({"column": "x", "op": "in", "value": []}, "filter `in` on x needs a non-empty list"),
        ({"column": "x", "op": "=", "value": [1]}, "filter `=` on x needs one scalar `value`"),
        ({"column": "x", "op": ">"}, "filter `>` on x needs one scalar `value`"),
        ({"column": "x", "op": "is_null", "value": 1}, "filter `is_null` on x takes no `value`"),
        ({"column": "", "op": "is_null"}, "String should have at least 1 character"),
        ({"column": "x", "op": "=", "value": 1, "sql": "1=1"}, "Extra inputs are not permitted"),
    ],
)
def test_invalid_filters_are_explained(rule: dict[str, Any], message: str) -> None:
    assert message in _error({"filter": [rule]})


def test_lookback_accepts_units_and_durations() -> None:
    base = {"name": "t", "mode": "append", "cursor": "u", "primary_key": ["id"]}
    assert TableSpec.model_validate({**base, "lookback": 300}).lookback == 300
    assert TableSpec.model_validate({**base, "lookback": "5m"}).lookback == dt.timedelta(minutes=5)
    assert TableSpec.model_validate({**base, "lookback": "2d"}).lookback == dt.timedelta(days=2)


def test_round_trips_through_the_runner_env_json() -> None:
    """The spec travels as JSON in RUNNER_SPEC: every new field must survive the trip."""
    table = TableSpec.model_validate(
        {
            "name": "orders",
            "mode": "incremental",
            "cursor": "updated_at",
            "primary_key": ["tenant_id", "order_id"],
            "lookback": "15m",
            "null_cursor": "include",
            "schema_drift": "fail",
            "filter": [
                {"column": "status", "op": "in", "value": ["open", "paid"]},
                {"column": "created_at", "op": ">=", "value": dt.date(2024, 1, 1)},
                {"column": "deleted_at", "op": "is_null"},
            ],
        }
    )
    text = table.model_dump_json(by_alias=True, exclude_defaults=True)
    assert '"lookback":"15m"' in text
    back = TableSpec.model_validate_json(text)
    assert back == table
    assert back.lookback == dt.timedelta(minutes=15)
    assert back.filter[0].op is FilterOp.in_ and back.filter[0].value == ("open", "paid")
    assert back.filter[1].value == dt.date(2024, 1, 1)

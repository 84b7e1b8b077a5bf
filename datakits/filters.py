"""Row filters: the structured `filter` of a table spec as SQLAlchemy Core conditions.

A filter is data (`column`, `op`, `value`), never SQL text: the column must exist in the
reflected source table (SQLAlchemy quotes it), the operator comes from a fixed set, and
the value is converted to the column's type and sent as a bound parameter. So no spec,
whoever writes it, can put SQL into a query.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa
from sqlalchemy import Column, ColumnElement, Table

from datakits.errors import ConfigError
from datakits.spec import FilterOp, RowFilter
from datakits.types import ColumnMapping, map_column

_COMPARE: dict[FilterOp, Callable[[Any, Any], ColumnElement[bool]]] = {
    FilterOp.eq: lambda c, v: c == v,
    FilterOp.ne: lambda c, v: c != v,
    FilterOp.lt: lambda c, v: c < v,
    FilterOp.le: lambda c, v: c <= v,
    FilterOp.gt: lambda c, v: c > v,
    FilterOp.ge: lambda c, v: c >= v,
}


def _coerce(value: Any, arrow_type: pa.DataType) -> Any:
    """A YAML/JSON filter value as the column's Python type; ValueError if it cannot be."""
    t = arrow_type
    if pa.types.is_boolean(t):
        if isinstance(value, bool):
            return value
    elif pa.types.is_integer(t):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif pa.types.is_floating(t) or pa.types.is_decimal(t):
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            return decimal.Decimal(value.strip())
    elif pa.types.is_timestamp(t):
        moment = value
        if isinstance(value, str):
            moment = dt.datetime.fromisoformat(value.strip())
        elif isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            moment = dt.datetime.combine(value, dt.time())
        if isinstance(moment, dt.datetime):
            if t.tz is not None and moment.tzinfo is None:
                return moment.replace(tzinfo=dt.UTC)  # as the loaded values: naive = UTC
            if t.tz is None and moment.tzinfo is not None:
                return moment.astimezone(dt.UTC).replace(tzinfo=None)
            return moment
    elif pa.types.is_date(t):
        if isinstance(value, dt.datetime):
            raise ValueError("a timestamp, the column is a date")
        if isinstance(value, dt.date):
            return value
        if isinstance(value, str):
            return dt.date.fromisoformat(value.strip())
    elif isinstance(value, str):
        return value
    raise ValueError(f"{type(value).__name__} does not fit")


def _value(table: str, rule: RowFilter, mapping: ColumnMapping, value: Any) -> Any:
    try:
        return _coerce(value, mapping.arrow_type)
    except (ValueError, decimal.InvalidOperation) as exc:
        raise ConfigError(
            f"filter on {table}.{rule.column}: value {value!r} does not fit the column, "
            f"loaded as {mapping.arrow_type} ({exc})"
        ) from None


#: How a source compares a column with a value in SQL: (expression, bound). The reader's
#: `cursor_order`: the plain column and value, or (SQLite) both through `julianday()`.
Order = Callable[[Column[Any], Any], tuple[Any, Any]]


def _plain(column: Column[Any], value: Any) -> tuple[Any, Any]:
    return column, value


def filter_conditions(
    source: Table, rules: Sequence[RowFilter], order: Order = _plain
) -> list[ColumnElement[bool]]:
    """One Core condition per rule (AND-ed by the caller); ConfigError for a bad rule.

    `order` compares like the watermark range does: on SQLite, timestamps are text in
    any ISO spelling, and `at >= '2024-01-02T10:00:00'` compared as text selected a row
    stored as `2024-01-02 09:00:00` (a space sorts before `T`).
    """
    conditions: list[ColumnElement[bool]] = []
    for rule in rules:
        if rule.column not in source.columns:
            names = ", ".join(c.name for c in source.columns)
            raise ConfigError(
                f"filter on source table {source.name}: no column {rule.column} (columns: {names})"
            )
        column = source.columns[rule.column]
        mapping = map_column(column.name, column.type, loose=False)
        if rule.op is FilterOp.is_null:
            conditions.append(column.is_(None))
        elif rule.op is FilterOp.not_null:
            conditions.append(column.is_not(None))
        elif rule.op is FilterOp.in_:
            assert isinstance(rule.value, tuple)
            pairs = [order(column, _value(source.name, rule, mapping, v)) for v in rule.value]
            expression = pairs[0][0] if pairs else column
            conditions.append(expression.in_([bound for _, bound in pairs]))
        else:
            expression, bound = order(column, _value(source.name, rule, mapping, rule.value))
            conditions.append(_COMPARE[rule.op](expression, bound))
    return conditions

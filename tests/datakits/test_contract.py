"""The runner contract: exit codes and which are retried, the result line, durations."""

from __future__ import annotations

import datetime as dt

import pytest
from pydantic import TypeAdapter, ValidationError

from datakits.contract import (
    Duration,
    ExitCode,
    ResultLineError,
    format_duration,
    is_permanent,
    parse_duration,
    parse_result,
)
from datakits.errors import ConfigError, LoadFailed, SourceUnavailable, WarehouseBusy
from datakits.spec import TableSpec


def test_only_permanent_failures_are_never_retried() -> None:
    assert [c for c in ExitCode if not c.retried] == [ExitCode.permanent]
    assert [c.value for c in ExitCode] == [0, 1, 2, 3, 4, 5]
    assert is_permanent(2) and not any(is_permanent(c) for c in (1, 3, 4, 5, 137, -9, None))


def test_the_runner_errors_carry_the_contract_codes() -> None:
    assert ConfigError.exit_code is ExitCode.permanent
    assert SourceUnavailable.exit_code is ExitCode.unreachable
    assert LoadFailed.exit_code is ExitCode.load_failed
    assert WarehouseBusy.exit_code is ExitCode.lock_timeout


RESULT = '{"status": "ok", "command": "extract", "seconds": 1.5, "rows": 3}'


@pytest.mark.parametrize(
    "output",
    [
        RESULT,
        RESULT + "\n\n",
        RESULT.encode(),
        f"noise\n{RESULT}\n",
        ["noise\n", RESULT + "\n", "  \n"],
    ],
)
def test_the_result_is_the_last_non_blank_stdout_line(output: object) -> None:
    assert parse_result(output) == {
        "status": "ok",
        "command": "extract",
        "seconds": 1.5,
        "rows": 3,
    }


@pytest.mark.parametrize("output", [None, "", "done", "[1]", '{"rows": 3}', f"{RESULT}\nbye"])
def test_anything_else_is_not_a_result(output: object) -> None:
    with pytest.raises(ResultLineError, match="last stdout line is not its JSON result"):
        parse_result(output)


@pytest.mark.parametrize(
    ("text", "seconds", "canonical"),
    [
        ("90s", 90, "90s"),
        ("120s", 120, "2m"),
        ("5m", 300, "5m"),
        ("2h", 7200, "2h"),
        ("1d", 86400, "1d"),
        (" 3m ", 180, "3m"),
    ],
)
def test_durations(text: str, seconds: int, canonical: str) -> None:
    assert parse_duration(text) == dt.timedelta(seconds=seconds)
    assert format_duration(parse_duration(text)) == canonical
    assert TypeAdapter(Duration).dump_python(parse_duration(text), mode="json") == canonical


@pytest.mark.parametrize("bad", ["5", "5 m", "1w", "-5m", "m"])
def test_bad_durations_say_what_to_write(bad: str) -> None:
    with pytest.raises(ValidationError, match="a duration like 90s, 5m, 2h or 1d"):
        TypeAdapter(Duration).validate_python(bad)
    # the load spec's lookback takes the same spelling (and whole numbers)
    with pytest.raises(ValidationError, match="a duration like 90s, 5m, 2h or 1d"):
        TableSpec(name="t", mode="append", cursor="c", primary_key=("id",), lookback=bad)

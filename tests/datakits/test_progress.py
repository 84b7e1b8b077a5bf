"""Progress: off a terminal, exactly one summary line on stderr and nothing on stdout."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest

from datakits.load import load_table
from datakits.progress import StderrProgress
from tests.datakits.conftest import make_spec


def test_non_tty_progress_prints_one_summary_line(
    make_source: Callable[[str], str],
    make_warehouse: Callable[[str], str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    stream = io.StringIO()
    spec = make_spec("sqlite", "duckdb", {"name": "sample"})
    with StderrProgress(stream) as progress:
        result = load_table(
            spec, spec.tables[0], make_source("sqlite"), make_warehouse("duckdb"), progress
        )
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("loaded 3 rows")
    assert result.batch_id in lines[0]
    assert capsys.readouterr().out == ""

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


def test_log_lines_every_interval() -> None:
    """Off a terminal, long loads still show life: one line per `interval` seconds."""
    every_batch, quiet = io.StringIO(), io.StringIO()
    for stream, interval in ((every_batch, 0.0), (quiet, 3600.0)):
        with StderrProgress(stream, interval=interval) as progress:
            progress.start("acme: t → bronze.t (full_refresh)")
            progress.advance(1_000, 10)
            progress.advance(500, 5)
            progress.finish("loaded 1,500 rows")
    lines = every_batch.getvalue().splitlines()
    assert [line.split(" rows,")[0] for line in lines[:2]] == [
        "acme: t → bronze.t (full_refresh): 1,000",
        "acme: t → bronze.t (full_refresh): 1,500",
    ]
    assert lines[0].endswith(" rows/s") and lines[2] == "loaded 1,500 rows"
    assert quiet.getvalue().splitlines() == ["loaded 1,500 rows"]


def test_terminal_gets_the_live_display_and_logs_do_not_import_rich() -> None:
    """On a terminal (a real pty) rich draws the live display; off one it is not loaded."""
    import os
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from datakits.progress import StderrProgress\n"
        "with StderrProgress(interval=None) as p:\n"
        "    p.start('t'); p.advance(5, 1); p.finish('done')\n"
        "print('rich' in sys.modules, file=sys.stderr)\n"
    )
    log = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert log.stderr.splitlines() == ["done", "False"]

    primary, secondary = os.openpty()
    try:
        subprocess.run([sys.executable, "-c", code], stderr=secondary, check=True, timeout=60)
        os.close(secondary)
        shown = b""
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # EIO: the child closed its end
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(primary)
    text = shown.decode(errors="replace")
    assert "done" in text and "True" in text
    assert "\x1b[" in text  # the live display's cursor control: rich drew on the terminal

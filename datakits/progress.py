"""Load progress on stderr: a live rich display on a terminal, one summary line otherwise.

stdout belongs to the runner's JSON result line (DESIGN.md, contract 4), so progress
never goes there. In Airflow or a container stderr is a log, not a terminal: a live
display would fill it with redraws, so it is disabled; instead one plain line (rows,
rows/s) is written every `interval` seconds of a long load, and the final summary line.
The total is left indeterminate: a `count(*)` would scan a large table once more just
to draw a bar.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import Protocol, Self, TextIO

from rich.console import Console
from rich.progress import (
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text


class LoadProgress(Protocol):
    """What a load reports; `load_table` calls these in order (advance once per batch)."""

    def start(self, label: str) -> None: ...

    def advance(self, rows: int, nbytes: int) -> None: ...

    def finish(self, summary: str) -> None: ...


class NullProgress:
    """Reports nothing: the default for library use and tests."""

    def start(self, label: str) -> None:
        pass

    def advance(self, rows: int, nbytes: int) -> None:
        pass

    def finish(self, summary: str) -> None:
        pass


class _RowRate(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} rows/s" if speed else "", style="progress.data.speed")


#: Seconds between two progress lines in a log (not a terminal).
DEFAULT_INTERVAL = 30.0


class StderrProgress:
    """Rich progress on stderr when it is a terminal; always one final summary line.

    Off a terminal, `advance` writes `<label>: <rows> rows, <rate> rows/s` when at least
    `interval` seconds passed since the last such line (0: after every batch; None:
    never). Use as a context manager so the live display is stopped (also on failure)
    before the runner prints its one-line error.
    """

    def __init__(
        self, stream: TextIO | None = None, interval: float | None = DEFAULT_INTERVAL
    ) -> None:
        self._stream = stream if stream is not None else sys.stderr
        console = Console(file=self._stream)
        self._log_lines = not console.is_terminal and interval is not None
        self._interval = interval or 0.0
        self._label = ""
        self._rows = 0
        self._last_line = 0.0
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TextColumn("{task.completed:,.0f} rows"),
            _RowRate(),
            TimeElapsedColumn(),
            console=console,
            disable=not console.is_terminal,
            transient=True,
        )
        self._task: int | None = None
        self._started = time.perf_counter()

    def __enter__(self) -> Self:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def start(self, label: str) -> None:
        self._started = self._last_line = time.perf_counter()
        self._label = label
        self._rows = 0
        self._task = self._progress.add_task(label, total=None)

    def advance(self, rows: int, nbytes: int) -> None:
        self._rows += rows
        if self._task is not None:
            self._progress.advance(self._task, rows)
        now = time.perf_counter()
        if self._log_lines and now - self._last_line >= self._interval:
            self._last_line = now
            elapsed = now - self._started
            rate = self._rows / elapsed if elapsed > 0 else float(self._rows)
            self._write(f"{self._label}: {self._rows:,} rows, {rate:,.0f} rows/s")

    def finish(self, summary: str) -> None:
        self._progress.stop()
        self._write(summary)

    def _write(self, line: str) -> None:
        # Plain write, not the console: a non-terminal console wraps at 80 columns.
        self._stream.write(line.replace("\n", " ") + "\n")
        self._stream.flush()

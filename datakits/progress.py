"""Load progress on stderr: a live rich display on a terminal, one summary line otherwise.

stdout belongs to the runner's JSON result line (DESIGN.md, contract 4), so progress
never goes there. In Airflow or a container stderr is a log, not a terminal: a live
display would fill it with redraws, so it is disabled and only the final summary line
is written. The total is left indeterminate: a `count(*)` would scan a large table once
more just to draw a bar.
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


class StderrProgress:
    """Rich progress on stderr when it is a terminal; always one final summary line.

    Use as a context manager so the live display is stopped (also on failure) before
    the runner prints its one-line error.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream if stream is not None else sys.stderr
        console = Console(file=self._stream)
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
        self._started = time.perf_counter()
        self._task = self._progress.add_task(label, total=None)

    def advance(self, rows: int, nbytes: int) -> None:
        if self._task is not None:
            self._progress.advance(self._task, rows)

    def finish(self, summary: str) -> None:
        self._progress.stop()
        # Plain write, not the console: a non-terminal console wraps at 80 columns.
        self._stream.write(summary.replace("\n", " ") + "\n")
        self._stream.flush()

"""Load progress on stderr: a live rich display on a terminal, one summary line otherwise.

stdout belongs to the runner's JSON result line (DESIGN.md, contract 4), so progress
never goes there. In Airflow or a container stderr is a log, not a terminal: a live
display would fill it with redraws, so it is disabled; instead one plain line (rows,
rows/s) is written every `interval` seconds of a long load, and the final summary line.

The total is the source's own row *estimate* when the caller has one (PostgreSQL's
`reltuples`, MySQL's `information_schema.tables.table_rows`, SQLite's `sqlite_stat1` after
an ANALYZE; see `SqlTableReader.row_estimate`), and only for a load that reads the whole
table: then the lines carry a percentage. Never a `count(*)`: it would scan a large table
once more just to draw a bar. An estimate may be off either way, so the percentage is
printed as `~N%` and the final summary line gives the real count.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, Self, TextIO

if TYPE_CHECKING:
    from rich.progress import Progress


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


def _live_display(stream: TextIO) -> Progress:
    """rich's live display on `stream` (a terminal).

    rich is imported here, not at the top: in Airflow and in containers stderr is a log,
    never a terminal, and a runner's start-up is then ~50 ms shorter without it.
    """
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

    class RowRate(ProgressColumn):
        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            return Text(f"{speed:,.0f} rows/s" if speed else "", style="progress.data.speed")

    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("{task.completed:,.0f} rows"),
        RowRate(),
        TimeElapsedColumn(),
        console=Console(file=stream),
        transient=True,
    )


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


#: Seconds between two progress lines in a log (not a terminal).
DEFAULT_INTERVAL = 30.0


def progress_text(rows: int, rate: float, total: int | None) -> str:
    """`1,200 rows, 400 rows/s` and, with an estimated total, `, ~12% of ~10,000 rows`."""
    text = f"{rows:,} rows, {rate:,.0f} rows/s"
    if total:
        text += f", ~{100 * rows / total:.0f}% of ~{total:,} rows"
    return text


class StderrProgress:
    """Rich progress on stderr when it is a terminal; always one final summary line.

    Off a terminal, `advance` writes `<label>: <rows> rows, <rate> rows/s` (and
    `, ~<pct>% of ~<total>` when `total` is known) when at least `interval` seconds passed
    since the last such line (0: after every batch; None: never). Use as a context manager
    so the live display is stopped (also on failure) before the runner prints its
    one-line error. `started_at` is the wall-clock time (UTC) of `start`: when the load
    began reading the source.
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        interval: float | None = DEFAULT_INTERVAL,
        total: int | None = None,
    ) -> None:
        self._stream = stream if stream is not None else sys.stderr
        terminal = _is_terminal(self._stream)
        self._log_lines = not terminal and interval is not None
        self._interval = interval or 0.0
        self._label = ""
        self._rows = 0
        self._last_line = 0.0
        self._progress: Any = _live_display(self._stream) if terminal else None
        self._task: Any = None
        self._started = time.perf_counter()
        self.total = total
        self.started_at: dt.datetime | None = None

    @property
    def total(self) -> int | None:
        """The estimated row count (None: unknown); set it before `start`."""
        return self._total

    @total.setter
    def total(self, value: int | None) -> None:
        self._total = value if value and value > 0 else None

    def __enter__(self) -> Self:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def start(self, label: str) -> None:
        self.started_at = dt.datetime.now(dt.UTC)
        self._started = self._last_line = time.perf_counter()
        self._label = label
        self._rows = 0
        if self._progress is not None:
            self._task = self._progress.add_task(label, total=self.total)

    def advance(self, rows: int, nbytes: int) -> None:
        self._rows += rows
        if self._task is not None:  # set by `start` on a terminal only
            self._progress.advance(self._task, rows)
        now = time.perf_counter()
        if self._log_lines and now - self._last_line >= self._interval:
            self._last_line = now
            elapsed = now - self._started
            rate = self._rows / elapsed if elapsed > 0 else float(self._rows)
            self._write(f"{self._label}: {progress_text(self._rows, rate, self.total)}")

    def finish(self, summary: str) -> None:
        if self._progress is not None:
            self._progress.stop()
        self._write(summary)

    def _write(self, line: str) -> None:
        # Plain write, not the console: a non-terminal console wraps at 80 columns.
        self._stream.write(line.replace("\n", " ") + "\n")
        self._stream.flush()

"""One DuckDB INSERT for a whole load, fed batch by batch: bounded memory in one transaction.

Why: DuckDB keeps per-append state of an open transaction in memory until it commits,
outside its buffer pool's `memory_limit`. A load that ran one `INSERT` per batch in its
transaction grew by ~110 MB per million rows (measured: 6.4M rows, +730 MB), so a big
table could not be loaded atomically in bounded memory. A *single* INSERT that scans an
Arrow stream is written by DuckDB's bulk path instead and stays flat (same 6.4M rows:
+230 MB, most of it the buffer pool), and the load keeps its one transaction.

How: the INSERT runs on a background thread, scanning a `RecordBatchReader` whose batches
come from a small queue; the load's loop pushes into the queue (`__call__`), then
`close` ends the stream and waits for the INSERT. DuckDB may pull the stream from any of
its threads, which is why the source is never read from inside the stream: the load's
own thread reads it, and only finished Arrow batches cross over.

While the INSERT runs, nothing else may use the connection: the thread starts with the
first batch (after the load's catalog queries) and is joined by `close` or `abort`.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterator

import pyarrow as pa

#: Batches in flight between the load's thread and DuckDB: bounds memory, lets both work.
_DEPTH = 2
_END = object()
_ABORT = object()


class StreamAborted(Exception):
    """Raised into DuckDB's scan when the load stops early (its own error wins)."""


class StreamingInsert:
    """`write(batch)` for the load's loop; one INSERT reading all batches as one stream.

    `execute(view, reader)` registers `reader` as `view` and runs the INSERT from it; it
    is called once, on the background thread.
    """

    def __init__(self, execute: Callable[[pa.RecordBatchReader], None]) -> None:
        self._execute = execute
        self._queue: queue.Queue[object] = queue.Queue(maxsize=_DEPTH)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._done = False

    def _stream(self) -> Iterator[pa.RecordBatch]:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if item is _ABORT:
                raise StreamAborted("the load stopped before the end of its rows")
            assert isinstance(item, pa.RecordBatch)
            yield item

    def _run(self, schema: pa.Schema) -> None:
        try:
            self._execute(pa.RecordBatchReader.from_batches(schema, self._stream()))
        except BaseException as exc:  # reported to the load's thread by write/close
            self._error = exc

    def __call__(self, batch: pa.RecordBatch) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, args=(batch.schema,), name="duckdb-insert", daemon=True
            )
            self._thread.start()
        while True:
            self._raise_if_failed()
            try:
                self._queue.put(batch, timeout=0.2)
                return
            except queue.Full:
                continue

    def _raise_if_failed(self) -> None:
        if self._thread is not None and not self._thread.is_alive():
            self._done = True
            if self._error is not None:
                raise self._error
            raise RuntimeError("the DuckDB insert ended before the end of the rows")

    def close(self) -> None:
        """End the stream and wait for the INSERT; its error, if any, is raised here."""
        if self._done:
            return
        self._done = True
        if self._thread is None:
            return
        # Never a blocking put: an INSERT that died with the queue full reads no more,
        # and `close` would wait forever for room instead of raising its error.
        while self._thread.is_alive():
            try:
                self._queue.put(_END, timeout=0.2)
                break
            except queue.Full:
                continue
        self._thread.join()
        if self._error is not None:
            raise self._error

    def abort(self) -> None:
        """Stop the INSERT (the load failed or was interrupted); never raises."""
        if self._done or self._thread is None:
            self._done = True
            return
        self._done = True
        while True:  # make room, then tell the stream to fail
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        with contextlib.suppress(queue.Full):
            self._queue.put(_ABORT, timeout=1)
        self._thread.join(timeout=30)

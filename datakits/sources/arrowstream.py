"""Arrow stream plumbing for the fast readers: a prefetching thread and exact re-batching.

A fast reader (PostgreSQL COPY through ADBC) decodes in C++ with the GIL released, so
reading the next batch can overlap with the writer appending the previous one: on a
two-core machine that overlap is most of the speed. `prefetch` runs the producing
iterator in a thread with a small bounded queue, so memory stays at a few batches
whatever the table's size. `rebatch` turns the driver's byte-sized batches into
`batch_size`-row ones, which is what the table spec promises.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

import pyarrow as pa

T = TypeVar("T")

#: How often a blocked producer checks whether the consumer went away (seconds).
_POLL = 0.1


class _Done:
    """End of stream marker (a class, so no item can be mistaken for it)."""


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def prefetch(items: Iterable[T], depth: int = 2) -> Iterator[T]:
    """Iterate `items` in a background thread, at most `depth` items ahead of the consumer.

    An exception raised by the producer is re-raised in the consumer, at the point of
    the stream where it happened. When the consumer stops early (an error in the
    writer, `close()` of this generator), the producer stops after its current item.
    """
    channel: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item: object) -> bool:
        while not stop.is_set():
            try:
                channel.put(item, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not offer(item):
                    return
            offer(_Done())
        except BaseException as exc:  # handed to the consumer, which re-raises it
            offer(_Failed(exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="datakits-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = channel.get()
            if isinstance(item, _Done):
                break
            if isinstance(item, _Failed):
                raise item.error
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        # Wait briefly so the producer releases its connection before the caller closes
        # the source; a producer stuck in a network read is a daemon and dies with us.
        thread.join(timeout=5)


def rebatch(
    batches: Iterable[pa.RecordBatch], size: int, max_bytes: int | None = None
) -> Iterator[pa.RecordBatch]:
    """Re-cut a stream of record batches into batches of exactly `size` rows (last: fewer).

    With `max_bytes`, `size` is lowered (once, from the first batch's row width) so that
    a batch holds about that many bytes: wide rows then travel in smaller batches and the
    memory in flight stays bounded whatever the table. Slices are zero-copy; only a batch
    that spans two input batches is concatenated.
    """
    pending: list[pa.RecordBatch] = []
    held = 0
    sized = max_bytes is None
    for batch in batches:
        if not sized and batch.num_rows:
            width = max(1, batch.nbytes // batch.num_rows)
            size = max(1, min(size, max_bytes // width))  # type: ignore[operator]
            sized = True
        offset = 0
        while offset < batch.num_rows:
            take = min(size - held, batch.num_rows - offset)
            pending.append(batch.slice(offset, take))
            held += take
            offset += take
            if held == size:
                yield _join(pending)
                pending, held = [], 0
    if held:
        yield _join(pending)


def _join(pieces: list[pa.RecordBatch]) -> pa.RecordBatch:
    return pieces[0] if len(pieces) == 1 else pa.concat_batches(pieces)

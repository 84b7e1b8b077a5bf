"""Lakehouse bronze writer: each bronze table is a Delta table on S3-compatible storage.

Why Delta Lake (the `deltalake` package, delta-rs) and not Iceberg (`pyiceberg`):

* a Delta table is self-describing files under one prefix: the transaction log
  (`_delta_log/`) is the catalog, so no catalog server (Hive, REST, Glue, a SQL
  catalog) has to run beside MinIO or S3; pyiceberg needs one to commit atomically;
* delta-rs commits with S3 conditional writes (`If-None-Match`, supported by S3, MinIO
  and the test server): two writers of one version cannot both win, without DynamoDB;
* it writes from Arrow batches, merges by key (`DeltaTable.merge`), evolves schemas
  (`schema_mode="merge"`) and stores free-form metadata in each commit
  (`CommitProperties.custom_metadata`) — all that a load needs, in one commit;
* dbt-duckdb reads it through the same package (its plugin mechanism), and DuckDB or
  Spark read it natively where their extensions can be downloaded.

Layout and isolation: a table lives at `s3://<bucket>/<tenant>/<bronze schema>/<table>`.
The bucket comes from the warehouse connection (a secret reference the tenant's own
connection resolves to); the prefix is derived from the tenant id, never written in the
tenant file, so a tenant file cannot point a load at another tenant's prefix, and a URL
that names more than a bucket is refused.

The warehouse URL (`RUNNER_WAREHOUSE_URL`), resolved from `{env: NAME}` or
`{airflow_conn: ID}` like every other connection:

    s3://ACCESS_KEY:SECRET_KEY@HOST:PORT/BUCKET?region=us-east-1&secure=false&duckdb=/path/x.duckdb

`HOST:PORT` is the endpoint (MinIO, moto, ...; leave it out for AWS S3), `secure=false`
means plain HTTP, `region` defaults to us-east-1, `duckdb` is the file dbt builds silver
and gold in (`runners.dbt_profile`). Key and secret are URL-quoted like any password and
appear in no message (`safe`).

One commit per load (the guarantees the SQL warehouses give, by other means):

* the rows are staged on local disk (an Arrow IPC file: memory stays flat), then go to
  the table in exactly one Delta commit: a full refresh is an overwrite commit, append a
  blind append (or, with a primary key, a merge inserting only absent keys), incremental
  a merge by primary key. A load killed before that commit leaves the previous version:
  readers only see versions whose log entry exists;
* the watermark, batch id, mode and row count are the commit's own metadata, so data
  and watermark cannot disagree; the next load reads them back from the latest load
  commit (`history`), and the Delta log is the load audit;
* lock: the commit must be the version right after the one the load read
  (`max_commit_retries=0`): if another load of the table committed in between, this one
  fails with `WarehouseBusy` (exit 5, retried) and writes nothing — two loads never
  interleave, and a watermark is never computed from a stale version;
* drift: the shared policy (`datakits.drift`) decides on Delta's column types: a new
  column is added in the same commit (`schema_mode="merge"` / `merge_schema`); a type
  change old rows cannot take fails before anything is written.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import queue
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import URL

from datakits.bronze import BATCH_ID, LOADED_AT, CatalogType
from datakits.drift import Evolution
from datakits.errors import ConfigError, LoadFailed, SourceUnavailable, WarehouseBusy
from datakits.messages import one_line
from datakits.spec import Schemas
from datakits.urls import parse_url, safe
from datakits.watermarks import Sighting, StoredWatermark, decode_pending, encode_pending

#: Commit metadata keys (`CommitProperties.custom_metadata`) of a datakits load.
META_PREFIX = "datakits."
META_BATCH = "datakits.batch_id"
META_WATERMARK = "datakits.watermark"
DEFAULT_REGION = "us-east-1"
#: Load commits looked at first when searching the latest one (then the whole log).
_HISTORY_PAGE = 20


@dataclass(frozen=True)
class LakeLocation:
    """Where a tenant's lake is and how to reach it; `storage_options` holds the secret."""

    bucket: str
    endpoint: str | None
    region: str
    access_key: str | None
    secret_key: str | None
    secure: bool
    #: The DuckDB file dbt builds silver and gold in (None: dbt is not run with it).
    duckdb_path: str | None

    @property
    def root(self) -> str:
        return f"s3://{self.bucket}"

    def storage_options(self) -> dict[str, str]:
        """delta-rs (object_store) options: path-style addressing, conditional-put commits."""
        options = {
            "AWS_REGION": self.region,
            "AWS_S3_ADDRESSING_STYLE": "path",
            "AWS_VIRTUAL_HOSTED_STYLE_REQUEST": "false",
            "conditional_put": "etag",
        }
        if self.endpoint:
            options["AWS_ENDPOINT_URL"] = self.endpoint
        if not self.secure:
            options["AWS_ALLOW_HTTP"] = "true"
        if self.access_key:
            options["AWS_ACCESS_KEY_ID"] = self.access_key
        if self.secret_key:
            options["AWS_SECRET_ACCESS_KEY"] = self.secret_key
        return options


_BUCKET_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789.-")


def lake_location(raw: str | URL) -> LakeLocation:
    """Parse `s3://KEY:SECRET@host:port/bucket?region=..&secure=..&duckdb=..` (see module)."""
    url = parse_url(raw)
    if url.drivername != "s3":
        raise ConfigError(
            f"the lakehouse warehouse URL {safe(url)} must start with s3:// "
            "(s3://KEY:SECRET@host:port/bucket?region=...)"
        )
    bucket = url.database or ""
    if not bucket:
        raise ConfigError(f"the lakehouse warehouse URL {safe(url)} names no bucket (…/BUCKET)")
    if "/" in bucket or not (3 <= len(bucket) <= 63) or set(bucket) - _BUCKET_CHARS:
        raise ConfigError(
            f"the lakehouse warehouse URL {safe(url)} must name one bucket and nothing more: "
            "the prefix under it is the tenant id, chosen by the runner"
        )
    unknown = set(url.query) - {"region", "secure", "duckdb"}
    if unknown:
        raise ConfigError(
            f"the lakehouse warehouse URL {safe(url)} has unknown parameter(s) "
            f"{', '.join(sorted(unknown))} (known: region, secure, duckdb)"
        )

    def query(name: str) -> str | None:
        value = url.query.get(name)
        return value if isinstance(value, str) else None

    secure = (query("secure") or "true").lower() not in ("false", "0", "no")
    endpoint = None
    if url.host:
        port = f":{url.port}" if url.port else ""
        endpoint = f"{'https' if secure else 'http'}://{url.host}{port}"
    return LakeLocation(
        bucket=bucket,
        endpoint=endpoint,
        region=query("region") or DEFAULT_REGION,
        access_key=unquote(url.username) if url.username else None,
        secret_key=url.password if url.password else None,
        secure=secure,
        duckdb_path=query("duckdb"),
    )


def table_path(tenant: str, bronze: str, table: str) -> str:
    """The key prefix of a bronze table under the bucket: derived, never configured."""
    return f"{tenant}/{bronze}/{table}"


# --- types ---------------------------------------------------------------------------------


def _delta_type(t: pa.DataType) -> pa.DataType:
    """The Arrow type a column is written as: one Delta has (timestamps in microseconds)."""
    if pa.types.is_timestamp(t):
        return pa.timestamp("us", tz="UTC" if t.tz else None)
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return pa.binary()
    if pa.types.is_time(t) or pa.types.is_null(t):
        return pa.string()
    if pa.types.is_uint64(t):
        return pa.decimal128(20, 0)
    if pa.types.is_unsigned_integer(t):
        return {8: pa.int16(), 16: pa.int32(), 32: pa.int64()}[t.bit_width]
    if pa.types.is_dictionary(t):
        return _delta_type(t.value_type)
    return t


def _delta_schema(schema: pa.Schema) -> pa.Schema:
    return pa.schema([pa.field(f.name, _delta_type(f.type), nullable=True) for f in schema])


def _as_json(array: pa.Array) -> pa.Array:
    """A list column as JSON text, as the earlier path wrote lists (compact, UTF-8);
    values JSON has no type for (decimals, timestamps) as their text."""
    return pa.array(
        [
            None
            if v is None
            else json.dumps(v, separators=(",", ":"), ensure_ascii=False, default=str)
            for v in array.to_pylist()
        ],
        pa.string(),
    )


def _conformed(reader: pa.RecordBatchReader, types: dict[str, pa.DataType]) -> pa.RecordBatchReader:
    """`reader` with the columns named in `types` converted to those types."""
    schema = pa.schema(
        [pa.field(f.name, types.get(f.name, f.type), f.nullable) for f in reader.schema]
    )

    def convert(name: str, column: pa.Array) -> pa.Array:
        target = types.get(name)
        if target is None:
            return column
        text = pa.types.is_string(target) or pa.types.is_large_string(target)
        if text and (pa.types.is_list(column.type) or pa.types.is_large_list(column.type)):
            return _as_json(column).cast(target)
        return column.cast(target)

    def batches() -> Iterator[pa.RecordBatch]:
        for batch in reader:
            columns = [
                convert(n, c) for n, c in zip(batch.schema.names, batch.columns, strict=True)
            ]
            yield pa.RecordBatch.from_arrays(columns, schema=schema)

    return pa.RecordBatchReader.from_batches(schema, batches())


def _catalog(schema: Any) -> dict[str, CatalogType]:
    """Source columns (load columns left out) as Delta types, comparable across loads."""
    from deltalake import Schema

    delta = Schema.from_arrow(pa.schema(schema))
    out: dict[str, CatalogType] = {}
    for field in delta.fields:
        if field.name in (LOADED_AT, BATCH_ID):
            continue
        name = str(getattr(field.type, "type", field.type))
        if name.startswith("decimal("):
            precision, scale = name[len("decimal(") : -1].split(",")
            out[field.name] = CatalogType("decimal", int(precision), int(scale))
        else:
            out[field.name] = CatalogType(name)
    return out


def _scrub(exc: BaseException, *secrets: str | None) -> str:
    text = str(exc) or type(exc).__name__
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return one_line(text)


# --- streamed Parquet files (full refresh, append, first load) ------------------------------

#: Parquet options of the files a load writes: pyarrow's defaults, spelled out so that the
#: benchmark baseline (`adbc-parquet-s3`) writes with exactly the same ones — snappy
#: pages, dictionary encoding, statistics, format 2.6, 1 Mi-row row groups — except that
#: a decimal of up to 18 digits is stored as the INT32/INT64 the Parquet format names for
#: it (what Spark writes by default) rather than as fixed-length bytes: encoding the
#: benchmark table's numeric(12, 2) took ~0.05 s less CPU per million rows, and Delta,
#: DuckDB and Spark read either.
PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "snappy",
    "use_dictionary": True,
    "write_statistics": True,
    "version": "2.6",
    "store_decimal_as_integer": True,
}
#: Rows per row group (pyarrow's default) and per data file (a new file after this many).
ROW_GROUP_ROWS = 1024 * 1024
FILE_ROWS = 8 * ROW_GROUP_ROWS
#: Arrow bytes buffered before a row group is written, whatever its rows: the source's
#: ~4 MB batches as row groups of their own made files 8% larger (a dictionary and
#: statistics per column per batch) and slower to read. 16 MB, not more: a row group is
#: encoded and uploaded while the next is read, so a larger one leaves a longer tail.
ROW_GROUP_BYTES = 16 * 1024 * 1024
#: Batches queued for the file-writing thread: memory stays at a few batches.
_WRITE_DEPTH = 4


#: Bytes gathered before one write to the object store (its part size: one part each).
_UPLOAD_CHUNK = 5 * 1024 * 1024
#: Chunks waiting for the uploader thread: at most ~20 MB of encoded Parquet in memory.
_UPLOAD_DEPTH = 4


class _Upload:
    """A Parquet writer's output, uploaded by a thread of its own through delta-rs'
    object store (one object, multipart).

    Why not pyarrow's S3 file system for the data files: on the benchmark's S3 server
    the AWS C++ SDK's multipart uploads (10 MB parts, checksummed chunked bodies) cost
    the server ~0.37 s of CPU per 35 MB, delta-rs' `object_store` (5 MB parts) ~0.22 s;
    the load also skips the AWS SDK's start-up and talks to the lake through one client
    (`storage_options`) for data and log alike.

    Why a thread: the object store's `write` sends a part before it returns (~50 ms per
    5 MB here, part of it holding the GIL), so writing from the encoding thread made
    encode and upload take turns, and the load's tail was the last row groups' upload.
    Here `write` only gathers what it is given into 5 MB chunks (a native
    `BufferedOutputStream` in front already hands it 5 MB at a time) and queues them (at
    most `_UPLOAD_DEPTH`: memory stays bounded, a slow server slows the encoder down);
    the uploader thread sends them while the next row group is encoded. An upload error
    is raised by the next `write` or by `close`. Measured (300k rows, 2 busy cores,
    5 runs each): writing straight to the store 2.8-4.0 s whole process, this 2.1-3.7 s.
    """

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._buffer = bytearray()
        self._queue: queue.Queue[bytes | None] = queue.Queue(_UPLOAD_DEPTH)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._send, name="datakits-lake-upload", daemon=True)
        self._thread.start()
        self.size = 0
        self.closed = False

    def _send(self) -> None:
        """The uploader thread: each chunk to the stream, in order; stops at None."""
        while (chunk := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._stream.write(chunk)
                except BaseException as exc:  # re-raised in the writing thread
                    self._error = exc

    def _check(self) -> None:
        if self._error is not None:
            raise self._error

    def write(self, data: Any) -> int:
        self._check()
        view = memoryview(data)
        self._buffer += view
        self.size += view.nbytes
        if len(self._buffer) >= _UPLOAD_CHUNK:
            self._queue.put(bytes(self._buffer))
            self._buffer.clear()
        return view.nbytes

    def flush(self) -> None:
        """Chunks are queued as they fill; nothing to push early."""

    def tell(self) -> int:
        return self.size

    def writable(self) -> bool:
        return True

    def close(self) -> None:
        """Send the rest and complete the object (the upload's errors raised here)."""
        if self.closed:
            return
        self.closed = True
        if self._buffer:
            self._queue.put(bytes(self._buffer))
            self._buffer.clear()
        self._queue.put(None)
        self._thread.join()
        self._check()
        self._stream.close()

    def abort(self) -> None:
        """Stop the uploader without completing the object (a failed load)."""
        if not self.closed:
            self.closed = True
            self._error = self._error or RuntimeError("upload aborted")
            self._queue.put(None)
            self._thread.join()


def _object_store(location: LakeLocation) -> Any:
    """delta-rs' object store on the bucket (the options its commits use)."""
    from deltalake._internal import DeltaFileSystemHandler

    return DeltaFileSystemHandler(location.root, location.storage_options())


def _file_system(location: LakeLocation) -> Any:
    """pyarrow's S3 file system on the lake (path-style, as MinIO and the tests use):
    reading staged files back (a keyed append's checks)."""
    from pyarrow import fs

    return fs.S3FileSystem(
        access_key=location.access_key,
        secret_key=location.secret_key,
        endpoint_override=(location.endpoint or "").split("://", 1)[-1] or None,
        scheme="https" if location.secure else "http",
        region=location.region,
        force_virtual_addressing=False,
    )


def _stats(meta: Any, schema: pa.Schema) -> str:
    """Delta `stats` of one written file, from its Parquet footer (no second read).

    numRecords and nullCount for every column; min/max only for integers and dates,
    whose Parquet statistics are exact and print the way Delta expects (strings would
    need truncation rules, timestamps millisecond rounding: left out, which only costs
    data skipping on them).
    """
    nulls: dict[str, int] = {}
    lows: dict[str, Any] = {}
    highs: dict[str, Any] = {}
    for i, field in enumerate(schema):
        if pa.types.is_nested(field.type):
            continue
        ranged = pa.types.is_integer(field.type) or pa.types.is_date32(field.type)
        total, low, high, ok = 0, None, None, True
        for g in range(meta.num_row_groups):
            st = meta.row_group(g).column(i).statistics
            if st is None or not st.has_null_count:
                ok = False
                break
            total += st.null_count
            if ranged and st.has_min_max:
                low = st.min if low is None else min(low, st.min)
                high = st.max if high is None else max(high, st.max)
        if not ok:
            continue
        nulls[field.name] = total
        if ranged and low is not None:
            lows[field.name] = low.isoformat() if isinstance(low, dt.date) else low
            highs[field.name] = high.isoformat() if isinstance(high, dt.date) else high
    return json.dumps(
        {"numRecords": meta.num_rows, "minValues": lows, "maxValues": highs, "nullCount": nulls}
    )


class _StreamedSink:
    """Batches straight into Parquet files under the table's prefix, from a writer thread.

    Nothing here is visible to readers: a Delta reader sees only files that a commit in
    `_delta_log/` adds. The files become the load's data when `LakehouseSession.commit`
    adds them (one commit); a failed or killed load leaves them unreferenced, and the
    session deletes them when it can (`VACUUM` removes any a SIGKILL left behind).
    A writer thread encodes and an uploader thread per open file (`_Upload`, delta-rs'
    object store) sends while the load reads the next batches: pyarrow and delta-rs
    release the GIL, so reading, encoding and uploading overlap. Files are read back
    (a keyed append's checks) through pyarrow's S3 file system.
    """

    def __init__(
        self,
        file_system: Callable[[], Any],
        object_store: Callable[[], Any],
        directory: str,
        source: pa.Schema,
        target: pa.Schema,
        stamp: Any,
    ) -> None:
        self.rows = 0
        #: made by the writer thread on the first batch (client start-up overlaps the read)
        self._file_system = file_system
        self._object_store = object_store
        self._directory = directory  # bucket/prefix, for pyarrow
        self._key_prefix = directory.split("/", 1)[1]  # the same under the bucket's root
        self._source = source
        self._target = target
        self.schema = target.append(pa.field(LOADED_AT, pa.timestamp("us", tz="UTC"))).append(
            pa.field(BATCH_ID, pa.string())
        )
        self._loaded_at = pa.scalar(stamp.loaded_at, pa.timestamp("us", tz="UTC"))
        self._batch_id = pa.scalar(stamp.batch_id, pa.string())
        self._made: tuple[pa.Array, pa.Array] = (
            pa.repeat(self._loaded_at, 0),
            pa.repeat(self._batch_id, 0),
        )
        self._prefix = f"part-{stamp.batch_id}"
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="datakits-lake-write")
        self._pending: deque[Future[None]] = deque()
        self._writer: Any = None
        self._sink: Any = None
        self._stream: _Upload | None = None
        self._file_rows = 0
        self._buffer: list[pa.RecordBatch] = []
        self._buffer_rows = 0
        self._buffer_bytes = 0
        self._open_name: str | None = None
        #: (relative path, size, Parquet footer) of each finished file.
        self.files: list[tuple[str, int, Any]] = []
        self.written: list[str] = []
        self.closed = False

    def _fs(self) -> Any:
        return self._file_system()

    def _load_columns(self, rows: int) -> tuple[pa.Array, pa.Array]:
        """`_loaded_at` and `_batch_id` for a batch of `rows`: zero-copy slices of two
        columns made once (the same values in every batch), grown when a longer batch
        comes, instead of allocating and filling two columns per batch."""
        loaded_at, batch_id = self._made
        if len(loaded_at) < rows:
            loaded_at = pa.repeat(self._loaded_at, rows)
            batch_id = pa.repeat(self._batch_id, rows)
            self._made = (loaded_at, batch_id)
        return loaded_at.slice(0, rows), batch_id.slice(0, rows)

    # --- in the writer thread --------------------------------------------------------------

    def _write(self, batch: pa.RecordBatch) -> None:
        """Buffer `batch`; write a row group when the buffer is full."""
        self._buffer.append(batch)
        self._buffer_rows += batch.num_rows
        self._buffer_bytes += batch.nbytes
        if self._buffer_rows >= ROW_GROUP_ROWS or self._buffer_bytes >= ROW_GROUP_BYTES:
            self._flush()

    def _flush(self) -> None:
        import pyarrow.parquet as pq

        if not self._buffer:
            return
        if self._writer is None:
            name = f"{self._prefix}-{len(self.files):05d}.snappy.parquet"
            self.written.append(name)
            key = f"{self._key_prefix}/{name}"
            self._stream = _Upload(self._object_store().open_output_stream(key))
            # pyarrow writes each page to its sink; a native buffer in front of the Python
            # one takes the GIL once per 5 MB instead of once per page (a convoy behind
            # the reading thread's Python made encoding a row group take ~5x its CPU)
            raw = pa.PythonFile(self._stream, mode="w")
            self._sink = pa.BufferedOutputStream(raw, buffer_size=_UPLOAD_CHUNK)
            self._writer = pq.ParquetWriter(self._sink, self.schema, **PARQUET_OPTIONS)
            self._open_name = name
        rows = pa.Table.from_batches(self._buffer, schema=self.schema)
        self._buffer, self._buffer_rows, self._buffer_bytes = [], 0, 0
        self._writer.write_table(rows, row_group_size=ROW_GROUP_ROWS)
        self._file_rows += rows.num_rows
        if self._file_rows >= FILE_ROWS:
            self._finish_file()

    def _finish_file(self) -> None:
        if self._buffer:
            self._flush()
        if self._writer is None:
            return
        self._writer.close()
        meta = self._writer.writer.metadata
        assert self._sink is not None and self._stream is not None
        self._sink.close()  # the last bytes into the upload, which completes the object
        size = self._stream.size
        assert self._open_name is not None
        self.files.append((self._open_name, size, meta))
        self._writer = self._sink = self._stream = self._open_name = None
        self._file_rows = 0

    # --- in the load's thread -------------------------------------------------------------

    def write(self, batch: pa.RecordBatch) -> None:
        if not batch.schema.equals(self._source):
            raise LoadFailed(f"batch schema {batch.schema} differs from {self._source}")
        if not batch.num_rows or self.closed:
            return
        cast = batch.cast(self._target) if not self._target.equals(self._source) else batch
        n = cast.num_rows
        columns = [*cast.columns, *self._load_columns(n)]
        out = pa.RecordBatch.from_arrays(columns, schema=self.schema)
        while len(self._pending) >= _WRITE_DEPTH:
            self._pending.popleft().result()  # re-raises the thread's error here
        self._pending.append(self._pool.submit(self._write, out))
        self.rows += n

    def close(self) -> None:
        """The last batch was handed over: wait for the writes, finish the open file."""
        if self.closed:
            return
        self.closed = True
        try:
            while self._pending:
                self._pending.popleft().result()
            self._pool.submit(self._finish_file).result()
        finally:
            self._pool.shutdown(wait=True)

    def stop(self) -> None:
        """No more writes (the load failed or ended): cancel what is queued, join the thread."""
        if not self.closed:
            self.closed = True
            for future in self._pending:
                future.cancel()
        self._pool.shutdown(wait=True)
        if self._stream is not None:  # also when `close` failed half-way
            self._stream.abort()  # the open file is never completed: no object

    def discard(self) -> None:
        """Delete the files written (best effort: unreferenced files are never read)."""
        for name in self.written:
            with contextlib.suppress(Exception):
                self._object_store().delete_file(f"{self._key_prefix}/{name}")
        self.written = []

    def actions(self) -> list[Any]:
        from deltalake.transaction import AddAction

        now = int(time.time() * 1000)
        return [
            AddAction(name, size, {}, now, True, _stats(meta, self.schema))
            for name, size, meta in self.files
        ]

    def reader(self) -> pa.RecordBatchReader:
        """The written rows read back (a merge needs them as its source)."""
        import pyarrow.dataset as ds

        paths = [f"{self._directory}/{name}" for name, _, _ in self.files]
        dataset = ds.dataset(paths, schema=self.schema, format="parquet", filesystem=self._fs())
        return pa.RecordBatchReader.from_batches(self.schema, dataset.to_batches())

    def key_columns(self, keys: Sequence[str]) -> pa.Table:
        import pyarrow.dataset as ds

        paths = [f"{self._directory}/{name}" for name, _, _ in self.files]
        dataset = ds.dataset(paths, schema=self.schema, format="parquet", filesystem=self._fs())
        return dataset.to_table(columns=list(keys))


# --- the load ------------------------------------------------------------------------------


class _StagedSink:
    """Batches to a local Arrow IPC file, with the load columns added: memory stays flat."""

    def __init__(self, path: Path, source: pa.Schema, stamp: Any) -> None:
        self.rows = 0
        self.path = path
        self._source = source
        self._target = _delta_schema(source)
        self.schema = self._target.append(pa.field(LOADED_AT, pa.timestamp("us", tz="UTC"))).append(
            pa.field(BATCH_ID, pa.string())
        )
        self._loaded_at = pa.scalar(stamp.loaded_at, pa.timestamp("us", tz="UTC"))
        self._batch_id = pa.scalar(stamp.batch_id, pa.string())
        self._writer: pa.ipc.RecordBatchFileWriter | None = pa.ipc.new_file(str(path), self.schema)
        self.closed = False

    def write(self, batch: pa.RecordBatch) -> None:
        if not batch.schema.equals(self._source):
            raise LoadFailed(f"batch schema {batch.schema} differs from {self._source}")
        if not batch.num_rows or self._writer is None:
            return
        cast = batch.cast(self._target) if not self._target.equals(self._source) else batch
        n = cast.num_rows
        columns = [
            *cast.columns,
            pa.repeat(self._loaded_at, n),
            pa.repeat(self._batch_id, n),
        ]
        self._writer.write_batch(pa.RecordBatch.from_arrays(columns, schema=self.schema))
        self.rows += n

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self.closed = True

    def abort(self) -> None:
        self.close()

    def reader(self) -> pa.RecordBatchReader:
        """The staged rows as a stream (memory-mapped: not read into memory at once)."""
        source = pa.ipc.open_file(pa.memory_map(str(self.path)))
        batches = (source.get_batch(i) for i in range(source.num_record_batches))
        return pa.RecordBatchReader.from_batches(self.schema, batches)

    def key_columns(self, keys: Sequence[str]) -> pa.Table:
        source = pa.ipc.open_file(pa.memory_map(str(self.path)))
        return source.read_all().select(list(keys))


class LakehouseSession:
    """One load of one Delta table: the same steps `datakits.load` drives on SQL warehouses.

    Nothing is written to the table until the session ends without error; then the one
    commit carries data, schema change, watermark and audit.
    """

    def __init__(self, writer: LakehouseWriter, table: str, stamp: Any, tmp: Path) -> None:
        self.writer = writer
        self.table = table
        self.stamp = stamp
        self.target = writer.target(table)
        self.uri = (
            f"{writer.location.root}/{table_path(stamp.tenant, writer.schemas.bronze, table)}"
        )
        self._tmp = tmp
        self._delta: Any = None  # the DeltaTable as of the version this load read
        self._sink: _StagedSink | None = None
        self._op: tuple[str, Sequence[str]] | None = None
        self._evolve = False
        self._keep: dict[str, pa.DataType] = {}
        #: Staged columns written in bronze's (older) type instead (`restage`).
        self._conform: dict[str, pa.DataType] = {}
        self._metadata: dict[str, str] = {}
        #: The streamed files are the table's now: never delete them.
        self._committed = False
        self._open()

    # --- what the lake holds --------------------------------------------------------------

    def _open(self) -> None:
        from deltalake import DeltaTable
        from deltalake.exceptions import TableNotFoundError

        try:
            self._delta = DeltaTable(self.uri, storage_options=self.writer.storage_options)
        except TableNotFoundError:
            self._delta = None
        except Exception as exc:  # unreachable endpoint, refused credentials, no bucket
            raise SourceUnavailable(
                f"cannot reach the lakehouse warehouse {self.writer.safe_url} for "
                f"{self.target}: {self.writer.scrub(exc)}"
            ) from None

    def bronze_columns(self) -> dict[str, CatalogType] | None:
        if self._delta is None:
            return None
        return _catalog(self._delta.schema().to_arrow())

    def _load_commits(self) -> Iterator[dict[str, Any]]:
        """Commit infos of datakits loads, newest first."""
        assert self._delta is not None
        seen = 0
        for limit in (_HISTORY_PAGE, None):
            history = self._delta.history(limit)
            for info in history[seen:]:
                if META_BATCH in info:
                    yield info
            if limit is None or len(history) < limit:
                return
            seen = len(history)

    def watermark(self) -> StoredWatermark | None:
        """The watermark in the latest load commit (None: none, or a full refresh's)."""
        if self._delta is None:
            return None
        for info in self._load_commits():
            raw = info.get(META_WATERMARK)
            if raw is None:
                return None
            value = json.loads(raw)
            return StoredWatermark(
                cursor_column=value["cursor_column"],
                value=value["value"],
                pending=decode_pending(value.get("pending")),
            )
        return None

    # --- staging --------------------------------------------------------------------------

    def stage(self, schema: pa.Schema) -> _StagedSink | _StreamedSink:
        """Where the rows go while the load reads them (see `_StreamedSink`).

        Straight into Parquet files under the table's prefix, unless the load will merge
        into an existing table (`incremental`): a merge reads its source twice, which a
        local Arrow IPC file serves at disk speed.
        """
        if self._delta is not None and self.stamp.mode == "incremental":
            self._sink = _StagedSink(self._tmp / "staged.arrow", schema, self.stamp)
            return self._sink
        target = _delta_schema(schema)
        if self._delta is not None and self.stamp.mode != "full_refresh":
            # appended files must hold the table's own types (drift allowed the change)
            bronze = pa.schema(self._delta.schema().to_arrow())
            names = set(bronze.names)
            target = pa.schema([bronze.field(f.name) if f.name in names else f for f in target])
        self._sink = _StreamedSink(
            self.writer.file_system,
            self.writer.object_store,
            self._directory,
            schema,
            target,
            self.stamp,
        )
        return self._sink

    @property
    def _directory(self) -> str:
        path = table_path(self.stamp.tenant, self.writer.schemas.bronze, self.table)
        return f"{self.writer.location.bucket}/{path}"

    @property
    def _staged(self) -> _StagedSink | _StreamedSink:
        if self._sink is None:
            raise RuntimeError("call stage() first")
        self._sink.close()
        return self._sink

    def staged_columns(self) -> dict[str, CatalogType]:
        if self._sink is None:
            raise RuntimeError("call stage() first")
        return _catalog(self._sink.schema)

    def abort(self) -> None:
        """End of the session, committed or not: stop the sink, and delete the streamed
        files no commit references (a merge wrote files of its own; a failed load none)."""
        if isinstance(self._sink, _StreamedSink):
            self._sink.stop()
            if not self._committed:
                self._sink.discard()
        elif self._sink is not None:
            self._sink.abort()

    def check_keys(self, keys: Sequence[str]) -> None:
        """Fail the load when the staged rows have a NULL or duplicated primary key."""
        rows = self._staged.key_columns(keys)
        nulls = [k for k in keys if rows.column(k).null_count]
        if nulls:
            raise LoadFailed(
                f"cannot load {self.target} (bronze unchanged): primary key column(s) "
                f"{', '.join(nulls)} have NULL values"
            )
        counts = rows.group_by(list(keys)).aggregate([([], "count_all")])
        dup = counts.filter(pc.greater(counts["count_all"], 1))
        if dup.num_rows:
            example = {k: dup.column(k)[0].as_py() for k in keys}
            raise LoadFailed(
                f"cannot load {self.target} (bronze unchanged): {dup.num_rows} primary key "
                f"value(s) occur more than once, e.g. {example}"
            )

    # --- into bronze (recorded now, carried out by the one commit) ------------------------

    def evolve(self, evolution: Evolution) -> None:
        if evolution.widen:
            raise LoadFailed(
                f"cannot widen {', '.join(evolution.widen)} of {self.target} (bronze "
                "unchanged): Delta tables keep their decimal types; reload the table "
                "(--full-refresh) to take the new type"
            )
        self._evolve = bool(evolution.add)

    def restage(self, evolution: Evolution) -> None:
        """Write the columns bronze keeps in its own type (`datakits.drift`) in that type.

        A column whose staged type differs from the Delta table's although the drift
        was accepted: a type bronze holds exactly (float into double: Arrow's cast is
        exact) or a string column (`Evolution.as_text`: lists as JSON, the rest cast).
        """
        if self._delta is None:
            return
        bronze = pa.schema(self._delta.schema().to_arrow())
        staged = self._staged.schema
        self._conform = {
            f.name: bronze.field(f.name).type
            for f in staged
            if f.name in bronze.names and not bronze.field(f.name).type.equals(f.type)
        }

    def replace(self, keep: dict[str, CatalogType], keys: Sequence[str]) -> None:
        if keep and self._delta is not None:
            bronze = pa.schema(self._delta.schema().to_arrow())
            self._keep = {name: bronze.field(name).type for name in keep}
        self._op = ("overwrite", ())

    def merge(self, keys: Sequence[str]) -> None:
        self._op = ("merge", tuple(keys))

    def insert_absent(self, keys: Sequence[str]) -> None:
        self._op = ("insert_absent", tuple(keys))

    def insert_all(self) -> None:
        self._op = ("append", ())

    # --- metadata -------------------------------------------------------------------------

    def save_watermark(
        self, cursor_column: str, value: str | None, pending: tuple[Sighting, ...] = ()
    ) -> None:
        stored: dict[str, Any] = {"cursor_column": cursor_column, "value": value}
        if pending:  # absent in commits made before the integer horizon: read as none
            stored["pending"] = encode_pending(pending)
        self._metadata[META_WATERMARK] = json.dumps(stored)

    def clear_watermark(self) -> None:
        self._metadata.pop(META_WATERMARK, None)

    def audit(self, rows: int) -> None:
        self._metadata.update(
            {
                META_BATCH: self.stamp.batch_id,
                "datakits.tenant": self.stamp.tenant,
                "datakits.mode": self.stamp.mode,
                "datakits.rows": str(rows),
                "datakits.started_at": self.stamp.loaded_at.isoformat(),
                "datakits.finished_at": dt.datetime.now(dt.UTC).isoformat(),
            }
        )

    # --- the commit -----------------------------------------------------------------------

    def _data(self) -> pa.RecordBatchReader:
        reader = self._staged.reader()
        if self._conform:
            reader = _conformed(reader, self._conform)
        if not self._keep:
            return reader
        schema = reader.schema
        for name, type_ in self._keep.items():
            schema = schema.append(pa.field(name, type_))

        def batches() -> Iterator[pa.RecordBatch]:
            for batch in reader:
                extra = [pa.nulls(batch.num_rows, t) for t in self._keep.values()]
                yield pa.RecordBatch.from_arrays([*batch.columns, *extra], schema=schema)

        return pa.RecordBatchReader.from_batches(schema, batches())

    def _commit_files(self, sink: _StreamedSink, kind: str, props: Any) -> None:
        """Add the streamed files in one commit: create, overwrite or append."""
        from deltalake import Schema
        from deltalake.transaction import create_table_with_add_actions

        schema = sink.schema
        for name, type_ in self._keep.items():
            schema = schema.append(pa.field(name, type_))  # absent from the files: NULL
        actions = sink.actions()
        if self._delta is None:
            # a first load: another first load may not also create it (mode="error")
            create_table_with_add_actions(
                self.uri,
                Schema.from_arrow(schema),
                actions,
                mode="error",
                storage_options=self.writer.storage_options,
                commit_properties=props,
            )
        elif kind == "overwrite":
            self._delta.create_write_transaction(
                actions, "overwrite", schema, commit_properties=props
            )
        else:
            bronze = pa.schema(self._delta.schema().to_arrow())
            new = [f for f in schema if f.name not in bronze.names]
            if new and not self._evolve:
                raise ConfigError(
                    f"the source's columns cannot be appended to {self.target} (bronze "
                    f"unchanged): {', '.join(f.name for f in new)} not in bronze"
                )
            self._delta.create_write_transaction(
                actions, "append", pa.schema([*bronze, *new]), commit_properties=props
            )
        self._committed = True

    def commit(self) -> None:
        """The load's one Delta commit, at the version right after the one it read."""
        from deltalake import CommitProperties, write_deltalake

        if self._op is None:
            return
        kind, keys = self._op
        props = CommitProperties(custom_metadata=self._metadata, max_commit_retries=0)
        sink = self._staged
        if isinstance(sink, _StreamedSink) and kind in ("overwrite", "append"):
            self._commit_files(sink, kind, props)
            return
        table = self._delta if self._delta is not None else self.uri
        options = None if self._delta is not None else self.writer.storage_options
        if self._delta is None or kind in ("overwrite", "append"):
            schema_mode = (
                "overwrite" if kind == "overwrite" else ("merge" if self._evolve else None)
            )
            mode = "overwrite" if kind == "overwrite" else "append"
            if self._delta is None:
                mode = "error"  # a first load: another first load may not also create it
                schema_mode = None
            write_deltalake(
                table,
                self._data(),
                mode=mode,  # type: ignore[arg-type]
                schema_mode=schema_mode,  # type: ignore[arg-type]
                storage_options=options,
                commit_properties=props,
            )
            return
        predicate = " AND ".join(f'target."{k}" = source."{k}"' for k in keys)
        merger = self._delta.merge(
            self._data(),
            predicate,
            source_alias="source",
            target_alias="target",
            merge_schema=self._evolve,
            commit_properties=props,
        )
        if kind == "merge":
            merger = merger.when_matched_update_all()
        merger.when_not_matched_insert_all().execute()


class LakehouseWriter:
    """Bronze writer of `warehouse.kind: lakehouse` (see the module docstring)."""

    #: `datakits.writers.writer_for` passes these; a conflict never waits (exit 5).
    def __init__(
        self, url: str | URL, schemas: Schemas, *, lock_timeout: float | None = None
    ) -> None:
        self.url = parse_url(url)
        self.location = lake_location(self.url)
        self.schemas = schemas
        self.lock_timeout = lock_timeout
        self.safe_url = safe(self.url)
        self.storage_options = self.location.storage_options()
        self._fs: Any = None
        self._store: Any = None

    def scrub(self, exc: BaseException) -> str:
        return _scrub(exc, self.location.secret_key, self.location.access_key)

    def target(self, table: str) -> str:
        return f"{self.schemas.bronze}.{table}"

    def file_system(self) -> Any:
        """The lake as a pyarrow file system (made once: it holds a connection pool)."""
        if self._fs is None:
            self._fs = _file_system(self.location)
        return self._fs

    def object_store(self) -> Any:
        """The lake as delta-rs' object store (made once, in the writer thread)."""
        if self._store is None:
            self._store = _object_store(self.location)
        return self._store

    @contextmanager
    def session(self, table: str, stamp: Any) -> Iterator[LakehouseSession]:
        """The load of `table`: staged locally, committed once when the block succeeds."""
        from deltalake.exceptions import CommitFailedError, DeltaError, SchemaMismatchError

        with tempfile.TemporaryDirectory(prefix=f"datakits-lake-{table}-") as tmp:
            session = LakehouseSession(self, table, stamp, Path(tmp))
            try:
                yield session
                session.commit()
            except CommitFailedError as exc:
                raise WarehouseBusy(
                    f"another load of {self.target(table)} committed first ({session.uri}, "
                    f"Delta version conflict: {self.scrub(exc)}): nothing written; retry"
                ) from None
            except SchemaMismatchError as exc:
                raise ConfigError(
                    f"the source's columns cannot be written to {self.target(table)} "
                    f"(bronze unchanged): {self.scrub(exc)}"
                ) from None
            except (DeltaError, OSError) as exc:
                if "already exists" in str(exc):  # two first loads: the other one won
                    raise WarehouseBusy(
                        f"another load of {self.target(table)} created it first: nothing "
                        "written; retry"
                    ) from None
                raise LoadFailed(
                    f"loading {self.target(table)} failed (bronze unchanged): {self.scrub(exc)}"
                ) from None
            finally:
                session.abort()

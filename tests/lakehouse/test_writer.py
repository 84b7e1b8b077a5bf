"""The lakehouse writer against a real S3-compatible server (moto_server over HTTP).

Each load is one Delta commit: the table's version history and each commit's metadata
are read back with `deltalake`, and bronze is compared with the SQLite source.
"""

from __future__ import annotations

import datetime as dt
import signal
import sqlite3
import threading
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from datakits.errors import ConfigError, LoadFailed, SourceUnavailable, WarehouseBusy
from datakits.load import load_table
from datakits.spec import LoadSpec
from datakits.writers import lakehouse
from datakits.writers.base import LoadStamp
from datakits.writers.lakehouse import LakehouseWriter, lake_location
from devtools.postgres import PostgresCluster
from devtools.s3 import SECRET_KEY, S3Server
from tests.datakits.bronze_state import execute
from tests.datakits.runner_proc import run_extract, start_extract
from tests.lakehouse.conftest import make_source, make_spec

INCREMENTAL = {"mode": "incremental", "cursor": "updated", "primary_key": ["id"]}


def delta(url: str, tenant: str = "lake", table: str = "events") -> DeltaTable:
    location = lake_location(url)
    return DeltaTable(
        f"{location.root}/{tenant}/bronze/{table}", storage_options=location.storage_options()
    )


def rows(table: DeltaTable) -> list[tuple[object, ...]]:
    data = table.to_pyarrow_table().sort_by("id")
    return list(zip(*(data[c].to_pylist() for c in ("id", "note", "updated")), strict=True))


def source_rows(path: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT id, note, updated FROM events ORDER BY id").fetchall()


def test_each_load_is_one_commit_with_its_watermark(tmp_path: Path, lake_url: str) -> None:
    db = tmp_path / "src.db"
    src = make_source(db, 500)
    spec = make_spec(**INCREMENTAL)
    first = load_table(spec, spec.tables[0], src, lake_url)
    assert (first.rows, first.watermark) == (500, 500)
    assert delta(lake_url).version() == 0
    # rows 491..520 change or arrive: merged by key in one commit, watermark read back
    src = make_source(db, 30, start=491)
    second = load_table(spec, spec.tables[0], src, lake_url)
    table = delta(lake_url)
    assert table.version() == 1
    assert rows(table) == source_rows(db)
    latest = table.history(1)[0]
    assert latest["operation"] == "MERGE"
    assert latest["datakits.batch_id"] == second.batch_id
    assert latest["datakits.watermark"] == '{"cursor_column": "updated", "value": "520"}'
    assert second.watermark == 520 and second.rows < 30  # only rows from the watermark on
    # a full refresh is an overwrite commit and clears the watermark
    full = make_spec()
    load_table(full, full.tables[0], src, lake_url)
    table = delta(lake_url)
    assert table.history(1)[0]["operation"] == "WRITE"
    assert "datakits.watermark" not in table.history(1)[0]
    assert rows(table) == source_rows(db)


def test_prefix_is_the_tenant_id_and_the_url_names_only_a_bucket(
    tmp_path: Path, s3_server: S3Server, bucket: str, lake_url: str
) -> None:
    src = make_source(tmp_path / "src.db", 10)
    for tenant in ("alpha", "beta"):
        spec = make_spec(tenant)
        load_table(spec, spec.tables[0], src, lake_url)
    keys = {
        o["Key"].split("/_delta_log")[0]
        for o in s3_server.client().list_objects_v2(Bucket=bucket)["Contents"]
        if "/_delta_log/" in o["Key"]
    }
    assert keys == {"alpha/bronze/events", "beta/bronze/events"}
    spec = make_spec("alpha")
    with pytest.raises(ConfigError, match="one bucket and nothing more"):
        load_table(spec, spec.tables[0], src, s3_server.warehouse_url(f"{bucket}/beta"))


def test_sigkill_mid_load_leaves_the_previous_version(tmp_path: Path, lake_url: str) -> None:
    db = tmp_path / "src.db"
    src = make_source(db, 2_000)
    spec = make_spec(batch_size=100, **INCREMENTAL)
    assert run_extract(spec, "events", src, lake_url).returncode == 0
    before = rows(delta(lake_url))
    make_source(db, 60_000, start=1_500)
    proc = start_extract(spec, "events", src, lake_url, RUNNER_PROGRESS_INTERVAL="0")
    assert proc.stderr is not None
    for _ in range(3):  # the third batch is staged: the load is mid-way
        proc.stderr.readline()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    table = delta(lake_url)
    assert (table.version(), rows(table)) == (0, before)
    # the next run converges from the watermark the surviving commit holds
    done = run_extract(spec, "events", src, lake_url)
    assert done.returncode == 0, done.stderr
    assert rows(delta(lake_url)) == source_rows(db)


def test_a_load_that_lost_the_commit_race_writes_nothing_and_exits_5(
    tmp_path: Path, lake_url: str
) -> None:
    """Load A reads version 0; load B commits version 1 meanwhile; A must not commit."""
    src = make_source(tmp_path / "src.db", 50)
    spec = make_spec(mode="append", cursor="updated")
    load_table(spec, spec.tables[0], src, lake_url)
    writer = LakehouseWriter(lake_url, spec.warehouse.schemas)
    stamp = LoadStamp("lake", "events", "append", "a" * 32, dt.datetime.now(dt.UTC))
    with pytest.raises(WarehouseBusy) as busy, writer.session("events", stamp) as session:
        assert session.watermark() is not None  # A planned from version 0
        make_source(tmp_path / "src.db", 5, start=51)
        load_table(spec, spec.tables[0], src, lake_url)  # B commits version 1
        bronze = pa.schema(delta(lake_url, "lake").schema().to_arrow())
        sink = session.stage(pa.schema([f for f in bronze if not f.name.startswith("_")]))
        sink.close()
        session.insert_all()
        session.audit(0)
    assert busy.value.exit_code == 5
    table = delta(lake_url)
    assert table.version() == 1 and len(rows(table)) == 55


def test_drift_new_column_evolves_incompatible_type_fails(tmp_path: Path, lake_url: str) -> None:
    db = tmp_path / "src.db"
    src = make_source(db, 20)
    spec = make_spec(**INCREMENTAL)
    load_table(spec, spec.tables[0], src, lake_url)
    with sqlite3.connect(db) as conn:
        conn.execute("ALTER TABLE events ADD COLUMN tag TEXT")
        conn.execute("UPDATE events SET tag = 'x', updated = updated + 100 WHERE id = 3")
    load_table(spec, spec.tables[0], src, lake_url)
    table = delta(lake_url)
    names = [f.name for f in table.schema().fields]
    assert "tag" in names and table.version() == 1
    data = table.to_pyarrow_table().sort_by("id")
    assert data["tag"].to_pylist()[2] == "x" and data["tag"].null_count == 19
    # `amount` becomes text at the source: old rows cannot take it → refused, unchanged
    # (the reverse, a text column whose source became a number, takes the numbers as text)
    with sqlite3.connect(db) as conn:
        conn.execute("ALTER TABLE events RENAME TO old")
        conn.execute(
            "CREATE TABLE events (id INTEGER PRIMARY KEY, amount TEXT, "
            "note TEXT, updated INTEGER NOT NULL, tag INTEGER)"
        )
        conn.execute("INSERT INTO events SELECT id, amount, note, updated + 1000, 7 FROM old")
    with pytest.raises(LoadFailed, match="incompatible type change"):
        load_table(spec, spec.tables[0], src, lake_url)
    assert delta(lake_url).version() == 1


def test_unreachable_lake_is_exit_3_and_never_shows_the_secret(
    tmp_path: Path, s3_server: S3Server, bucket: str
) -> None:
    src = make_source(tmp_path / "src.db", 5)
    spec = make_spec()
    bad = S3Server(port=1).warehouse_url(bucket)  # nothing listens on port 1
    result = run_extract(spec, "events", src, bad)
    assert result.returncode == 3, result.stderr
    quoted = bad.split(":")[2].split("@")[0]
    for secret in (SECRET_KEY, quoted):
        assert secret not in result.stderr + result.stdout
    with pytest.raises(SourceUnavailable):
        load_table(spec, spec.tables[0], src, bad)


def _data_files(s3_server: S3Server, bucket: str, prefix: str = "lake/bronze/events/") -> set[str]:
    listing = s3_server.client().list_objects_v2(Bucket=bucket, Prefix=prefix)
    return {
        o["Key"].removeprefix(prefix)
        for o in listing.get("Contents", [])
        # pyarrow leaves a directory marker ("…/events/") when it deletes a file
        if "/_delta_log/" not in f"/{o['Key']}" and not o["Key"].endswith("/")
    }


def _files(table: DeltaTable) -> set[str]:
    return {uri.rsplit("/", 1)[-1] for uri in table.file_uris()}


def test_full_refresh_streams_its_files_and_a_failed_one_leaves_none(
    tmp_path: Path, s3_server: S3Server, bucket: str, lake_url: str
) -> None:
    """A full refresh commits the Parquet files it streamed while reading (no staging
    copy): the table then references exactly the files under its prefix. A load that
    fails after streaming (here: its key check) commits nothing and deletes its files."""
    db = tmp_path / "src.db"
    src = make_source(db, 300)
    spec = make_spec(primary_key=["note"], batch_size=100)
    load_table(spec, spec.tables[0], src, lake_url)
    table = delta(lake_url)
    assert table.history(1)[0]["operation"] == "CREATE TABLE"  # a first load creates it
    assert _data_files(s3_server, bucket) == _files(table)
    stats = pa.table(table.get_add_actions(flatten=True)).to_pydict()
    assert stats["num_records"] == [300] and stats["min.id"] == [1] and stats["max.id"] == [300]
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE events SET note = 'same' WHERE id IN (7, 8)")
    with pytest.raises(LoadFailed, match="more than once"):
        load_table(spec, spec.tables[0], src, lake_url)
    assert delta(lake_url).version() == 0
    assert _data_files(s3_server, bucket) == _files(table)


def test_a_load_of_several_files_and_upload_chunks_commits_every_row(
    tmp_path: Path, s3_server: S3Server, bucket: str, lake_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Streamed files are uploaded in chunks by a thread of their own (`_Upload`); with
    limits small enough to give several files, row groups and chunks per file, each file
    arrives whole and the one commit holds every row exactly once."""
    monkeypatch.setattr(lakehouse, "FILE_ROWS", 600)
    monkeypatch.setattr(lakehouse, "ROW_GROUP_BYTES", 4096)
    monkeypatch.setattr(lakehouse, "_UPLOAD_CHUNK", 8192)
    db = tmp_path / "src.db"
    src = make_source(db, 2000)
    spec = make_spec(batch_size=100)
    load_table(spec, spec.tables[0], src, lake_url)
    table = delta(lake_url)
    assert len(_files(table)) >= 3 and _data_files(s3_server, bucket) == _files(table)
    assert sum(pa.table(table.get_add_actions(flatten=True))["num_records"].to_pylist()) == 2000
    assert rows(table) == source_rows(db)


def test_a_failed_upload_fails_the_load_and_leaves_the_previous_version(
    tmp_path: Path, lake_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The uploader thread's error (here the real server's: the files go to a bucket that
    does not exist) fails the load in the loading thread: nothing is committed, the table
    keeps its version, and no thread is left waiting."""
    db = tmp_path / "src.db"
    src = make_source(db, 200)
    spec = make_spec(batch_size=100)
    load_table(spec, spec.tables[0], src, lake_url)
    gone = lakehouse.LakeLocation(**{**vars(lake_location(lake_url)), "bucket": "no-such-bucket"})
    real = lakehouse._object_store
    monkeypatch.setattr(lakehouse, "_object_store", lambda _: real(gone))
    with pytest.raises(LoadFailed, match="bronze unchanged"):
        load_table(spec, spec.tables[0], src, lake_url)
    assert delta(lake_url).version() == 0
    assert rows(delta(lake_url)) == source_rows(db)
    assert not [t for t in threading.enumerate() if t.name == "datakits-lake-upload"]


def test_full_refresh_takes_the_sources_new_types(tmp_path: Path, lake_url: str) -> None:
    """The overwrite commit carries the new schema: a column that changed type is the new
    type, a column gone from the source stays (NULL) as the drift policy keeps it."""
    db = tmp_path / "src.db"
    src = make_source(db, 20)
    spec = make_spec()
    load_table(spec, spec.tables[0], src, lake_url)
    with sqlite3.connect(db) as conn:
        conn.execute("ALTER TABLE events RENAME TO old")
        conn.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, note INTEGER, updated INTEGER)")
        conn.execute("INSERT INTO events SELECT id, id * 2, updated FROM old")
    load_table(spec, spec.tables[0], src, lake_url)
    table = delta(lake_url)
    data = table.to_pyarrow_table().sort_by("id")
    assert data.schema.field("note").type == pa.int64()
    assert data["note"].to_pylist()[:3] == [2, 4, 6] and data["amount"].null_count == 20


def test_append_with_a_key_inserts_only_absent_keys_and_leaves_no_staged_file(
    tmp_path: Path, s3_server: S3Server, bucket: str, lake_url: str
) -> None:
    """An append with a primary key streams its rows, then merges them (insert of absent
    keys) reading them back: the merge's own files are the table's, the streamed ones go."""
    db = tmp_path / "src.db"
    src = make_source(db, 100)
    spec = make_spec(mode="append", cursor="updated", primary_key=["id"])
    load_table(spec, spec.tables[0], src, lake_url)
    with sqlite3.connect(db) as conn:  # a changed row with a new cursor: append keeps the old
        conn.execute("UPDATE events SET note = 'changed', updated = 200 WHERE id = 5")
    make_source(db, 10, start=101)  # cursor 101..110: new keys
    second = load_table(spec, spec.tables[0], src, lake_url)
    table = delta(lake_url)
    assert table.history(1)[0]["operation"] == "MERGE"  # rows read: 5, 100 (the mark), 101-110
    data = rows(table)
    assert len(data) == 110 and data[4][1] == "note 5"
    assert _data_files(s3_server, bucket) >= _files(table)
    staged = {f for f in _data_files(s3_server, bucket) if second.batch_id in f}
    assert staged == set()


def test_delta_bronze_from_before_native_types_takes_the_next_load(
    pg_cluster: PostgresCluster, lake_url: str, request: pytest.FixtureRequest
) -> None:
    """A Delta table written when `real` was double and arrays/money were text (the
    earlier path): the next incremental load writes its rows in those types."""
    import hashlib

    from deltalake import CommitProperties, write_deltalake

    name = (
        "lkold_" + hashlib.sha1(request.node.nodeid.encode(), usedforsecurity=False).hexdigest()[:8]
    )
    source = pg_cluster.create_database(name)
    execute(source, "CREATE TABLE ev (id bigint PRIMARY KEY, ver bigint NOT NULL, f4 real, "
            "ints int[], cash money)", "INSERT INTO ev VALUES (1, 1, 0.1, '{1,NULL}', 2.5), "
            "(3, 3, NULL, NULL, NULL)")  # fmt: skip
    spec = LoadSpec.model_validate(
        {
            "tenant": "lake",
            "source": {"kind": "postgres", "connection": {"env": "SRC"}},
            "warehouse": {"kind": "lakehouse", "connection": {"env": "WH"}},
            "tables": [{"name": "ev", **INCREMENTAL, "cursor": "ver"}],
        }
    )
    load_table(spec, spec.tables[0], source, lake_url)
    table = delta(lake_url, table="ev")
    meta = {k: str(v) for k, v in table.history(1)[0].items() if k.startswith("datakits.")}
    data = table.to_pyarrow_table().sort_by("id")
    old = (
        data.set_column(2, "f4", data["f4"].cast(pa.float64()))
        .set_column(3, "ints", pa.array(["[1,null]", None], pa.string()))
        .set_column(4, "cash", pa.array(["$2.50", None], pa.string()))
    )
    write_deltalake(table.table_uri, old, mode="overwrite", schema_mode="overwrite",
                    storage_options=lake_location(lake_url).storage_options(),
                    commit_properties=CommitProperties(custom_metadata=meta))  # fmt: skip
    execute(source, "INSERT INTO ev VALUES (2, 5, 0.25, '{4,5}', -7.25)")

    load_table(spec, spec.tables[0], source, lake_url)

    after = delta(lake_url, table="ev").to_pyarrow_table().sort_by("id")
    assert after.schema.field("f4").type == pa.float64()
    assert after.schema.field("ints").type == pa.string()
    got = after.select(["id", "f4", "ints", "cash"]).to_pylist()
    assert [tuple(r.values()) for r in got] == [
        (1, 0.10000000149011612, "[1,null]", "$2.50"),
        (2, 0.25, "[4,5]", "-7.25"),
        (3, None, None, None),
    ]


def test_decimals_are_exact_in_delta_stored_as_the_integers_parquet_names(
    pg_cluster: PostgresCluster, lake_url: str, request: pytest.FixtureRequest
) -> None:
    """numeric(12, 2) goes into the files as INT64 (precision <= 18: what Parquet names
    for it, and what Spark writes), numeric(38, 10) as fixed-length bytes; deltalake and
    DuckDB read both back exactly, extremes and NULLs included."""
    import decimal
    import hashlib

    import duckdb
    import pyarrow.parquet as pq

    name = (
        "lkdec_" + hashlib.sha1(request.node.nodeid.encode(), usedforsecurity=False).hexdigest()[:8]
    )
    source = pg_cluster.create_database(name)
    execute(source, "CREATE TABLE money (id int PRIMARY KEY, small numeric(12, 2), "
            "big numeric(38, 10))", "INSERT INTO money VALUES (1, 9999999999.99, "
            "1234567890123456789012345678.0123456789), (2, -9999999999.99, -0.0000000001), "
            "(3, 0.01, NULL), (4, NULL, 0)")  # fmt: skip
    spec = LoadSpec.model_validate(
        {
            "tenant": "lake",
            "source": {"kind": "postgres", "connection": {"env": "SRC"}},
            "warehouse": {"kind": "lakehouse", "connection": {"env": "WH"}},
            "tables": [{"name": "money"}],
        }
    )
    load_table(spec, spec.tables[0], source, lake_url)

    table = delta(lake_url, table="money")
    expected = [
        (
            1,
            decimal.Decimal("9999999999.99"),
            decimal.Decimal("1234567890123456789012345678.0123456789"),
        ),
        (2, decimal.Decimal("-9999999999.99"), decimal.Decimal("-0.0000000001")),
        (3, decimal.Decimal("0.01"), None),
        (4, None, decimal.Decimal("0E-10")),
    ]
    data = table.to_pyarrow_table(columns=["id", "small", "big"]).sort_by("id")
    assert data.schema.field("small").type == pa.decimal128(12, 2)
    assert [tuple(r.values()) for r in data.to_pylist()] == expected
    assert duckdb.sql("SELECT id, small, big FROM data ORDER BY id").fetchall() == expected

    location = lake_location(lake_url)
    files = lakehouse._file_system(location)
    (path,) = table.file_uris()
    with files.open_input_file(path.split("://", 1)[1]) as handle:
        columns = {c.name: c.physical_type for c in pq.ParquetFile(handle).schema}
    assert (columns["small"], columns["big"]) == ("INT64", "FIXED_LEN_BYTE_ARRAY")

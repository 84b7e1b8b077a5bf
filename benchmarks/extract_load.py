"""Extract-load benchmark: our `runner extract` against the COPY limit and the usual tools.

    .venv/bin/python benchmarks/extract_load.py --rows 1000000 [--pg-url URL] [--repeat 2]

Creates the benchmark table (bigint key, int, text status, numeric(12,2), char(3), two
timestamptz with an index on the update time, a ~40-character text, a ~100-byte jsonb)
in a PostgreSQL it starts (or the one `--pg-url` points at: it creates the databases
`el_src` and `el_wh` there), then times, for PostgreSQL → PostgreSQL and
PostgreSQL → DuckDB:

* ours: a whole `runner extract` process (start-up and imports included), as an
  orchestrator runs it; its peak RSS is the child's, read with `wait4`;
* the limit: psycopg `COPY … TO STDOUT (FORMAT BINARY)` streamed into
  `COPY … FROM STDIN (FORMAT BINARY)`;
* dlt's `sql_table` with its pyarrow and connectorx backends and parquet loader files
  (its fastest configurations), and its default configuration;
* pandas `read_sql` + `to_sql` on a 100,000-row slice, scaled to the table's size;
* into DuckDB also: connectorx → Arrow → DuckDB, the ADBC driver's record-batch reader
  streamed into DuckDB, and `COPY … (FORMAT CSV)` through a temporary file into
  DuckDB's CSV reader;
* PostgreSQL → lakehouse (a Delta table on the S3 server `devtools.s3` starts, a fresh
  bucket per run): ours, a whole `runner extract` process writing the table (Parquet
  files streamed under the table prefix while the source is read, one Delta commit with
  the load's metadata), against `adbc-parquet-s3` (`extract_load_lake_baseline.py`):
  ADBC record batches written by pyarrow into one Parquet file on the same server, with
  our writer's Parquet options (`PARQUET_OPTIONS`, row-group size), no table format, no
  commit. *Both are timed the same way*, as whole fresh processes (start-up and imports
  included: what an orchestrator pays per table), and both in-process as well (ours:
  `load_table`'s own seconds; the baseline: connect to file closed), each side's best;
* ours again in `mode: incremental` after 1% of the rows changed;
* the key scan of `deletes: hard` (`keyscan`, see `Bench.key_scan`);
* and, for scale, the floor under any runner process: Python starting and importing
  what `runner extract` imports (`startup`; in no ratio).

Every other baseline runs in a child process of its own (`extract_load_contenders.py`) and
is timed *inside* it, without interpreter start-up and imports: that favours them. With
`--repeat K` each contender runs K times, interleaved, and its best time counts (the
machines are shared; the load average is printed); contenders that took over a minute the
first time run once. The last stdout line is one JSON object with the ratios the issue
sets targets for: `throughput_vs_copy_limit` (limit seconds / ours, PostgreSQL →
PostgreSQL), `speedup_vs_dlt` (fastest dlt configuration / ours, same path),
`duckdb_throughput_vs_best_baseline` (fastest other contender / ours, PostgreSQL →
DuckDB), `lakehouse_throughput_vs_best_baseline` (`adbc-parquet-s3` / ours, PostgreSQL →
lakehouse, both whole processes; target >= 1.0), `lakehouse_in_process_vs_best_baseline`
(the same, both timed in-process), `incremental_1pct_vs_full` (incremental / full refresh,
both whole runner processes; the larger of the two paths), `key_scan_vs_full_refresh`
(`keyscan`: an incremental run with `deletes: hard` minus the same run with `deletes:
ignore`, over the full refresh `ours`; the larger of the two paths; target <= 1.0) and
`peak_rss_mb` (our runner's, the larger of the two full-refresh paths). A key is null when
its contenders did not run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from datakits.spec import (  # noqa: E402 - after the path set-up, for direct runs
    RUNNER_SPEC_ENV,
    SOURCE_URL_ENV,
    WAREHOUSE_URL_ENV,
    LoadSpec,
)
from datakits.writers.lakehouse import PARQUET_OPTIONS, ROW_GROUP_ROWS  # noqa: E402
from devtools.postgres import PostgresCluster, free_port  # noqa: E402
from devtools.s3 import S3Server  # noqa: E402

CONTENDERS_SCRIPT = Path(__file__).resolve().parent / "extract_load_contenders.py"
LAKE_BASELINE_SCRIPT = Path(__file__).resolve().parent / "extract_load_lake_baseline.py"
RUNNER = Path(sys.executable).parent / "runner"
TABLE = "orders"
PG, DUCK = "PostgreSQL → PostgreSQL", "PostgreSQL → DuckDB"
LAKE = "PostgreSQL → lakehouse"
#: Contender names for `--contenders`; "ours" is the runner's full refresh.
ALL = (
    "ours",
    "copy-limit",
    "dlt-pyarrow-parquet",
    "dlt-connectorx-parquet",
    "dlt-pyarrow-csv",
    "dlt-default",
    "pandas",
    "adbc-duckdb",
    "connectorx-duckdb",
    "csv-duckdb",
    "lakehouse",
    "adbc-parquet-s3",
    "incremental",
    "keyscan",
    "startup",
)
#: Seconds any one contender may take before it is killed and reported as timed out.
TIMEOUT = 3600
#: With --repeat, contenders slower than this (seconds) in the first round run only once.
SLOW = 60.0

TABLE_SQL = """
CREATE TABLE orders (
  id bigint PRIMARY KEY,
  customer_id integer NOT NULL,
  status text NOT NULL,
  amount numeric(12, 2),
  currency char(3),
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  note text,
  attrs jsonb
);
INSERT INTO orders
SELECT g,
  ((g * 7919) % 100000)::int,
  (ARRAY['new', 'paid', 'shipped', 'delivered', 'cancelled'])[1 + g % 5],
  ((g * 104729) % 10000000)::numeric / 100,
  (ARRAY['EUR', 'USD', 'GBP'])[1 + g % 3],
  timestamptz '2020-01-01' + g * interval '17 second' + (g % 1000) * interval '1 microsecond',
  timestamptz '2020-01-01' + g * interval '17 second' + interval '3 day',
  md5(g::text) || '-' || substr(md5((g + 1)::text), 1, 7),
  jsonb_build_object('channel', (ARRAY['web', 'app', 'store'])[1 + g % 3], 'items', g % 9,
                     'coupon', md5((g * 3)::text), 'gift', g % 2 = 0)
FROM generate_series(1::bigint, {rows}::bigint) AS g;
CREATE INDEX orders_updated_at ON orders (updated_at);
"""
#: What a `runner extract` from PostgreSQL imports on either path (the `startup` floor).
STARTUP_IMPORTS = (
    "import runners.cli, runners.extract, datakits.sources.postgres, "
    "datakits.writers.postgres, datakits.writers.duckdb, duckdb_engine"
)
BOTH = "either path"

#: 1% of the rows change: a new status and a later update time (the incremental cursor).
CHANGE_SQL = (
    "UPDATE orders SET status = 'changed', updated_at = now() + interval '1 day' WHERE id % 100 = 0"
)


@dataclass
class Outcome:
    path: str
    name: str
    label: str
    seconds: list[float] = field(default_factory=list)
    rss_mb: float = 0.0
    rows: int = 0
    note: str = ""
    failure: str = ""
    #: Rows actually moved when the timing is scaled from a slice (pandas).
    scale: float = 1.0
    #: In-process seconds beside whole-process ones (the lakehouse path times both).
    inside: list[float] = field(default_factory=list)

    @property
    def best(self) -> float | None:
        return min(self.seconds) * self.scale if self.seconds and not self.failure else None

    @property
    def best_inside(self) -> float | None:
        return min(self.inside) if self.inside and not self.failure else None


@dataclass
class Bench:
    rows: int
    src: str
    wh: str
    cluster: PostgresCluster | None
    workdir: Path
    repeat: int
    pandas_rows: int
    outcomes: dict[tuple[str, str], Outcome] = field(default_factory=dict)
    #: The S3 server of the lakehouse path (moto_server), started when first needed.
    s3: S3Server | None = None
    _buckets: int = 0

    # --- set-up -----------------------------------------------------------------------------

    def admin(self, url: str) -> psycopg.Connection[Any]:
        return psycopg.connect(_libpq(url), autocommit=True)

    def fresh_warehouse(self) -> None:
        """An empty warehouse database and a checkpoint, so no run pays for the last one."""
        name = "el_wh"
        with self.admin(self.src) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {name}")
            conn.execute("CHECKPOINT")

    def duck_path(self) -> Path:
        path = self.workdir / "warehouse.duckdb"
        for stale in (path, Path(f"{path}.wal")):
            stale.unlink(missing_ok=True)
        return path

    def lake_url(self) -> str:
        """A fresh bucket on the benchmark's S3 server: no run reads the last one's files."""
        if self.s3 is None:
            self.s3 = S3Server().start()
        self._buckets += 1
        return self.s3.warehouse_url(self.s3.create_bucket(f"bench-lake-{self._buckets}"))

    # --- running ----------------------------------------------------------------------------

    def record(self, path: str, name: str, label: str) -> Outcome:
        return self.outcomes.setdefault((path, name), Outcome(path, name, label))

    def runner(self, path: str, name: str, label: str, table: dict[str, Any]) -> Outcome:
        """One `runner extract` process, timed whole."""
        outcome = self.record(path, name, label)
        if path == PG:
            self.fresh_warehouse()
            kind, url = "postgres", self.wh
        elif path == LAKE:
            kind, url = "lakehouse", self.lake_url()
        else:
            kind, url = "duckdb", f"duckdb:///{self.duck_path()}"
        self._runner_process(outcome, kind, url, table)
        return outcome

    def _runner_process(
        self, outcome: Outcome, kind: str, url: str, table: dict[str, Any], timed: bool = True
    ) -> None:
        spec = LoadSpec.model_validate(
            {
                "tenant": "bench",
                "source": {"kind": "postgres", "connection": {"env": "BENCH_SOURCE_URL"}},
                "warehouse": {"kind": kind, "connection": {"env": "BENCH_WAREHOUSE_URL"}},
                "tables": [table],
            }
        )
        env = {
            **os.environ,
            RUNNER_SPEC_ENV: spec.to_env_json(),
            SOURCE_URL_ENV: self.src,
            WAREHOUSE_URL_ENV: url,
        }
        seconds, rss, out, err, code = _child([str(RUNNER), "extract", "--table", TABLE], env)
        if code != 0:
            outcome.failure = f"exit {code}: {_last_line(err)}"
            return
        result = json.loads(out.splitlines()[-1])
        if timed:
            if not outcome.seconds or seconds < min(outcome.seconds):
                inside = float(result["seconds"])
                outcome.note = f"{inside:.2f} s of it in load_table (start-up, imports excluded)"
            outcome.seconds.append(seconds)
            outcome.inside.append(float(result["seconds"]))
            outcome.rss_mb = max(outcome.rss_mb, rss)
            outcome.rows = int(result["rows"])

    def lake_baseline(self, name: str, label: str, note: str) -> None:
        """The lakehouse baseline as a whole process (like ours), its inside time beside."""
        outcome = self.record(LAKE, name, label)
        options = json.dumps({**PARQUET_OPTIONS, "row_group_size": ROW_GROUP_ROWS})
        argv = [sys.executable, str(LAKE_BASELINE_SCRIPT), "--src", self.src]
        argv += ["--dst", self.lake_url(), "--table", TABLE, "--parquet", options]
        seconds, rss, out, err, code = _child(argv, dict(os.environ))
        if code != 0:
            outcome.failure = f"exit {code}: {_last_line(err)}"
            return
        result = json.loads(out.splitlines()[-1])
        outcome.seconds.append(seconds)
        outcome.inside.append(float(result["seconds"]))
        best = min(outcome.inside)
        outcome.note = f"{note}; {best:.2f} s of it connect to close (start-up, imports excluded)"
        outcome.rss_mb = max(outcome.rss_mb, rss)
        outcome.rows = int(result["rows"])

    def baseline(self, path: str, name: str, label: str, contender: str, note: str = "") -> None:
        """One baseline in its own child process, timed inside it."""
        outcome = self.record(path, name, label)
        outcome.note = note
        if path == PG:
            self.fresh_warehouse()
            dst = self.wh
        else:
            dst = str(self.duck_path())
        argv = [sys.executable, str(CONTENDERS_SCRIPT), contender, "--src", self.src]
        argv += ["--dst", dst, "--table", TABLE]
        if name == "pandas":
            argv += ["--slice", str(min(self.pandas_rows, self.rows))]
            outcome.scale = self.rows / min(self.pandas_rows, self.rows)
        _, rss, out, err, code = _child(argv, dict(os.environ))
        if code != 0:
            outcome.failure = f"exit {code}: {_last_line(err)}"
            return
        result = json.loads(out.splitlines()[-1])
        outcome.seconds.append(float(result["seconds"]))
        outcome.rss_mb = max(outcome.rss_mb, rss)
        outcome.rows = int(result["rows"])

    def startup(self) -> None:
        """The floor under every runner process: start Python, import what a load imports.

        Not a contender: it shows how much of a small (incremental) load is start-up.
        """
        outcome = self.record(BOTH, "startup", "floor: runner start-up, imports only")
        argv = [sys.executable, "-c", STARTUP_IMPORTS]
        seconds, rss, _, err, code = _child(argv, dict(os.environ))
        if code != 0:
            outcome.failure = f"exit {code}: {_last_line(err)}"
            return
        outcome.seconds.append(seconds)
        outcome.rss_mb = max(outcome.rss_mb, rss)
        outcome.note = "python + the modules `runner extract` imports; no connection, no row"

    def incremental(self, path: str) -> None:
        """Initial incremental load, 1% of the source rows change, timed incremental load."""
        outcome = self.record(path, "incremental", "ours, incremental after 1% changed")
        table = {"name": TABLE, "mode": "incremental", "cursor": "updated_at"}
        table["primary_key"] = ["id"]
        if path == PG:
            self.fresh_warehouse()
            kind, url = "postgres", self.wh
        else:
            kind, url = "duckdb", f"duckdb:///{self.duck_path()}"
        try:
            LoadSpec.model_validate(
                {
                    "tenant": "bench",
                    "source": {"kind": "postgres", "connection": {"env": "X"}},
                    "warehouse": {"kind": kind, "connection": {"env": "Y"}},
                    "tables": [table],
                }
            )
        except ValueError:
            outcome.failure = "n/a (incremental mode not available)"
            return
        self._runner_process(outcome, kind, url, table, timed=False)  # the initial load
        if outcome.failure:
            return
        with self.admin(self.src) as conn:
            conn.execute(CHANGE_SQL)
            conn.execute("VACUUM ANALYZE orders")
            conn.execute("CHECKPOINT")
        self._runner_process(outcome, kind, url, table)
        inside = outcome.note.split("; ")[-1]
        outcome.note = f"{outcome.rows:,} rows read and merged; {inside}"

    def key_scan(self, path: str) -> None:
        """The key scan of `deletes: hard` (every source key staged, anti-joined with bronze).

        After an initial incremental load, the same table runs incremental with
        `deletes: hard`, then with `deletes: ignore`: both read the same (few) new rows, so
        the difference of the two whole runner processes is the key scan and anti-join
        of every row. The source is not changed (other contenders use it): the anti-join
        does its full work whether it finds 0 or 1,000 rows gone.
        """
        scan = self.record(path, "keyscan", "ours, incremental + deletes: hard")
        base = self.record(path, "keyscan-base", "ours, same run with deletes: ignore")
        table = {
            "name": TABLE,
            "mode": "incremental",
            "cursor": "updated_at",
            "primary_key": ["id"],
            "deletes": "hard",
        }
        if path == PG:
            self.fresh_warehouse()
            kind, url = "postgres", self.wh
        else:
            kind, url = "duckdb", f"duckdb:///{self.duck_path()}"
        self._runner_process(scan, kind, url, table, timed=False)  # the initial load
        if scan.failure:
            return
        self._runner_process(scan, kind, url, table)
        self._runner_process(base, kind, url, {**table, "deletes": "ignore"})


# --- helpers --------------------------------------------------------------------------------


def _libpq(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"postgresql://{rest}" if scheme.startswith("postgres") else url


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"


def _child(argv: list[str], env: dict[str, str]) -> tuple[float, float, str, str, int]:
    """Run a child to completion: (wall seconds, peak RSS MB, stdout, stderr, exit code)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=err, cwd=ROOT)
        deadline = started + TIMEOUT
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                _, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.01)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return (
            seconds,
            usage.ru_maxrss / 1024,  # KiB on Linux
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
            proc.returncode,
        )


def _create_source(bench: Bench) -> None:
    with bench.admin(bench.src) as conn:
        conn.execute("DROP TABLE IF EXISTS orders")
        for statement in TABLE_SQL.strip().split(";\n"):
            if statement.strip():
                conn.execute(sql.SQL(statement).format(rows=sql.Literal(bench.rows)))
        conn.execute("VACUUM ANALYZE orders")
        conn.execute("CHECKPOINT")


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator == 0:
        return None
    return round(numerator / denominator, 3)


def _best(outcomes: dict[tuple[str, str], Outcome], path: str, names: list[str]) -> float | None:
    times = [o.best for (p, n), o in outcomes.items() if p == path and n in names]
    found = [t for t in times if t is not None]
    return min(found) if found else None


def summary(bench: Bench) -> dict[str, float | None]:
    """The JSON line: the ratios the issue sets targets for (None when not measured)."""
    out = bench.outcomes
    ours_pg = out.get((PG, "ours"))
    ours_duck = out.get((DUCK, "ours"))
    limit = out.get((PG, "copy-limit"))
    dlt_names = [n for n in ALL if n.startswith("dlt-")]
    others = [
        n
        for n in ALL
        if n not in ("ours", "incremental", "keyscan", "copy-limit", "startup", "lakehouse")
    ]
    ours_lake = out.get((LAKE, "lakehouse"))
    lake_base = out.get((LAKE, "adbc-parquet-s3"))
    ratios = []
    for path, ours in ((PG, ours_pg), (DUCK, ours_duck)):
        inc = out.get((path, "incremental"))
        ratio = _ratio(inc.best if inc else None, ours.best if ours else None)
        if ratio is not None:
            ratios.append(ratio)
    rss = [o.rss_mb for o in (ours_pg, ours_duck) if o is not None and o.best is not None]
    scans = [r for path in (PG, DUCK) if (r := _key_scan_ratio(out, path)) is not None]
    return {
        "throughput_vs_copy_limit": _ratio(
            limit.best if limit else None, ours_pg.best if ours_pg else None
        ),
        "speedup_vs_dlt": _ratio(_best(out, PG, dlt_names), ours_pg.best if ours_pg else None),
        "duckdb_throughput_vs_best_baseline": _ratio(
            _best(out, DUCK, others), ours_duck.best if ours_duck else None
        ),
        "lakehouse_throughput_vs_best_baseline": _ratio(
            _best(out, LAKE, ["adbc-parquet-s3"]), ours_lake.best if ours_lake else None
        ),
        "lakehouse_in_process_vs_best_baseline": _ratio(
            lake_base.best_inside if lake_base else None,
            ours_lake.best_inside if ours_lake else None,
        ),
        "incremental_1pct_vs_full": max(ratios) if ratios else None,
        "peak_rss_mb": round(max(rss), 1) if rss else None,
        "key_scan_vs_full_refresh": max(scans) if scans else None,
    }


def _key_scan_ratio(out: dict[tuple[str, str], Outcome], path: str) -> float | None:
    """(deletes: hard - deletes: ignore) / full refresh, all whole runner processes."""
    scan, base, full = (out.get((path, n)) for n in ("keyscan", "keyscan-base", "ours"))
    if scan is None or base is None or full is None:
        return None
    if scan.best is None or base.best is None:
        return None
    return _ratio(max(scan.best - base.best, 0.0), full.best)


def print_table(bench: Bench) -> None:
    header = (
        f"{'path':<24} {'contender':<44} {'seconds':>9} {'rows/s':>12} {'peak RSS MB':>12}  note"
    )
    print(header)
    print("-" * len(header))
    for outcome in bench.outcomes.values():
        best = outcome.best
        if best is None:
            cells = f"{'—':>9} {'—':>12} {'—':>12}  {outcome.failure}"
        else:
            moved = outcome.rows * outcome.scale if outcome.scale != 1 else outcome.rows
            rate = f"{moved / best:>12,.0f}" if best and moved else f"{'—':>12}"
            cells = f"{best:>9.2f} {rate} {outcome.rss_mb:>12.0f}  {outcome.note}"
        print(f"{outcome.path:<24} {outcome.label:<44} {cells}")


def run(bench: Bench, wanted: set[str]) -> None:
    pandas_note = (
        f"{min(bench.pandas_rows, bench.rows):,}-row slice, time scaled x"
        f"{bench.rows / min(bench.pandas_rows, bench.rows):g}"
    )
    plan: list[tuple[str, str, str, str | None, str]] = [
        (PG, "ours", "ours: runner extract (whole process)", None, ""),
        (PG, "copy-limit", "limit: COPY BINARY → COPY BINARY (psycopg)", "copy-limit", ""),
        (PG, "dlt-pyarrow-parquet", "dlt sql_table, pyarrow + parquet", "dlt-pyarrow-parquet", ""),
        (
            PG,
            "dlt-connectorx-parquet",
            "dlt sql_table, connectorx + parquet",
            "dlt-connectorx-parquet",
            "",
        ),
        (PG, "dlt-pyarrow-csv", "dlt sql_table, pyarrow + csv", "dlt-pyarrow-csv", ""),
        (PG, "dlt-default", "dlt sql_table, default configuration", "dlt-default", ""),
        (PG, "pandas", "pandas read_sql + to_sql", "pandas-pg", pandas_note),
        (DUCK, "ours", "ours: runner extract (whole process)", None, ""),
        (
            DUCK,
            "dlt-pyarrow-parquet",
            "dlt sql_table, pyarrow + parquet",
            "dlt-pyarrow-parquet",
            "",
        ),
        (
            DUCK,
            "dlt-connectorx-parquet",
            "dlt sql_table, connectorx + parquet",
            "dlt-connectorx-parquet",
            "",
        ),
        (DUCK, "dlt-default", "dlt sql_table, default configuration", "dlt-default", ""),
        (DUCK, "pandas", "pandas read_sql + to_sql", "pandas-duckdb", pandas_note),
        (DUCK, "connectorx-duckdb", "connectorx → Arrow → DuckDB", "connectorx-duckdb", ""),
        (DUCK, "adbc-duckdb", "ADBC record batches → DuckDB", "adbc-duckdb", ""),
        (DUCK, "csv-duckdb", "COPY CSV → temp file → DuckDB read_csv", "csv-duckdb", ""),
        (LAKE, "lakehouse", "ours: runner extract → Delta on S3", None, ""),
        (
            LAKE,
            "adbc-parquet-s3",
            "ADBC → pyarrow → one Parquet file on S3",
            "adbc-parquet-s3",
            "no table format, no commit, no watermark",
        ),
    ]
    for round_ in range(bench.repeat):
        for path, name, label, contender, note in plan:
            if name not in wanted:
                continue
            done = bench.outcomes.get((path, name))
            if round_ and done is not None and (done.best is None or done.best > SLOW):
                continue  # minutes per run, and nowhere near the lead: once is enough
            print(f"[{round_ + 1}/{bench.repeat}] {path}: {label} …", file=sys.stderr, flush=True)
            if contender is None:
                bench.runner(path, name, label, {"name": TABLE})
            elif path == LAKE:
                bench.lake_baseline(name, label, note)
            else:
                bench.baseline(path, name, label, contender, note)
    if "keyscan" in wanted:
        for round_ in range(bench.repeat):
            for path in (PG, DUCK):
                print(f"[{round_ + 1}/{bench.repeat}] {path}: key scan …", file=sys.stderr)
                bench.key_scan(path)
        for path in (PG, DUCK):
            ratio = _key_scan_ratio(bench.outcomes, path)
            print(f"{path}: key scan of {bench.rows:,} rows / full refresh = {ratio}")
    if "startup" in wanted:
        for round_ in range(bench.repeat):
            print(f"[{round_ + 1}/{bench.repeat}] runner start-up floor …", file=sys.stderr)
            bench.startup()
    if "incremental" in wanted:
        for round_ in range(bench.repeat):
            for path in (PG, DUCK):
                print(f"[{round_ + 1}/{bench.repeat}] {path}: incremental …", file=sys.stderr)
                bench.incremental(path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--pg-url", help="a PostgreSQL superuser URL to use instead of our own")
    parser.add_argument(
        "--contenders",
        default=",".join(ALL),
        help=f"comma-separated subset of: {', '.join(ALL)}",
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs per contender (best counts)")
    parser.add_argument("--pandas-rows", type=int, default=100_000)
    args = parser.parse_args(argv)
    wanted = {name.strip() for name in args.contenders.split(",") if name.strip()}
    unknown = wanted - set(ALL)
    if unknown:
        parser.error(f"unknown contender(s): {', '.join(sorted(unknown))}")

    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    workdir = Path(tempfile.mkdtemp(prefix="el-bench-"))
    cluster = None
    bench: Bench | None = None
    try:
        if args.pg_url:
            admin = args.pg_url
        else:
            cluster = PostgresCluster(port=free_port()).start()
            admin = cluster.url
            with psycopg.connect(_libpq(admin), autocommit=True) as conn:
                # Fewer checkpoints and no autovacuum: less noise between contenders.
                conn.execute("ALTER SYSTEM SET max_wal_size = '8GB'")
                conn.execute("ALTER SYSTEM SET autovacuum = off")
                conn.execute("SELECT pg_reload_conf()")
        base = admin.rsplit("/", 1)[0]
        with psycopg.connect(_libpq(admin), autocommit=True) as conn:
            for name in ("el_src", "el_wh"):
                conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
                conn.execute(f"CREATE DATABASE {name}")
        bench = Bench(
            rows=args.rows,
            src=f"{base}/el_src",
            wh=f"{base}/el_wh",
            cluster=cluster,
            workdir=workdir,
            repeat=max(1, args.repeat),
            pandas_rows=args.pandas_rows,
        )
        started = time.perf_counter()
        load_before = os.getloadavg()
        print(f"creating {args.rows:,} rows …", file=sys.stderr, flush=True)
        _create_source(bench)
        run(bench, wanted)
        load_after = os.getloadavg()
        print(
            f"extract-load benchmark: {args.rows:,} rows, best of {bench.repeat}, "
            f"{os.cpu_count()} CPUs, load average {load_before[0]:.2f} before / "
            f"{load_after[0]:.2f} after, {time.perf_counter() - started:.0f} s in all"
        )
        print_table(bench)
        sys.stdout.write(json.dumps(summary(bench)) + "\n")
        sys.stdout.flush()
    finally:
        if bench is not None and bench.s3 is not None:
            bench.s3.stop()
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

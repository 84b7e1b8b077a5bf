"""The extract-load benchmark still runs: a 2,000-row pass with our runner and the limit.

Benchmarks are not part of the test run (they take minutes and need the baseline
packages); this keeps `benchmarks/extract_load.py` from rotting without them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from devtools.postgres import PostgresCluster

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "extract_load.py"
KEYS = {
    "throughput_vs_copy_limit",
    "speedup_vs_dlt",
    "duckdb_throughput_vs_best_baseline",
    "lakehouse_throughput_vs_best_baseline",
    "lakehouse_in_process_vs_best_baseline",
    "incremental_1pct_vs_full",
    "key_scan_vs_full_refresh",
    "peak_rss_mb",
}


def test_benchmark_smoke(pg_cluster: PostgresCluster) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--rows",
            "2000",
            "--contenders",
            "ours,copy-limit,incremental,startup,lakehouse,adbc-parquet-s3",
            "--pg-url",
            pg_cluster.url,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    result = json.loads(lines[-1])
    assert set(result) == KEYS
    assert result["throughput_vs_copy_limit"] > 0
    assert result["incremental_1pct_vs_full"] > 0
    # the lakehouse pair, timed alike: both whole processes and both in-process
    assert result["lakehouse_throughput_vs_best_baseline"] > 0
    assert result["lakehouse_in_process_vs_best_baseline"] > 0
    assert 50 < result["peak_rss_mb"] < 1000
    assert result["speedup_vs_dlt"] is None  # dlt was not asked for
    table = "\n".join(lines[:-1])
    assert "limit: COPY BINARY" in table
    assert "incremental after 1% changed" in table
    assert "20 rows read and merged" in table
    assert "floor: runner start-up, imports only" in table
    assert "ADBC → pyarrow → one Parquet file on S3" in table

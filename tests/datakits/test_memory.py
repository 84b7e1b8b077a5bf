"""Peak memory of a real `runner extract` does not grow with the table's size.

The runner streams: it holds about one batch (plus the prefetched one) whatever the
table's size. Measured as the peak resident set of the runner process itself, for a
table and one four times larger, into each warehouse kind. The ratio's bound (1.3)
leaves room for allocator noise, not for anything proportional to the rows.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import pytest

from devtools.postgres import PostgresCluster
from tests.datakits.bronze_state import execute
from tests.datakits.conftest import make_spec, query
from tests.datakits.runner_proc import RUNNER, runner_env

SMALL, LARGE = 100_000, 400_000
BATCH = 10_000


#: Runs the runner and prints its peak RSS. A wrapper, because Linux starts a child's
#: `ru_maxrss` at its parent's RSS when it forks (and keeps it across exec): measured
#: directly from pytest (hundreds of MB), every runner would "peak" at pytest's size.
_MEASURE = (
    "import resource, subprocess, sys\n"
    "done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)\n"
    "sys.stderr.buffer.write(done.stderr)\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    "sys.exit(done.returncode)\n"
)


def _peak_rss_mb(spec_kind: str, table: str, source: str, warehouse: str) -> float:
    spec = make_spec("postgres", spec_kind, {"name": table, "batch_size": BATCH})
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, RUNNER, "extract", "--table", table],
        env=runner_env(spec, source, warehouse),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout.strip()) / 1024  # Linux reports kilobytes


@pytest.fixture(scope="module")
def two_sizes(pg_cluster: PostgresCluster) -> str:
    """One source for both warehouse kinds (read only here): `small` and 4x `large`."""
    url = pg_cluster.create_database("memory_source")
    for name, rows in (("small", SMALL), ("large", LARGE)):
        execute(
            url,
            f"CREATE TABLE {name} (id bigint PRIMARY KEY, status text, amount numeric(12, 2), "
            "created_at timestamptz, note text)",
            f"INSERT INTO {name} SELECT g, 'paid', g / 100.0, TIMESTAMPTZ '2024-01-01' + "
            "g * interval '1 second', md5(g::text) || md5(g::text) "
            f"FROM generate_series(1, {rows}) g",
        )
    return url


@pytest.mark.parametrize("kind", ["duckdb", "postgres"])
def test_peak_memory_does_not_grow_with_table_size(
    kind: str, two_sizes: str, make_warehouse: Callable[[str], str]
) -> None:
    warehouse = make_warehouse(kind)

    small = _peak_rss_mb(kind, "small", two_sizes, warehouse)
    large = _peak_rss_mb(kind, "large", two_sizes, warehouse)

    assert query(warehouse, "SELECT count(*) FROM bronze.large") == [(LARGE,)]
    assert large / small < 1.3, (
        f"peak RSS {small:.0f} MB for {SMALL:,} rows, {large:.0f} MB for {LARGE:,}"
    )

"""The runner's optional result file, which the Kubernetes adapter points at the XCom
sidecar's volume: the same JSON line as the last stdout line, and only on success."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from dag_factory.loader import Loader
from dag_factory.plan import plan_tenant
from datakits.contract import (
    RESULT_FILE_ENV,
    SOURCE_URL_ENV,
    WAREHOUSE_URL_ENV,
    ExitCode,
    parse_result,
)
from devtools.shop import generate_shop

REPO = Path(__file__).resolve().parents[2]


def _run(argv: tuple[str, ...], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runners", *argv],
        env={"PATH": os.environ["PATH"], **env},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_result_file_holds_the_json_result_line(tmp_path: Path):
    demo = Loader(REPO / "warehouses").load_all({"demo"}).tenants[0]
    task = plan_tenant(demo, REPO).task("extract_customers")
    source = f"sqlite:///{tmp_path}/shop.sqlite"
    generate_shop(source, orders=50)
    result_file = tmp_path / "xcom" / "return.json"
    result_file.parent.mkdir()
    env = {
        **task.env_dict,
        SOURCE_URL_ENV: source,
        WAREHOUSE_URL_ENV: f"duckdb:///{tmp_path}/warehouse.duckdb",
        RESULT_FILE_ENV: str(result_file),
    }
    done = _run(task.argv, env)
    assert done.returncode == 0, done.stderr[-2000:]
    last_line = done.stdout.strip().splitlines()[-1]
    assert result_file.read_text() == last_line
    assert json.loads(last_line)["status"] == "ok"
    assert parse_result(done.stdout)["rows"] == parse_result(result_file.read_text())["rows"]

    result_file.unlink()
    failed = _run(("extract", "--table", "nope"), env)
    assert failed.returncode == ExitCode.permanent
    assert not result_file.exists()

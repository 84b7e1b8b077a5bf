"""The repository's committed tenants with their dbt graphs compiled, for tests.

A tenant that runs in containers (Docker, Kubernetes) needs its compiled graph to name its
own dbt image (`dag_factory.images`), so a test that builds the tenants' DAGs under those
executors needs what a deployment has: the tenants folder after `dag-factory dbt compile`.
Compiling parses every tenant's dbt project (seconds each), so the result is kept under
`.data/test-compiled/<key>/` and reused while nothing it depends on changes: the key hashes
the tenants' files and the code that writes the graph.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: What a developer's runs leave in a tenants folder (all git-ignored): never compiled from.
LOCAL_OUTPUT = ("compiled", "target", "logs", "dbt_packages", "*.duckdb", "*.duckdb.wal")
#: Not part of the key either: local output and byte code.
_SKIPPED = (*LOCAL_OUTPUT, "__pycache__")
#: The code whose change changes a compiled graph.
_GRAPH_CODE = ("runners/dbt_graph.py", "runners/dbt_project.py", "runners/dbt.py")


def _local_output(relative: Path) -> bool:
    return any(fnmatch.fnmatch(part, pattern) for part in relative.parts for pattern in _SKIPPED)


def _key(warehouses: Path) -> str:
    digest = hashlib.sha256()
    tenant_files = sorted(
        p
        for p in warehouses.rglob("*")
        if p.is_file() and not _local_output(p.relative_to(warehouses))
    )
    named = [(p.relative_to(warehouses).as_posix(), p) for p in tenant_files]
    named += [(name, REPO / name) for name in _GRAPH_CODE]
    for name, file in named:
        digest.update(name.encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def compiled_tenants(warehouses: Path = REPO / "warehouses") -> Path:
    """A tenants folder like `warehouses`, with every tenant's graph compiled."""
    cache = REPO / ".data" / "test-compiled"
    done = cache / _key(warehouses) / "warehouses"
    if (done / ".compiled").is_file():
        return done
    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="compiling-", dir=cache))
    shutil.copytree(warehouses, work / "warehouses", ignore=shutil.ignore_patterns(*LOCAL_OUTPUT))
    dag_factory = Path(sys.executable).parent / "dag-factory"
    env = {k: v for k, v in os.environ.items() if k != "DAG_FACTORY_WAREHOUSES"}
    subprocess.run(
        [dag_factory, "dbt", "compile", "--warehouses", work / "warehouses"],
        check=True,
        capture_output=True,
        env=env,
    )
    (work / "warehouses" / ".compiled").write_text("")
    try:
        work.rename(done.parent)  # atomic; a concurrent worker may have won the race
    except OSError:
        shutil.rmtree(work, ignore_errors=True)
    return done

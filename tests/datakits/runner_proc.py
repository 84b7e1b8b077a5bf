"""Run the real `runner extract` console script as an orchestrator does. Test helpers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from datakits.spec import RUNNER_SPEC_ENV, SOURCE_URL_ENV, WAREHOUSE_URL_ENV, LoadSpec

RUNNER = str(Path(sys.executable).parent / "runner")


def runner_env(spec: LoadSpec, source_url: str, warehouse_url: str, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        RUNNER_SPEC_ENV: spec.to_env_json(),
        SOURCE_URL_ENV: source_url,
        WAREHOUSE_URL_ENV: warehouse_url,
        **extra,
    }
    env.pop("RUNNER_DEBUG", None)
    return env


def run_extract(
    spec: LoadSpec, table: str, source_url: str, warehouse_url: str, **extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [RUNNER, "extract", "--table", table],
        env=runner_env(spec, source_url, warehouse_url, **extra),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def start_extract(
    spec: LoadSpec, table: str, source_url: str, warehouse_url: str, **extra: str
) -> subprocess.Popen[str]:
    """A running `runner extract`; stderr is a pipe (progress lines), stdout too."""
    return subprocess.Popen(
        [RUNNER, "extract", "--table", table],
        env=runner_env(spec, source_url, warehouse_url, **extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

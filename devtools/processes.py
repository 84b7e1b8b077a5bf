"""Stopping the server processes a test run started (etcd, kube-apiserver, Prometheus …)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterable


def stop_processes(procs: Iterable[subprocess.Popen[bytes]], timeout: float = 15) -> None:
    """SIGTERM each still-running process in the order given, waiting up to `timeout`
    seconds for it to exit before SIGKILL; one at a time, so a server is gone before the
    one it depends on (pass them in reverse start order)."""
    for proc in procs:
        if proc.poll() is not None:
            continue
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

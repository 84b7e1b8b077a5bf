"""A throwaway Prometheus + Pushgateway pair owned by one test run.

Debian's `prometheus` and `prometheus-pushgateway` binaries (`make services`), started
as plain processes on free 127.0.0.1 ports with a temp config and data directory — never
the packaged services. Prometheus scrapes the gateway every second with
`honor_labels: true`, as a deployment would (the pushed tenant/table/task labels win over
the scrape's own `job`/`instance`). `query()` reads Prometheus's HTTP API.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from devtools.postgres import free_port
from devtools.processes import stop_processes

CONFIG = """\
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: pushgateway
    honor_labels: true
    static_configs:
      - targets: ["127.0.0.1:{gateway_port}"]
"""


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(
            f"{name} not found: run `make services` "
            "(apt-get install prometheus prometheus-pushgateway)"
        )
    return found


def _get(url: str, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (http only)
        return response.read()


class PrometheusStack:
    """Pushgateway on `gateway_port`, Prometheus on `port` scraping it every second."""

    def __init__(self) -> None:
        self.port = free_port()
        self.gateway_port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix=f"prometheus-{self.port}-"))
        self._procs: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = (self.dir / f"{name}.log").open("wb")
        self._procs.append(
            subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.dir)
        )

    def start(self, timeout: float = 60.0) -> PrometheusStack:
        config = self.dir / "prometheus.yml"
        config.write_text(CONFIG.format(gateway_port=self.gateway_port), encoding="utf-8")
        self._spawn(
            "pushgateway",
            [
                _binary("prometheus-pushgateway"),
                f"--web.listen-address=127.0.0.1:{self.gateway_port}",
                # Debian's default keeps every push in /var/lib/prometheus and loads it at
                # the next start: one run would see the last run's metrics.
                f"--persistence.file={self.dir / 'pushgateway.data'}",
            ],
        )
        self._spawn(
            "prometheus",
            [
                _binary("prometheus"),
                f"--config.file={config}",
                f"--storage.tsdb.path={self.dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
        )
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for url in (f"{self.gateway_url}/-/ready", f"{self.url}/-/ready"):
            while True:
                dead = [p for p in self._procs if p.poll() is not None]
                if dead:
                    logs = {p.name: p.read_text(errors="replace")[-800:] for p in self._logs()}
                    self.stop()
                    raise RuntimeError(f"a Prometheus server exited at start: {logs}")
                try:
                    _get(url, timeout=1)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        self.stop()
                        raise RuntimeError(f"{url} not ready after {timeout:.0f}s") from None
                    time.sleep(0.2)

    def _logs(self) -> list[Path]:
        return sorted(self.dir.glob("*.log"))

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The instant vector of `promql` now: `[{"metric": {...}, "value": [t, "v"]}]`."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        body = json.loads(_get(url))
        if body.get("status") != "success":
            raise RuntimeError(f"Prometheus refused {promql!r}: {body}")
        return body["data"]["result"]

    def wait_for(self, promql: str, count: int = 1, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Poll `promql` until it returns at least `count` series (scrapes are every 1 s)."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(promql)
            if len(result) >= count or time.monotonic() > deadline:
                return result
            time.sleep(0.25)

    def stop(self) -> None:
        stop_processes(self._procs)
        self._procs.clear()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PrometheusStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

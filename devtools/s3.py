"""A throwaway S3-compatible server owned by one test or benchmark run.

MinIO cannot be installed here, so the tests run moto's standalone server
(`moto_server`, from `moto[server]` on PyPI): a real HTTP server speaking the S3 REST
API with path-style addressing, as MinIO does, and honouring the conditional writes
(`If-None-Match: *`) Delta commits rely on. Nothing is mocked in the client: delta-rs,
DuckDB and boto3 talk HTTP to it like to any S3 endpoint. State lives in its memory and
is gone when `stop()` ends the process.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import quote

from devtools.postgres import free_port

#: moto accepts any key pair; these name the test's tenant credentials.
ACCESS_KEY = "lake-test-key"
SECRET_KEY = "lake/test+secret"  # noqa: S105 - a throwaway server's, with URL-special chars
REGION = "us-east-1"


def _binary() -> str:
    beside = Path(sys.executable).with_name("moto_server")
    found = str(beside) if beside.exists() else shutil.which("moto_server")
    if found is None:
        raise RuntimeError("moto_server not found: install the dev extra (moto[server])")
    return found


class S3Server:
    """`moto_server` on 127.0.0.1:`port`; `warehouse_url(bucket)` is a lakehouse URL."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> S3Server:
        self._proc = subprocess.Popen(
            [_binary(), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "MOTO_ALLOW_NONEXISTENT_REGION": "true"},
        )
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(f"moto_server exited with {self._proc.returncode}")
            try:
                urllib.request.urlopen(self.endpoint + "/", timeout=1).close()  # noqa: S310
                return self
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"moto_server did not answer on {self.endpoint}") from None
                time.sleep(0.1)

    def client(self, access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY):  # type: ignore[no-untyped-def]
        """A boto3 S3 client for the server (tests inspect and prepare buckets with it)."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            region_name=REGION,
        )

    def create_bucket(self, bucket: str) -> str:
        self.client().create_bucket(Bucket=bucket)
        return bucket

    def warehouse_url(
        self,
        bucket: str,
        *,
        duckdb: str | Path | None = None,
        access_key: str = ACCESS_KEY,
        secret_key: str = SECRET_KEY,
    ) -> str:
        """`s3://KEY:SECRET@127.0.0.1:PORT/BUCKET?region=..&secure=false[&duckdb=..]`."""
        url = (
            f"s3://{quote(access_key, safe='')}:{quote(secret_key, safe='')}"
            f"@127.0.0.1:{self.port}/{bucket}?region={REGION}&secure=false"
        )
        return url + (f"&duckdb={quote(str(duckdb))}" if duckdb else "")

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

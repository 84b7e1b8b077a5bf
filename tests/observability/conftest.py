"""A scratch warehouses folder (the repository's defaults.yaml) and a shop tenant in it."""

from __future__ import annotations

import json
import shutil
import textwrap
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from dag_factory.loader import Loader, Tenant

REPO = Path(__file__).resolve().parents[2]

#: `{source}`, `{warehouse}`: kinds; `{schema}`: the source schema line, if any.
SHOP_TENANT = """\
tenant: {name}
source:
  kind: {source}
  connection:
    env: {upper}_SOURCE_URL
{schema}warehouse:
  kind: {warehouse}
  connection:
    env: {upper}_WAREHOUSE_URL
tables:
  - name: customers
  - name: orders
    mode: incremental
    cursor: updated_at
    primary_key: [order_id]
  - name: products
"""

MakeTenant = Callable[..., Tenant]


@pytest.fixture
def warehouses(tmp_path: Path) -> Path:
    folder = tmp_path / "warehouses"
    folder.mkdir()
    shutil.copy(REPO / "warehouses" / "defaults.yaml", folder / "defaults.yaml")
    return folder


@pytest.fixture
def make_tenant(warehouses: Path) -> MakeTenant:
    """Write `<name>/warehouse.yaml` (SHOP_TENANT, or `text`) with a dbt stub; load it."""

    def make(
        name: str = "obs",
        source: str = "sqlite",
        warehouse: str = "duckdb",
        schema: str | None = None,
        text: str | None = None,
    ) -> Tenant:
        folder = warehouses / name
        (folder / "dbt").mkdir(parents=True, exist_ok=True)
        (folder / "dbt" / "dbt_project.yml").write_text(f"name: {name}\nprofile: {name}\n")
        schema_line = f"  schema: {schema}\n" if schema else ""
        body = textwrap.dedent(text) if text else SHOP_TENANT
        (folder / "warehouse.yaml").write_text(
            body.format(
                name=name,
                upper=name.upper(),
                source=source,
                warehouse=warehouse,
                schema=schema_line,
            )
        )
        return Loader(warehouses).load(folder / "warehouse.yaml")

    return make


# The lakehouse tests' S3-compatible server (moto), for `dag-factory status` on a lake tenant.


class Receiver:
    """A lineage backend's HTTP endpoint: keeps each POST's path, headers and body."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict[str, str], bytes]] = []
        received = self.posts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.append((self.path, dict(self.headers), body))
                self.send_response(201)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, _, body in self.posts]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    thread = threading.Thread(target=r.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield r
    finally:
        r.server.shutdown()
        r.server.server_close()


from tests.lakehouse.conftest import s3_server  # noqa: E402, F401

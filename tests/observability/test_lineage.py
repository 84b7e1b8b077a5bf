"""Runner lineage: real `runner extract` runs send OpenLineage events over HTTP to a
receiver on 127.0.0.1, and every event received validates against the spec's required
fields (`schemas/run-event-2-0-2-required.json`: no package ships OpenLineage.json)."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from runners.lineage import NAMESPACE, dataset_address
from tests.observability.runner_helpers import result_of, run_extract, spec, sqlite_source

SCHEMA = json.loads(
    (Path(__file__).parent / "schemas" / "run-event-2-0-2-required.json").read_text()
)
VALIDATOR = Draft202012Validator(SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER)
SECRET = "s3cr3t-key-do-not-log"
PARENT_RUN = str(uuid.uuid4())


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


def _validate(events: list[dict[str, Any]]) -> None:
    for event in events:
        errors = [f"{list(e.path)}: {e.message}" for e in VALIDATOR.iter_errors(event)]
        assert not errors, errors


def test_extract_sends_start_and_complete_with_datasets(receiver: Receiver, tmp_path: Path) -> None:
    source = sqlite_source(tmp_path / "src.db")
    warehouse = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    done = run_extract(
        spec(),
        "plain",
        source,
        warehouse,
        OPENLINEAGE_URL=receiver.url,
        OPENLINEAGE_ENDPOINT="api/v1/lineage",
        OPENLINEAGE_API_KEY=SECRET,
        RUNNER_PARENT_RUN=f"airflow-ns/tenant_acme.extract_plain/{PARENT_RUN}",
    )
    result = result_of(done)
    assert "warning" not in done.stderr, done.stderr
    events = receiver.events()
    _validate(events)
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"]
    start, complete = events
    assert start["run"]["runId"] == complete["run"]["runId"]
    assert uuid.UUID(complete["run"]["runId"]).version == 7
    assert complete["job"] == {**complete["job"], "namespace": NAMESPACE}
    assert complete["job"]["name"] == "acme.extract_plain"
    parent = complete["run"]["facets"]["parent"]
    assert parent["run"]["runId"] == PARENT_RUN
    assert parent["job"] == {**parent["job"], "namespace": "airflow-ns"}

    (source_ds,) = complete["inputs"]
    assert source_ds["namespace"] == f"sqlite://{(tmp_path / 'src.db').resolve()}"
    assert source_ds["name"].endswith("plain")
    (bronze,) = complete["outputs"]
    assert bronze["namespace"] == f"duckdb://{(tmp_path / 'wh.duckdb').resolve()}"
    assert bronze["name"] == result["target"]
    fields = {f["name"]: f["type"] for f in bronze["facets"]["schema"]["fields"]}
    assert fields == {"id": "int64", "name": "string"}, fields
    statistics = bronze["outputFacets"]["outputStatistics"]
    assert statistics["rowCount"] == result["rows"] == 2
    assert statistics["size"] == result["bytes"] > 0

    paths = {path for path, _, _ in receiver.posts}
    assert paths == {"/api/v1/lineage"}
    # the API key authenticates the POST and is in no event
    assert all(h.get("Authorization") == f"Bearer {SECRET}" for _, h, _ in receiver.posts)
    assert all(SECRET.encode() not in body for _, _, body in receiver.posts)


def test_a_failed_extract_sends_fail(receiver: Receiver, tmp_path: Path) -> None:
    source = sqlite_source(tmp_path / "src.db")
    done = run_extract(
        spec(),
        "absent",  # in the spec, not in the source
        source,
        f"duckdb:///{tmp_path / 'wh.duckdb'}",
        OPENLINEAGE_URL=receiver.url,
    )
    assert done.returncode != 0
    events = receiver.events()
    _validate(events)
    assert [e["eventType"] for e in events] == ["START", "FAIL"]
    error = events[1]["run"]["facets"]["errorMessage"]
    assert f"code {done.returncode}" in error["message"]
    assert events[1].get("outputs") in (None, [])


def test_a_backend_that_is_down_only_warns(tmp_path: Path) -> None:
    receiver = Receiver()  # bound, never served, then closed: nothing listens
    url = receiver.url
    receiver.server.server_close()
    done = run_extract(
        spec(),
        "plain",
        sqlite_source(tmp_path / "src.db"),
        f"duckdb:///{tmp_path / 'wh.duckdb'}",
        OPENLINEAGE_URL=url,
    )
    assert result_of(done)["rows"] == 2
    warnings = [ln for ln in done.stderr.splitlines() if "lineage not sent" in ln]
    assert len(warnings) == 1, done.stderr


def test_without_the_url_nothing_is_sent_or_printed(receiver: Receiver, tmp_path: Path) -> None:
    done = run_extract(
        spec(),
        "plain",
        sqlite_source(tmp_path / "src.db"),
        f"duckdb:///{tmp_path / 'wh.duckdb'}",
    )
    result_of(done)
    assert receiver.posts == []
    assert len(done.stdout.strip().splitlines()) == 1  # no console transport on stdout


@pytest.mark.parametrize(
    ("url", "table", "namespace", "name"),
    [
        (
            f"postgresql+psycopg://loader:{SECRET}@db.example:6543/shop",
            "public.orders",
            "postgres://db.example:6543",
            "shop.public.orders",
        ),
        (
            f"mysql+pymysql://root:{SECRET}@maria/shop?charset=utf8mb4",
            "orders",
            "mysql://maria:3306",
            "shop.orders",
        ),
    ],
)
def test_dataset_addresses_leave_credentials_out(
    url: str, table: str, namespace: str, name: str
) -> None:
    assert dataset_address(url, table) == (namespace, name)

"""Runner lineage: real `runner extract` runs send OpenLineage events over HTTP to a
receiver on 127.0.0.1, and every event received validates against the official
OpenLineage schema and each facet's own schema (`openlineage_schema`, vendored files)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from runners.lineage import NAMESPACE, PRODUCER, dataset_address
from tests.observability.conftest import Receiver
from tests.observability.openlineage_schema import problems, validate_events
from tests.observability.runner_helpers import result_of, run_extract, spec, sqlite_source

SECRET = "s3cr3t-key-do-not-log"
PARENT_RUN = str(uuid.uuid4())


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
    validate_events(events)
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
    validate_events(events)
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


def _sample_event() -> dict[str, Any]:
    """A COMPLETE event as the runner builds it (client classes, serialized by the client)."""
    from openlineage.client.event_v2 import Job, OutputDataset, Run, RunEvent, RunState
    from openlineage.client.facet_v2 import output_statistics_output_dataset as stats
    from openlineage.client.facet_v2 import parent_run, schema_dataset, set_producer
    from openlineage.client.serde import Serde

    set_producer(PRODUCER)
    parent = parent_run.ParentRunFacet(
        run=parent_run.Run(runId=PARENT_RUN),
        job=parent_run.Job(namespace="airflow-ns", name="tenant_acme.extract_plain"),
    )
    bronze = OutputDataset(
        namespace="duckdb:///tmp/wh.duckdb",
        name="bronze.plain",
        facets={
            "schema": schema_dataset.SchemaDatasetFacet(
                fields=[schema_dataset.SchemaDatasetFacetFields(name="id", type="int64")]
            )
        },
        outputFacets={"outputStatistics": stats.OutputStatisticsOutputDatasetFacet(rowCount=2)},
    )
    event = RunEvent(
        eventType=RunState.COMPLETE,
        eventTime="2026-12-01T00:00:00+00:00",
        run=Run(runId=str(uuid.uuid4()), facets={"parent": parent}),
        job=Job(namespace=NAMESPACE, name="acme.extract_plain"),
        producer=PRODUCER,
        outputs=[bronze],
    )
    return json.loads(Serde.to_json(event))


_BASE = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/"


def _set(path: str, value: Any) -> Any:
    """A change to the sample event: set (or, for `...`, delete) the value at `path`."""

    def change(event: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = event
        for key in parents:
            node = node[int(key)] if key.isdigit() else node[key]
        if value is ...:
            del node[last]
        else:
            node[last] = value

    return change


def _move(src: str, dst: str) -> Any:
    def change(event: dict[str, Any]) -> None:
        (out,) = event["outputs"]
        kind, name = src.split(".")
        facet = out[kind].pop(name)
        kind, name = dst.split(".")
        out.setdefault(kind, {})[name] = facet

    return change


def _airflow_facet(task: dict[str, Any], try_number: int | None = 1) -> Any:
    """A change adding Airflow's `airflow` run facet as Airflow 3.3 fills it (no `pool`,
    a float backoff), with `task` fields added and `try_number` (None: left out)."""
    facet = {
        "_producer": PRODUCER,
        "_schemaURL": _BASE + "RunFacet",
        "dag": {"dag_id": "tenant_acme", "start_date": "2026-11-30T00:00:00+00:00"},
        "dagRun": {"dag_id": "tenant_acme", "run_id": "manual__1"},
        "task": {"task_id": "extract_plain", "retry_exponential_backoff": 2.0, **task},
        "taskInstance": {} if try_number is None else {"try_number": try_number},
        "taskUuid": str(uuid.uuid4()),
    }
    return _set("run.facets.airflow", facet)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (_set("eventTime", "yesterday"), "'yesterday' is not a 'date-time'"),
        (_set("producer", "tenant runner"), "'tenant runner' is not a 'uri'"),
        (_set("run.runId", "run-1"), "'run-1' is not a 'uuid'"),
        (_set("schemaURL", _BASE.replace("2-0-2", "2-0-3") + "RunEvent"), "not the vendored"),
        # the facets' own schemas, which OpenLineage.json leaves open
        (_set("run.facets.parent.run.runId", ...), "'runId' is a required property"),
        (
            _set("outputs.0.outputFacets.outputStatistics.rowCount", "2"),
            "'2' is not of type 'integer'",
        ),
        (_set("outputs.0.facets.schema.fields", {}), "is not of type 'array'"),
        # a facet without a vendored schema, an older version of one, or only the base one
        (
            _set(
                "outputs.0.facets.columnLineage",
                {
                    "_producer": PRODUCER,
                    "_schemaURL": "https://openlineage.io/spec/facets/1-2-0/"
                    "ColumnLineageDatasetFacet.json#/$defs/ColumnLineageDatasetFacet",
                    "fields": {},
                },
            ),
            "ColumnLineageDatasetFacet.json is not vendored",
        ),
        (
            _set(
                "run.facets.parent._schemaURL",
                "https://openlineage.io/spec/facets/1-0-0/ParentRunFacet.json#/$defs/ParentRunFacet",
            ),
            "1-0-0/ParentRunFacet.json is not vendored",
        ),
        (
            _set("run.facets.mine", {"_producer": PRODUCER, "_schemaURL": _BASE + "RunFacet"}),
            "run.facets.mine: `_schemaURL` " + _BASE + "RunFacet is only the spec's base facet",
        ),
        # Airflow's provider facets are held to the provider's schemas
        (
            _set("run.facets.airflow", {"_producer": PRODUCER, "_schemaURL": _BASE + "RunFacet"}),
            "run.facets.airflow: 'dag' is a required property",
        ),
        # ... but for two upstream deviations (Airflow 3.3 vs the provider's schema), exactly
        (_airflow_facet({"retry_exponential_backoff": "yes"}), "'yes' is not of type 'boolean'"),
        (_airflow_facet({}, try_number=None), "'try_number' is a required property"),
        # a facet under another name, or where its kind does not belong
        (_move("facets.schema", "facets.columns"), "names its facet ['schema'], not 'columns'"),
        (
            _move("facets.schema", "outputFacets.schema"),
            "a SchemaDatasetFacet where a OutputDatasetFacet belongs",
        ),
        (_set("run.facets.parent._schemaURL", ...), "no `_schemaURL` to validate it by"),
    ],
)
def test_the_official_schemas_catch_what_the_spec_forbids(change: Any, expected: str) -> None:
    event = _sample_event()
    assert problems(event) == []  # valid as the runner builds it
    change(event)
    found = problems(event)
    assert any(expected in line for line in found), found


def test_airflow_33s_airflow_facet_passes_despite_the_two_upstream_deviations() -> None:
    event = _sample_event()
    _airflow_facet({})(event)
    assert problems(event) == []

"""The runner contract: everything the orchestrator and a runner image agree on, once.

The `runner` CLI is the only interface between Airflow and the images (DESIGN.md,
contract 4): argv, the env variables named here, the exit codes below, and one JSON
result line last on stdout. Both sides import these values from this module — the
runner (`runners/`, `datakits.errors`) and every adapter (`dag_factory/adapters/`) — so
no value lives in two places and no test has to pin copies equal.

No Airflow here (runner images carry none): the adapters turn `ExitCode.retried` into
Airflow's exception types themselves.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterable
from enum import IntEnum
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
    ValidationError,
    WithJsonSchema,
)

# --- env ------------------------------------------------------------------------------------

#: The tenant's load spec as JSON (`LoadSpec.to_env_json()`).
RUNNER_SPEC_ENV = "RUNNER_SPEC"
#: SQLAlchemy URL of the source; a secret, resolved by the adapter at run time.
SOURCE_URL_ENV = "RUNNER_SOURCE_URL"
#: SQLAlchemy URL of the warehouse; a secret, resolved by the adapter at run time.
WAREHOUSE_URL_ENV = "RUNNER_WAREHOUSE_URL"
#: Optional: a file the runner also writes its result line to (the Kubernetes adapter
#: points it at the XCom sidecar's `/airflow/xcom/return.json`).
RESULT_FILE_ENV = "RUNNER_RESULT_FILE"
#: Optional: seconds an extract waits for another load of the same table (exit 5 after).
LOCK_TIMEOUT_ENV = "RUNNER_LOCK_TIMEOUT"
#: Optional: seconds between progress lines on stderr.
PROGRESS_INTERVAL_ENV = "RUNNER_PROGRESS_INTERVAL"
#: Optional: set to re-raise unexpected errors with their traceback (exit 1 otherwise).
DEBUG_ENV = "RUNNER_DEBUG"
#: Optional: the Prometheus Pushgateway the runner pushes its metrics to when a task ends
#: (`runners.metrics`); unset, nothing is pushed. A gateway that is down only warns.
PUSHGATEWAY_URL_ENV = "RUNNER_PUSHGATEWAY_URL"
#: Optional: the OpenLineage HTTP endpoint's base URL (Marquez, OpenMetadata, ...) the
#: runner sends its run events to (`runners.lineage`); unset, no event is sent. The names
#: are the `openlineage-python` client's own, so one env serves the client and us.
OPENLINEAGE_URL_ENV = "OPENLINEAGE_URL"
#: Optional: the path under `OPENLINEAGE_URL` (the client's default: `api/v1/lineage`).
OPENLINEAGE_ENDPOINT_ENV = "OPENLINEAGE_ENDPOINT"
#: Optional: a bearer API key for the lineage endpoint; a secret, never in an event.
OPENLINEAGE_API_KEY_ENV = "OPENLINEAGE_API_KEY"
#: Optional: the Airflow task try's OpenLineage run as `namespace/job/run_id` (what the
#: provider's `lineage_parent_id` macro renders), set by the adapter at execute time; the
#: runner's events name it in their `parent` facet.
PARENT_RUN_ENV = "RUNNER_PARENT_RUN"
#: Optional: Airflow's run id of the DAG run (e.g. `manual__2026-…`), set by the adapter at
#: execute time, so what a task leaves behind can name its run: the dbt artifacts it keeps
#: (`<meta>.dbt_artifacts`, `runners.dbt_artifacts`); unset, a run gets a fresh uuid.
RUN_ID_ENV = "RUNNER_RUN_ID"

#: The runner's uid and gid in the images; containers and pods run as this user.
RUNNER_UID = 10001


# --- exit codes -----------------------------------------------------------------------------


class ExitCode(IntEnum):
    """How a runner ends. `retried` says whether an orchestrator should try again."""

    ok = 0
    #: A bug or a failure nobody classified: retried, it may be transient.
    unexpected = 1
    #: Bad config or spec, missing schema/table/column, dbt compile error, empty dbt
    #: selection, objects depending on bronze, failing dbt tests: the same input fails
    #: the same way, so a retry only delays the alert.
    permanent = 2
    #: The source or warehouse cannot be reached or refuses the credentials.
    unreachable = 3
    #: The load started and was rolled back: bronze is at its last good state.
    load_failed = 4
    #: Another load of the same table held the lock past `RUNNER_LOCK_TIMEOUT`.
    lock_timeout = 5

    @property
    def retried(self) -> bool:
        return self is not ExitCode.permanent

    @property
    def meaning(self) -> str:
        return _MEANINGS[self]


_MEANINGS = {
    ExitCode.ok: "ok",
    ExitCode.unexpected: "unexpected error",
    ExitCode.permanent: "permanent failure (bad config, missing object, dbt error)",
    ExitCode.unreachable: "source or warehouse unreachable",
    ExitCode.load_failed: "load failed and rolled back",
    ExitCode.lock_timeout: "table lock timeout",
}


def is_permanent(code: int | None) -> bool:
    """True when retrying a runner that ended with `code` cannot help.

    Codes outside the table (a signal, an out-of-memory kill: 137, -9, None for a pod
    with no status) are treated as transient: the next try may well succeed."""
    return code == ExitCode.permanent


def describe(code: int | None) -> str:
    """`exit code 2 (permanent failure ...)`, for one-line failure messages."""
    try:
        return f"exit code {code} ({ExitCode(code).meaning})"  # type: ignore[arg-type]
    except ValueError:
        return f"exit code {code}"


# --- the result line ------------------------------------------------------------------------


class RunnerResult(BaseModel):
    """The JSON object the runner prints last on stdout (and writes to the result file).

    Commands add their own fields (rows, bytes, watermark, dbt counts): kept as is."""

    model_config = ConfigDict(extra="allow", frozen=True)

    status: str
    command: str
    seconds: float


class ResultLineError(ValueError):
    """The runner exited 0 but its output does not end with a result line."""


def parse_result(output: str | bytes | Iterable[str] | None) -> dict[str, Any]:
    """The result of a runner's stdout: its last non-blank line, a `RunnerResult` object.

    `output` is the whole stdout (or its tail), as text, bytes or lines. Every adapter
    reads the result through this one function."""
    if isinstance(output, bytes):
        output = output.decode("utf-8", "replace")
    lines = output.splitlines() if isinstance(output, str) else list(output or ())
    last = next((ln.strip() for ln in reversed(lines) if ln.strip()), "")
    try:
        data = json.loads(last)
        return RunnerResult.model_validate(data).model_dump()
    except (json.JSONDecodeError, ValidationError, TypeError):
        raise ResultLineError(
            f"the runner's last stdout line is not its JSON result: {last[:200]!r}"
        ) from None


# --- durations ------------------------------------------------------------------------------

DURATION_PATTERN = r"^(\d+)(s|m|h|d)$"
_DURATION = re.compile(DURATION_PATTERN)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
DURATION_WORDS = "a duration like 90s, 5m, 2h or 1d"


def parse_duration(text: str) -> dt.timedelta:
    """`90s`, `5m`, `2h`, `1d` → a timedelta; anything else is a ValueError."""
    match = _DURATION.match(text.strip())
    if not match:
        raise ValueError(f"must be {DURATION_WORDS}")
    return dt.timedelta(seconds=int(match[1]) * _UNIT_SECONDS[match[2]])


def format_duration(value: dt.timedelta) -> str:
    """The largest whole unit: 300 s → `5m`, 90 s → `90s`."""
    seconds = int(value.total_seconds())
    for unit in ("d", "h", "m"):
        if seconds and seconds % _UNIT_SECONDS[unit] == 0:
            return f"{seconds // _UNIT_SECONDS[unit]}{unit}"
    return f"{seconds}s"


def _duration_input(value: Any) -> Any:
    return parse_duration(value) if isinstance(value, str) else value


#: "90s", "5m", "2h", "1d" in YAML or JSON; a timedelta in Python.
Duration = Annotated[
    dt.timedelta,
    BeforeValidator(_duration_input),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
    WithJsonSchema(
        {"type": "string", "pattern": DURATION_PATTERN, "examples": ["90s", "5m", "2h", "1d"]}
    ),
]


# --- the tenant dbt image ---------------------------------------------------------------

#: Characters of the tenant dbt image's tag (48 bits of a sha256: no collision concern).
TENANT_IMAGE_TAG_LENGTH = 12


def split_registry(image: str) -> tuple[str | None, str]:
    """(`registry host` or None, the rest), by Docker's rule: the first path component
    is a registry when it has a dot or a port, or is `localhost`."""
    first, sep, rest = image.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return None, image


def tenant_image_tag(inputs_hash: str, base_image: str) -> str:
    """The tag of a tenant's dbt image, computed the same way by the image builder
    (`runners.tenant_images`) and by the planner at every parse (`dag_factory.images`).

    It names both what the image holds — the compiled graph's `inputs_hash`: the dbt
    project's files and the spec parts that shape its parse (bronze tables, layers,
    warehouse kind), i.e. exactly what `compiled/` depends on — and what it is built on:
    the dbt base image's repository and tag, without the registry host (a mirror or
    `DAG_FACTORY_REGISTRY` does not change the content). So a dbt upgrade (a new base
    tag) or a spec change that recompiles the graph gives a new tag, and an unchanged
    tenant keeps its tag and is neither rebuilt nor pushed.
    """
    text = f"{inputs_hash}\n{split_registry(base_image)[1]}"
    return hashlib.sha256(text.encode()).hexdigest()[:TENANT_IMAGE_TAG_LENGTH]

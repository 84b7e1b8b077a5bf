"""`runner dbt …`: run a dbt command in-process against the tenant's warehouse.

The project dir is never written to: the runner works on a temp copy completed from the
spec (`runners.dbt_project`), with a temp profiles.yml whose values are `env_var()`
lookups (`runners.dbt_profile`), and target/ and logs/ in the temp dir. dbt's console
output goes to stderr, so the runner's JSON result stays the last stdout line.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from datakits.errors import ConfigError, DatakitsError, LoadFailed, SourceUnavailable
from datakits.spec import LoadSpec
from runners.dbt_profile import (
    PROFILE_ENV_VARS,
    SSLMODE_ENV,
    prepare_profile,
    profile_env,
    profiles_yml,
)
from runners.dbt_project import prepare_project

#: Defaults for dbt's own flags, as env vars so that flags in `dbt_args` still win.
DBT_DEFAULTS = {
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    "DBT_USE_COLORS": "false",
    "DBT_PARTIAL_PARSE": "false",
}
#: Flags the runner sets itself; `dbt_args` may not carry them.
OWNED_FLAGS = ("--project-dir", "--profiles-dir", "--target-path", "--log-path", "--target")
#: Commands whose successful model nodes are tables built in the warehouse.
BUILDING_COMMANDS = frozenset({"build", "run"})

_PASSED = {"success", "pass", "warn", "no-op", "reused"}
_FAILED = {"error", "fail", "runtime error", "partial success"}
_MAX_LINE = 1000


@contextlib.contextmanager
def _scoped_env(values: Mapping[str, str], clear: tuple[str, ...] = ()) -> Iterator[None]:
    """Set `values` (and unset `clear`) in os.environ for the block, then restore."""
    names = set(values) | set(clear)
    saved = {name: os.environ.get(name) for name in names}
    try:
        for name in clear:
            os.environ.pop(name, None)
        os.environ.update(values)
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _one_line(text: object) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= _MAX_LINE else line[: _MAX_LINE - 1] + "…"


def _status(result: Any) -> str:
    status = getattr(result, "status", "")
    return str(getattr(status, "value", status))


def _node_label(node: Any) -> str:
    resource = str(getattr(getattr(node, "resource_type", ""), "value", "node"))
    return f"{resource} {getattr(node, 'name', None) or getattr(node, 'unique_id', '?')}"


def summarise(results: list[Any], *, builds: bool = True) -> dict[str, Any]:
    """Counts and built models of a dbt RunExecutionResult's `results`."""
    passed = failed = skipped = warned = 0
    models: list[str] = []
    failures: list[str] = []
    messages: list[str] = []
    for result in results:
        status = _status(result)
        node = getattr(result, "node", None)
        if status in _FAILED:
            failed += 1
            failures.append(f"{_node_label(node)} ({status})")
            if getattr(result, "message", None):
                messages.append(_one_line(result.message))
        elif status == "skipped":
            skipped += 1
        elif status in _PASSED:
            passed += 1
            warned += status == "warn"
            resource = str(getattr(getattr(node, "resource_type", ""), "value", ""))
            if builds and resource == "model" and status == "success":
                models.append(f"{node.schema}.{node.name}")
    return {
        "nodes": len(results),
        "passed": passed,
        "failed": failed,
        "skipped": skipped,
        "warned": warned,
        "models": models,
        "failures": failures,
        "messages": messages,
    }


def _classify(exc: BaseException, command: str) -> DatakitsError:
    """The runner error for an exception dbt raised before or instead of running nodes."""
    from dbt.adapters.exceptions.connection import FailedToConnectError
    from dbt_common.exceptions import DbtConfigError

    line = f"dbt {command} failed: {_one_line(exc)}"
    if isinstance(exc, FailedToConnectError):
        return SourceUnavailable(line)
    if isinstance(exc, DbtConfigError):  # dbt_project.yml or profile is wrong
        return ConfigError(line)
    return LoadFailed(line)


def _invoke(args: list[str]) -> Any:
    from dbt.cli.main import dbtRunner  # dbt is heavy: import it only for `runner dbt`

    with contextlib.redirect_stdout(sys.stderr):
        return dbtRunner().invoke(args)


def run_dbt(
    spec: LoadSpec, project_dir: Path, dbt_args: list[str], warehouse_url: str
) -> dict[str, Any]:
    """Run `dbt <dbt_args>` on a temp copy of `project_dir` against `warehouse_url`."""
    if not dbt_args or dbt_args[0].startswith("-"):
        raise ConfigError("give a dbt command first, e.g. `build --select silver`")
    owned = [a for a in dbt_args if a.split("=", 1)[0] in OWNED_FLAGS]
    if owned:
        raise ConfigError(
            f"the runner sets {', '.join(owned)} itself: leave it out of the dbt args"
        )
    kind = spec.warehouse.kind
    env = profile_env(kind, warehouse_url, spec.warehouse.schemas.silver)
    prepare_profile(kind, env)

    with tempfile.TemporaryDirectory(prefix=f"runner-dbt-{spec.tenant}-") as tmp:
        work = Path(tmp)
        project = prepare_project(Path(project_dir), work, spec)
        profiles_dir = work / "profiles"
        profiles_dir.mkdir()
        (profiles_dir / "profiles.yml").write_text(
            profiles_yml(project.profile, kind, sslmode=SSLMODE_ENV in env)
        )
        args = [
            *dbt_args,
            "--project-dir",
            str(project.dir),
            "--profiles-dir",
            str(profiles_dir),
            "--target-path",
            str(work / "target"),
            "--log-path",
            str(work / "logs"),
        ]
        print(f"runner dbt: dbt {' '.join(dbt_args)} ({project.name})", file=sys.stderr)
        with _scoped_env({**DBT_DEFAULTS, **env}, clear=PROFILE_ENV_VARS):
            res = _invoke(args)

    command = " ".join(dbt_args)
    if res.exception is not None:
        raise _classify(res.exception, command) from res.exception
    results = list(getattr(res.result, "results", None) or [])
    summary = summarise(results, builds=dbt_args[0] in BUILDING_COMMANDS)
    failures, messages = summary.pop("failures"), summary.pop("messages")
    if failures or not res.success:
        what = ", ".join(failures) if failures else "dbt reported a failure"
        first = f" - first error: {messages[0]}" if messages else ""
        raise LoadFailed(
            _one_line(f"dbt {command}: {summary['failed']} of {len(results)} failed: {what}{first}")
        )
    return {"tenant": spec.tenant, "dbt_command": list(dbt_args), **summary}

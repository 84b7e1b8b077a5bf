"""The local adapter: the planned `runner` argv as a subprocess on the worker.

This is the embedded default (no container engine) and a real execution mode: the same
argv and env an image would get, in a clean environment (the worker's own variables,
Airflow's connections among them, are not inherited). The runner's stderr streams into
the task log; its last stdout line, a JSON object, becomes the task's XCom.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections import deque
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from dag_factory.plan import PlannedTask, SecretRef
from dag_factory.secrets import SecretResolutionError, resolve
from dag_factory.spec import TenantSpec

#: Worker variables a Python process needs to start; nothing else is inherited.
_INHERITED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "SSL_CERT_FILE")
#: Exit code of the runner for bad configuration: retrying cannot help (datakits.errors).
_CONFIG_ERROR_EXIT = 2


class RunnerProcessOperator(BaseOperator):
    """Run `runner <argv>` as a child process of the worker."""

    ui_color = "#e8f4ea"

    def __init__(
        self,
        *,
        argv: tuple[str, ...],
        runner_env: dict[str, str],
        secrets: tuple[SecretRef, ...],
        cwd: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.argv = argv
        self.runner_env = runner_env
        self.secrets = secrets
        self.cwd = cwd

    def _environment(self) -> dict[str, str]:
        env = {name: os.environ[name] for name in _INHERITED_ENV if name in os.environ}
        env.update(self.runner_env)
        try:
            env.update({secret.env: resolve(secret.ref) for secret in self.secrets})
        except SecretResolutionError as exc:
            raise AirflowFailException(str(exc)) from None
        return env

    def execute(self, context: Any) -> dict[str, Any]:
        command = [sys.executable, "-m", "runners", *self.argv]
        self.log.info("runner %s (cwd %s)", " ".join(self.argv), self.cwd)
        proc = subprocess.Popen(
            command,
            cwd=self.cwd,
            env=self._environment(),
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        stdout_lines: deque[str] = deque(maxlen=50)
        reader = threading.Thread(target=lambda: stdout_lines.extend(proc.stdout), daemon=True)
        reader.start()
        last_err = ""
        for line in proc.stderr:  # streamed: progress appears in the log as it happens
            line = line.rstrip("\n")
            if line.strip():
                last_err = line
                self.log.info("%s", line)
        code = proc.wait()
        reader.join()
        if code != 0:
            failure = AirflowFailException if code == _CONFIG_ERROR_EXIT else AirflowException
            raise failure(f"runner exited with code {code}: {last_err}")
        return _result(stdout_lines)


def _result(lines: deque[str]) -> dict[str, Any]:
    for line in reversed(lines):
        if line.strip():
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                break
    raise AirflowException("runner exited 0 but printed no JSON result line on stdout")


def build_operator(
    task: PlannedTask, spec: TenantSpec, root: Path, common: dict[str, Any]
) -> RunnerProcessOperator:
    return RunnerProcessOperator(
        **common,
        argv=task.argv,
        runner_env=task.env_dict,
        secrets=task.secrets,
        cwd=str(root),
    )


def render(task: PlannedTask, spec: TenantSpec, root: Path) -> dict[str, Any]:
    """The child process the local adapter starts, with secrets as references."""
    return {
        "task_id": task.task_id,
        "image": task.image,  # not used locally: the worker's own environment runs it
        "command": [sys.executable, "-m", "runners", *task.argv],
        "argv": list(task.argv),
        "cwd": str(root),
        "env": task.env_dict,
        "secrets": {s.env: s.ref.model_dump(exclude_none=True) for s in task.secrets},
    }

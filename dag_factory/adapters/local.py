"""The local adapter: the planned `runner` argv as a subprocess on the worker.

This is the embedded default (no container engine) and a real execution mode: the same
argv and env an image would get, in a clean environment (the worker's own variables,
Airflow's connections among them, are not inherited). The runner's stderr streams into
the task log; its last stdout line, the JSON result, becomes the task's XCom.

The process runs the way Airflow's `SubprocessHook` runs one — its own session and
process group (`start_new_session`), default signal handlers restored — but keeps stdout
(the result) apart from stderr (the log), and `on_kill` ends the whole group: SIGTERM,
then SIGKILL after a grace period. Airflow calls `on_kill` on a task timeout and when a
user marks the task failed, so no runner (nor a child of one) outlives its task.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from dag_factory.adapters.asset_events import publish
from dag_factory.adapters.failures import runner_failure
from dag_factory.adapters.model_task import ModelTaskMixin, model_kwargs
from dag_factory.adapters.run_env import run_env
from dag_factory.plan import PlannedTask, SecretRef
from dag_factory.secrets import SecretResolutionError, resolve
from datakits.contract import ResultLineError, parse_result

#: Worker variables a Python process needs to start; nothing else is inherited.
_INHERITED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "SSL_CERT_FILE")
#: Seconds between SIGTERM and SIGKILL when the task is killed.
KILL_GRACE_SECONDS = 10.0
#: Lines of stdout kept for the result (the runner prints one, last).
_STDOUT_TAIL = 50


class RunnerProcessOperator(BaseOperator):
    """Run `runner <argv>` as a child process of the worker, in its own process group."""

    ui_color = "#e8f4ea"

    def __init__(
        self,
        *,
        argv: tuple[str, ...],
        runner_env: dict[str, str],
        secrets: tuple[SecretRef, ...],
        cwd: str,
        kill_grace: float = KILL_GRACE_SECONDS,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.argv = argv
        self.runner_env = runner_env
        self.secrets = secrets
        self.cwd = cwd
        self.kill_grace = kill_grace
        self._proc: subprocess.Popen[str] | None = None

    def add_runner_args(self, args: Sequence[str]) -> None:
        """More runner arguments for this try (a run option: `dag_factory.run_options`)."""
        self.argv = (*self.argv, *args)

    def _environment(self, context: Any) -> dict[str, str]:
        env = {name: os.environ[name] for name in _INHERITED_ENV if name in os.environ}
        env.update(self.runner_env)
        env.update(run_env(context))
        try:
            env.update({s.env: resolve(s.ref, field=s.field) for s in self.secrets})
        except SecretResolutionError as exc:
            raise AirflowFailException(str(exc)) from None
        return env

    def execute(self, context: Any) -> dict[str, Any]:
        command = [sys.executable, "-m", "runners", *self.argv]
        self.log.info("runner %s (cwd %s)", " ".join(self.argv), self.cwd)
        # No `with Popen` and no `finally: wait()`: on a timeout, AirflowTaskTimeout unwinds
        # through here and Airflow calls on_kill only afterwards (as in SubprocessHook).
        proc = self._proc = subprocess.Popen(
            command,
            cwd=self.cwd,
            env=self._environment(context),
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            restore_signals=True,
        )
        assert proc.stdout is not None and proc.stderr is not None
        stdout = proc.stdout
        stdout_lines: deque[str] = deque(maxlen=_STDOUT_TAIL)
        reader = threading.Thread(target=lambda: stdout_lines.extend(stdout), daemon=True)
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
            raise runner_failure(code, last_err)
        try:
            result = parse_result(stdout_lines)
        except ResultLineError as exc:
            raise AirflowException(f"runner exited 0 but {exc}") from None
        publish(context, self.outlets, result)
        return result

    def on_kill(self) -> None:
        """End the runner's whole process group: SIGTERM, then SIGKILL after the grace."""
        proc = self._proc
        if proc is None:
            return
        group = proc.pid  # start_new_session: the runner leads its own group
        if not _signal_group(group, signal.SIGTERM):
            return
        self.log.info("sent SIGTERM to the runner's process group %s", group)
        deadline = time.monotonic() + self.kill_grace
        while time.monotonic() < deadline:
            proc.poll()  # reap the leader, or the group never looks empty
            if not _signal_group(group, 0):
                return
            time.sleep(0.05)
        self.log.warning("runner still running %.0f s after SIGTERM: SIGKILL", self.kill_grace)
        _signal_group(group, signal.SIGKILL)
        proc.wait()


def _signal_group(group: int, sig: int) -> bool:
    """Send `sig` to every process of `group`; False when none is left."""
    try:
        os.killpg(group, sig)
    except ProcessLookupError:
        return False
    return True


class ModelProcessOperator(ModelTaskMixin, RunnerProcessOperator):
    """A dbt node's task: passes on `dbt_build`'s report, or runs its node as a process."""

    # Both defined here, not only in the mixin: Airflow's operator metaclass applies
    # default args to, and guards, only an `__init__` and `execute` of the class itself.
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)

    def execute(self, context: Any) -> Any:
        return super().execute(context)


def build_operator(task: PlannedTask, common: dict[str, Any]) -> RunnerProcessOperator:
    if task.is_model:
        return ModelProcessOperator(
            **common,
            **model_kwargs(task),
            argv=task.argv,
            runner_env=task.env_dict,
            secrets=task.secrets,
            cwd=task.cwd,
        )
    return RunnerProcessOperator(
        **common,
        argv=task.argv,
        runner_env=task.env_dict,
        secrets=task.secrets,
        cwd=task.cwd,
    )


def model_fields(task: PlannedTask) -> dict[str, Any]:
    """The attributes in which the operators of two model tasks differ, besides those the
    DAG build sets (`dag_factory.adapters.model_task.clone_operator`)."""
    return {"argv": task.argv}


def render(task: PlannedTask) -> dict[str, Any]:
    """The child process the local adapter starts, with secrets as references."""
    op = build_operator(task, {"task_id": task.task_id})
    return {
        "task_id": task.task_id,
        "image": task.image,  # not used locally: the worker's own environment runs it
        "command": [sys.executable, "-m", "runners", *op.argv],
        "argv": list(op.argv),
        "cwd": op.cwd,
        "env": dict(op.runner_env),
        "secrets": {s.env: s.ref.model_dump(exclude_none=True) for s in op.secrets},
    }

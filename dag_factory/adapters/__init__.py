"""Adapters turn a planned task into an Airflow operator; one module per executor.

Which adapter runs is configuration (`platform.executor`, overridden by the
`DAG_FACTORY_EXECUTOR` env var), looked up here — never an `if` elsewhere. An adapter
gets the planned task and the common operator arguments, nothing else: every platform
value it needs is in the plan (`dag_factory.plan.PlannedTask`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from dag_factory.spec import Executor

if TYPE_CHECKING:  # the CLI renders without importing Airflow (5 s) unless it must
    from airflow.sdk import BaseOperator

    from dag_factory.plan import PlannedTask


class Adapter(Protocol):
    def __call__(self, task: PlannedTask, common: dict[str, Any]) -> BaseOperator:
        """`common` holds the BaseOperator arguments shared by every adapter
        (task id, retries, timeout, outlets, pool): pass them through unchanged."""


#: executor → the module with its `build_operator` and `render`; imported only when used.
_ADAPTERS = {
    Executor.local: "dag_factory.adapters.local",
    Executor.docker: "dag_factory.adapters.docker",
    Executor.kubernetes: "dag_factory.adapters.kubernetes",
}


class Renderer(Protocol):
    def __call__(self, task: PlannedTask) -> dict[str, Any]:
        """What the adapter's operator would send for `task`, secrets only as references."""


def _module(executor: Executor) -> Any:
    try:
        return importlib.import_module(_ADAPTERS[executor])
    except KeyError:
        raise NotImplementedError(f"executor {executor.value!r} has no adapter yet") from None


def adapter_for(executor: Executor) -> Adapter:
    return _module(executor).build_operator


def model_fields_for(executor: Executor) -> Callable[[PlannedTask], dict[str, Any]]:
    """The adapter's `model_fields`: what differs between two of its model operators."""
    return _module(executor).model_fields


def renderer_for(executor: Executor) -> Renderer:
    return _module(executor).render

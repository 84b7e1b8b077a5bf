"""OpenLineage events of one runner task (placeholder until the events are built)."""

from __future__ import annotations

from typing import Any


def start(command: str, table: str | None, args: list[str] | None) -> Any:
    return None


def finish(run: Any, result: dict[str, Any] | None, code: int) -> None:
    return None

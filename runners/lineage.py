"""OpenLineage events of one runner task — NOT BUILT YET: both hooks are no-ops.

The CLI already calls `start` before a task's work and `finish` after it (`runners.cli._emit`),
so the events can be added here without touching the CLI again. Findings for whoever
builds them: `openlineage-python` 1.54.0 is pinned and installs cleanly; its
`OpenLineageClient()` falls back to a console transport when nothing is configured, so
this module must check `OPENLINEAGE_URL` / `OPENLINEAGE__TRANSPORT__*` /
`OPENLINEAGE_CONFIG` itself to stay a no-op; the package ships no copy of the
OpenLineage JSON schema (a pinned copy belongs in tests/).
"""

from __future__ import annotations

from typing import Any


def start(command: str, table: str | None, args: list[str] | None) -> Any:
    """The START event of this run (not built yet: returns None)."""
    return None


def finish(run: Any, result: dict[str, Any] | None, code: int) -> None:
    """The COMPLETE/FAIL event of `run` (not built yet: does nothing)."""
    return None

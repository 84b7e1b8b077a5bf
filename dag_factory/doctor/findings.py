"""What a doctor check reports: one line per check, saying what is wrong and how to fix it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Status(StrEnum):
    ok = "ok"
    problem = "problem"
    #: Not checked because an earlier check failed (e.g. no URL to connect with).
    skipped = "skipped"


@dataclass(frozen=True)
class Finding:
    """The result of one check of one tenant; `message` is one line, with the fix."""

    tenant: str
    check: str
    status: Status
    message: str

    def line(self) -> str:
        marker = "" if self.status is Status.problem else f"{self.status}: "
        return f"{self.tenant}: {self.check}: {marker}{self.message}"

    def as_dict(self) -> dict[str, str]:
        return {
            "tenant": self.tenant,
            "check": self.check,
            "status": str(self.status),
            "message": self.message,
        }


def finding(tenant: str, check: str, problem: str | None, ok: str) -> Finding:
    """A problem when `problem` is set, else an OK finding saying `ok`."""
    if problem is not None:
        return Finding(tenant, check, Status.problem, problem)
    return Finding(tenant, check, Status.ok, ok)

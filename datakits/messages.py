"""Turn driver errors into the one line a person reads (DESIGN.md, contract 4).

Driver messages span several lines (PostgreSQL adds DETAIL and HINT) and may, in
principle, echo a connection string. The runner prints exactly one line per failure,
so every message that leaves datakits goes through `one_line`, and anything that could
carry a password goes through `redact` first.
"""

from __future__ import annotations

import re

_WHITESPACE = re.compile(r"\s+")


def one_line(text: str, limit: int = 400) -> str:
    """Collapse all whitespace (newlines included) and cut to `limit` characters."""
    flat = _WHITESPACE.sub(" ", text).strip()
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def redact(text: str, *secrets: str | None) -> str:
    """Replace every occurrence of each non-empty secret by `***`."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def reason(exc: BaseException, *secrets: str | None) -> str:
    """The first meaningful line of a (driver) exception, without secrets.

    SQLAlchemy wraps DBAPI errors and appends the SQL statement and a documentation
    link; the driver's own message (`exc.orig`) is what explains the failure.
    """
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc) or type(exc).__name__
    first = next((line for line in text.splitlines() if line.strip()), text)
    return one_line(redact(first, *secrets))

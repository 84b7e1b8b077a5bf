"""Bronze names for source names: one rule, for tables and columns alike.

A source object may be called anything its database accepts (`"Order Details"`,
`"OrderID"`, `"Café"`, `"select"`); bronze, dbt sources and task ids need a plain
identifier. The rule (`bronze_name`), in order:

1. a name that already is a bronze identifier (`^[a-z_][a-z0-9_]{0,62}$`) is kept as it
   is, so every table loaded before source names existed keeps its bronze name;
2. otherwise: Unicode is transliterated by decomposition (NFKD) with the accents
   dropped (`Café` → `cafe`, `Ä` → `a`); characters with no ASCII base (`ß`, `名`)
   are dropped;
3. lower case; every run of characters outside `[a-z0-9_]` becomes one `_`, and `_` at
   both ends is stripped (`"Order Details"` → `order_details`, `"Unit Price ($)"` →
   `unit_price`);
4. a name starting with a digit gets a leading `_` (`2024 Sales` → `_2024_sales`);
   a name left empty becomes `_` + 8 hex digits of the source name's SHA-1;
5. longer than 63 characters (PostgreSQL's limit): the first 54, `_`, and 8 hex digits
   of the source name's SHA-1, so two long names sharing a prefix stay apart.

Two source columns of one table may derive the same name (`"Name"` and `name`):
`unique_names` keeps the first (by source ordinal position, so a column added later
never renames an existing one) and suffixes the others `_2`, `_3`, ...
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence

#: The bronze identifier (the same pattern as `datakits.spec.IDENTIFIER_PATTERN`).
BRONZE_PATTERN = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
#: PostgreSQL truncates identifiers past 63 bytes; bronze names stay within it.
MAX_LENGTH = 63
_DIGEST = 8
_NOT_IDENTIFIER = re.compile(r"[^a-z0-9_]+")


def _digest(source: str) -> str:
    return hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()[:_DIGEST]


def _fit(name: str, source: str) -> str:
    if len(name) <= MAX_LENGTH:
        return name
    return f"{name[: MAX_LENGTH - _DIGEST - 1]}_{_digest(source)}"


def bronze_name(source: str) -> str:
    """The bronze identifier derived from a source table or column name (module rule)."""
    if BRONZE_PATTERN.match(source):
        return source
    ascii_text = (
        unicodedata.normalize("NFKD", source).encode("ascii", "ignore").decode("ascii").lower()
    )
    name = _NOT_IDENTIFIER.sub("_", ascii_text).strip("_")
    if not name:
        return f"_{_digest(source)}"
    if name[0].isdigit():
        name = f"_{name}"
    return _fit(name, source)


def unique_names(derived: Sequence[str], taken: Iterable[str] = ()) -> list[str]:
    """`derived` made distinct, in order: a repeat gets `_2`, `_3`, ... (the first free).

    `taken`: names already claimed (e.g. given explicitly), never produced again.
    """
    used = set(taken)
    out: list[str] = []
    for name in derived:
        candidate, n = name, 1
        while candidate in used:
            n += 1
            suffix = f"_{n}"
            candidate = f"{name[: MAX_LENGTH - len(suffix)]}{suffix}"
        used.add(candidate)
        out.append(candidate)
    return out


def column_names(sources: Sequence[str], given: Mapping[str, str] = {}) -> dict[str, str]:
    """Bronze name by source name for one table's loaded columns.

    `sources` in source ordinal order (what makes the `_2` suffixes stable); `given`: the
    names a spec sets explicitly, which are claimed first and kept as they are.
    """
    derived = [s for s in sources if s not in given]
    unique = unique_names([bronze_name(s) for s in derived], taken=given.values())
    names = dict(zip(derived, unique, strict=True))
    return {s: given.get(s) or names[s] for s in sources}

"""Schema drift: how this load's columns differ from bronze's, and what the policy makes of it.

Both sides are read from the warehouse catalog: bronze as it is, and the staging table
this load just created from the source's schema (by the same code that creates bronze).
So "the same type" means what the warehouse stores, whatever the source called it: an
`int4` that became `int8`, or a `varchar(20)` that became `text`, is no drift at all.

The rules (`SchemaDrift`):

* `fail`: any new, dropped or retyped column fails the load, listing every difference.
* `evolve`:
  - a new source column is added to bronze (NULL in the rows loaded before);
  - a column gone from the source stays in bronze, NULL in the rows loaded from now on;
  - a decimal whose range changed is widened to hold both old and new values (lossless);
  - any other type change fails the load: old rows cannot be converted without loss or
    a guess, and bronze stays as it was.

A full refresh (and the first load of an append/incremental table) rebuilds the table,
so old rows need not fit new types: under `evolve` it takes the source's types as they
are now, and keeps dropped columns (as NULL) so downstream models still compile. Under
`fail` it fails on any difference, like the other modes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from datakits.bronze import CatalogType
from datakits.errors import LoadFailed
from datakits.spec import SchemaDrift

#: Largest decimal precision every supported warehouse stores (DuckDB's limit).
MAX_PRECISION = 38


@dataclass(frozen=True)
class TypeChange:
    column: str
    bronze: CatalogType
    source: CatalogType
    #: The type bronze must take to hold old and new values; None when no type can.
    widened: CatalogType | None

    def __str__(self) -> str:
        return f"{self.column} ({self.bronze} in bronze, {self.source} now)"


@dataclass(frozen=True)
class Drift:
    """The differences between bronze's columns and this load's."""

    added: dict[str, CatalogType] = field(default_factory=dict)
    dropped: dict[str, CatalogType] = field(default_factory=dict)
    changed: tuple[TypeChange, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.added or self.dropped or self.changed)

    def describe(self) -> str:
        parts = []
        if self.added:
            shown = ", ".join(f"{n} ({t})" for n, t in self.added.items())
            parts.append(f"new column(s) {shown}")
        if self.dropped:
            parts.append(f"dropped column(s) {', '.join(self.dropped)}")
        if self.changed:
            parts.append(f"changed type(s) {', '.join(str(c) for c in self.changed)}")
        return "; ".join(parts)


def _widened(old: CatalogType, new: CatalogType) -> CatalogType | None:
    """The narrowest type holding every value of both; None when there is none."""
    if old == new:
        return old
    if not (old.is_decimal and new.is_decimal):
        return None
    assert old.precision is not None and new.precision is not None
    scale = max(old.scale or 0, new.scale or 0)
    digits = max(old.precision - (old.scale or 0), new.precision - (new.scale or 0))
    if digits + scale > MAX_PRECISION:
        return None
    return CatalogType("decimal", digits + scale, scale)


def compare(bronze: dict[str, CatalogType], incoming: dict[str, CatalogType]) -> Drift:
    added = {n: t for n, t in incoming.items() if n not in bronze}
    dropped = {n: t for n, t in bronze.items() if n not in incoming}
    changed = tuple(
        TypeChange(n, bronze[n], t, _widened(bronze[n], t))
        for n, t in incoming.items()
        if n in bronze and bronze[n] != t
    )
    return Drift(added, dropped, changed)


@dataclass(frozen=True)
class Evolution:
    """What an accepted drift does to bronze (empty when there is no drift)."""

    #: Columns to add to bronze (a delta load) with the staging table's type.
    add: tuple[str, ...] = ()
    #: Columns to widen in bronze (a delta load), to the given type.
    widen: dict[str, CatalogType] = field(default_factory=dict)
    #: Bronze columns the source no longer has: kept, NULL in new rows.
    keep: dict[str, CatalogType] = field(default_factory=dict)


def decide(drift: Drift, policy: SchemaDrift, *, target: str, rebuild: bool) -> Evolution:
    """Apply the table's policy: an `Evolution` to carry out, or `LoadFailed` with the reason."""
    if not drift:
        return Evolution()
    if policy is SchemaDrift.fail:
        raise LoadFailed(
            f"the source's columns differ from {target} and schema_drift is `fail` (bronze "
            f"unchanged): {drift.describe()}; set schema_drift: evolve to accept them"
        )
    if rebuild:  # every row is rewritten: new types are taken as they are
        return Evolution(keep=dict(drift.dropped))
    incompatible = [c for c in drift.changed if c.widened is None]
    if incompatible:
        raise LoadFailed(
            f"incompatible type change in {target} (bronze unchanged): "
            f"{', '.join(str(c) for c in incompatible)}: the rows already loaded cannot take "
            "the new type; reload the table from scratch (delete its watermark) or cast "
            "the column at the source"
        )
    widen = {c.column: c.widened for c in drift.changed if c.widened and c.widened != c.bronze}
    return Evolution(add=tuple(drift.added), widen=widen, keep=dict(drift.dropped))

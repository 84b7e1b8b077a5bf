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
  - a decimal whose range changed is widened to hold both old and new values (lossless),
    a `real` column whose source became double precision to double;
  - a column bronze stores in a type that holds every new value exactly stays as it is
    (`float4` values into a double column, a narrower integer into a wider one): no
    rewrite, the insert widens each value;
  - a text column stays text whatever the source's type became (e.g. bronze made before
    arrays and `money` had native types): text holds every value, and rewriting the old
    rows into the new type would be a guess (`money`'s text is formatted by the source's
    locale). The new values are written as text, in the form the rows already there
    have: a list as JSON (what the earlier path wrote), anything else as its text cast.
    A full reload (`full_reload`, or deleting the watermark) takes the native type;
  - any other type change fails the load: old rows cannot be converted without loss or
    a guess, and bronze stays as it was.

Every kept or restaged column is said in `Evolution.notes` (the load's progress line).

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

#: Type names (PostgreSQL's, DuckDB's) from narrow to wide, within which every value
#: of a narrower type is exactly a value of a wider one.
_LADDERS = (
    ("real", "double precision"),
    ("float", "double"),
    ("smallint", "integer", "bigint"),
    ("tinyint", "smallint", "integer", "bigint"),
    ("byte", "short", "integer", "long"),  # Delta (lakehouse)
)
#: Catalog names of text columns (PostgreSQL, DuckDB, Delta).
_TEXT = frozenset({"text", "character varying", "varchar", "string"})


def _is_list(catalog: CatalogType) -> bool:
    """A list column: PostgreSQL's catalog says `ARRAY`, DuckDB's `<element>[]`."""
    return catalog.name == "array" or catalog.name.endswith("]")


def _rank(old: CatalogType, new: CatalogType) -> tuple[int, int] | None:
    """Positions of both types on one ladder of exact widenings; None if on none."""
    for ladder in _LADDERS:
        if old.name in ladder and new.name in ladder:
            return ladder.index(old.name), ladder.index(new.name)
    return None


@dataclass(frozen=True)
class TypeChange:
    column: str
    bronze: CatalogType
    source: CatalogType
    #: The type bronze must take to hold old and new values; None when no type can.
    widened: CatalogType | None

    @property
    def as_text(self) -> bool:
        """Bronze's text column takes the new values as text (`_TEXT`, module docstring)."""
        return self.widened is None and self.bronze.name in _TEXT

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
    rank = _rank(old, new)
    if rank is not None:
        return old if rank[0] >= rank[1] else new
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
    #: Staged columns to turn into bronze's text before they go in: name → True when
    #: the staged column is a list (written as JSON), False for a plain text cast.
    as_text: dict[str, bool] = field(default_factory=dict)
    #: What was decided about columns whose type differs, in words (the progress line).
    notes: tuple[str, ...] = ()


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
    incompatible = [c for c in drift.changed if c.widened is None and not c.as_text]
    if incompatible:
        raise LoadFailed(
            f"incompatible type change in {target} (bronze unchanged): "
            f"{', '.join(str(c) for c in incompatible)}: the rows already loaded cannot take "
            "the new type; reload the table from scratch (delete its watermark) or cast "
            "the column at the source"
        )
    widen = {c.column: c.widened for c in drift.changed if c.widened and c.widened != c.bronze}
    as_text = {c.column: _is_list(c.source) for c in drift.changed if c.as_text}
    return Evolution(
        add=tuple(drift.added),
        widen=widen,
        keep=dict(drift.dropped),
        as_text=as_text,
        notes=tuple(_note(c, target) for c in drift.changed),
    )


def _note(change: TypeChange, target: str) -> str:
    """One decided type change, in words."""
    name, old, new = change.column, change.bronze, change.source
    if change.as_text:
        form = "JSON text" if _is_list(new) else "text"
        return (
            f"{target}.{name} stays {old} (the source now gives {new}): new values "
            f"written as {form}, like the rows already loaded; a full reload takes {new}"
        )
    if change.widened == old:
        return f"{target}.{name} stays {old}: it holds every {new} value exactly"
    return f"{target}.{name} widened from {old} to {change.widened}"

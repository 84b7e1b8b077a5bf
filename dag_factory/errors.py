"""Errors in tenant files, in words a data engineer reads without Python.

Every problem names the file, line and column, the field path (`tables[2].mode`), what
was wrong and, where pydantic knows it, what is allowed. All problems of a file are
collected and reported together.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from dag_factory.spec import PATTERN_WORDS as SPEC_PATTERN_WORDS
from dag_factory.spec import UNION_TAGS
from dag_factory.yaml_source import FieldPath, PositionedDocument, YamlError
from datakits.spec import ENV_VAR_PATTERN, IDENTIFIER_PATTERN, TENANT_ID_PATTERN


@dataclass(frozen=True)
class Problem:
    file: Path
    line: int
    column: int
    path: FieldPath
    message: str

    @property
    def field(self) -> str:
        return field_path(self.path)

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )


class TenantFileError(Exception):
    """One tenant file failed to load; `problems` lists every error found in it."""

    def __init__(self, file: Path, problems: list[Problem]) -> None:
        self.file = file
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def field_path(loc: FieldPath) -> str:
    """('tables', 2, 'mode') → 'tables[2].mode'."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _model_at(model: type[BaseModel], path: FieldPath) -> type[BaseModel] | None:
    """The pydantic model that validates the mapping at `path` (list indexes skipped)."""
    for part in path:
        if isinstance(part, int):
            continue
        field = next((f for n, f in model.model_fields.items() if (f.alias or n) == part), None)
        if field is None:
            return None
        found = _first_model(field.annotation)
        if found is None:
            return None
        model = found
    return model


def _first_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _first_model(arg)
        if found is not None:
            return found
    return None


def _unknown_key(root: type[BaseModel], loc: FieldPath) -> str:
    model = _model_at(root, loc[:-1])
    if model is None:
        return "unknown key"
    allowed = [f.alias or n for n, f in model.model_fields.items()]
    close = difflib.get_close_matches(str(loc[-1]), allowed, n=1, cutoff=0.6)
    hint = f"did you mean `{close[0]}`? " if close else ""
    return f"unknown key; {hint}allowed here: {', '.join(allowed)}"


def _describe(error: ErrorDetails, root: type[BaseModel]) -> str:
    kind, msg, ctx = error["type"], error["msg"], error.get("ctx") or {}
    if kind == "extra_forbidden":
        return _unknown_key(root, _loc(error))
    if kind == "missing":
        return "is required"
    got = error.get("input")
    scalar = isinstance(got, str | int | float | bool) or got is None
    if kind in ("value_error", "assertion_error"):  # our own validators say it in words
        text = str(ctx.get("error", msg))
        return f"{text}, got {_show(got)}" if scalar and not isinstance(got, bool) else text
    if kind in _TYPE_WORDS:
        return f"{_TYPE_WORDS[kind].format(**ctx)}, got {_show(got)}"
    if kind == "too_short":
        return f"must have at least {ctx.get('min_length', 1)} item(s)"
    if kind == "enum":
        text = f"must be one of {ctx['expected']}"
    elif kind == "string_pattern_mismatch":
        pattern = ctx.get("pattern", "")
        text = f"must be {_PATTERN_WORDS.get(pattern, f'a string matching {pattern}')}"
    else:
        text = msg[0].lower() + msg[1:] if msg else kind
    return f"{text}, got {_show(error.get('input'))}"


#: pydantic error types, in words.
_TYPE_WORDS = {
    "int_parsing": "must be a whole number",
    "int_type": "must be a whole number",
    "int_from_float": "must be a whole number",
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
    "string_type": "must be text (quote it if YAML reads it as a number, date or yes/no)",
    "greater_than_equal": "must be at least {ge}",
    "less_than_equal": "must be at most {le}",
    "date_from_datetime_parsing": "must be a date like 2026-01-31",
    "date_parsing": "must be a date like 2026-01-31",
    "date_type": "must be a date like 2026-01-31",
    "list_type": "must be a list",
    "tuple_type": "must be a list",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
}

#: Patterns of datakits.spec, in words.
_PATTERN_WORDS = {
    IDENTIFIER_PATTERN: "a lower-case SQL identifier (a-z, 0-9, _; at most 63 characters)",
    TENANT_ID_PATTERN: (
        "a tenant id (a-z, 0-9 and single _ between them; starting with a letter, ending "
        "with a letter or digit; at most 40)"
    ),
    ENV_VAR_PATTERN: "an env var name (A-Z, 0-9, _)",
    **SPEC_PATTERN_WORDS,
}


#: user:password@ in a URL someone pasted where a reference belongs.
_CREDENTIALS = re.compile(r"(://[^/:@\s]+:)[^@\s]+@")


def _show(value: Any) -> str:
    """The bad value, short, with any URL password masked: errors end up in logs."""
    text = _CREDENTIALS.sub(r"\1***@", repr(value))
    return text if len(text) <= 60 else text[:57] + "..."


def _loc(error: ErrorDetails) -> FieldPath:
    # Drop the tags pydantic adds for constrained/union types (e.g. 'function-after[...]').
    return tuple(
        p for p in error["loc"] if isinstance(p, int) or ("[" not in p and p not in UNION_TAGS)
    )


def problems_from_validation(
    file: Path, doc: PositionedDocument, exc: ValidationError, root: type[BaseModel]
) -> list[Problem]:
    """Every error of `exc`, placed in `file`; `root` is the model that was validated."""
    errors = exc.errors(include_url=False)
    failed = {_loc(e) for e in errors if e["type"] != "too_short"}
    problems = []
    for error in errors:
        loc = _loc(error)
        # A list whose items failed also reports "too short": the items' errors say more.
        if error["type"] == "too_short" and any(f[: len(loc)] == loc and f != loc for f in failed):
            continue
        position = doc.position(loc, prefer_key=error["type"] == "extra_forbidden") or (1, 1)
        problems.append(Problem(file, *position, loc, _describe(error, root)))
    return sorted(problems, key=lambda p: (p.line, p.column))


def problems_from_yaml(file: Path, exc: YamlError) -> list[Problem]:
    return [Problem(file, p.line, p.column, (), p.message) for p in exc.problems]

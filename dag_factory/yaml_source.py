"""YAML that remembers where each value came from, so errors can name a line and column.

PyYAML's composer already knows the position of every node; we keep it in a map from
field path (`("tables", 2, "mode")`) to (line, column), for the key and for the value.
Duplicate keys are an error here, where plain `yaml.safe_load` silently keeps the last one.

A tenant file is written by a tenant and parsed inside the scheduler's DAG file, beside
every other tenant: reading it must stay cheap and bounded whatever it contains. So
before anything is composed, `read_source` refuses a file over `max_file_bytes()` (1 MiB,
`DAG_FACTORY_MAX_FILE_BYTES`) or not in UTF-8, and `_check_events` walks libyaml's event
stream (an iterative parser: no recursion per level) and refuses

* nesting deeper than `MAX_DEPTH` (libyaml's composer, our `_index` and pydantic all
  recurse once per level: 1,000 levels raise RecursionError, 100,000 crash the process);
* aliases (`*name`). An alias is a reference: 758 bytes of nested aliases stand for
  billions of values, which the position index, `deep_merge` and pydantic would each
  walk in full. Neither a tenant file nor `defaults.yaml` needs them: what tenants share
  belongs in `defaults.yaml`, merged key by key under each tenant, and a value the defaults
  repeat is written out. An anchor alone (`&name`) is harmless and left alone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

try:  # libyaml is ~10x faster; fall back to the pure-Python loader where it is missing
    _Loader: type[yaml.SafeLoader] = yaml.CSafeLoader  # type: ignore[assignment]
except AttributeError:  # pragma: no cover
    _Loader = yaml.SafeLoader

FieldPath = tuple[str | int, ...]
Position = tuple[int, int]  # 1-based line and column

#: The largest YAML file read, in bytes; a real tenant file is a few KiB.
MAX_FILE_BYTES = 1 << 20
MAX_FILE_BYTES_ENV = "DAG_FACTORY_MAX_FILE_BYTES"
#: The deepest nesting of mappings and lists; a tenant file needs fewer than 10 levels.
MAX_DEPTH = 50


@dataclass(frozen=True)
class YamlProblem:
    """A problem found while reading YAML, before any validation."""

    line: int
    column: int
    message: str


class YamlError(Exception):
    def __init__(self, problems: list[YamlProblem]) -> None:
        super().__init__("; ".join(p.message for p in problems))
        self.problems = problems


@dataclass
class PositionedDocument:
    """A parsed YAML mapping and the positions of its keys and values."""

    data: Any
    keys: dict[FieldPath, Position] = field(default_factory=dict)
    values: dict[FieldPath, Position] = field(default_factory=dict)

    def position(self, path: FieldPath, *, prefer_key: bool = False) -> Position | None:
        """The position of `path`, or of its nearest ancestor that the file has."""
        for end in range(len(path), -1, -1):
            sub = path[:end]
            first, second = (self.keys, self.values) if prefer_key else (self.values, self.keys)
            found = first.get(sub) or second.get(sub)
            if found:
                return found
        return None


def max_file_bytes() -> int:
    """`MAX_FILE_BYTES`, or `DAG_FACTORY_MAX_FILE_BYTES` when that is a positive number."""
    configured = os.environ.get(MAX_FILE_BYTES_ENV, "").strip()
    return int(configured) if configured.isdigit() and int(configured) > 0 else MAX_FILE_BYTES


def read_source(file: Path) -> str:
    """The text of a YAML file; YamlError if it is too large or not UTF-8.

    At most the limit plus one byte is read, whatever the file's size."""
    limit = max_file_bytes()
    with file.open("rb") as stream:
        data = stream.read(limit + 1)
    if len(data) > limit:
        raise YamlError(
            [
                YamlProblem(
                    1,
                    1,
                    f"file is larger than {limit} bytes (the limit, set by "
                    f"{MAX_FILE_BYTES_ENV}): a tenant file needs a few KiB",
                )
            ]
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise YamlError(
            [
                YamlProblem(
                    line,
                    column,
                    f"not UTF-8 at byte {exc.start} (line {line}): save the file as UTF-8",
                )
            ]
        ) from None


def _check_events(text: str) -> None:
    """Refuse aliases and nesting deeper than MAX_DEPTH, from libyaml's event stream,
    before anything recursive (composer, index, validation) sees the document."""
    loader = _Loader(text)
    depth = 0
    try:
        while (event := loader.get_event()) is not None:
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    line, col = _mark(event)
                    raise YamlError(
                        [YamlProblem(line, col, f"nested more than {MAX_DEPTH} levels deep")]
                    )
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
            elif isinstance(event, yaml.AliasEvent):
                line, col = _mark(event)
                raise YamlError(
                    [
                        YamlProblem(
                            line,
                            col,
                            f"YAML aliases (*{event.anchor}) are not allowed: write the "
                            "value out (settings shared by tenants belong in defaults.yaml)",
                        )
                    ]
                )
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(exc) from None
    finally:
        loader.dispose()


def _mark(node: yaml.Node | yaml.Event) -> Position:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _index(
    node: yaml.Node, path: FieldPath, doc: PositionedDocument, problems: list[YamlProblem]
) -> None:
    doc.values[path] = _mark(node)
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, Position] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                line, col = _mark(key_node)
                where = ".".join(map(str, (*path, key)))
                problems.append(
                    YamlProblem(
                        line,
                        col,
                        f"duplicate key `{where}` (first given on line {seen[key][0]})",
                    )
                )
                continue
            seen[key] = _mark(key_node)
            doc.keys[(*path, key)] = _mark(key_node)
            _index(value_node, (*path, key), doc, problems)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index(item, (*path, i), doc, problems)


class _DuplicateKey(Exception):
    """Raised by the fast loader; the slow path then reports every duplicate with lines."""


class _FastLoader(_Loader):  # type: ignore[misc,valid-type]
    """The C parser with one check added: a mapping may not repeat a key."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        keys = [k.value for k, _ in node.value]
        if len(keys) != len(set(keys)):
            raise _DuplicateKey
        return super().construct_mapping(node, deep=deep)


def _bad_scalar(root: yaml.Node, exc: Exception) -> YamlError:
    """Find the scalar whose value the constructor rejected, to give its position."""
    probe = yaml.constructor.SafeConstructor()
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, yaml.ScalarNode):
            try:
                probe.construct_object(node)
            except (ValueError, TypeError):
                line, col = _mark(node)
                return YamlError([YamlProblem(line, col, f"invalid value {node.value!r}: {exc}")])
        elif isinstance(node, yaml.MappingNode):
            stack.extend(v for pair in reversed(node.value) for v in reversed(pair))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(reversed(node.value))
    return YamlError([YamlProblem(1, 1, f"invalid YAML value: {exc}")])


def _syntax_error(exc: yaml.MarkedYAMLError) -> YamlError:
    mark = exc.problem_mark or exc.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    reason = ": ".join(filter(None, [exc.context, exc.problem]))
    return YamlError([YamlProblem(line, col, f"invalid YAML: {reason}")])


def load_yaml(text: str) -> Any:
    """Parse one YAML document fast (no positions kept); YamlError on syntax errors and
    duplicate keys. Positions are only worth their cost once something is wrong:
    `parse_yaml` gives them."""
    _check_events(text)
    try:
        return yaml.load(text, Loader=_FastLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(exc) from None
    except (_DuplicateKey, ValueError, TypeError):
        parse_yaml(text)  # raises with every duplicate and its line
        raise AssertionError("duplicate keys were found, then not found") from None


def parse_yaml(text: str) -> PositionedDocument:
    """Parse one YAML document keeping every key's and value's position; YamlError with
    positions for syntax errors and for every duplicate key."""
    _check_events(text)
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return PositionedDocument(data={})
        try:
            data = loader.construct_document(node)
        except (ValueError, TypeError) as exc:  # e.g. a date 2026-13-01 that libyaml matched
            raise _bad_scalar(node, exc) from None
    except yaml.MarkedYAMLError as exc:
        raise _syntax_error(exc) from None
    finally:
        loader.dispose()
    doc = PositionedDocument(data=data)
    problems: list[YamlProblem] = []
    _index(node, (), doc, problems)
    if problems:
        raise YamlError(problems)
    return doc

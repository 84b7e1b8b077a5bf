"""Find tenant files, merge the shared defaults under them, validate, and cache the result.

Parsing touches no network, database or dbt command: only the files under
`warehouses/`. A validated spec is cached by the content of its file and of the defaults,
so a scheduler re-parsing an unchanged tenant does not validate it again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from dag_factory.errors import (
    Problem,
    TenantFileError,
    problems_from_validation,
    problems_from_yaml,
)
from dag_factory.spec import TenantSpec
from dag_factory.yaml_source import PositionedDocument, YamlError, parse_yaml

TENANT_FILE = "warehouse.yaml"
DEFAULTS_FILE = "defaults.yaml"


@dataclass(frozen=True)
class Tenant:
    """A validated tenant: its spec and where its files are."""

    spec: TenantSpec
    file: Path

    @property
    def folder(self) -> Path:
        return self.file.parent

    @property
    def dbt_project_dir(self) -> Path:
        return self.folder / self.spec.dbt.project


@dataclass
class LoadReport:
    tenants: list[Tenant] = field(default_factory=list)
    errors: list[TenantFileError] = field(default_factory=list)


def discover(warehouses_dir: Path, only: frozenset[str] | None = None) -> list[Path]:
    """Every `<tenant>/warehouse.yaml` under `warehouses_dir`, in a stable order;
    with `only`, just the tenants whose folder names are in it."""
    files = sorted(warehouses_dir.glob(f"*/{TENANT_FILE}"))
    return [f for f in files if only is None or f.parent.name in only]


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """`override` wins; mappings merge key by key, anything else (lists too) replaces."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


_cache: dict[str, TenantSpec] = {}


class Loader:
    """Loads the tenants of one warehouses folder against its defaults file."""

    def __init__(self, warehouses_dir: Path) -> None:
        self.dir = Path(warehouses_dir)
        self.defaults_file = self.dir / DEFAULTS_FILE
        self._defaults_text = (
            self.defaults_file.read_text(encoding="utf-8") if self.defaults_file.exists() else ""
        )
        self._defaults: PositionedDocument | None = None

    def _defaults_doc(self) -> PositionedDocument:
        if self._defaults is None:
            try:
                self._defaults = parse_yaml(self._defaults_text)
            except YamlError as exc:
                raise TenantFileError(
                    self.defaults_file, problems_from_yaml(self.defaults_file, exc)
                ) from None
            if not isinstance(self._defaults.data, dict):
                raise TenantFileError(
                    self.defaults_file,
                    [Problem(self.defaults_file, 1, 1, (), "must be a mapping of settings")],
                )
        return self._defaults

    def load(self, file: Path) -> Tenant:
        """Validate one tenant file; raise TenantFileError listing every problem in it."""
        text = file.read_text(encoding="utf-8")
        key = hashlib.sha256(f"{self._defaults_text}\0{file}\0{text}".encode()).hexdigest()
        spec = _cache.get(key)
        if spec is None:
            spec = self._validate(file, text)
            _cache[key] = spec
        return Tenant(spec=spec, file=file)

    def _validate(self, file: Path, text: str) -> TenantSpec:
        try:
            doc = parse_yaml(text)
        except YamlError as exc:
            raise TenantFileError(file, problems_from_yaml(file, exc)) from None
        if not isinstance(doc.data, dict):
            raise TenantFileError(file, [Problem(file, 1, 1, (), "must be a mapping of settings")])
        defaults = self._defaults_doc()
        merged = deep_merge(defaults.data, doc.data)
        try:
            spec = TenantSpec.model_validate(merged)
        except ValidationError as exc:
            raise TenantFileError(file, self._problems(file, doc, exc)) from None
        problems = self._check_files(file, doc, spec)
        if problems:
            raise TenantFileError(file, problems)
        return spec

    def _problems(self, file: Path, doc: PositionedDocument, exc: ValidationError) -> list[Problem]:
        """Attribute each problem to the tenant file, or to defaults.yaml if it came from there."""
        defaults = self._defaults_doc()
        problems = []
        for problem in problems_from_validation(file, doc, exc, TenantSpec):
            path = problem.path
            if path and path not in doc.values and path in defaults.values:
                line, col = defaults.values[path]
                problem = Problem(self.defaults_file, line, col, path, problem.message)
            problems.append(problem)
        return problems

    @staticmethod
    def _check_files(file: Path, doc: PositionedDocument, spec: TenantSpec) -> list[Problem]:
        problems = []
        folder_name = file.parent.name
        if spec.tenant != folder_name:
            line, col = doc.position(("tenant",)) or (1, 1)
            problems.append(
                Problem(
                    file,
                    line,
                    col,
                    ("tenant",),
                    f"must equal its folder's name {folder_name!r}, got {spec.tenant!r}",
                )
            )
        project = file.parent / spec.dbt.project
        if not (project / "dbt_project.yml").is_file():
            line, col = doc.position(("dbt", "project")) or (1, 1)
            problems.append(
                Problem(file, line, col, ("dbt", "project"), f"no dbt_project.yml in {project}")
            )
        return problems

    def load_all(self, only: frozenset[str] | None = None) -> LoadReport:
        """Every tenant (or those in `only`); a broken file never stops the others."""
        report = LoadReport()
        for file in discover(self.dir, only):
            try:
                report.tenants.append(self.load(file))
            except TenantFileError as exc:
                report.errors.append(exc)
        return report

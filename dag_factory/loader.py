"""Find tenant files, merge the shared defaults under them, validate, and cache the result.

Parsing touches no network, database or dbt command: only the files under
`warehouses/`. A validated spec is cached by the content of its file and of the defaults,
so a scheduler re-parsing an unchanged tenant does not validate it again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from dag_factory.cache import SpecCache
from dag_factory.errors import (
    Problem,
    TenantFileError,
    problems_from_validation,
    problems_from_yaml,
)
from dag_factory.spec import TenantSpec
from dag_factory.yaml_source import FieldPath, YamlError, load_yaml, parse_yaml

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


class Loader:
    """Loads the tenants of one warehouses folder against its defaults file.

    Fast path: libyaml without positions, then pydantic. Only a file that fails is parsed
    again keeping positions, so that every problem can name its line and column.
    """

    def __init__(self, warehouses_dir: Path, cache: SpecCache | None = None) -> None:
        self.dir = Path(warehouses_dir)
        self.defaults_file = self.dir / DEFAULTS_FILE
        self._defaults_text = (
            self.defaults_file.read_text(encoding="utf-8") if self.defaults_file.exists() else ""
        )
        self._defaults_data: dict[str, Any] | None = None
        self.cache = cache if cache is not None else SpecCache.from_env()

    @staticmethod
    def _fail(file: Path, what: str) -> TenantFileError:
        return TenantFileError(file, [Problem(file, 1, 1, (), what)])

    def _defaults(self) -> dict[str, Any]:
        if self._defaults_data is None:
            try:
                data = load_yaml(self._defaults_text) or {}
            except YamlError as exc:
                raise TenantFileError(
                    self.defaults_file, problems_from_yaml(self.defaults_file, exc)
                ) from None
            if not isinstance(data, dict):
                raise self._fail(self.defaults_file, "must be a mapping of settings")
            self._defaults_data = data
        return self._defaults_data

    def load(self, file: Path) -> Tenant:
        """Validate one tenant file; raise TenantFileError listing every problem in it."""
        text = file.read_text(encoding="utf-8")
        key = self.cache.key(self._defaults_text, str(file), text)
        spec = self.cache.get(key)
        if spec is None:
            spec = self._validate(file, text)
            self.cache.put(key, spec)
        problems = self._check_files(file, text, spec)
        if problems:
            raise TenantFileError(file, problems)
        return Tenant(spec=spec, file=file)

    def _validate(self, file: Path, text: str) -> TenantSpec:
        try:
            data = load_yaml(text)
        except YamlError as exc:
            raise TenantFileError(file, problems_from_yaml(file, exc)) from None
        if not isinstance(data, dict):
            raise self._fail(file, "must be a mapping of settings")
        try:
            return TenantSpec.model_validate(deep_merge(self._defaults(), data))
        except ValidationError as exc:
            raise TenantFileError(file, self._problems(file, text, exc)) from None

    def _problems(self, file: Path, text: str, exc: ValidationError) -> list[Problem]:
        """Place each problem in the tenant file, or in defaults.yaml if it came from there."""
        doc = parse_yaml(text)
        defaults = parse_yaml(self._defaults_text)
        problems = []
        for problem in problems_from_validation(file, doc, exc, TenantSpec):
            path = problem.path
            if path and path not in doc.values and path in defaults.values:
                line, col = defaults.values[path]
                problem = Problem(self.defaults_file, line, col, path, problem.message)
            problems.append(problem)
        return problems

    @staticmethod
    def _check_files(file: Path, text: str, spec: TenantSpec) -> list[Problem]:
        """What the models cannot know: the folder name and the dbt project on disk."""
        found: list[tuple[FieldPath, str]] = []
        folder_name = file.parent.name
        if spec.tenant != folder_name:
            found.append(
                (("tenant",), f"must equal its folder's name {folder_name!r}, got {spec.tenant!r}")
            )
        project = file.parent / spec.dbt.project
        if not project.resolve().is_relative_to(file.parent.parent.resolve()):
            found.append((("dbt", "project"), "must stay inside the warehouses folder"))
        elif not (project / "dbt_project.yml").is_file():
            found.append((("dbt", "project"), f"no dbt_project.yml in {project}"))
        if not found:
            return []
        doc = parse_yaml(text)
        return [Problem(file, *(doc.position(path) or (1, 1)), path, msg) for path, msg in found]

    def load_all(self, only: frozenset[str] | None = None) -> LoadReport:
        """Every tenant (or those in `only`); a broken file never stops the others."""
        report = LoadReport()
        for file in discover(self.dir, only):
            try:
                report.tenants.append(self.load(file))
            except TenantFileError as exc:
                report.errors.append(exc)
        return report

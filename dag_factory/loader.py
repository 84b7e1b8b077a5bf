"""Find tenant files, merge the shared defaults under them, validate, and cache the result.

Parsing touches no network, database or dbt command: only the files under
`warehouses/`. A validated spec is cached by the content of its file and of the defaults,
so a scheduler re-parsing an unchanged tenant does not validate it again.

One tenant's file can never slow down or break the others: reading is bounded
(`yaml_source`: size, nesting, no aliases, UTF-8 only), validation is linear in the
file's size, and *any* exception while loading one file becomes that tenant's
`TenantFileError` — a broken `defaults.yaml` too, which then marks every tenant.

An invalid tenant is never a silent stop: `Loader.fallback` reads from the broken file
what can still be trusted on its own — `schedule`/`start_date`/`catchup` and `alerting`,
each validated alone — or else takes them from the last valid version of that file (kept
by the spec cache), so the tenant's placeholder DAG fails loudly at the time its real run
was due, through the tenant's own alerting. The last valid version does NOT keep running
meanwhile: its author believes the config changed, and loading stale tables, schedules or
credentials without a word is worse than a red run that says which line to fix.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from dag_factory.cache import SpecCache
from dag_factory.errors import (
    Problem,
    TenantFileError,
    problems_from_validation,
    problems_from_yaml,
)
from dag_factory.isolation import SHARED_KEY, SharedRefs, cross_tenant_problems, tenant_problems
from dag_factory.spec import Alerting, TenantSpec
from dag_factory.yaml_source import FieldPath, YamlError, load_yaml, parse_yaml, read_source

TENANT_FILE = "warehouse.yaml"
DEFAULTS_FILE = "defaults.yaml"
#: Most tables one tenant may list: each is a task, and Airflow builds a DAG of 50,000
#: tasks in minutes — past its import timeout, which drops every tenant's DAG.
MAX_TABLES = 1000
MAX_TABLES_ENV = "DAG_FACTORY_MAX_TABLES"


def max_tables() -> int:
    configured = os.environ.get(MAX_TABLES_ENV, "").strip()
    return int(configured) if configured.isdigit() and int(configured) > 0 else MAX_TABLES


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


@dataclass(frozen=True)
class Fallback:
    """What an invalid tenant's placeholder runs on: when, and whom it alerts."""

    schedule: Any  # a cron/preset string, an AssetSchedule, or None (manual only)
    start_date: dt.date
    catchup: bool
    alerting: Alerting
    #: Where schedule and alerting came from, in words for the placeholder's doc.
    timing_from: str
    alerting_from: str


_TIMING_FIELDS = ("schedule", "start_date", "catchup")


def _lenient_model(name: str, fields: tuple[str, ...]) -> type[BaseModel]:
    """A model of some of TenantSpec's fields, with their own validation, ignoring the rest."""
    spec_fields = TenantSpec.model_fields
    return create_model(  # type: ignore[call-overload,no-any-return]
        name,
        __config__=ConfigDict(extra="ignore"),
        **{f: (spec_fields[f].annotation, spec_fields[f]) for f in fields},
    )


_Timing = _lenient_model("_Timing", _TIMING_FIELDS)
_Alerting = _lenient_model("_Alerting", ("alerting",))


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
        self._defaults_text = ""
        self._defaults_data: dict[str, Any] | None = None
        self._defaults_error: TenantFileError | None = None
        self._shared = SharedRefs()
        self.cache = cache if cache is not None else SpecCache.from_env()
        try:
            if self.defaults_file.exists():
                self._defaults_text = read_source(self.defaults_file)
        except YamlError as exc:
            self._defaults_error = TenantFileError(
                self.defaults_file, problems_from_yaml(self.defaults_file, exc)
            )
        except Exception as exc:
            self._defaults_error = self._fail(self.defaults_file, _unexpected(exc))

    @staticmethod
    def _fail(file: Path, what: str) -> TenantFileError:
        return TenantFileError(file, [Problem(file, 1, 1, (), what)])

    def _defaults(self) -> dict[str, Any]:
        """defaults.yaml's settings; TenantFileError (naming defaults.yaml) if it is broken."""
        if self._defaults_error is not None:
            raise self._defaults_error
        if self._defaults_data is None:
            try:
                data = load_yaml(self._defaults_text) or {}
            except YamlError as exc:
                self._defaults_error = TenantFileError(
                    self.defaults_file, problems_from_yaml(self.defaults_file, exc)
                )
                raise self._defaults_error from None
            if not isinstance(data, dict):
                self._defaults_error = self._fail(
                    self.defaults_file, "must be a mapping of settings"
                )
                raise self._defaults_error
            data = dict(data)
            try:  # the platform's allow-list (dag_factory.isolation), not a tenant setting
                self._shared = SharedRefs.model_validate(data.pop(SHARED_KEY, None) or {})
            except ValidationError as exc:
                doc = parse_yaml(self._defaults_text)
                self._defaults_error = TenantFileError(
                    self.defaults_file,
                    problems_from_validation(self.defaults_file, doc, exc, SharedRefs),
                )
                raise self._defaults_error from None
            self._defaults_data = data
        return self._defaults_data

    def load(self, file: Path) -> Tenant:
        """Validate one tenant file; raise TenantFileError listing every problem in it —
        for any failure at all but FileNotFoundError (no such tenant)."""
        try:
            with _gc_paused():
                return self._load(file)
        except TenantFileError as exc:
            if exc.file != file:  # defaults.yaml is broken: this tenant cannot load
                raise TenantFileError(file, exc.problems) from None
            raise
        except FileNotFoundError:
            raise  # no such tenant: the caller named a file that is not there
        except Exception as exc:
            raise self._fail(file, _unexpected(exc)) from exc

    def _load(self, file: Path) -> Tenant:
        try:
            text = read_source(file)
        except YamlError as exc:
            raise TenantFileError(file, problems_from_yaml(file, exc)) from None
        self._defaults()  # a broken defaults.yaml fails every tenant, cached or not
        key = self.cache.key(self._defaults_text, str(file), text)
        spec = self.cache.get(key)
        if spec is None:
            spec = self._validate(file, text)
            self.cache.put(key, spec)
        problems = self._check_files(file, text, spec, tenant_problems(spec, self._shared))
        if problems:
            raise TenantFileError(file, problems)
        self.cache.set_last_valid(file, key)
        return Tenant(spec=spec, file=file)

    def fallback(self, file: Path) -> Fallback:
        """The schedule and alerting an invalid tenant's placeholder keeps (see the module
        docstring); never raises."""
        last = self.cache.get_last_valid(file)
        merged: dict[str, Any] | None = None
        try:
            data = load_yaml(read_source(file))
            if isinstance(data, dict):
                try:
                    merged = deep_merge(self._defaults(), data)
                except TenantFileError:
                    merged = data  # what defaults.yaml would add is unknown: the rest stays
        except Exception:  # noqa: S110 (unreadable: nothing is taken from the file)
            pass
        timing: Any = None
        alerting: Alerting | None = None
        timing_from = alerting_from = ""
        if merged is not None:
            known = last.model_dump(include=set(_TIMING_FIELDS)) if last else {}
            try:
                timing = _Timing.model_validate(
                    {**known, **{f: merged[f] for f in _TIMING_FIELDS if f in merged}}
                )
                timing_from = f"read from {file.name} (those settings are valid on their own)"
            except Exception:  # noqa: S110
                pass
            try:
                alerting = _Alerting.model_validate(merged).alerting  # type: ignore[attr-defined]
                alerting_from = f"read from {file.name}"
            except Exception:  # noqa: S110
                pass
        if timing is None and last is not None:
            timing = last
            timing_from = "kept from the last valid version of the file"
        if alerting is None and last is not None:
            alerting, alerting_from = last.alerting, "kept from the last valid version"
        if timing is None:  # manual runs only, from Airflow's UI or API
            timing = _Timing.model_validate({"schedule": None})
        return Fallback(
            schedule=timing.schedule,  # type: ignore[attr-defined]
            start_date=timing.start_date,  # type: ignore[attr-defined]
            catchup=False,
            alerting=alerting or Alerting(),
            timing_from=timing_from
            or "none could be read and no valid version is known: manual runs only",
            alerting_from=alerting_from or "none could be read: no alerts",
        )

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
    def _check_files(
        file: Path, text: str, spec: TenantSpec, found: list[tuple[FieldPath, str]]
    ) -> list[Problem]:
        """What the models cannot know: the folder name, the dbt project on disk, whether a
        setting came from defaults.yaml (shared Airflow roles must), and (in `found`) the
        isolation checks (dag_factory.isolation)."""
        found = list(found)
        limit = max_tables()
        if len(spec.tables) > limit:
            found.append(
                (
                    ("tables", limit),
                    f"{len(spec.tables)} tables, at most {limit} per tenant (one task each; "
                    f"{MAX_TABLES_ENV} sets the limit): split the tenant",
                )
            )
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
        if "shared_roles" in text and ("access", "shared_roles") in parse_yaml(text).keys:
            found.append((("access", "shared_roles"), "can be set in defaults.yaml only"))
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
            except Exception as exc:  # e.g. removed since `discover` listed it
                report.errors.append(self._fail(file, _unexpected(exc)))
        return self._check_claims(report)

    def _check_claims(self, report: LoadReport) -> LoadReport:
        """Tenants that claim what another claims (dag_factory.isolation) become errors,
        each naming the other."""
        clashes = cross_tenant_problems(((t.spec, t.file) for t in report.tenants), self._shared)
        if not clashes:
            return report
        kept = []
        for tenant in report.tenants:
            found = clashes.get(tenant.file)
            if not found:
                kept.append(tenant)
                continue
            doc = parse_yaml(read_source(tenant.file))
            problems = [
                Problem(tenant.file, *(doc.position(path) or (1, 1)), path, message)
                for path, message in found
            ]
            report.errors.append(TenantFileError(tenant.file, problems))
        report.tenants = kept
        return report


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause Python's cyclic GC while one file is read and validated.

    Parsing allocates one object per node and value, none in a cycle; with the GC on,
    its full collections rescan everything alive (in a DAG processor: all of Airflow) as
    the objects pile up, and a 40,000-table file took 8.5x the time of a 10,000-table
    one instead of 4x. The file is at most `max_file_bytes()`, so the pause is bounded."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _unexpected(exc: BaseException) -> str:
    """An exception no check foresaw, in one line (the type says what kind of failure)."""
    text = " ".join(str(exc).split())
    return f"could not be loaded: {type(exc).__name__}: {text[:300]}"

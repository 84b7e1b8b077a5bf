"""`dag-factory docs TENANT`: the tenant's dbt docs site, as static files.

dbt's docs need the warehouse (the catalog reads column types from it), so they are built
the way a dbt task runs: the `runner` in a child process, in the folder holding
`warehouses/`, with the tenant's runtime spec and its warehouse connection resolved on
this machine (`dag_factory.secrets`, as the local adapter does), and nothing else of this
process's environment. The runner runs `dbt docs generate --static` on its scratch copy of
the project (sources and schema routing from the spec, as in a build) and copies the site
to `--out` (`runner dbt --docs-out`): `static_index.html` is the whole site in one file,
`index.html` + `manifest.json` + `catalog.json` the same for a static web server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from dag_factory.loader import Tenant
from dag_factory.plan import PlatformOverrides, TaskKind, plan_tenant, project_path
from dag_factory.secrets import SecretResolutionError, resolve
from datakits.contract import ResultLineError, parse_result

#: Worker variables a Python process needs; the same list as the local adapter's
#: (`dag_factory.adapters.local._INHERITED_ENV`, which imports Airflow: not imported here).
INHERITED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "SSL_CERT_FILE")
#: The one file holding the whole site (manifest and catalog inlined).
STATIC_INDEX = "static_index.html"


class DocsError(RuntimeError):
    """The docs site was not built; the message is one line saying why."""


@dataclass(frozen=True)
class DocsSite:
    out: Path
    files: tuple[str, ...]
    seconds: float
    #: Models and snapshots the catalog found in the warehouse: 0 before a first build
    #: (the site then lists them without columns).
    catalog_nodes: int

    @property
    def index(self) -> Path:
        return self.out / STATIC_INDEX


def docs_argv(tenant: Tenant, root: Path, out: Path) -> tuple[str, ...]:
    """`runner dbt … docs generate --static`: the project path as the planner names it,
    and the tenant's layers, so models are looked up in the schemas they are built in."""
    dbt = tenant.spec.dbt
    routing: tuple[str, ...] = ()
    if dbt.custom_layers:
        layers = json.dumps(dbt.layers, separators=(",", ":"))
        routing = ("--layer", next(iter(dbt.layers)), "--layers", layers)
    return ("dbt", "--project-dir", project_path(tenant, root), *routing,
            "--docs-out", str(out), "docs", "generate", "--static")  # fmt: skip


def runner_env(tenant: Tenant, root: Path) -> dict[str, str]:
    """The env of the tenant's dbt task, its secrets resolved here (as the local adapter
    resolves them when a task starts)."""
    plan = plan_tenant(tenant, root, PlatformOverrides.from_env())
    task = next(t for t in plan.tasks if t.kind is TaskKind.dbt)
    env = {name: os.environ[name] for name in INHERITED_ENV if name in os.environ}
    env.update(task.env_dict)
    try:
        env.update({s.env: resolve(s.ref, field=s.field) for s in task.secrets})
    except SecretResolutionError as exc:
        raise DocsError(str(exc)) from None
    return env


def build_docs(tenant: Tenant, root: Path, out: Path, *, timeout: float = 1800) -> DocsSite:
    """Build the tenant's docs site into `out`; progress (dbt's log) goes to stderr."""
    out = out.resolve()
    argv = docs_argv(tenant, root, out)
    done = subprocess.run(
        [sys.executable, "-m", "runners", *argv],
        cwd=root,
        env=runner_env(tenant, root),
        stdout=subprocess.PIPE,
        stderr=None if os.environ.get("DAG_FACTORY_VERBOSE") else subprocess.PIPE,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        lines = [ln for ln in (done.stderr or "").splitlines() if ln.strip()]
        reason = lines[-1] if lines else f"the runner exited {done.returncode}"
        raise DocsError(reason)
    try:
        result = parse_result(done.stdout)
    except ResultLineError as exc:
        raise DocsError(f"the runner exited 0 but {exc}") from None
    site = result.get("docs_site") or {}
    try:
        catalog = json.loads((out / "catalog.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise DocsError(f"the runner wrote no readable catalog.json into {out}") from None
    nodes = len(catalog.get("nodes") or {})
    return DocsSite(out, tuple(site.get("files", ())), float(result.get("seconds", 0)), nodes)

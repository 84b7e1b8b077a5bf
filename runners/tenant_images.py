"""One dbt image per tenant, tagged by the hash of its compiled inputs and base image.

The base is the runner image of the tenant's dbt engine, which its graph records
(`engine`, written by `dag-factory dbt compile`): the dbt runner image
(`tenant-runner-dbt`) for `warehouse`, the Spark runner image (`tenant-runner-spark`)
for `spark`. A Spark tenant's graph only names its image (its DAG keeps layer tasks);
the image is the same kind: that tenant's project and `compiled/` on top of its base.

The base dbt image (`tenant-runner-dbt`) carries no tenant's files; each tenant's image
(`runners/docker/tenant.Dockerfile`) adds only that tenant's dbt project — a shared one
such as `warehouses/_dbt/shop` included for every tenant that uses it — and its
`compiled/` folder. Which project, and its hash, come from the graph file that
`dag-factory dbt compile` writes (`warehouses/<tenant>/compiled/dbt_graph.json`): this
module never reads a tenant spec (runners do not import dag_factory).

Tag: `<registry>/tenant-dbt-<tenant>:<tag>`, `datakits.contract.tenant_image_tag` of the
graph's `inputs_hash` (the project and the spec parts its parse depends on) and the base
dbt image (a dbt upgrade is a new base tag, so a new tenant tag; the planner computes the
same tag at parse). The same inputs on the same base give the same tag, so an unchanged
tenant costs nothing: when the tag is already in the registry
(asked through the registry's HTTP API, `HEAD /v2/<name>/manifests/<tag>`), it is neither
built nor pushed. The hash is checked against the project on disk first: a graph compiled
before the last edit would put new files under an old tag, which breaks the promise of a
content-addressed tag.
"""

from __future__ import annotations

import json
import re
import shutil
import ssl
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from datakits.contract import tenant_image_tag
from datakits.spec import TENANT_ID_PATTERN
from runners.dbt_graph import project_hash

#: The graph file of a tenant, relative to the folder holding `warehouses/` (contract A).
GRAPH_FILE = "compiled/dbt_graph.json"
#: The repository of a tenant's image is `<registry>/<TENANT_REPOSITORY_PREFIX><tenant>`.
TENANT_REPOSITORY_PREFIX = "tenant-dbt-"
#: `engine` of a graph file (`dbt.engine`) → the base image kind its tenant image is
#: built FROM (a `runners/docker/Dockerfile` target); a graph without one is `warehouse`.
ENGINE_BASES = {"warehouse": "dbt", "spark": "spark"}
#: Never part of a project's content, nor copied into its image (contract A's list).
SKIPPED = ("target", "logs", "dbt_packages", ".user.yml", "__pycache__", ".git")
#: The manifest types a registry may hold for a tag (Docker v2, OCI; single or index).
_MANIFEST_TYPES = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)


class TenantImageError(RuntimeError):
    """A tenant image cannot be built as asked; the message is one line saying what to do."""


def _skipped(path: Path, root: Path) -> bool:
    return any(part in SKIPPED for part in path.relative_to(root).parts)


@dataclass(frozen=True)
class TenantGraph:
    """What an image build needs from a tenant's graph file."""

    tenant: str
    #: The dbt project, relative to the folder holding `warehouses/` (posix).
    project: str
    project_hash: str
    #: The graph's `inputs_hash`: the project and the spec parts its parse depends on.
    inputs_hash: str
    #: `warehouses/<tenant>/compiled`, absolute.
    compiled: Path
    #: The tenant's `dbt.engine` when compiled: `ENGINE_BASES` names its base image.
    engine: str = "warehouse"

    @property
    def base(self) -> str:
        """The Dockerfile target its image is built FROM: `dbt` or `spark`."""
        return ENGINE_BASES[self.engine]

    def tag(self, base_image: str) -> str:
        """The tag for this graph on `base_image` (`datakits.contract.tenant_image_tag`)."""
        return tenant_image_tag(self.inputs_hash, base_image)


def tenant_ids(root: Path) -> list[str]:
    """The tenants of `root/warehouses`: folders with a `warehouse.yaml`, sorted."""
    return sorted(p.parent.name for p in (root / "warehouses").glob("*/warehouse.yaml"))


def read_graph(root: Path, tenant: str) -> TenantGraph:
    """The tenant's graph file, checked: present, its own, its project inside `root` and
    unchanged since it was compiled. Raises TenantImageError with the fix in one line."""
    if not re.fullmatch(TENANT_ID_PATTERN, tenant):
        raise TenantImageError(f"{tenant!r} is not a tenant id (a-z, 0-9, _)")
    file = root / "warehouses" / tenant / GRAPH_FILE
    shown = file.relative_to(root).as_posix()
    if not file.is_file():
        raise TenantImageError(
            f"tenant {tenant}: {shown} is missing: run `dag-factory dbt compile {tenant}` first"
        )
    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
        project, digest = str(doc["project"]), str(doc["project_hash"])
        inputs = str(doc["inputs_hash"])
        named = doc["tenant"]
        engine = str(doc.get("engine", "warehouse"))
    except (ValueError, KeyError, TypeError) as exc:
        raise TenantImageError(
            f"tenant {tenant}: {shown} is not a graph file ({type(exc).__name__}: {exc}): "
            f"run `dag-factory dbt compile {tenant}` again"
        ) from None
    if named != tenant:
        raise TenantImageError(f"{shown} is tenant {named}'s, not {tenant}'s: compile it again")
    if engine not in ENGINE_BASES:
        raise TenantImageError(
            f"{shown}: engine {engine[:40]!r} is not one of {', '.join(ENGINE_BASES)}: run "
            f"`dag-factory dbt compile {tenant}` again"
        )
    for name, value in (("project_hash", digest), ("inputs_hash", inputs)):
        if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
            raise TenantImageError(f"{shown}: {name} {value[:80]!r} is not a sha256 hex digest")
    project_dir = (root / project).resolve()
    warehouses = (root / "warehouses").resolve()
    if project_dir != warehouses and warehouses not in project_dir.parents:
        raise TenantImageError(f"{shown}: project {project} is not under warehouses/")
    if not (project_dir / "dbt_project.yml").is_file():
        raise TenantImageError(f"{shown}: {project} has no dbt_project.yml")
    if project_hash(project_dir) != digest:
        raise TenantImageError(
            f"tenant {tenant}: {project} changed since {shown} was compiled: run "
            f"`dag-factory dbt compile {tenant}` again, so the image tag is its content's"
        )
    return TenantGraph(tenant, project_dir.relative_to(root.resolve()).as_posix(), digest,
                       inputs, file.parent, engine)  # fmt: skip


def tenant_repository(registry: str, tenant: str) -> str:
    return f"{registry.rstrip('/')}/{TENANT_REPOSITORY_PREFIX}{tenant}"


def tenant_image_ref(registry: str, graph: TenantGraph, base_image: str) -> str:
    return f"{tenant_repository(registry, graph.tenant)}:{graph.tag(base_image)}"


def stage_tenant_context(root: Path, graph: TenantGraph, context: Path) -> Path:
    """The build context of one tenant's image: its project and its `compiled/` folder at
    their repository paths under `warehouses/`, nothing else (build output skipped)."""
    shutil.rmtree(context, ignore_errors=True)
    context.mkdir(parents=True)
    shutil.copytree(
        root / graph.project, context / graph.project, ignore=shutil.ignore_patterns(*SKIPPED)
    )
    compiled = graph.compiled.relative_to(root.resolve())
    shutil.copytree(graph.compiled, context / compiled, dirs_exist_ok=True)
    return context


def split_ref(ref: str) -> tuple[str, str, str]:
    """`host[:port]/path/name:tag` → (host, path/name, tag)."""
    host, _, rest = ref.partition("/")
    name, _, tag = rest.rpartition(":")
    return host, name, tag


def registry_has(ref: str, *, timeout: float = 10) -> bool | None:
    """Whether the registry holds `ref`'s tag (Docker Registry HTTP API v2, `HEAD
    /v2/<name>/manifests/<tag>`): True, False, or None when it cannot tell (it asks for
    credentials, or does not answer) — then the image is built and pushed anyway.

    Plain HTTP for loopback registries (dockerd trusts 127.0.0.0/8 and localhost over
    HTTP), HTTPS with the system's CAs (`SSL_CERT_FILE`) otherwise."""
    host, name, tag = split_ref(ref)
    hostname = host.rsplit(":", 1)[0]
    plain = hostname == "localhost" or hostname.startswith("127.")
    url = f"{'http' if plain else 'https'}://{host}/v2/{name}/manifests/{tag}"
    accept = {"Accept": _MANIFEST_TYPES}
    request = urllib.request.Request(url, method="HEAD", headers=accept)  # noqa: S310 (http/s)
    tls = None if plain else ssl.create_default_context()
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=tls) as reply:  # noqa: S310
            return reply.status == 200
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return False
        print(f"registry {host} answered {exc.code} for {name}:{tag}: building", file=sys.stderr)
        return None
    except OSError as exc:
        print(f"registry {host} unreachable ({exc}): building", file=sys.stderr)
        return None


@dataclass(frozen=True)
class TenantImage:
    tenant: str
    ref: str
    #: True when the tag was already there (registry with --push, else the local engine):
    #: nothing built, nothing pushed.
    reused: bool
    seconds: float


def build_tenant_images(
    root: Path,
    tenants: Iterable[str],
    *,
    registry: str,
    dbt_image: str,
    spark_image: str | None = None,
    push: bool,
    work: Path,
    run: Callable[[Sequence[str]], None],
    local_has: Callable[[str], bool],
    docker: str,
    dockerfile: Path,
    runner_uid: int,
) -> list[TenantImage]:
    """Build (and push) one image per tenant `FROM dbt_image`, or `FROM spark_image` for a
    tenant whose graph says `engine: spark`; skip a tag that exists.

    Every graph is read and checked before anything is built, so a missing or stale one
    (or a Spark tenant with no Spark image to build on) fails the run at once, naming the
    tenant and the command to run."""
    import time

    graphs = [read_graph(root, tenant) for tenant in tenants]
    bases = {"dbt": dbt_image, "spark": spark_image}
    for graph in graphs:
        if bases[graph.base] is None:
            raise TenantImageError(
                f"tenant {graph.tenant} runs dbt.engine {graph.engine}: its image is built "
                f"FROM the {graph.base} runner image, and none was given: build it too "
                f"(`--only {graph.base}`)"
            )
    done = []
    for graph in graphs:
        started = time.perf_counter()
        base = bases[graph.base]
        assert base is not None  # checked above
        ref = tenant_image_ref(registry, graph, base)
        exists = registry_has(ref) if push else local_has(ref)
        if exists:
            print(f"{ref}: already {'in the registry' if push else 'built'}", file=sys.stderr)
            done.append(TenantImage(graph.tenant, ref, True, 0.0))
            continue
        context = stage_tenant_context(root, graph, work / "tenants" / graph.tenant)
        build_args: Mapping[str, str] = {
            "RUNNER_IMAGE": base,
            "ENGINE": graph.engine,
            "TENANT": graph.tenant,
            "PROJECT": graph.project,
            "PROJECT_HASH": graph.project_hash,
            "RUNNER_UID": str(runner_uid),
        }
        argv = [docker, "build", "--network", "none", "-f", str(dockerfile), "-t", ref]
        for name, value in build_args.items():
            argv += ["--build-arg", f"{name}={value}"]
        print(f"building {ref} ({graph.project} FROM {base}) …", file=sys.stderr)
        run([*argv, str(context)])
        if push:
            run([docker, "push", ref])
        done.append(TenantImage(graph.tenant, ref, False, round(time.perf_counter() - started, 1)))
    return done

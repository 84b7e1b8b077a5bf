"""Build the runner images, tag them with the version and the git sha, push them; then
one dbt image per tenant, tagged by its compiled inputs and base image.

    python -m runners.build_images [--registry HOST[:PORT]] [--push] [--base-image IMAGE]
                                   [--only datakit|dbt|tenants] [--tenant T ...]

Two base images from `runners/docker/Dockerfile` (README.md beside it says why two):
`tenant-runner-datakit` (extracts, every source driver) and `tenant-runner-dbt`, neither
with any tenant's file. Each is tagged `<registry>/<name>:<version>` (pyproject) and
`<registry>/<name>:<git sha>`. Then, from `runners/docker/tenant.Dockerfile`, one image
per tenant on top of the dbt one: `<registry>/tenant-dbt-<tenant>:<tag>`
(`datakits.contract.tenant_image_tag`; `runners.tenant_images`; it needs the graph files
of `dag-factory dbt compile`).

The build downloads nothing: the dependencies are built into wheels on this host (pip,
pinned by constraints.txt; cached under `.data/wheels/` by the hash of the pins), and the
image installs them offline (`uv pip install --offline --no-index --find-links`). The
wheels are the base install (datakit) and the `dbt` extra, never the `airflow` one; this
script itself is stdlib only.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from datakits.contract import RUNNER_UID
from runners.tenant_images import (
    TenantImage,
    TenantImageError,
    build_tenant_images,
    read_graph,
    tenant_ids,
)

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "runners" / "docker" / "Dockerfile"
TENANT_DOCKERFILE = REPO / "runners" / "docker" / "tenant.Dockerfile"
#: Dockerfile target → image name.
IMAGES = {"datakit": "tenant-runner-datakit", "dbt": "tenant-runner-dbt"}
DEFAULT_REGISTRY = "registry.localhost"
#: For real users; our machines build from a local debootstrap image (devtools/docker.py).
DEFAULT_BASE_IMAGE = "python:3.11-slim-bookworm"
#: dbt-core's parser ships a wheel only for this pre-release (STACK.md).
_ONLY_BINARY = "dbt-core-experimental-parser"


@dataclass(frozen=True)
class BuiltImage:
    target: str
    #: Every tag, the version tag first.
    refs: tuple[str, ...]
    size_bytes: int
    seconds: float

    @property
    def size_mb(self) -> float:
        return round(self.size_bytes / 1_000_000, 1)


def docker_binary() -> str:
    """`$DOCKER`, else Debian's client (BuildKit-capable), else `docker` on PATH."""
    if os.environ.get("DOCKER"):
        return os.environ["DOCKER"]
    return "/usr/bin/docker" if Path("/usr/bin/docker").exists() else "docker"


def project_version(repo: Path = REPO) -> str:
    with (repo / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)["project"]["version"]


def git_revision(repo: Path = REPO) -> str:
    """The short commit sha, with `-dirty` when the work tree has uncommitted changes."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=repo, check=True, capture_output=True, text=True
        ).stdout.strip()

    try:
        sha = git("rev-parse", "--short=12", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + ("-dirty" if dirty else "")


def _run(argv: Sequence[str], *, env: Mapping[str, str] | None = None, quiet: bool) -> None:
    done = subprocess.run(
        [str(a) for a in argv],
        env=dict(env) if env is not None else None,
        capture_output=quiet,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        tail = ((done.stdout or "") + (done.stderr or ""))[-4000:] if quiet else ""
        raise RuntimeError(f"`{' '.join(map(str, argv[:3]))} …` failed ({done.returncode})\n{tail}")


def _pip_wheel(*args: str, quiet: bool) -> None:
    cmd = [sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check", *args]
    _run(cmd, quiet=quiet)


def dependency_wheels(repo: Path, cache: Path, *, quiet: bool = True) -> Path:
    """Wheels of every dependency of `.[dbt]`, built once per set of pins and Python."""
    pins = (repo / "constraints.txt").read_bytes()
    with (repo / "pyproject.toml").open("rb") as f:
        project = tomllib.load(f)["project"]
    key = hashlib.sha256()
    key.update(pins)
    key.update(repr((project["dependencies"], project["optional-dependencies"]["dbt"])).encode())
    key.update(f"{sys.implementation.cache_tag}-{platform.machine()}".encode())
    folder = cache / key.hexdigest()[:16]
    if folder.is_dir():
        return folder
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    print(f"building dependency wheels into {folder} …", file=sys.stderr)
    _pip_wheel(
        "-w", str(partial), "-c", str(repo / "constraints.txt"),
        "--only-binary", _ONLY_BINARY, f"{repo}[dbt]",
        quiet=quiet,
    )  # fmt: skip
    for own in partial.glob("tenant_runner-*.whl"):  # the project's wheel is built per build
        own.unlink()
    partial.rename(folder)
    return folder


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def uv_binary() -> Path:
    """The uv that installed this environment (pinned by the Makefile), else uv on PATH."""
    beside = Path(sys.executable).parent / "uv"
    found = beside if beside.is_file() else shutil.which("uv")
    if not found:
        raise RuntimeError("uv not found: `make install` puts it in .venv/bin")
    return Path(found)


def stage_context(repo: Path, context: Path, deps: Path, *, quiet: bool = True) -> Path:
    """The build context of the base images: `wheels/` (deps, the project, constraints.txt)
    and `tools/uv`, which installs the wheels in the image. No tenant's file: those go
    into each tenant's own image (`stage_tenant_context`)."""
    shutil.rmtree(context, ignore_errors=True)
    (context / "tools").mkdir(parents=True)
    shutil.copy2(uv_binary(), context / "tools" / "uv")
    wheels = context / "wheels"
    wheels.mkdir()
    for wheel in deps.glob("*.whl"):
        _link_or_copy(wheel, wheels / wheel.name)
    shutil.copy2(repo / "constraints.txt", wheels / "constraints.txt")
    _pip_wheel("--no-deps", "-w", str(wheels), str(repo), quiet=quiet)
    return context


def image_refs(registry: str, target: str, version: str, revision: str) -> tuple[str, ...]:
    name = f"{registry.rstrip('/')}/{IMAGES[target]}"
    return (f"{name}:{version}", f"{name}:{revision}")


def build_images(
    *,
    registry: str = DEFAULT_REGISTRY,
    push: bool = False,
    base_image: str = DEFAULT_BASE_IMAGE,
    targets: Sequence[str] = tuple(IMAGES),
    repo: Path = REPO,
    work: Path | None = None,
    env: Mapping[str, str] | None = None,
    quiet: bool = True,
) -> list[BuiltImage]:
    """Build (and push) the images; `env` is the docker client's (e.g. with DOCKER_HOST)."""
    work = work or repo / ".data"
    docker = docker_binary()
    client_env = {**(env if env is not None else os.environ), "DOCKER_BUILDKIT": "1"}
    version, revision = project_version(repo), git_revision(repo)
    deps = dependency_wheels(repo, work / "wheels", quiet=quiet)
    context = stage_context(repo, work / "images" / "context", deps, quiet=quiet)
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    built = []
    for target in targets:
        refs = image_refs(registry, target, version, revision)
        started = time.perf_counter()
        build_args = {
            "BASE_IMAGE": base_image,
            "PYTHON_VERSION": python,
            "RUNNER_UID": str(RUNNER_UID),
            "VERSION": version,
            "REVISION": revision,
        }
        argv = [docker, "build", "--network", "none", "--target", target, "-f", str(DOCKERFILE)]
        for name, value in build_args.items():
            argv += ["--build-arg", f"{name}={value}"]
        for ref in refs:
            argv += ["-t", ref]
        print(f"building {refs[0]} (also {refs[1]}) from {base_image} …", file=sys.stderr)
        _run([*argv, str(context)], env=client_env, quiet=quiet)
        if push:
            for ref in refs:
                _run([docker, "push", ref], env=client_env, quiet=quiet)
        size = subprocess.run(
            [docker, "image", "inspect", "--format", "{{.Size}}", refs[0]],
            env=client_env, check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip
        built.append(BuiltImage(target, refs, int(size), round(time.perf_counter() - started, 1)))
    return built


def tenant_images(
    *,
    registry: str = DEFAULT_REGISTRY,
    push: bool = False,
    tenants: Sequence[str] | None = None,
    dbt_image: str | None = None,
    root: Path = REPO,
    work: Path | None = None,
    env: Mapping[str, str] | None = None,
    quiet: bool = True,
) -> list[TenantImage]:
    """One image per tenant (all of `root/warehouses` by default) `FROM dbt_image` (default:
    the version tag of the dbt image in `registry`); a tag already there is reused."""
    docker = docker_binary()
    client_env = {**(env if env is not None else os.environ), "DOCKER_BUILDKIT": "1"}
    base = dbt_image or image_refs(registry, "dbt", project_version(), git_revision())[0]

    def local_has(ref: str) -> bool:
        found = subprocess.run(
            [docker, "image", "inspect", ref], env=client_env, capture_output=True, check=False
        )
        return found.returncode == 0

    return build_tenant_images(
        root,
        tenant_ids(root) if tenants is None else tenants,
        registry=registry,
        dbt_image=base,
        push=push,
        work=(work or root / ".data") / "images",
        run=lambda argv: _run(argv, env=client_env, quiet=quiet),
        local_has=local_has,
        docker=docker,
        dockerfile=TENANT_DOCKERFILE,
        runner_uid=RUNNER_UID,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="build_images", description=__doc__.split("\n")[0])
    parser.add_argument("--registry", default=os.environ.get("REGISTRY", DEFAULT_REGISTRY))
    parser.add_argument("--push", action="store_true", help="push every tag to the registry")
    parser.add_argument("--base-image", default=os.environ.get("BASE_IMAGE", DEFAULT_BASE_IMAGE))
    parser.add_argument(
        "--only", choices=[*sorted(IMAGES), "tenants"], action="append", help="one image kind"
    )
    parser.add_argument(
        "--tenant", action="append", help="a tenant's image (default: every tenant's)"
    )
    parser.add_argument("--verbose", action="store_true", help="show the docker build output")
    args = parser.parse_args(argv)
    only = args.only or [*IMAGES, "tenants"]
    targets = [t for t in IMAGES if t in only]
    try:
        if "tenants" in only:  # a missing or stale graph fails before the long base builds
            for tenant in args.tenant or tenant_ids(REPO):
                read_graph(REPO, tenant)
        built = build_images(
            registry=args.registry,
            push=args.push,
            base_image=args.base_image,
            targets=targets,
            quiet=not args.verbose,
        ) if targets else []  # fmt: skip
        # FROM the dbt image just built (its git-sha tag), else the version tag
        dbt = next((image.refs[1] for image in built if image.target == "dbt"), None)
        tenants = (
            tenant_images(
                registry=args.registry, push=args.push, tenants=args.tenant,
                dbt_image=dbt, quiet=not args.verbose,
            ) if "tenants" in only else []
        )  # fmt: skip
    except TenantImageError as exc:
        print(f"build_images: {exc}", file=sys.stderr)
        return 2
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        print(f"build_images: {exc}", file=sys.stderr)
        return 1
    pushed = " (pushed)" if args.push else ""
    for image in built:
        print(f"{' '.join(image.refs)}  {image.size_mb} MB  {image.seconds} s{pushed}")
    for tenant in tenants:
        how = "unchanged, reused" if tenant.reused else f"{tenant.seconds} s{pushed}"
        print(f"{tenant.ref}  {how}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

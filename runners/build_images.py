"""Build the runner images, tag them with the version and the git sha, push them.

    python -m runners.build_images [--registry HOST[:PORT]] [--push] [--base-image IMAGE]

Two images from `runners/docker/Dockerfile` (README.md beside it says why two):
`tenant-runner-datakit` (extracts, every source driver) and `tenant-runner-dbt`.
Each is tagged `<registry>/<name>:<version>` (pyproject) and `<registry>/<name>:<git sha>`.

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

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "runners" / "docker" / "Dockerfile"
#: Dockerfile target → image name.
IMAGES = {"datakit": "tenant-runner-datakit", "dbt": "tenant-runner-dbt"}
DEFAULT_REGISTRY = "registry.localhost"
#: For real users; our machines build from a local debootstrap image (devtools/docker.py).
DEFAULT_BASE_IMAGE = "python:3.11-slim-bookworm"
#: dbt-core's parser ships a wheel only for this pre-release (STACK.md).
_ONLY_BINARY = "dbt-core-experimental-parser"
#: Folders of a dbt project that are build output, not source.
_DBT_OUTPUT = ("target", "logs", "dbt_packages", ".user.yml")


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
    """The build context: `wheels/` (deps, the project, constraints.txt), the dbt projects
    under `warehouses/`, and `tools/uv`, which installs the wheels in the image."""
    shutil.rmtree(context, ignore_errors=True)
    (context / "tools").mkdir(parents=True)
    shutil.copy2(uv_binary(), context / "tools" / "uv")
    wheels = context / "wheels"
    wheels.mkdir()
    for wheel in deps.glob("*.whl"):
        _link_or_copy(wheel, wheels / wheel.name)
    shutil.copy2(repo / "constraints.txt", wheels / "constraints.txt")
    _pip_wheel("--no-deps", "-w", str(wheels), str(repo), quiet=quiet)
    projects = context / "warehouses"
    projects.mkdir()
    for marker in sorted((repo / "warehouses").glob("**/dbt_project.yml")):
        project = marker.parent
        if any(part in _DBT_OUTPUT for part in project.relative_to(repo).parts):
            continue
        shutil.copytree(
            project,
            projects / project.relative_to(repo / "warehouses"),
            ignore=shutil.ignore_patterns(*_DBT_OUTPUT),
            dirs_exist_ok=True,
        )
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="build_images", description=__doc__.split("\n")[0])
    parser.add_argument("--registry", default=os.environ.get("REGISTRY", DEFAULT_REGISTRY))
    parser.add_argument("--push", action="store_true", help="push every tag to the registry")
    parser.add_argument("--base-image", default=os.environ.get("BASE_IMAGE", DEFAULT_BASE_IMAGE))
    parser.add_argument("--only", choices=sorted(IMAGES), action="append", help="one image")
    parser.add_argument("--verbose", action="store_true", help="show the docker build output")
    args = parser.parse_args(argv)
    try:
        built = build_images(
            registry=args.registry,
            push=args.push,
            base_image=args.base_image,
            targets=args.only or tuple(IMAGES),
            quiet=not args.verbose,
        )
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        print(f"build_images: {exc}", file=sys.stderr)
        return 1
    for image in built:
        pushed = " (pushed)" if args.push else ""
        print(f"{' '.join(image.refs)}  {image.size_mb} MB  {image.seconds} s{pushed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

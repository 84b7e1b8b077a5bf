"""Build the runner images, tag them with the version and the git sha, push them; then
one dbt image per tenant, tagged by its compiled inputs and base image.

    python -m runners.build_images [--registry HOST[:PORT]] [--push] [--base-image IMAGE]
                                   [--only datakit|dbt|spark|tenants] [--tenant T ...]
                                   [--spark-jars DIR]

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

The third runner image, `tenant-runner-spark` (target `spark`: the dbt image plus Java 17
and the `spark` extra), is built when a tenant's graph says `engine: spark` or when asked
(`--only spark`); else one line says it was skipped. It is built offline too: its wheels
include the `spark` extra, and Debian's Java runtime comes as .deb files that this host's
apt downloads (`jre_debs`: resolved against the base image's own dpkg status, so exactly
the packages the base lacks, cached under `.data/debs/`), which the image installs with
`apt-get install --no-download`. A host whose apt cannot resolve the base image's Debian
release (not Debian, another release) cannot build it: the Spark image is skipped with
one line saying so, or, when asked for, the build fails with that line. `spark-jars/`
(the jars for `s3a`, `--spark-jars`) is empty unless a folder of jars is given.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from datakits.contract import RUNNER_UID
from runners.tenant_images import (
    TenantGraph,
    TenantImage,
    TenantImageError,
    build_tenant_images,
    read_graph,
    tenant_ids,
)

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "runners" / "docker" / "Dockerfile"
TENANT_DOCKERFILE = REPO / "runners" / "docker" / "tenant.Dockerfile"
#: Dockerfile target → image name: the images every deployment builds.
IMAGES = {"datakit": "tenant-runner-datakit", "dbt": "tenant-runner-dbt"}
#: The Spark runner image (`dbt.engine: spark`), built when a tenant needs it or asked.
SPARK_TARGET = "spark"
ALL_IMAGES = {**IMAGES, SPARK_TARGET: "tenant-runner-spark"}
#: The Debian packages the Spark image adds to the base image (with their dependencies).
SPARK_DEBS = ("openjdk-17-jre-headless",)
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


def dependency_wheels(
    repo: Path, cache: Path, *, extras: Sequence[str] = ("dbt",), quiet: bool = True
) -> Path:
    """Wheels of every dependency of `.[<extras>]` (`dbt`; `dbt,spark` for the Spark
    image), built once per set of pins, extras and Python."""
    pins = (repo / "constraints.txt").read_bytes()
    with (repo / "pyproject.toml").open("rb") as f:
        project = tomllib.load(f)["project"]
    key = hashlib.sha256()
    key.update(pins)
    optional = [project["optional-dependencies"][extra] for extra in extras]
    # the dbt-only key is the one it always was: its cached wheels stay valid
    key.update(repr((project["dependencies"], *optional)).encode())
    key.update(f"{sys.implementation.cache_tag}-{platform.machine()}".encode())
    folder = cache / key.hexdigest()[:16]
    if folder.is_dir():
        return folder
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    print(f"building dependency wheels into {folder} …", file=sys.stderr)
    _pip_wheel(
        "-w", str(partial), "-c", str(repo / "constraints.txt"),
        "--only-binary", _ONLY_BINARY, f"{repo}[{','.join(extras)}]",
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


def stage_context(
    repo: Path,
    context: Path,
    deps: Path,
    *,
    debs: Sequence[Path] = (),
    spark_jars: Path | None = None,
    quiet: bool = True,
) -> Path:
    """The build context of the base images: `wheels/` (deps, the project, constraints.txt)
    and `tools/uv`, which installs the wheels in the image; `debs/` (the Spark image's
    Java runtime, `jre_debs`) and `spark-jars/` (the *.jar of `spark_jars`), empty when
    not given. No tenant's file: those go into each tenant's own image
    (`stage_tenant_context`)."""
    shutil.rmtree(context, ignore_errors=True)
    (context / "tools").mkdir(parents=True)
    stage_spark_files(context, debs, spark_jars)
    shutil.copy2(uv_binary(), context / "tools" / "uv")
    wheels = context / "wheels"
    wheels.mkdir()
    for wheel in deps.glob("*.whl"):
        _link_or_copy(wheel, wheels / wheel.name)
    shutil.copy2(repo / "constraints.txt", wheels / "constraints.txt")
    _pip_wheel("--no-deps", "-w", str(wheels), str(repo), quiet=quiet)
    return context


def stage_spark_files(context: Path, debs: Sequence[Path], spark_jars: Path | None) -> None:
    """`debs/` and `spark-jars/` of the context, each with a `.keep` (the Dockerfile's
    COPY and bind mount need the folder even when nothing is in it)."""
    for folder, files in (("debs", debs), ("spark-jars", _jars(spark_jars))):
        (context / folder).mkdir(parents=True)
        (context / folder / ".keep").touch()
        for file in files:
            _link_or_copy(file, context / folder / file.name)


def _jars(folder: Path | None) -> list[Path]:
    if folder is None:
        return []
    if not folder.is_dir():
        raise RuntimeError(f"--spark-jars {folder}: not a folder (give a folder of *.jar)")
    return sorted(folder.glob("*.jar"))


class SparkUnavailable(RuntimeError):
    """The Spark image's Java runtime cannot be fetched on this host; one line says why."""


def _os_release(text: str) -> tuple[str, str]:
    fields = dict(
        line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#")
    )
    return fields.get("ID", "").strip('"'), fields.get("VERSION_CODENAME", "").strip('"')


def base_dpkg_status(
    docker: str, base_image: str, env: Mapping[str, str]
) -> tuple[tuple[str, str], str]:
    """The base image's (Debian id, codename) and its dpkg status file (what it has)."""
    script = "cat /etc/os-release; echo @@status@@; cat /var/lib/dpkg/status"
    done = subprocess.run(
        [docker, "run", "--rm", "--network", "none", "--entrypoint", "/bin/sh", base_image,
         "-c", script],
        env=dict(env), capture_output=True, text=True, check=False,
    )  # fmt: skip
    release, _, status = done.stdout.partition("@@status@@\n")
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[0]
        raise SparkUnavailable(f"cannot read {base_image}'s dpkg status: {why}")
    if not status:
        raise SparkUnavailable(
            f"the Spark image needs Debian's Java runtime, and {base_image} has no dpkg "
            "status to install it on (not a Debian image)"
        )
    return _os_release(release), status


def jre_debs(
    status: str, release: tuple[str, str], cache: Path, *, packages: Sequence[str] = SPARK_DEBS
) -> list[Path]:
    """The .deb files that install `packages` (Java 17) on an image whose dpkg status is
    `status`: resolved and downloaded by this host's apt (Debian's archive through the
    host's own sources, signatures checked by apt), exactly the packages the image lacks,
    so the image build installs them with no network, as it installs the wheels.

    The host must run the same Debian release as the image (its apt lists are the
    archive it resolves against); otherwise `SparkUnavailable`. Downloads are kept in
    `cache/archives` (apt's own cache layout: a .deb already there is not fetched again)."""
    host = (
        _os_release(Path("/etc/os-release").read_text())
        if Path("/etc/os-release").exists()
        else ("", "")
    )
    if not shutil.which("apt-get") or host[0] != "debian" or host != release:
        raise SparkUnavailable(
            f"the Spark image installs Debian's Java from .deb files that this host's apt "
            f"fetches; this host ({' '.join(host).strip() or 'no /etc/os-release'}"
            f"{'' if shutil.which('apt-get') else ', no apt-get'}) cannot resolve packages "
            f"for the base image ({' '.join(release).strip() or 'unknown'}): run "
            f"`make images` on a {' '.join(release).strip() or 'Debian'} host"
        )
    archives = cache / "archives"
    (archives / "partial").mkdir(parents=True, exist_ok=True)
    status_file = cache / f"status-{hashlib.sha256(status.encode()).hexdigest()[:16]}"
    status_file.write_text(status)
    apt = [
        "apt-get", "-q", "-y", "--no-install-recommends",
        "-o", f"Dir::State::status={status_file}",
        "-o", f"Dir::Cache::archives={archives}",
        "-o", "Debug::NoLocking=1",  # never the host's dpkg lock: nothing is installed
        "-o", "APT::Sandbox::User=root" if os.geteuid() == 0 else "APT::Sandbox::User=_apt",
    ]  # fmt: skip
    # planned against an empty archive folder: apt leaves out of `--print-uris` what its
    # archive folder already holds, and the image needs every file of the set
    with tempfile.TemporaryDirectory() as empty:
        (Path(empty) / "partial").mkdir()
        plan = [*apt, "-o", f"Dir::Cache::archives={empty}", "--print-uris"]
        planned = subprocess.run(
            [*plan, "install", *packages], capture_output=True, text=True, check=False
        )
    if planned.returncode != 0:
        why = (planned.stderr.strip().splitlines() or [f"exit {planned.returncode}"])[-1]
        raise SparkUnavailable(f"apt cannot resolve {' '.join(packages)} for the base image: {why}")
    names = [line.split()[1] for line in planned.stdout.splitlines() if line.startswith("'")]
    fetched = subprocess.run(
        [*apt, "--download-only", "install", *packages], capture_output=True, text=True, check=False
    )
    if fetched.returncode != 0:
        tail = fetched.stderr.strip().splitlines()[-1:] or [str(fetched.returncode)]
        raise SparkUnavailable(f"apt could not download {' '.join(packages)}: {tail[0]}")
    missing = [name for name in names if not (archives / name).is_file()]
    if not names or missing:
        raise SparkUnavailable(f"apt planned {len(names)} .deb files, {len(missing)} missing")
    return [archives / name for name in names]


def image_refs(registry: str, target: str, version: str, revision: str) -> tuple[str, ...]:
    name = f"{registry.rstrip('/')}/{ALL_IMAGES[target]}"
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
    spark_jars: Path | None = None,
    quiet: bool = True,
) -> list[BuiltImage]:
    """Build (and push) the images; `env` is the docker client's (e.g. with DOCKER_HOST).

    `targets` may include `spark` (`SPARK_TARGET`): then the wheels include the `spark`
    extra and the context Java's .deb files (`jre_debs`; `SparkUnavailable` when this
    host cannot fetch them), and `spark_jars` (a folder of *.jar) goes to `spark-jars/`."""
    work = work or repo / ".data"
    docker = docker_binary()
    client_env = {**(env if env is not None else os.environ), "DOCKER_BUILDKIT": "1"}
    version, revision = project_version(repo), git_revision(repo)
    spark = SPARK_TARGET in targets
    debs: list[Path] = []
    if spark:  # before the long wheel builds: a host that cannot fetch Java fails at once
        release, status = base_dpkg_status(docker, base_image, client_env)
        debs = jre_debs(status, release, work / "debs")
    extras = ("dbt", "spark") if spark else ("dbt",)
    deps = dependency_wheels(repo, work / "wheels", extras=extras, quiet=quiet)
    context = stage_context(
        repo, work / "images" / "context", deps, debs=debs, spark_jars=spark_jars, quiet=quiet
    )
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
    spark_image: str | None = None,
    root: Path = REPO,
    work: Path | None = None,
    env: Mapping[str, str] | None = None,
    quiet: bool = True,
) -> list[TenantImage]:
    """One image per tenant (all of `root/warehouses` by default) `FROM dbt_image`, or
    `FROM spark_image` for a tenant whose graph says `engine: spark` (defaults: the
    version tag of that image in `registry`); a tag already there is reused."""
    docker = docker_binary()
    client_env = {**(env if env is not None else os.environ), "DOCKER_BUILDKIT": "1"}
    version, revision = project_version(), git_revision()
    base = dbt_image or image_refs(registry, "dbt", version, revision)[0]
    spark = spark_image or image_refs(registry, SPARK_TARGET, version, revision)[0]

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
        spark_image=spark,
        push=push,
        work=(work or root / ".data") / "images",
        run=lambda argv: _run(argv, env=client_env, quiet=quiet),
        local_has=local_has,
        docker=docker,
        dockerfile=TENANT_DOCKERFILE,
        runner_uid=RUNNER_UID,
    )


def choose_targets(only: Sequence[str] | None, graphs: Sequence[TenantGraph]) -> list[str]:
    """The runner images to build: those asked (`--only`), else datakit and dbt, and the
    Spark image when a tenant's graph says `engine: spark` (a line says when it is not)."""
    if only:
        return [t for t in ALL_IMAGES if t in only]
    spark = sorted(g.tenant for g in graphs if g.base == SPARK_TARGET)
    if not spark:
        print(
            f"build_images: {ALL_IMAGES[SPARK_TARGET]} skipped: no tenant's graph says "
            "engine: spark (`--only spark` builds it)",
            file=sys.stderr,
        )
        return list(IMAGES)
    return [*IMAGES, SPARK_TARGET]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="build_images", description=__doc__.split("\n")[0])
    parser.add_argument("--registry", default=os.environ.get("REGISTRY", DEFAULT_REGISTRY))
    parser.add_argument("--push", action="store_true", help="push every tag to the registry")
    parser.add_argument("--base-image", default=os.environ.get("BASE_IMAGE", DEFAULT_BASE_IMAGE))
    parser.add_argument(
        "--only", choices=[*sorted(ALL_IMAGES), "tenants"], action="append", help="one image kind"
    )
    parser.add_argument(
        "--tenant", action="append", help="a tenant's image (default: every tenant's)"
    )
    parser.add_argument(
        "--spark-jars",
        type=Path,
        default=Path(os.environ["SPARK_JARS"]) if os.environ.get("SPARK_JARS") else None,
        help="a folder of *.jar for the Spark image's /opt/spark/jars (hadoop-aws for s3a)",
    )
    parser.add_argument("--verbose", action="store_true", help="show the docker build output")
    args = parser.parse_args(argv)
    with_tenants = args.only is None or "tenants" in args.only
    try:
        # a missing or stale graph fails before the long base builds
        graphs = (
            [read_graph(REPO, t) for t in args.tenant or tenant_ids(REPO)] if with_tenants else []
        )
        targets = choose_targets(args.only, graphs)

        def build(chosen: Sequence[str]) -> list[BuiltImage]:
            return build_images(
                registry=args.registry, push=args.push, base_image=args.base_image,
                targets=chosen, spark_jars=args.spark_jars, quiet=not args.verbose,
            ) if chosen else []  # fmt: skip

        try:
            built = build(targets)
        except SparkUnavailable as exc:
            if args.only:  # asked for: the build fails with the reason
                raise
            print(f"build_images: {ALL_IMAGES[SPARK_TARGET]} skipped: {exc}", file=sys.stderr)
            built = build([t for t in targets if t != SPARK_TARGET])
        # FROM the base images just built, by their version tags: the tenant tag hashes
        # the base's repository:tag, and the DAG computes it from `images.dbt` /
        # `images.spark`, which name version tags (a git-sha base would give a tag that no
        # DAG names)
        just_built = {image.target: image.refs[0] for image in built}
        tenants = (
            tenant_images(
                registry=args.registry, push=args.push, tenants=args.tenant,
                dbt_image=just_built.get("dbt"), spark_image=just_built.get(SPARK_TARGET),
                quiet=not args.verbose,
            ) if with_tenants else []
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

"""A Docker engine, an image registry and a local base image owned by one test run.

STACK.md has the facts this follows. `DockerEngine` starts its own `dockerd` (own
data-root, exec-root, pidfile and socket) that leaves the host's network alone: no
`docker0` bridge and no iptables rules (`--bridge=none --iptables=false`; builds run with
`--network none`, containers that must reach 127.0.0.1 use the host network). It is
stopped by its pid, and the iptables FORWARD policy is put back if anything changed it.
`Registry` runs Debian's `docker-registry` on 127.0.0.1 (dockerd trusts 127.0.0.0/8
registries over plain HTTP). `base_image` imports a Debian bookworm rootfs with Python
made by debootstrap, cached as a tarball under `.data/` so that only the first run pays.

Set `TEST_DOCKER_HOST` / `TEST_REGISTRY` to use an engine or registry already running.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from devtools.postgres import free_port
from runners.build_images import docker_binary

REPO = Path(__file__).resolve().parents[1]
#: The local stand-in for `python:3.11-slim-bookworm`: Debian's minbase plus python3.
BASE_IMAGE = "local/debian-python:bookworm"
BASE_SUITE = "bookworm"
BASE_PACKAGES = ("python3",)
#: Removed from the rootfs before it is tarred: package caches, lists, docs.
_ROOTFS_CLUTTER = (
    "var/cache/apt",
    "var/lib/apt/lists",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/locale",
    "usr/share/info",
)
_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _forward_policy() -> str | None:
    """The iptables FORWARD policy (ACCEPT, DROP…), None when iptables is not usable."""
    if not shutil.which("iptables"):
        return None
    done = subprocess.run(["iptables", "-S", "FORWARD"], capture_output=True, text=True)
    for line in done.stdout.splitlines():
        if line.startswith("-P FORWARD "):
            return line.split()[2]
    return None


def _unmount_below(root: Path) -> None:
    """Unmount whatever is still mounted under `root`, deepest first."""
    prefix = str(root.resolve()) + "/"
    mounts = Path("/proc/self/mounts").read_text().splitlines()
    points = [m.split()[1].encode().decode("unicode_escape") for m in mounts if len(m.split()) > 1]
    for point in sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "--lazy", point], check=False, capture_output=True)


def _wait(check, what: str, timeout: float, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
            raise RuntimeError(f"{what} did not become ready in {timeout:.0f} s\n{tail}")
        time.sleep(0.2)


class DockerEngine:
    """A dockerd of our own; `env` is the environment for clients (DOCKER_HOST set)."""

    def __init__(self, root: Path | None = None, host: str | None = None) -> None:
        self.owned = host is None
        self.root = Path(root or tempfile.mkdtemp(prefix="dockerd-"))
        self.host = host or f"unix://{self.root}/docker.sock"
        self.docker = docker_binary()
        self._proc: subprocess.Popen[bytes] | None = None
        self._forward: str | None = None

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": self.host, "DOCKER_BUILDKIT": "1"}

    def run(self, *args: str, check: bool = True, timeout: float = 600) -> str:
        """`docker <args>` against this engine; its stdout."""
        done = subprocess.run(
            [self.docker, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args[:3])} failed: {done.stderr[-3000:]}")
        return done.stdout

    def ready(self) -> bool:
        done = subprocess.run(
            [self.docker, "version", "--format", "{{.Server.Version}}"],
            env=self.env,
            capture_output=True,
        )
        return done.returncode == 0

    def start(self, timeout: float = 60) -> DockerEngine:
        if not self.owned:
            _wait(self.ready, f"the Docker engine at {self.host}", timeout)
            return self
        dockerd = shutil.which("dockerd") or "/usr/bin/dockerd"
        if not Path(dockerd).exists():
            raise RuntimeError("dockerd not found: run `make services` (apt-get install docker.io)")
        self._forward = _forward_policy()
        log = self.root / "dockerd.log"
        argv = [
            dockerd,
            f"--data-root={self.root / 'data'}",
            f"--exec-root={self.root / 'exec'}",
            f"--pidfile={self.root / 'dockerd.pid'}",
            f"--host={self.host}",
            "--bridge=none",
            "--iptables=false",
            "--ip6tables=false",
        ]
        with log.open("wb") as out:
            self._proc = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            _wait(self.ready, "dockerd", timeout, log)
        except RuntimeError:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 30) -> None:
        if not self.owned or self._proc is None:
            return
        try:
            if self._proc.poll() is None:
                os.kill(self._proc.pid, signal.SIGTERM)  # by its pid: never by name
                try:
                    self._proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    os.kill(self._proc.pid, signal.SIGKILL)
                    self._proc.wait(10)
        finally:
            self._proc = None
            if self._forward is not None and _forward_policy() != self._forward:
                subprocess.run(["iptables", "-P", "FORWARD", self._forward], check=False)
            _unmount_below(self.root)  # dockerd leaves its netns bind mount behind
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> DockerEngine:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Registry:
    """Debian's docker-registry on 127.0.0.1, filesystem storage, no auth; `address` is
    `127.0.0.1:<port>`, the host part of image references pushed to it."""

    def __init__(self, port: int | None = None, address: str | None = None) -> None:
        self.owned = address is None
        self.address = address or f"127.0.0.1:{port or free_port()}"
        self.root = Path(tempfile.mkdtemp(prefix="registry-")) if self.owned else None
        self._proc: subprocess.Popen[bytes] | None = None

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.address}/v2/", timeout=2) as reply:
                return reply.status == 200
        except OSError:
            return False

    def start(self, timeout: float = 30) -> Registry:
        if not self.owned:
            _wait(self.ready, f"the registry at {self.address}", timeout)
            return self
        assert self.root is not None
        binary = shutil.which("docker-registry")
        if not binary:
            raise RuntimeError("docker-registry not found: run `make services`")
        config = self.root / "config.yml"
        config.write_text(
            "version: 0.1\n"
            "log:\n  level: warn\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.root / 'data'}\n"
            "  delete:\n    enabled: true\n"
            f"http:\n  addr: {self.address}\n"
        )
        log = self.root / "registry.log"
        with log.open("wb") as out:
            self._proc = subprocess.Popen(
                [binary, "serve", str(config)], stdout=out, stderr=subprocess.STDOUT
            )
        try:
            _wait(self.ready, "docker-registry", timeout, log)
        except RuntimeError:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                os.kill(self._proc.pid, signal.SIGTERM)
                try:
                    self._proc.wait(10)
                except subprocess.TimeoutExpired:
                    os.kill(self._proc.pid, signal.SIGKILL)
                    self._proc.wait(10)
            self._proc = None
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Registry:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def base_rootfs_tarball(cache: Path) -> Path:
    """A Debian rootfs tarball (minbase + python3) made by debootstrap, cached in `cache`."""
    tarball = cache / f"debian-{BASE_SUITE}-minbase-{'-'.join(BASE_PACKAGES)}.tar"
    if tarball.exists():
        return tarball
    if not shutil.which("debootstrap"):
        raise RuntimeError("debootstrap not found: run `make services`")
    cache.mkdir(parents=True, exist_ok=True)
    rootfs = Path(tempfile.mkdtemp(prefix="rootfs-", dir=cache))
    try:
        argv = [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(BASE_PACKAGES)}",
            BASE_SUITE,
            str(rootfs),
        ]
        if os.environ.get("DEBOOTSTRAP_MIRROR"):  # else debootstrap's default mirror
            argv.append(os.environ["DEBOOTSTRAP_MIRROR"])
        done = subprocess.run(argv, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            raise RuntimeError(f"debootstrap failed: {(done.stdout + done.stderr)[-3000:]}")
        for clutter in _ROOTFS_CLUTTER:
            for child in (rootfs / clutter).glob("*"):
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        partial = tarball.with_suffix(".partial")
        subprocess.run(
            ["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(partial), "."], check=True
        )
        partial.rename(tarball)
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)
    return tarball


def base_image(engine: DockerEngine, cache: Path | None = None, tag: str = BASE_IMAGE) -> str:
    """Import the cached rootfs as `tag` into `engine` (once); returns the tag."""
    if engine.run("images", "-q", tag).strip():
        return tag
    tarball = base_rootfs_tarball(cache or REPO / ".data" / "base-image")
    engine.run(
        "import",
        "--change",
        f"ENV PATH={_PATH}",
        "--change",
        'CMD ["python3"]',
        str(tarball),
        tag,
    )
    return tag


def main() -> None:
    """`python -m devtools.docker base-image`: import the local base image into the engine
    at $DOCKER_HOST (or the default socket), e.g. before
    `make images BASE_IMAGE=local/debian-python:bookworm` on a machine without Docker Hub."""
    import sys

    if sys.argv[1:] != ["base-image"]:
        sys.exit("usage: python -m devtools.docker base-image")
    engine = DockerEngine(host=os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock")
    print(base_image(engine.start()))


if __name__ == "__main__":
    main()

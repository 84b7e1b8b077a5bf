"""The container test run's own Docker engine and registry, and the runner images in it.

Session-scoped and started only when a `docker` test runs: dockerd and the registry
(devtools/docker.py), the local debootstrap base image (its rootfs cached under .data/),
then the runner images built once, pushed, removed locally and pulled back.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from devtools.docker import DockerEngine, Registry, base_image
from runners.build_images import BuiltImage, build_images


@dataclass(frozen=True)
class RunnerImages:
    registry: str
    base: str
    built: tuple[BuiltImage, ...]
    seconds: float

    def ref(self, target: str) -> str:
        """The version tag of the `datakit` or `dbt` image, as pushed."""
        return next(b.refs[0] for b in self.built if b.target == target)


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[DockerEngine]:
    engine = DockerEngine(host=os.environ.get("TEST_DOCKER_HOST") or None)
    engine.start()
    try:
        yield engine
    finally:
        engine.stop()


@pytest.fixture(scope="session")
def image_registry() -> Iterator[Registry]:
    registry = Registry(address=os.environ.get("TEST_REGISTRY") or None)
    registry.start()
    try:
        yield registry
    finally:
        registry.stop()


@pytest.fixture(scope="session")
def runner_images(docker_engine: DockerEngine, image_registry: Registry) -> RunnerImages:
    started = time.perf_counter()
    base = base_image(docker_engine)
    built = build_images(
        registry=image_registry.address, push=True, base_image=base, env=docker_engine.env
    )
    refs = [ref for image in built for ref in image.refs]
    docker_engine.run("rmi", *refs)  # what runs next comes from the registry
    for image in built:
        docker_engine.run("pull", "--quiet", image.refs[0])
    return RunnerImages(
        image_registry.address, base, tuple(built), round(time.perf_counter() - started, 1)
    )

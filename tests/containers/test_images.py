"""The runner images, as pulled back from the test registry: what is in them and what not."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from dag_factory.adapters.container import IMAGE_WORKDIR, SCRATCH_PATH
from datakits.contract import RUNNER_UID
from devtools.docker import DockerEngine
from runners.build_images import IMAGES, git_revision, project_version
from tests.containers.conftest import RunnerImages

REPO = Path(__file__).resolve().parents[2]

#: Prints, as JSON, what a runner image holds; run with the image's own python3.
_PROBE = """
import importlib.util, json, os, shutil
mods = {m: importlib.util.find_spec(m) is not None for m in (
    "airflow", "dag_factory", "pip", "runners", "datakits", "psycopg", "pymysql", "sqlite3",
    "duckdb", "pyarrow", "dbt", "dbt.adapters.postgres", "dbt.adapters.duckdb",
) if "." not in m or importlib.util.find_spec(m.split(".")[0])}
tools = {t: shutil.which(t) for t in ("gcc", "cc", "c++", "make", "pip", "uv", "runner")}
print(json.dumps({"uid": os.getuid(), "cwd": os.getcwd(), "home": os.environ["HOME"],
                  "modules": mods, "tools": tools}))
"""


def _inspect(engine: DockerEngine, ref: str) -> dict:
    return json.loads(engine.run("image", "inspect", ref))[0]


def _probe(engine: DockerEngine, ref: str) -> dict:
    out = engine.run(
        "run", "--rm", "--network", "none", "--entrypoint", "python3", ref, "-c", _PROBE
    )
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.parametrize("target", sorted(IMAGES))
def test_image_metadata(target: str, runner_images: RunnerImages, docker_engine: DockerEngine):
    ref = runner_images.ref(target)
    config = _inspect(docker_engine, ref)["Config"]
    assert config["Entrypoint"] == ["runner"]
    assert config["WorkingDir"] == IMAGE_WORKDIR
    assert config["User"] == f"{RUNNER_UID}:{RUNNER_UID}"
    labels = config["Labels"]
    assert labels["org.opencontainers.image.version"] == project_version()
    assert labels["org.opencontainers.image.revision"] == git_revision()
    assert labels["org.opencontainers.image.title"] == IMAGES[target]
    assert labels["org.opencontainers.image.base.name"] == runner_images.base


@pytest.mark.parametrize("target", sorted(IMAGES))
def test_both_tags_are_in_the_registry(target: str, runner_images: RunnerImages):
    url = f"http://{runner_images.registry}/v2/{IMAGES[target]}/tags/list"
    with urllib.request.urlopen(url, timeout=10) as reply:
        tags = set(json.load(reply)["tags"])
    assert tags == {project_version(), git_revision()}


@pytest.mark.parametrize("target", sorted(IMAGES))
def test_image_runs_as_non_root_without_compiler_pip_or_airflow(
    target: str, runner_images: RunnerImages, docker_engine: DockerEngine
):
    found = _probe(docker_engine, runner_images.ref(target))
    assert found["uid"] == RUNNER_UID
    assert found["cwd"] == IMAGE_WORKDIR
    assert found["home"] == SCRATCH_PATH
    tools = found["tools"]
    assert tools["runner"] == "/opt/venv/bin/runner"
    assert not any(tools[t] for t in ("gcc", "cc", "c++", "make", "pip", "uv")), tools
    modules = found["modules"]
    assert not modules["airflow"] and not modules["dag_factory"] and not modules["pip"]
    # every source driver is in both (the dbt image runs the same runner CLI)
    assert all(modules[m] for m in ("runners", "datakits", "psycopg", "pymysql", "sqlite3"))
    assert modules["dbt"] is (target == "dbt")
    if target == "dbt":
        assert modules["dbt.adapters.postgres"] and modules["dbt.adapters.duckdb"]


def test_runner_entrypoint_answers(runner_images: RunnerImages, docker_engine: DockerEngine):
    out = docker_engine.run("run", "--rm", "--network", "none", runner_images.ref("datakit"))
    assert "extract" in out and "dbt" in out


def test_report_image_sizes(runner_images: RunnerImages, capsys: pytest.CaptureFixture[str]):
    with capsys.disabled():
        for image in runner_images.built:
            print(f"\n{image.refs[0]}: {image.size_mb} MB, built in {image.seconds} s", end="")
        print(f"\nimages built, pushed and pulled back in {runner_images.seconds} s")
    assert all(image.size_bytes > 0 for image in runner_images.built)

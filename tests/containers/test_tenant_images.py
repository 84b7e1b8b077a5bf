"""Per-tenant dbt images, for real: built FROM the dbt image of the test registry, pushed
to it, pulled back; what they hold, how they are tagged, and a dbt build in one.

The tenants folder is a copy of the repository's with a second project (`other`, its own
`warehouses/other/dbt`), and graph files written by hand in the shape of contract A
(`dag-factory dbt compile` writes them on the graph branch)."""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import duckdb
import pytest

from dag_factory.adapters.container import SCRATCH_PATH
from dag_factory.loader import Loader
from datakits.contract import RUNNER_UID, tenant_image_tag
from devtools.docker import DockerEngine
from devtools.shop import generate_shop
from runners.build_images import tenant_images
from runners.tenant_images import GRAPH_FILE, TenantImageError, project_hash, split_ref
from tests.containers.conftest import RunnerImages

REPO = Path(__file__).resolve().parents[2]
SHOP = "warehouses/_dbt/shop"
OTHER = "warehouses/other/dbt"
#: A model only tenant `other` has: it must be in no other tenant's image.
OTHER_MODEL = "models/silver/other_secret_model.sql"


def write_graph(root: Path, tenant: str, project: str) -> str:
    """The graph file `dag-factory dbt compile` would write (the fields images read)."""
    compiled = root / "warehouses" / tenant / "compiled"
    compiled.mkdir(parents=True, exist_ok=True)
    digest = project_hash(root / project)
    doc = {"version": 1, "tenant": tenant, "project": project, "project_hash": digest,
           "inputs_hash": digest, "dbt_version": "1.12.0", "layers": {}, "nodes": {}}  # fmt: skip
    (compiled / "dbt_graph.json").write_text(json.dumps(doc))
    (compiled / "manifest.json").write_text(json.dumps({"metadata": {"tenant": tenant}}))
    return digest


def _tenants_folder(root: Path) -> Path:
    shutil.copytree(REPO / "warehouses", root / "warehouses",
                    ignore=shutil.ignore_patterns("target", "logs", "compiled"))  # fmt: skip
    other = root / OTHER
    (other / "models" / "silver").mkdir(parents=True)
    (other / "dbt_project.yml").write_text(
        "name: other\nversion: '1.0'\nprofile: other\nmodel-paths: [models]\n"
    )
    (other / OTHER_MODEL).write_text("select 1 as id\n")
    (root / "warehouses" / "other" / "warehouse.yaml").write_text("tenant: other\n")
    write_graph(root, "demo", SHOP)
    write_graph(root, "other", OTHER)
    return root


@pytest.fixture(scope="module")
def tenants(
    tmp_path_factory: pytest.TempPathFactory,
    runner_images: RunnerImages,
    docker_engine: DockerEngine,
) -> SimpleNamespace:
    root = _tenants_folder(tmp_path_factory.mktemp("tenants"))
    work = tmp_path_factory.mktemp("work")
    kwargs = dict(registry=runner_images.registry, push=True, dbt_image=runner_images.ref("dbt"),
                  root=root, work=work, env=docker_engine.env)  # fmt: skip
    built = tenant_images(tenants=["demo", "other"], **kwargs)
    refs = {image.tenant: image.ref for image in built}
    docker_engine.run("rmi", *refs.values())  # what runs next comes from the registry
    for ref in refs.values():
        docker_engine.run("pull", "--quiet", ref)
    return SimpleNamespace(root=root, work=work, kwargs=kwargs, built=built, refs=refs)


def _sh(engine: DockerEngine, ref: str, script: str) -> str:
    return engine.run(
        "run", "--rm", "--network", "none", "--read-only", "--entrypoint", "sh", ref, "-c", script
    )


def _tags(registry: str, repository: str) -> set[str]:
    with urllib.request.urlopen(f"http://{registry}/v2/{repository}/tags/list", timeout=10) as r:
        return set(json.load(r)["tags"] or ())


def test_tenant_image_holds_its_project_and_compiled_graph_only(
    tenants: SimpleNamespace, docker_engine: DockerEngine
):
    assert not any(image.reused for image in tenants.built)
    demo = tenants.refs["demo"]
    files = set(_sh(docker_engine, demo, "cd /app && find . -type f | sort").split())
    shop = {f"./{SHOP}/{p.relative_to(tenants.root / SHOP).as_posix()}"
            for p in (tenants.root / SHOP).rglob("*") if p.is_file()}  # fmt: skip
    assert shop and shop <= files  # the shared project, at the path the planned argv names
    compiled = {"./warehouses/demo/compiled/dbt_graph.json",
                "./warehouses/demo/compiled/manifest.json"}  # fmt: skip
    assert files == shop | compiled  # nothing of `other`, of acme, of lake, no tenant file
    other = set(_sh(docker_engine, tenants.refs["other"], "cd /app && find . -type f").split())
    assert f"./{OTHER}/{OTHER_MODEL}" in other
    assert not any(f.startswith(f"./{SHOP}") or "/demo/" in f for f in other)


def test_tenant_image_is_read_only_for_the_non_root_runner(
    tenants: SimpleNamespace, docker_engine: DockerEngine
):
    ref = tenants.refs["demo"]
    config = json.loads(docker_engine.run("image", "inspect", ref))[0]["Config"]
    assert config["User"] == f"{RUNNER_UID}:{RUNNER_UID}" and config["Entrypoint"] == ["runner"]
    assert config["Labels"]["io.tenant-runner.project"] == SHOP
    out = docker_engine.run(  # no --read-only here: the image's own permissions must hold
        "run", "--rm", "--network", "none", "--entrypoint", "sh", ref, "-c",
        f"id -u; stat -c '%U %a' {SHOP}/dbt_project.yml warehouses/demo/compiled; "
        f"touch {SHOP}/x 2>&1; mkdir warehouses/demo/compiled/y 2>&1; true",
    )  # fmt: skip
    lines = out.splitlines()
    assert lines[:3] == [str(RUNNER_UID), "root 644", "root 755"]
    assert out.count("Permission denied") == 2


@pytest.mark.parametrize("target", ["datakit", "dbt"])
def test_base_images_carry_no_tenant_files(
    target: str, runner_images: RunnerImages, docker_engine: DockerEngine
):
    out = _sh(docker_engine, runner_images.ref(target), "find /app -mindepth 1; echo end")
    assert out.split() == ["end"]
    # anywhere outside the venv (dbt's own packages hold dbt_project.yml files of theirs)
    find = ("find / -xdev \\( -path /opt/venv -o -path /proc \\) -prune -o "
            "\\( -name dbt_project.yml -o -name warehouse.yaml \\) -print; echo end")  # fmt: skip
    everywhere = _sh(docker_engine, runner_images.ref(target), find)
    assert everywhere.split() == ["end"]


def test_tag_is_the_content_hash_on_its_base(tenants: SimpleNamespace, docker_engine: DockerEngine):
    registry = tenants.kwargs["registry"]
    first = tenants.refs["other"]
    host, repository, tag = split_ref(first)
    assert (host, repository) == (registry, "tenant-dbt-other")
    # write_graph's inputs_hash is the project hash; the base is the dbt image built
    inputs = project_hash(tenants.root / OTHER)
    assert tag == tenant_image_tag(inputs, tenants.kwargs["dbt_image"])
    # the same project again: same tag, nothing built or pushed (the registry has it)
    again = tenant_images(tenants=["demo", "other"], **tenants.kwargs)
    assert [(i.ref, i.reused) for i in again] == [(tenants.refs["demo"], True), (first, True)]
    # build output and the tenant's own spec are not the project's content
    (tenants.root / OTHER / "target").mkdir()
    (tenants.root / OTHER / "target" / "run.json").write_text("{}")
    (tenants.root / "warehouses" / "other" / "warehouse.yaml").write_text("tenant: other\n# x\n")
    assert tenant_images(tenants=["other"], **tenants.kwargs)[0].ref == first
    # a model changes: the graph compiled before it is refused, a new one gives a new tag
    model = tenants.root / OTHER / OTHER_MODEL
    model.write_text("select 2 as id\n")
    with pytest.raises(TenantImageError, match=r"changed since .* dbt compile other"):
        tenant_images(tenants=["other"], **tenants.kwargs)
    write_graph(tenants.root, "other", OTHER)
    changed = tenant_images(tenants=["other"], **tenants.kwargs)[0]
    assert not changed.reused and changed.ref != first
    assert _tags(registry, "tenant-dbt-other") == {tag, split_ref(changed.ref)[2]}
    shown = _sh(docker_engine, changed.ref, f"cat {OTHER}/{OTHER_MODEL}")
    assert shown.strip() == "select 2 as id"
    # and the demo tag did not move
    assert _tags(registry, "tenant-dbt-demo") == {split_ref(tenants.refs["demo"])[2]}


def test_missing_graph_fails_with_the_command_to_run(tenants: SimpleNamespace):
    (tenants.root / "warehouses" / "acme" / GRAPH_FILE).unlink(missing_ok=True)
    with pytest.raises(TenantImageError) as caught:
        tenant_images(tenants=["acme"], **tenants.kwargs)
    assert str(caught.value) == (
        "tenant acme: warehouses/acme/compiled/dbt_graph.json is missing: "
        "run `dag-factory dbt compile acme` first"
    )


def test_runner_dbt_build_in_the_tenant_image(
    tenants: SimpleNamespace, docker_engine: DockerEngine, tmp_path: Path
):
    """The demo tenant's silver and gold, built by `runner dbt` in its own image (read-only
    root, /tmp a tmpfs, as the Docker adapter runs it) over a DuckDB file with bronze."""
    data = tmp_path / "data"
    data.mkdir()
    warehouse = data / "warehouse.duckdb"
    generate_shop(f"duckdb:///{warehouse}", orders=200, schema="bronze")
    os.chmod(data, 0o777)  # noqa: S103 - the runner's uid writes the DuckDB file and its WAL
    os.chmod(warehouse, 0o666)  # noqa: S103
    demo = Loader(REPO / "warehouses").load_all({"demo"}).tenants[0]
    out = docker_engine.run(
        "run", "--rm", "--network", "none", "--read-only", "--tmpfs", f"{SCRATCH_PATH}:rw,exec",
        "-v", f"{data}:/data",
        "-e", f"RUNNER_SPEC={demo.spec.runner_spec_json()}",
        "-e", "RUNNER_WAREHOUSE_URL=duckdb:////data/warehouse.duckdb",
        tenants.refs["demo"], "dbt", "--project-dir", SHOP, "build", "--select", "silver gold",
        timeout=900,
    )  # fmt: skip
    result = json.loads(out.strip().splitlines()[-1])
    assert result["status"] == "ok" and result["failed"] == 0
    assert "gold.revenue_per_customer_month" in result["models"]
    conn = duckdb.connect(str(warehouse), read_only=True)
    try:
        rows = conn.execute("select count(*) from gold.revenue_per_customer_month").fetchall()
    finally:
        conn.close()
    assert rows[0][0] > 0


def test_report_tenant_image_cost(
    tenants: SimpleNamespace,
    runner_images: RunnerImages,
    docker_engine: DockerEngine,
    capsys: pytest.CaptureFixture[str],
):
    """What a tenant image adds over the dbt image, and what an unchanged tenant costs."""

    def size(ref: str) -> int:
        return int(docker_engine.run("image", "inspect", "--format", "{{.Size}}", ref))

    base = size(runner_images.ref("dbt"))
    started = time.perf_counter()
    again = tenant_images(tenants=["demo"], **tenants.kwargs)
    reuse = time.perf_counter() - started
    assert again[0].reused
    with capsys.disabled():
        for image in tenants.built:
            extra = size(image.ref) - base
            print(f"\n{image.ref}: +{extra / 1000:.1f} kB over the dbt image, "
                  f"built and pushed in {image.seconds} s", end="")  # fmt: skip
        print(f"\nunchanged tenant (registry HEAD, no build, no push): {reuse:.2f} s")
    assert all(0 < size(image.ref) - base < 5_000_000 for image in tenants.built)

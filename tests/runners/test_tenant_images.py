"""`runners.tenant_images` without an engine: which graph files an image build accepts,
the content hash, the build context, and the registry check when nothing answers; and
the choices `runners.build_images` makes for the Spark image before any build."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from datakits.contract import tenant_image_tag
from devtools.postgres import free_port
from runners.build_images import (
    ALL_IMAGES,
    IMAGES,
    SparkUnavailable,
    choose_targets,
    jre_debs,
    stage_spark_files,
)
from runners.tenant_images import (
    TenantImageError,
    build_tenant_images,
    project_hash,
    read_graph,
    registry_has,
    split_ref,
    stage_tenant_context,
    tenant_ids,
)

REPO = Path(__file__).resolve().parents[2]
SHOP = "warehouses/_dbt/shop"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "warehouses", tmp_path / "warehouses",
                    ignore=shutil.ignore_patterns("target", "logs", "compiled"))  # fmt: skip
    return tmp_path


def _graph(root: Path, folder: str, **fields: object) -> Path:
    doc = {"version": 1, "tenant": folder, "project": SHOP,
           "project_hash": project_hash(root / SHOP), "inputs_hash": "1" * 64,
           **fields}  # fmt: skip
    file = root / "warehouses" / folder / "compiled" / "dbt_graph.json"
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(json.dumps(doc))
    return file


def test_tenants_are_the_folders_with_a_tenant_file(root: Path):
    assert tenant_ids(root) == ["acme", "demo", "lake"]


def test_project_hash_is_content_not_build_output(root: Path):
    before = project_hash(root / SHOP)
    for junk in ("target/manifest.json", "logs/dbt.log", "dbt_packages/x/y.sql", ".user.yml"):
        (root / SHOP / junk).parent.mkdir(parents=True, exist_ok=True)
        (root / SHOP / junk).write_text("anything")
    assert project_hash(root / SHOP) == before
    model = root / SHOP / "models" / "gold" / "revenue_per_customer_month.sql"
    model.write_text(model.read_text() + "\n-- changed\n")
    assert project_hash(root / SHOP) != before
    model.rename(model.with_name("renamed.sql"))  # a rename is a change too
    assert len({before, project_hash(root / SHOP)}) == 2


def test_a_good_graph(root: Path):
    _graph(root, "demo")
    graph = read_graph(root, "demo")
    assert (graph.tenant, graph.project, graph.inputs_hash) == ("demo", SHOP, "1" * 64)
    base = "registry.localhost/tenant-runner-dbt:0.1.0"
    assert graph.tag(base) == tenant_image_tag("1" * 64, base)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"tenant": "acme"},
            "warehouses/demo/compiled/dbt_graph.json is tenant acme's, not demo's",
        ),
        ({"project_hash": "abc"}, "project_hash 'abc' is not a sha256 hex digest"),
        ({"inputs_hash": "abc"}, "inputs_hash 'abc' is not a sha256 hex digest"),
        ({"project": "../outside"}, "project ../outside is not under warehouses/"),
        ({"project": "warehouses/demo"}, "warehouses/demo has no dbt_project.yml"),
        ({"project_hash": "0" * 64}, f"tenant demo: {SHOP} changed since"),
    ],
)
def test_a_bad_graph_is_one_line_naming_the_fix(root: Path, fields: dict, message: str):
    _graph(root, "demo", **fields)
    with pytest.raises(TenantImageError) as caught:
        read_graph(root, "demo")
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_missing_or_unreadable_graph(root: Path):
    with pytest.raises(TenantImageError, match=r"run `dag-factory dbt compile demo` first$"):
        read_graph(root, "demo")
    _graph(root, "demo").write_text("{not json")
    with pytest.raises(TenantImageError, match=r"is not a graph file .* compile demo` again$"):
        read_graph(root, "demo")
    with pytest.raises(TenantImageError, match="is not a tenant id"):
        read_graph(root, "../demo")


def test_context_holds_the_project_and_the_compiled_folder_only(root: Path, tmp_path: Path):
    _graph(root, "demo")
    (root / "warehouses" / "demo" / "compiled" / "manifest.json").write_text("{}")
    (root / SHOP / "target").mkdir()
    (root / SHOP / "target" / "x.json").write_text("{}")
    context = stage_tenant_context(root, read_graph(root, "demo"), tmp_path / "ctx")
    files = {p.relative_to(context).as_posix() for p in context.rglob("*") if p.is_file()}
    shop = {p.relative_to(root).as_posix() for p in (root / SHOP).rglob("*")
            if p.is_file() and "target" not in p.parts}  # fmt: skip
    compiled = {"warehouses/demo/compiled/dbt_graph.json", "warehouses/demo/compiled/manifest.json"}
    assert files == shop | compiled


def test_registry_that_does_not_answer_means_build():
    ref = f"127.0.0.1:{free_port()}/tenant-dbt-demo:0123456789ab"
    assert split_ref(ref) == (ref.split("/")[0], "tenant-dbt-demo", "0123456789ab")
    assert registry_has(ref, timeout=2) is None


def test_the_graphs_engine_chooses_the_base_image(root: Path):
    """A Spark tenant's graph (`engine: spark`) is built FROM the Spark runner image, with
    the same tag function; a graph without `engine` (written before it was recorded) is
    a dbt one; any other engine is refused with the fix."""
    _graph(root, "demo")
    _graph(root, "lake", tenant="lake", engine="spark")
    assert (read_graph(root, "demo").base, read_graph(root, "lake").base) == ("dbt", "spark")
    _graph(root, "acme", tenant="acme", engine="flink")
    with pytest.raises(TenantImageError, match=r"engine 'flink' is not one of warehouse, spark"):
        read_graph(root, "acme")


def test_each_tenant_image_is_built_from_its_engines_base(root: Path, tmp_path: Path):
    """The builder's argv (no engine: the docker client records, builds nothing)."""
    _graph(root, "demo")
    _graph(root, "lake", tenant="lake", engine="spark")
    dbt, spark = "reg:5000/tenant-runner-dbt:abc", "reg:5000/tenant-runner-spark:abc"
    argvs: list[list[str]] = []

    def build(**bases: str):
        return build_tenant_images(
            root, ["demo", "lake"], registry="reg:5000", push=False, work=tmp_path / "w",
            run=lambda argv: argvs.append(list(argv)), local_has=lambda ref: False,
            docker="docker", dockerfile=Path("tenant.Dockerfile"), runner_uid=10001, **bases,
        )  # fmt: skip

    with pytest.raises(TenantImageError, match=r"tenant lake runs dbt.engine spark: .*only spark"):
        build(dbt_image=dbt)
    assert argvs == []  # every graph checked before anything is built
    done = build(dbt_image=dbt, spark_image=spark)
    demo, lake = argvs
    assert f"RUNNER_IMAGE={dbt}" in demo and "ENGINE=warehouse" in demo
    assert f"RUNNER_IMAGE={spark}" in lake and "ENGINE=spark" in lake
    tags = [image.ref.rsplit(":", 1)[1] for image in done]
    assert tags == [tenant_image_tag("1" * 64, dbt), tenant_image_tag("1" * 64, spark)]
    assert all(argv[argv.index("--network") + 1] == "none" for argv in argvs)


def test_the_spark_image_is_built_when_a_tenant_needs_it_or_asked(
    root: Path, capsys: pytest.CaptureFixture[str]
):
    _graph(root, "demo")
    _graph(root, "lake", tenant="lake", engine="spark")
    dbt_only, spark = [read_graph(root, "demo")], [read_graph(root, t) for t in ("demo", "lake")]
    assert choose_targets(None, spark) == [*IMAGES, "spark"]
    assert choose_targets(["spark"], []) == ["spark"]
    assert choose_targets(["dbt", "tenants"], spark) == ["dbt"]  # asked: only what was asked
    assert capsys.readouterr().err == ""
    assert choose_targets(None, dbt_only) == list(IMAGES)
    (line,) = capsys.readouterr().err.splitlines()
    assert line == (
        f"build_images: {ALL_IMAGES['spark']} skipped: no tenant's graph says engine: spark "
        "(`--only spark` builds it)"
    )


def test_spark_context_folders_exist_empty_and_hold_only_jars(tmp_path: Path):
    jars = tmp_path / "jars"
    jars.mkdir()
    (jars / "hadoop-aws-3.4.1.jar").write_bytes(b"jar")
    (jars / "README").write_text("not a jar")
    deb = tmp_path / "java-common_0.74_all.deb"
    deb.write_bytes(b"deb")
    stage_spark_files(tmp_path / "empty", [], None)
    assert sorted(p.name for p in (tmp_path / "empty").rglob("*") if p.is_file()) == [
        ".keep", ".keep"
    ]  # fmt: skip
    stage_spark_files(tmp_path / "ctx", [deb], jars)
    files = {p.relative_to(tmp_path / "ctx").as_posix() for p in (tmp_path / "ctx").rglob("*")}
    assert files == {"debs", "debs/.keep", "debs/java-common_0.74_all.deb", "spark-jars",
                     "spark-jars/.keep", "spark-jars/hadoop-aws-3.4.1.jar"}  # fmt: skip
    with pytest.raises(RuntimeError, match=r"--spark-jars .*: not a folder"):
        stage_spark_files(tmp_path / "bad", [], tmp_path / "missing")


def test_java_for_another_debian_release_is_refused_in_one_line(tmp_path: Path):
    """This host's apt resolves against its own release's lists: a base image of another
    release (or none) cannot get its Java here; nothing is downloaded."""
    with pytest.raises(SparkUnavailable) as caught:
        jre_debs("Package: base-files\n", ("debian", "trixie-or-later"), tmp_path)
    message = str(caught.value)
    assert "\n" not in message and "cannot resolve packages for the base image" in message
    assert message.endswith("run `make images` on a debian trixie-or-later host")
    assert not (tmp_path / "archives").exists()

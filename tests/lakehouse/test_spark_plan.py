"""`dbt.engine: spark` from the tenant file to the pod: spec, plan, Kubernetes objects, the
pod of a Spark task, the executors' pod and entrypoint, and the image's Dockerfile.

Fast: no server, no JVM. Every rendered object is validated against the Kubernetes 1.32
schemas, strict, as the other pods and objects are.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from dag_factory import dbt_graph
from dag_factory.adapters import renderer_for
from dag_factory.compile import compile_tenant
from dag_factory.dbt_graph import graph_path
from dag_factory.errors import TenantFileError
from dag_factory.images import TenantImageMissing, dbt_image
from dag_factory.isolation import EXECUTOR_ENV
from dag_factory.k8s_objects import (
    SPARK_DRIVER,
    EgressUndefined,
    network_policy,
    parallel_pods,
    spark_objects,
    tenant_objects,
)
from dag_factory.loader import Loader, Tenant
from dag_factory.plan import (
    SPARK_LAYERS,
    PlatformOverrides,
    is_spark,
    plan_tenant,
    stale_graph,
)
from dag_factory.spec import DbtEngine, Executor
from datakits.contract import tenant_image_tag
from datakits.errors import ConfigError
from datakits.writers.lakehouse import lake_location
from devtools.compiled import LOCAL_OUTPUT
from runners.spark_bronze import BronzeAccess
from runners.spark_conf import SCRATCH, executor_pod_template, spark_conf
from runners.spark_executor import BACKEND, executor_argv
from runners.tenant_images import read_graph, tenant_image_ref
from tests.dag_factory.graphs import graph_doc, shop_nodes, write_graph
from tests.datakits.runner_proc import RUNNER
from tests.lakehouse.test_spark_tenant import spark_tenant

REPO = Path(__file__).resolve().parents[2]
API = {"cidrs": ["10.96.0.1/32"]}


@pytest.fixture
def warehouses(tmp_path: Path) -> Path:
    root = tmp_path / "warehouses"
    shutil.copytree(REPO / "warehouses", root, ignore=shutil.ignore_patterns(*LOCAL_OUTPUT))
    return root


def load(warehouses: Path, name: str, **spark: object) -> Tenant:
    folder = warehouses / name
    if name == "lake_spark" and not folder.exists():
        spark_tenant(warehouses, warehouses.parent / "spark-warehouse")
    if spark:
        path = folder / "warehouse.yaml"
        doc = yaml.safe_load(path.read_text())
        doc["dbt"]["spark"] = {**doc["dbt"]["spark"], **spark}
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return Loader(warehouses).load(folder / "warehouse.yaml")


def test_the_engine_defaults_to_the_warehouse_and_spark_is_chosen_by_name(
    warehouses: Path,
) -> None:
    assert load(warehouses, "lake").spec.dbt.engine is DbtEngine.warehouse
    spec = load(warehouses, "lake_spark").spec
    assert spec.dbt.engine is DbtEngine.spark
    assert spec.dbt.spark.executors == 2


def test_custom_layers_are_refused_with_spark_at_the_engine_line(warehouses: Path) -> None:
    spark_tenant(warehouses, warehouses.parent / "spark-warehouse")
    path = warehouses / "lake_spark" / "warehouse.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["dbt"]["layers"] = {"staging": "path:models/silver"}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(Exception, match=r"dbt\.engine: spark builds the silver and gold"):
        Loader(warehouses).load(path)


def test_a_spark_tenants_layer_tasks_run_runner_spark_with_its_settings(
    warehouses: Path,
) -> None:
    duck = plan_tenant(load(warehouses, "lake"), warehouses.parent)
    spark = plan_tenant(load(warehouses, "lake_spark", executors=5), warehouses.parent)
    assert spark.fallback == SPARK_LAYERS  # layer tasks, and the DAG doc says why
    for layer in ("silver", "gold"):
        duck_task, task = duck.task(f"dbt_{layer}"), spark.task(f"dbt_{layer}")
        assert duck_task.argv[0] == "dbt" and task.argv[0] == "spark" and is_spark(task)
        assert task.argv[1:] == duck_task.argv[1:]  # the same dbt selection
        env = task.env_dict
        assert env["SPARK_EXECUTORS"] == "5"
        assert env["SPARK_IMAGE"] == task.image == "registry.localhost/tenant-runner-spark:0.1.0"
        assert env["SPARK_NAMESPACE"] == "tenant-lake-spark"
        assert env["RUNNER_SPARK_BRONZE"] == "copy"
        assert env["RUNNER_SPARK_WAREHOUSE"].endswith("spark-warehouse")
    extracts = [t for t in spark.tasks if t.task_id.startswith("extract_")]
    assert extracts and not any(is_spark(t) or "SPARK_IMAGE" in t.env_dict for t in extracts)


def test_a_compiled_graph_gives_model_tasks_to_duckdb_but_layer_tasks_to_spark(
    warehouses: Path,
) -> None:
    """The same current graph: the DuckDB lake tenant gets `dbt_build` + a task per model,
    the Spark tenant keeps its two layer tasks, and its DAG doc says why (`fallback`)."""
    project = "warehouses/_dbt/shop"
    lake = load(warehouses, "lake")
    spark = load(warehouses, "lake_spark")
    for tenant in (lake, spark):
        write_graph(
            warehouses / tenant.spec.tenant, graph_doc(tenant.spec.tenant, project, shop_nodes())
        )
    duck_plan = plan_tenant(
        lake, warehouses.parent, graph=dbt_graph.load(graph_path(warehouses / "lake"))
    )
    assert duck_plan.fallback is None and duck_plan.task("gold.revenue_per_customer_month")
    graph = dbt_graph.load(graph_path(warehouses / "lake_spark"))
    assert graph is not None and stale_graph(graph, spark.spec, project) is None  # current
    plan = plan_tenant(spark, warehouses.parent, graph=graph)
    assert plan.fallback == SPARK_LAYERS and not plan.gates
    dbt = [t.task_id for t in plan.tasks if not t.task_id.startswith("extract_")]
    assert dbt == ["dbt_silver", "dbt_gold"] and all(is_spark(plan.task(t)) for t in dbt)


def test_with_a_graph_a_spark_tenant_runs_its_own_image_built_on_the_spark_image(
    warehouses: Path,
) -> None:
    """The graph's hash names the tenant's image (`tenant-dbt-<t>`, FROM `images.spark`):
    the layer tasks and their executors (`SPARK_IMAGE`) run it, not the bare Spark image,
    which holds no project; the tag is the dbt tenants' function of the Spark base."""
    spark = load(warehouses, "lake_spark")
    doc = graph_doc("lake_spark", "warehouses/_dbt/shop", shop_nodes())
    write_graph(warehouses / "lake_spark", {**doc, "engine": "spark"})
    graph = dbt_graph.load(graph_path(warehouses / "lake_spark"))
    assert graph is not None and graph.engine == "spark"
    plan = plan_tenant(spark, warehouses.parent, graph=graph)
    tag = tenant_image_tag(graph.inputs_hash, spark.spec.images.spark)
    assert tag != tenant_image_tag(graph.inputs_hash, spark.spec.images.dbt)
    image = f"registry.localhost/tenant-dbt-lake_spark:{tag}"
    for layer in ("silver", "gold"):
        task = plan.task(f"dbt_{layer}")
        assert is_spark(task) and task.image == task.env_dict["SPARK_IMAGE"] == image
    # the deployment's registry replaces the host, for the executors' image too
    plan = plan_tenant(spark, warehouses.parent, PlatformOverrides(registry="10.0.0.1:5000"), graph)
    image = f"10.0.0.1:5000/tenant-dbt-lake_spark:{tag}"
    assert plan.task("dbt_gold").image == plan.task("dbt_gold").env_dict["SPARK_IMAGE"] == image


def test_a_container_spark_tenant_without_its_graph_is_a_placeholder_about_spark(
    warehouses: Path,
) -> None:
    spec = load(warehouses, "lake_spark").spec
    # locally (no image runs) the Spark image is only a label, as before
    assert dbt_image(spec, None, None, executor=Executor.local) == spec.images.spark
    for executor in (Executor.docker, Executor.kubernetes):
        with pytest.raises(TenantImageMissing) as caught:
            dbt_image(spec, None, None, executor=executor)
        assert str(caught.value) == (
            f"tenant lake_spark runs Spark in {executor} containers but has no compiled graph "
            "(warehouses/lake_spark/compiled/dbt_graph.json), whose project hash names its "
            "Spark image (tenant-dbt-lake_spark FROM images.spark; the Spark image alone "
            "holds no project): run `dag-factory dbt compile lake_spark`, then `make images` "
            "(a Spark tenant keeps its layer tasks)"
        )
        # a graph compiled before the tenant chose Spark names an image on the dbt base
        stale = r"compiled for dbt\.engine warehouse, the tenant file says spark, .* `dag-f"
        with pytest.raises(TenantImageMissing, match=stale):
            dbt_image(spec, "b" * 64, None, executor=executor, graph_engine="warehouse")
        tag = tenant_image_tag("b" * 64, spec.images.spark)
        own = dbt_image(spec, "b" * 64, None, executor=executor, graph_engine="spark")
        assert own == f"registry.localhost/tenant-dbt-lake_spark:{tag}"


def test_compile_records_the_engine_and_the_builder_names_the_image_the_dag_runs(
    warehouses: Path,
) -> None:
    """`dag-factory dbt compile` on a Spark tenant (a real dbt parse): its graph says
    `engine: spark`, `make images` builds FROM the Spark image, and the tag it pushes is
    the one the DAG names."""
    spark = load(warehouses, "lake_spark")
    root = warehouses.parent
    done = compile_tenant(spark, root)
    assert done.ok, done.line
    built = read_graph(root, "lake_spark")
    assert (built.engine, built.base) == ("spark", "spark")
    graph = dbt_graph.load(graph_path(warehouses / "lake_spark"))
    assert graph is not None and graph.engine == "spark"
    planned = plan_tenant(spark, root, graph=graph).task("dbt_silver").image
    assert planned == tenant_image_ref("registry.localhost", built, spark.spec.images.spark)
    lake = load(warehouses, "lake")
    assert compile_tenant(lake, root).ok and read_graph(root, "lake").base == "dbt"


def test_the_spark_pod_drives_executors_and_no_other_pod_has_a_token(warehouses: Path) -> None:
    plan = plan_tenant(load(warehouses, "lake_spark", api_server=API), warehouses.parent)
    render = renderer_for(Executor.kubernetes)
    gold = render(plan.task("dbt_gold"))
    kubernetes_validate.validate(gold, "1.32", strict=True)
    spec = gold["spec"]
    assert spec["serviceAccountName"] == SPARK_DRIVER
    assert spec["automountServiceAccountToken"] is True
    assert gold["metadata"]["labels"]["spark-role"] == "driver"
    env = {e["name"]: e for e in spec["containers"][0]["env"]}
    assert env["SPARK_MASTER"]["value"] == "k8s://https://kubernetes.default.svc"
    assert env["SPARK_DRIVER_HOST"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    assert env["SPARK_DRIVER_POD"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert spec["containers"][0]["args"][0] == "spark"
    extract = render(plan.task("extract_orders"))
    kubernetes_validate.validate(extract, "1.32", strict=True)
    assert extract["spec"]["automountServiceAccountToken"] is False
    assert extract["spec"]["serviceAccountName"] == "runner"
    assert "spark-role" not in extract["metadata"]["labels"]
    assert not {"SPARK_MASTER", "SPARK_DRIVER_HOST", "SPARK_DRIVER_POD"} & {
        e["name"] for e in extract["spec"]["containers"][0]["env"]
    }


def test_spark_objects_validate_and_fence_the_executors(warehouses: Path) -> None:
    spec = load(warehouses, "lake_spark", api_server=API).spec
    objects = tenant_objects(spec)
    for obj in objects:
        kubernetes_validate.validate(obj, "1.32", strict=True)
    by = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    account = by[("ServiceAccount", SPARK_DRIVER)]
    assert account["automountServiceAccountToken"] is False  # pods opt in
    role = by[("Role", SPARK_DRIVER)]
    assert {"pods", "configmaps", "services"} <= {r for x in role["rules"] for r in x["resources"]}
    binding = by[("RoleBinding", SPARK_DRIVER)]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": SPARK_DRIVER, "namespace": "tenant-lake-spark"}
    ]
    lake = load(warehouses, "lake").spec
    assert parallel_pods(spec) == parallel_pods(lake) + spec.dbt.spark.executors  # quota room
    # the namespace-wide policy leaves the executors out; theirs: DNS, driver, peers, lake
    runner = by[("NetworkPolicy", "runner-egress")]["spec"]["podSelector"]
    assert runner["matchExpressions"][0] == {
        "key": "spark-role",
        "operator": "NotIn",
        "values": ["executor"],
    }
    executors = by[("NetworkPolicy", "spark-executors")]["spec"]
    assert executors["podSelector"] == {"matchLabels": {"spark-role": "executor"}}
    minio = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "minio"}}}
    targets = [peer for rule in executors["egress"] for peer in rule["to"]]
    assert minio in targets
    assert {"podSelector": {"matchLabels": {"spark-role": "driver"}}} in targets
    assert len(executors["egress"]) == 3  # DNS, driver + executors, the lake: nothing else
    driver = by[("NetworkPolicy", "spark-driver")]["spec"]
    assert {"ipBlock": {"cidr": "10.96.0.1/32"}} in driver["egress"][1]["to"]
    assert driver["egress"][1]["ports"] == [{"protocol": "TCP", "port": 443}]


def test_a_non_spark_tenant_is_unchanged_and_spark_needs_the_api_server(
    warehouses: Path,
) -> None:
    lake = load(warehouses, "lake").spec
    assert spark_objects(lake) == []
    assert network_policy(lake)["spec"]["podSelector"] == {}
    with pytest.raises(EgressUndefined, match=r"dbt\.spark\.api_server"):
        tenant_objects(load(warehouses, "lake_spark").spec)


def _on_kubernetes(warehouses: Path, spark: dict[str, object]) -> tuple[Path, dict, str]:
    """The `lake_spark` file under the kubernetes executor with `spark` as its dbt.spark:
    (its path, its document, the one problem loading it raises, file path relative)."""
    path = warehouses / "lake_spark" / "warehouse.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["platform"]["executor"] = "kubernetes"
    doc["dbt"]["spark"] = spark
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(TenantFileError) as caught:
        Loader(warehouses).load(path)
    (problem,) = [str(p).replace(f"{warehouses}/", "") for p in caught.value.problems]
    return path, doc, problem


def test_validate_flags_a_kubernetes_spark_tenant_without_the_api_server(
    warehouses: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`dag-factory validate` (the loader's isolation checks), not only `dag-factory k8s`:
    a file:line:col error at `dbt.spark`, with the fix; nothing on the local executor."""
    monkeypatch.delenv(EXECUTOR_ENV, raising=False)
    load(warehouses, "lake_spark")  # local: no API server to reach
    # bronze over s3a: what a cluster needs (next test)
    path, doc, problem = _on_kubernetes(warehouses, {"bronze_access": "s3a"})
    # the field is absent: the error points at the `dbt.spark` mapping it belongs in
    line = path.read_text().splitlines().index("  spark:") + 2
    assert problem == (
        f"lake_spark/warehouse.yaml:{line}:5: dbt.spark.api_server: the Spark driver starts "
        "its executors through the Kubernetes API: set `cidrs` (the API server's address, "
        "e.g. [10.96.0.1/32]) or selectors; without one, TCP 443 would be open to every address"
    )
    done = subprocess.run(
        [str(REPO / ".venv" / "bin" / "dag-factory"), "validate", "-w", str(warehouses), str(path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert (
        done.returncode == 1
        and "dbt.spark.api_server: the Spark driver" in done.stdout + done.stderr
    )
    assert load(warehouses, "lake_spark", api_server=API).spec.dbt.spark.api_server.cidrs
    # the deployment's executor override counts as the file's own setting
    doc["platform"]["executor"] = "local"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    monkeypatch.setenv(EXECUTOR_ENV, "kubernetes")
    with pytest.raises(TenantFileError, match=r"dbt\.spark\.api_server"):
        Loader(warehouses).load(path)


def test_validate_refuses_copied_bronze_on_kubernetes(
    warehouses: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`bronze_access: copy` puts bronze on the driver's disk, where executor pods on other
    nodes cannot read it (it ran against a real API server only because the test's
    executors shared the driver's host): a file:line error under kubernetes, fine locally."""
    monkeypatch.delenv(EXECUTOR_ENV, raising=False)
    local = load(warehouses, "lake_spark").spec.dbt.spark
    assert local.bronze_access == "copy"  # local: accepted
    spark = {**local.model_dump(mode="json", exclude_defaults=True), "api_server": API}
    path, _, problem = _on_kubernetes(warehouses, spark)
    line = path.read_text().splitlines().index("    bronze_access: copy") + 1
    assert problem == (
        f"lake_spark/warehouse.yaml:{line}:20: dbt.spark.bronze_access: copy puts bronze in "
        "the driver pod's scratch directory, which Spark's executor pods cannot read: use s3a "
        "on Kubernetes (executors read the lake themselves) and leave dbt.spark.warehouse_dir "
        "unset (silver and gold in the tenant's prefix of the lake)"
    )


def test_the_executor_pod_template_is_a_restricted_pod() -> None:
    pod = executor_pod_template()
    pod["metadata"] = {"name": "executor"}
    pod["spec"]["containers"][0]["image"] = "registry.localhost/tenant-runner-spark:0.1.0"
    kubernetes_validate.validate(pod, "1.32", strict=True)
    context = pod["spec"]["containers"][0]["securityContext"]
    assert context["readOnlyRootFilesystem"] is True and context["runAsNonRoot"] is True
    assert pod["spec"]["automountServiceAccountToken"] is False


def test_runner_executor_starts_sparks_backend_from_the_pods_env(tmp_path: Path) -> None:
    env = {
        "SPARK_DRIVER_URL": "spark://CoarseGrainedScheduler@10.0.0.5:7078",
        "SPARK_EXECUTOR_ID": "3",
        "SPARK_EXECUTOR_CORES": "2",
        "SPARK_APPLICATION_ID": "spark-abc",
        "SPARK_EXECUTOR_POD_IP": "10.0.0.9",
        "SPARK_RESOURCE_PROFILE_ID": "0",
        "SPARK_EXECUTOR_POD_NAME": "lake-exec-3",
        "SPARK_EXECUTOR_MEMORY": "1024m",
        "SPARK_JAVA_OPT_10": "-Dspark.b=2",
        "SPARK_JAVA_OPT_2": "-Dspark.a=1",
        "SPARK_EXTRA_JARS": str(tmp_path),
    }
    argv = executor_argv(env, Path("/spark"))
    assert argv[:3] == ["java", "-Dspark.a=1", "-Dspark.b=2"]  # numeric order, not text
    assert argv[argv.index("-cp") + 1] == "/spark/jars/*"  # no extra jars: not on the path
    assert argv[argv.index(BACKEND) + 1 :][:2] == ["--driver-url", env["SPARK_DRIVER_URL"]]
    (tmp_path / "hadoop-aws.jar").write_bytes(b"")
    argv = executor_argv(env, Path("/spark"))
    assert argv[argv.index("-cp") + 1] == f"/spark/jars/*:{tmp_path}/*"
    with pytest.raises(ConfigError, match="SPARK_DRIVER_URL"):
        executor_argv({}, Path("/spark"))


def _stage(dockerfile: str, name: str) -> str:
    match = re.search(rf"^FROM \S+ AS {name}\n(.*?)(?=^FROM |\Z)", dockerfile, re.M | re.S)
    assert match, f"no stage {name}"
    return match.group(0)


def test_the_spark_image_target_statically() -> None:
    """The Dockerfile's `spark` target, read (building it takes minutes: the pyspark wheel
    and Java; measured by hand, see the report). Offline like the other targets: Java
    from the context's .deb files (`runners.build_images.jre_debs`), no `apt-get update`."""
    spark = _stage((REPO / "runners" / "docker" / "Dockerfile").read_text(), "spark")
    assert spark.startswith("FROM dbt AS spark\n")
    assert "--mount=type=bind,source=debs,target=/debs" in spark
    assert "dpkg --install --force-confdef --force-confold /debs/*.deb" in spark
    assert "dpkg --audit" in spark and "java -version" in spark
    assert "apt-get" not in spark  # no package lists, no download
    assert "--offline --no-index" in spark and "'tenant-runner[dbt,spark]'" in spark
    assert "COPY ${SPARK_JARS}/ /opt/spark/jars/" in spark
    assert "SPARK_EXTRA_JARS=/opt/spark/jars" in spark
    assert "SPARK_LOCAL_DIRS=/tmp/" in spark and "-Divy.home=/tmp/" in spark
    users = re.findall(r"^USER (.+)$", spark, re.M)
    assert users[-1] == "${RUNNER_UID}:${RUNNER_UID}"
    assert re.search(r'^ENTRYPOINT \["runner"\]$', spark, re.M)
    assert not re.search(r"\b(curl|wget)\b|(?<!uv )pip install", spark)


def test_on_kubernetes_the_runner_writes_the_executor_template_and_owns_the_executors(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SPARK_MASTER", "k8s://https://kubernetes.default.svc")
    monkeypatch.setenv("SPARK_DRIVER_POD", "lake-spark-dbt-gold-abc123")
    jars = tmp_path / "jars"
    jars.mkdir()
    (jars / "hadoop-aws.jar").write_bytes(b"")
    monkeypatch.setenv("SPARK_EXTRA_JARS", str(jars))
    location = lake_location("s3://key:secret@minio.minio:9000/lake-bucket?secure=false")
    conf = spark_conf(
        location, "s3a://lake-bucket/lake_spark/w", access=BronzeAccess.s3a, work_dir=tmp_path
    )
    template = Path(conf["spark.kubernetes.executor.podTemplateFile"])
    assert json.loads(template.read_text()) == executor_pod_template()
    assert conf["spark.kubernetes.driver.pod.name"] == "lake-spark-dbt-gold-abc123"
    assert conf["spark.local.dir"].startswith(SCRATCH + "/")  # the emptyDir
    assert (
        conf["spark.driver.extraClassPath"] == conf["spark.executor.extraClassPath"] == f"{jars}/*"
    )


def test_runner_executor_outside_an_executor_pod_is_a_one_line_config_error() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPARK_")}
    done = subprocess.run([RUNNER, "executor"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2  # ConfigError: permanent, never retried
    assert done.stderr.splitlines() == [done.stderr.strip()] and done.stderr.startswith(
        "runner executor: only Spark starts this"
    )

"""The tenant spec: one pydantic model tree for `warehouses/<tenant>/warehouse.yaml`.

The source, warehouse and table-load models are datakits' own (`datakits.spec`), so a
tenant file is validated against exactly what the engine accepts. What is added here is
what only the orchestrator needs: schedule, task settings and resources, images,
alerting, the executor and its platform settings.

Precedence: `warehouses/defaults.yaml` < the tenant file (merged key by key by the
loader) < a table's own `task` settings (merged here, by `TenantSpec.task_settings`).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections import Counter
from enum import StrEnum
from typing import Annotated, Any, Literal

from croniter import croniter
from pydantic import (
    AfterValidator,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from dag_factory.k8s_names import is_qualified_name, is_valid_label_value
from datakits.contract import Duration
from datakits.kinds import warehouse_kind
from datakits.spec import (
    LoadSpec,
    SourceSpec,
    Strict,
    TableSpec,
    TenantId,
    WarehouseKind,
    WarehouseSpec,
)

#: Every tenant's DAG id is this prefix and the tenant id.
DAG_ID_PREFIX = "tenant_"
#: Assets are named `tenant://<tenant>/<layer>` and `tenant://<tenant>/bronze/<table>`.
ASSET_SCHEME = "tenant"
ASSET_URI_PATTERN = (
    r"^tenant://[a-z][a-z0-9_]{0,39}/(bronze(/[a-z_][a-z0-9_]{0,62})?|[a-z][a-z0-9_]{0,39})$"
)

#: Airflow's schedule presets (cron aliases plus the two special ones).
SCHEDULE_PRESETS = frozenset(
    {"@once", "@continuous", "@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly"}
)


def asset_uri(tenant: str, layer: str, table: str | None = None) -> str:
    return f"{ASSET_SCHEME}://{tenant}/{layer}" + (f"/{table}" if table else "")


# --- small value types -------------------------------------------------------------

#: Kubernetes quantities, as the API accepts them.
CPU_PATTERN = r"^(\d+m|\d+(\.\d{1,3})?)$"
MEMORY_PATTERN = r"^\d+(Ki|Mi|Gi|Ti|K|M|G|T)?$"
CpuQuantity = Annotated[str, Field(pattern=CPU_PATTERN, examples=["500m", "2"])]
MemoryQuantity = Annotated[str, Field(pattern=MEMORY_PATTERN, examples=["512Mi", "2Gi"])]


#: An image reference with a pinned tag or digest: `latest` or no tag is refused.
def _pinned(image: str) -> str:
    if image.endswith(":latest"):
        raise ValueError("`latest` is not a pinned tag: give a version or a digest")
    return image


ImageRef = Annotated[
    str,
    Field(
        pattern=r"^[a-z0-9][a-z0-9._/:-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[a-f0-9]{64})$"
    ),
    AfterValidator(_pinned),
]
#: The repository of a tenant's own dbt image: any registry and path, then
#: `tenant-dbt-{tenant}` (the placeholder, or the tenant's own id); no tag (the tag is the
#: compiled inputs and base image, `dag_factory.images`).
TENANT_IMAGE_PLACEHOLDER = "{tenant}"
TENANT_IMAGE_NAME_PREFIX = "tenant-dbt-"
TENANT_REPOSITORY_PATTERN = (
    r"^[a-z0-9][a-z0-9._:-]*(/[a-z0-9][a-z0-9._-]*)*/tenant-dbt-(\{tenant\}|[a-z][a-z0-9_]*)$"
)
TenantRepository = Annotated[str, Field(pattern=TENANT_REPOSITORY_PATTERN)]
#: A Kubernetes object name (DNS-1123 label).
K8S_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
K8sName = Annotated[str, Field(pattern=K8S_NAME_PATTERN)]
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
EmailAddress = Annotated[str, Field(pattern=EMAIL_PATTERN)]

#: An absolute local folder (no scheme): never a path into the lake, where it could name
#: another tenant's prefix.
LOCAL_DIR_PATTERN = r"^/[A-Za-z0-9_.@+=/-]{0,500}$"

DBT_PROJECT_PATTERN = r"^(\.\./)?[A-Za-z0-9_][A-Za-z0-9_./-]*$"

#: A dbt layer's name: its task is `dbt_<layer>`, its asset `tenant://<tenant>/<layer>`.
LAYER_PATTERN = r"^[a-z][a-z0-9_]{0,29}$"
#: A dbt selection (dbt's node selection syntax), one argv item: never an option.
SELECTOR_PATTERN = r"^[A-Za-z0-9_.:/*+@,][A-Za-z0-9_.:/*+@, -]{0,499}$"
#: Layer names that are not dbt layers (bronze is the extract tasks', meta the runner's).
RESERVED_LAYERS = frozenset({"bronze", "meta"})

#: The patterns of this module, in words, for error messages (see dag_factory.errors).
PATTERN_WORDS = {
    ASSET_URI_PATTERN: "an asset URI like tenant://<tenant>/gold or tenant://<tenant>/bronze/<table>",
    CPU_PATTERN: "a Kubernetes CPU quantity like 500m or 2",
    MEMORY_PATTERN: "a Kubernetes memory quantity like 512Mi or 2Gi",
    TENANT_REPOSITORY_PATTERN: "an image repository without a tag ending in /tenant-dbt-{tenant}, "
    "like registry.localhost/tenant-dbt-{tenant}",
    K8S_NAME_PATTERN: "a Kubernetes name (a-z, 0-9, -; at most 63 characters)",
    EMAIL_PATTERN: "an email address",
    DBT_PROJECT_PATTERN: "a folder relative to the tenant's, like dbt or ../_dbt/shop",
    LOCAL_DIR_PATTERN: "an absolute local folder like /data/spark-warehouse",
    LAYER_PATTERN: "a layer name (a-z, 0-9, _; starting with a letter; at most 30 characters)",
    SELECTOR_PATTERN: "a dbt selector like path:models/staging, tag:nightly or gold",
}
PoolName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,256}$")]


def _check_cron(value: str) -> str:
    if value in SCHEDULE_PRESETS or croniter.is_valid(value):
        return value
    presets = ", ".join(sorted(SCHEDULE_PRESETS))
    raise ValueError(f"must be a cron expression, a preset ({presets}) or null (manual only)")


CronOrPreset = Annotated[str, AfterValidator(_check_cron)]


class AssetSchedule(Strict):
    """Run when every listed asset was updated, e.g. another tenant's gold layer."""

    assets: tuple[Annotated[str, Field(pattern=ASSET_URI_PATTERN)], ...] = Field(min_length=1)


#: Tags of the schedule union (error paths drop them: see dag_factory.errors).
UNION_TAGS = frozenset({"cron-or-preset", "asset-schedule"})


#: A cron expression or preset, a mapping `{assets: [...]}`, or null (manual only).
def _schedule_kind(value: Any) -> str:
    return "asset-schedule" if isinstance(value, dict | AssetSchedule) else "cron-or-preset"


Schedule = (
    Annotated[
        Annotated[CronOrPreset, Tag("cron-or-preset")]
        | Annotated[AssetSchedule, Tag("asset-schedule")],
        Discriminator(_schedule_kind),
    ]
    | None
)


# --- task settings, resources ----------------------------------------------------------


class ResourceAmounts(Strict):
    cpu: CpuQuantity | None = None
    memory: MemoryQuantity | None = None


class Resources(Strict):
    requests: ResourceAmounts = ResourceAmounts()
    limits: ResourceAmounts = ResourceAmounts()


class TaskSettings(Strict):
    """How one kind of task runs. Unset fields fall back to the wider level."""

    retries: int | None = Field(default=None, ge=0, le=10)
    retry_delay: Duration | None = None
    timeout: Duration | None = None
    resources: Resources | None = None
    #: Extract tasks only: seconds between the runner's progress lines in the task log
    #: (`RUNNER_PROGRESS_INTERVAL`; the runner's default is 30 s). `0s`: after every batch.
    #: A long full load of a big table wants it short, a fleet of tiny tables long.
    progress_interval: Duration | None = None

    def over(self, base: TaskSettings) -> TaskSettings:
        """These settings on top of `base`: set fields win, resources merge per amount."""
        if not self.model_fields_set:  # nothing set here (the common case): base as is
            return base
        merged = base.model_dump(exclude_none=True)
        for key, value in self.model_dump(exclude_none=True).items():
            if key == "resources" and "resources" in merged:
                for part in ("requests", "limits"):
                    merged["resources"][part] = {
                        **merged["resources"].get(part, {}),
                        **{k: v for k, v in value.get(part, {}).items() if v is not None},
                    }
            else:
                merged[key] = value
        return TaskSettings.model_validate(merged)


class TaskKindSettings(Strict):
    extract: TaskSettings = TaskSettings()
    dbt: TaskSettings = TaskSettings()

    @field_validator("dbt")
    @classmethod
    def _no_dbt_progress(cls, value: TaskSettings) -> TaskSettings:
        if value.progress_interval is not None:
            raise ValueError(
                "progress_interval applies to extract tasks only (dbt logs its own "
                "progress): move it to tasks.extract or a table's task"
            )
        return value


class Images(Strict):
    """The runner images: one for extracts (every source driver), one for dbt, and the
    repository of the tenant's own dbt image (the dbt one plus this tenant's dbt project
    only, built by `make images`; `dag_factory.images` says which one a task runs)."""

    extract: ImageRef = "registry.localhost/tenant-runner-datakit:0.1.0"
    #: The dbt runner base image: no tenant's project in it. The tenant image is built
    #: FROM it; tasks run it only on the local executor (which uses no image at all).
    dbt: ImageRef = "registry.localhost/tenant-runner-dbt:0.1.0"
    #: `{tenant}` is replaced by the tenant id; the tag hashes the compiled inputs and the
    #: base image.
    tenant_dbt: TenantRepository = "registry.localhost/tenant-dbt-{tenant}"
    #: The Spark runner image (`runners/docker/Dockerfile`, target `spark`): the dbt image
    #: plus a Java runtime and pyspark. The dbt tasks of a `dbt.engine: spark` tenant run
    #: it, and Spark's executors on Kubernetes run it too (`SPARK_IMAGE`).
    spark: ImageRef = "registry.localhost/tenant-runner-spark:0.1.0"

    def tenant_repository(self, tenant: str) -> str:
        return self.tenant_dbt.replace(TENANT_IMAGE_PLACEHOLDER, tenant)


# --- alerting ----------------------------------------------------------------------------


class SlackTarget(Strict):
    connection: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,250}$")]
    channel: Annotated[str, Field(pattern=r"^#?[a-z0-9][a-z0-9._-]{0,79}$")]


class AlertTargets(Strict):
    email: tuple[EmailAddress, ...] = ()
    slack: SlackTarget | None = None

    @property
    def empty(self) -> bool:
        return not self.email and self.slack is None


class Freshness(Strict):
    """How soon after a run is queued each layer must be built; a late run alerts.

    `gold` becomes the DAG's deadline alert (Airflow 3 `DeadlineAlert` on
    `DAGRUN_QUEUED_AT`): the run that ends in gold must finish within it."""

    gold: Duration | None = None


class Alerting(Strict):
    on_failure: AlertTargets = AlertTargets()
    on_retry: AlertTargets = AlertTargets()
    #: The Airflow connection of the SMTP server that sends email alerts.
    smtp_connection: str = "smtp_default"


# --- platform -----------------------------------------------------------------------------


class Executor(StrEnum):
    """Where a task's runner process runs; one adapter each (dag_factory/adapters/)."""

    local = "local"
    docker = "docker"
    kubernetes = "kubernetes"


class Enclave(StrEnum):
    """Node pools a tenant's pods may run on; `high-security` nodes are tainted."""

    standard = "standard"
    high_security = "high-security"


class SecretKeyRef(Strict):
    name: K8sName
    key: Annotated[str, Field(pattern=r"^[-._a-zA-Z0-9]{1,253}$")] = "url"


def _cidr(value: str) -> str:
    network = ipaddress.ip_network(value)  # strict: a network address, e.g. 10.20.0.0/16
    if network.prefixlen == 0:
        raise ValueError(
            f"{value} is every address: name the database's network (e.g. 10.20.0.0/16)"
        )
    return value


def _label_key(value: str) -> str:
    errors = is_qualified_name(value)
    if errors:
        raise ValueError(f"not a Kubernetes label key ({'; '.join(errors)})")
    return value


def _label_value(value: str) -> str:
    errors = is_valid_label_value(value)
    if errors:
        raise ValueError(f"not a Kubernetes label value ({'; '.join(errors)})")
    return value


#: `matchLabels` of a selector: label keys and values as the API server checks them.
MatchLabels = dict[
    Annotated[str, AfterValidator(_label_key)], Annotated[str, AfterValidator(_label_value)]
]


class Egress(Strict):
    """Where a tenant's pods may connect to reach its source or warehouse (NetworkPolicy).

    A server database needs a destination under the kubernetes executor: `cidrs` (a
    database outside the cluster), or `namespace_selector` and/or `pod_selector` (one
    inside it; both given means pods with those labels in namespaces with those labels).
    `validate` refuses a tenant that gives none, instead of opening the port to every
    address. File databases (SQLite, DuckDB) connect nowhere and ignore these settings.
    """

    #: Destination networks (never 0.0.0.0/0).
    cidrs: tuple[Annotated[str, AfterValidator(_cidr)], ...] = ()
    #: An in-cluster database: labels of its namespace (`kubernetes.io/metadata.name: db`).
    namespace_selector: MatchLabels = Field(default_factory=dict)
    #: An in-cluster database: labels of its pods (in the tenant's namespace unless
    #: `namespace_selector` is given too).
    pod_selector: MatchLabels = Field(default_factory=dict)
    #: Destination TCP ports; empty means the default port of the database kind.
    ports: tuple[Annotated[int, Field(ge=1, le=65535)], ...] = ()

    @property
    def has_destination(self) -> bool:
        return bool(self.cidrs or self.namespace_selector or self.pod_selector)


class Launcher(StrEnum):
    """Which Airflow-side service account may launch pods in the tenant's namespace."""

    #: `airflow_service_account` (one account, bound in every tenant namespace).
    shared = "shared"
    #: `airflow-<tenant>` in `airflow_namespace`, bound in this tenant's namespace only
    #: (`dag-factory k8s` writes it); the worker uses it through the tenant's own
    #: Kubernetes connection (`kubernetes_conn_id`), see docs/isolation.md.
    per_tenant = "per-tenant"


class KubernetesSettings(Strict):
    #: Defaults to `tenant-<id>` (underscores become dashes); another is refused unless
    #: defaults.yaml lists it under `shared.namespaces`.
    namespace: K8sName | None = None
    service_account: K8sName = "runner"
    enclave: Enclave = Enclave.standard
    image_pull_secret: K8sName | None = "registry-credentials"  # noqa: S105 (a Secret's name)
    #: The Secrets holding the source and warehouse URLs; default `<namespace>-source` etc.
    #: A name must start with `tenant-<id>-` unless listed under `shared.secrets`.
    source_secret: SecretKeyRef | None = None
    warehouse_secret: SecretKeyRef | None = None
    #: Egress allowed besides DNS (dag_factory/k8s_objects.py writes the NetworkPolicy).
    source_egress: Egress = Egress()
    warehouse_egress: Egress = Egress()
    #: The service account Airflow launches pods with, granted the pod-launcher Role.
    airflow_namespace: K8sName = "airflow"
    airflow_service_account: K8sName = "airflow-worker"
    #: `per-tenant`: a launcher account of the tenant's own instead (see `Launcher`).
    launcher: Launcher = Launcher.shared

    @property
    def per_tenant_launcher(self) -> bool:
        return self.launcher is Launcher.per_tenant


class DockerSettings(Strict):
    #: The Docker network that reaches the warehouse (`edge` on the local platform).
    network: str = "edge"
    docker_url: str | None = None


class PlatformSpec(Strict):
    executor: Executor = Executor.local
    docker: DockerSettings = DockerSettings()
    kubernetes: KubernetesSettings = KubernetesSettings()


class DbtTaskGrain(StrEnum):
    """What one Airflow task of a compiled tenant covers (`dag_factory.model_units`)."""

    #: One task per dbt model, seed or snapshot.
    model = "model"
    #: One task per project folder (`models/marts/finance`): for projects whose hundreds
    #: of quick models would cost Airflow more than dbt.
    folder = "folder"


class DbtEngine(StrEnum):
    """What runs a tenant's silver and gold models.

    `warehouse` (the default): the warehouse's own dbt adapter (dbt-postgres, dbt-duckdb;
    for a lakehouse, DuckDB reading the bronze Delta tables), one machine. `spark`: a
    lakehouse tenant that outgrew one machine runs the same dbt project with dbt-spark
    (`runner spark`), over the same bronze tables. Named after what is chosen, not after
    DuckDB: a PostgreSQL tenant's default engine is PostgreSQL.
    """

    warehouse = "warehouse"
    spark = "spark"


class BronzeAccess(StrEnum):
    """How Spark reads the bronze files (`runners.spark_bronze.BronzeAccess`)."""

    #: Executors read s3a:// straight from the lake (needs hadoop-aws in the image).
    s3a = "s3a"
    #: The driver copies the snapshot to local disk first: one machine, no hadoop-aws.
    copy = "copy"


#: The smallest executor pod: Spark refuses an executor heap under 450 MiB (1.5 x its
#: 300 MiB reserved memory) and keeps at least 384 MiB beside the heap (its overhead).
MIN_EXECUTOR_MEMORY = "1Gi"


class SparkExecutor(ResourceAmounts):
    """The size of one Spark executor pod on Kubernetes: the same quantities (and the same
    validation) as a task's `resources`, but one size, not requests and limits: Spark
    requests and limits a pod's memory alike (heap + overhead), and
    `runners.spark_conf` sets its CPU request and limit alike, so the pod is Guaranteed
    and the namespace's quota counts exactly this per executor.

    `memory` is the whole pod, what Kubernetes counts: the runner splits it into Spark's
    heap (`spark.executor.memory`) and overhead (`spark.executor.memoryOverhead`), never
    asks for more. `cpu` is the pod's CPU; Spark runs `floor(cpu)` tasks at once on it
    (at least one). Local mode ignores both: there the driver is the only JVM.
    """

    cpu: CpuQuantity = "1"
    memory: MemoryQuantity = "2Gi"

    @field_validator("cpu")
    @classmethod
    def _some_cpu(cls, cpu: str) -> str:
        from dag_factory.adapters.container import millicores

        if millicores(cpu) < 1:
            raise ValueError("no CPU at all: give at least 1m, like 500m or 2")
        return cpu

    @field_validator("memory")
    @classmethod
    def _fits_spark(cls, memory: str) -> str:
        # imported here: dag_factory.adapters imports this module
        from dag_factory.adapters.container import memory_bytes

        size = memory_bytes(memory)
        if size % 2**20:
            raise ValueError(
                "not a whole number of Mi (Spark sizes executor pods in Mi): give it in Mi or "
                "Gi, like 1536Mi or 4Gi"
            )
        if size < memory_bytes(MIN_EXECUTOR_MEMORY):
            raise ValueError(
                f"too small for a Spark executor: at least {MIN_EXECUTOR_MEMORY} "
                "(Spark's smallest heap, 450Mi, and its 384Mi overhead beside it)"
            )
        return memory


class SparkSettings(Strict):
    """How `dbt.engine: spark` runs (runners/spark_conf.py reads them from env)."""

    #: Executor pods on Kubernetes (`SPARK_EXECUTORS`); local mode ignores it.
    executors: int = Field(default=2, ge=1, le=256)
    #: The size of each executor pod (`{cpu, memory}`, Kubernetes quantities). The driver
    #: is the Spark task's own pod: `tasks.dbt.resources` sizes it, as every dbt task.
    executor: SparkExecutor = SparkExecutor()
    #: `s3a` in production; `copy` for a Spark image without the hadoop-aws jars, or tests.
    bronze_access: BronzeAccess = BronzeAccess.s3a
    #: Where silver and gold are written (`RUNNER_SPARK_WAREHOUSE`). Unset: the tenant's
    #: own prefix of its lake, `s3a://<bucket>/<tenant>/spark-warehouse` (needs `s3a`). A
    #: local folder only with `bronze_access: copy` on one machine (the local executor).
    warehouse_dir: Annotated[str, Field(pattern=LOCAL_DIR_PATTERN)] | None = None
    #: Kubernetes: where the driver (the runner pod) reaches the API server to start its
    #: executor pods (NetworkPolicy egress; ports default to 443). Required there, like a
    #: database's destination: never every address.
    api_server: Egress = Egress()


class DbtSpec(Strict):
    #: The dbt project folder, relative to the tenant's folder: its own (`dbt`) or one
    #: shared by several tenants under the warehouses folder (`../_dbt/shop`).
    project: str = Field(default="dbt", pattern=DBT_PROJECT_PATTERN)
    #: What a failing dbt test does: `fail` fails the layer's task at once (exit 2, never
    #: retried: the data still breaks the test on a retry); `warn` lets the task succeed
    #: and counts the failed tests in its result (`tests_failed`).
    on_test_failure: Literal["fail", "warn"] = "fail"
    #: With a compiled graph (`dag-factory dbt compile`), the tasks after `dbt_build`:
    #: `model` (one per model, the default) or `folder` (one per project folder). Either
    #: way dbt runs once, in `dbt_build`; the tasks show and retry its result.
    tasks: DbtTaskGrain = DbtTaskGrain.model
    #: The layers, in the order they build: each one dbt task (`dbt_<layer>`, asset
    #: `tenant://<tenant>/<layer>`) running `dbt build --select <selector>`, its nodes in
    #: the layer's schema (`warehouse.schemas`: silver, gold, or `layers.<name>`; the
    #: silver schema when the layer has none). Any project layout works, e.g.
    #: `{silver: "path:models/staging", gold: "path:models/marts"}`. The default is the
    #: `models/silver` and `models/gold` folders.
    layers: dict[
        Annotated[str, Field(pattern=LAYER_PATTERN)],
        Annotated[str, Field(pattern=SELECTOR_PATTERN)],
    ] = Field(default_factory=lambda: {"silver": "silver", "gold": "gold"}, min_length=1)
    #: What runs the models (`DbtEngine`): `spark` only for `warehouse.kind: lakehouse`.
    engine: DbtEngine = DbtEngine.warehouse
    #: Settings of `engine: spark` (ignored otherwise).
    spark: SparkSettings = SparkSettings()

    @field_validator("layers")
    @classmethod
    def _not_reserved(cls, layers: dict[str, str]) -> dict[str, str]:
        reserved = sorted(RESERVED_LAYERS & set(layers))
        if reserved:
            raise ValueError(
                f"{', '.join(reserved)} cannot be a dbt layer (bronze is the extract tasks', "
                "meta the runner's): rename the layer"
            )
        return layers

    @property
    def custom_layers(self) -> bool:
        """Whether the tenant set `layers` (the default layers route by folder, as before)."""
        return "layers" in self.model_fields_set


# --- access in Airflow ----------------------------------------------------------------------

#: Every tenant's Airflow role is this prefix and the tenant id (dag_factory/access.py).
ROLE_PREFIX = "tenant_"
#: A tenant's extra roles are `tenant_<id>-<suffix>`: a tenant id has no `-`, so no such role
#: can be another tenant's own role (`tenant_demo_x` would be tenant `demo_x`'s).
ROLE_SUFFIX_SEPARATOR = "-"
RoleName = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,99}$")]


class AccessSpec(Strict):
    """Who sees and triggers the tenant's DAG in Airflow besides its own role `tenant_<id>`."""

    #: More Airflow roles granted the DAG: `tenant_<id>-<suffix>` or one of `shared_roles`.
    roles: tuple[RoleName, ...] = ()
    #: Roles any tenant may name (e.g. a support team). Set in defaults.yaml only.
    shared_roles: tuple[RoleName, ...] = ()

    @field_validator("shared_roles")
    @classmethod
    def _not_a_tenant_role(cls, roles: tuple[str, ...]) -> tuple[str, ...]:
        tenant_like = [r for r in roles if r.startswith(ROLE_PREFIX)]
        if tenant_like:
            raise ValueError(
                f"shared roles may not start with {ROLE_PREFIX!r} (a tenant's own prefix): "
                + ", ".join(tenant_like)
            )
        return roles

    def foreign_roles(self, tenant: str) -> list[str]:
        """The roles this tenant may not name: neither its own nor shared."""
        own = ROLE_PREFIX + tenant
        return [
            r
            for r in self.roles
            if r not in self.shared_roles
            and not (r == own or r.startswith(own + ROLE_SUFFIX_SEPARATOR))
        ]


# --- the tenant -----------------------------------------------------------------------------


class TenantTable(TableSpec):
    """A table to load, plus what only the orchestrator needs to know about it."""

    enabled: bool = True
    #: Overrides the tenant's `tasks.extract` settings for this table's task.
    task: TaskSettings = TaskSettings()

    def load_part(self) -> TableSpec:
        return TableSpec.model_validate(self.model_dump(include=set(TableSpec.model_fields)))


class TenantSpec(Strict):
    tenant: TenantId
    enabled: bool = True
    description: str = ""
    owners: tuple[Annotated[str, Field(min_length=1)], ...] = ("data-platform",)
    tags: tuple[Annotated[str, Field(pattern=r"^[A-Za-z0-9:_./-]{1,100}$")], ...] = ()
    source: SourceSpec
    warehouse: WarehouseSpec
    tables: tuple[TenantTable, ...] = Field(min_length=1)
    dbt: DbtSpec = DbtSpec()
    schedule: Schedule = "@daily"
    start_date: dt.date = dt.date(2026, 1, 1)
    catchup: bool = False
    max_active_runs: int = Field(default=1, ge=1, le=32)
    #: Tasks of this tenant running at once (DuckDB warehouses always run one at a time).
    concurrency: int = Field(default=8, ge=1, le=128)
    #: An Airflow pool for the tenant's tasks; None uses Airflow's default pool.
    pool: PoolName | None = None
    retries: int = Field(default=2, ge=0, le=10)
    retry_delay: Duration = Field(default="5m", validate_default=True)
    tasks: TaskKindSettings = TaskKindSettings()
    images: Images = Images()
    alerting: Alerting = Alerting()
    #: `freshness: {gold: 6h}`: alert through `alerting.on_failure` when gold is late.
    freshness: Freshness = Freshness()
    platform: PlatformSpec = PlatformSpec()
    access: AccessSpec = AccessSpec()

    @field_validator("access")
    @classmethod
    def _own_roles_only(cls, access: AccessSpec, info: ValidationInfo) -> AccessSpec:
        tenant = info.data.get("tenant")
        foreign = access.foreign_roles(tenant) if tenant else []
        if foreign:
            raise ValueError(
                f"roles must be {ROLE_PREFIX}{tenant}{ROLE_SUFFIX_SEPARATOR}<name> or listed in "
                f"defaults.yaml's access.shared_roles, got {', '.join(foreign)}"
            )
        return access

    @field_validator("images")
    @classmethod
    def _own_dbt_image_only(cls, images: Images, info: ValidationInfo) -> Images:
        """A tenant's dbt image holds its dbt project: naming another tenant's would run
        (and read) that tenant's SQL, so the repository must be this tenant's own."""
        tenant = info.data.get("tenant")
        named = images.tenant_dbt.rsplit("/", 1)[-1].removeprefix(TENANT_IMAGE_NAME_PREFIX)
        if tenant and named not in (TENANT_IMAGE_PLACEHOLDER, tenant):
            raise ValueError(
                f"images.tenant_dbt `{images.tenant_dbt}` is tenant {named}'s image, not tenant "
                f"{tenant}'s: a tenant runs only its own dbt image; end it in "
                f"/{TENANT_IMAGE_NAME_PREFIX}{TENANT_IMAGE_PLACEHOLDER} (or leave it unset)"
            )
        return images

    @field_validator("tables")
    @classmethod
    def _unique_enabled_tables(cls, tables: tuple[TenantTable, ...]) -> tuple[TenantTable, ...]:
        counts = Counter(t.name for t in tables)  # linear: 50,000 tables must stay fast
        twice = sorted(n for n, count in counts.items() if count > 1)
        if twice:
            raise ValueError(f"tables are listed twice: {', '.join(twice)}")
        if tables and not any(t.enabled for t in tables):
            raise ValueError("every table is disabled: disable the tenant instead")
        return tables

    @model_validator(mode="after")
    def _spark_needs_a_lake(self) -> TenantSpec:
        """`dbt.engine: spark` reads bronze Delta tables: only a lakehouse has them. Raised
        at the field (`dbt.engine`), so the error names its line, not the tenant's first."""
        if self.dbt.engine is not DbtEngine.spark:
            return self
        problem, loc = None, ("dbt", "engine")
        if self.warehouse.kind is not WarehouseKind.lakehouse:
            problem = (
                f"spark reads bronze Delta tables, which only `warehouse.kind: lakehouse` "
                f"has (this warehouse is {self.warehouse.kind}): set the warehouse kind to "
                "lakehouse or remove dbt.engine"
            )
        elif self.dbt.custom_layers:
            problem = (
                "spark builds the silver and gold folders (the default layers): remove "
                "dbt.layers or the engine"
            )
        elif self.dbt.spark.warehouse_dir and self.dbt.spark.bronze_access is BronzeAccess.s3a:
            loc = ("dbt", "spark", "warehouse_dir")
            problem = (
                "a local dbt.spark.warehouse_dir needs dbt.spark.bronze_access: copy (with "
                "s3a, silver and gold belong in the lake): set it, or remove warehouse_dir"
            )
        if problem is None:
            return self
        error = PydanticCustomError("value_error", "{error}", {"error": problem})
        value = self.dbt.spark.warehouse_dir if len(loc) == 3 else self.dbt.engine.value
        detail = InitErrorDetails(type=error, loc=loc, input=value)
        raise ValidationError.from_exception_data(type(self).__name__, [detail])

    @model_validator(mode="after")
    def _spark_driver_fits(self) -> TenantSpec:
        """The Spark task's pod is the driver: a JVM (heap of at least 450Mi, and its
        overhead) beside the runner's Python. `runners.spark_conf` sizes the heap inside
        the pod's memory limit; under `MIN_EXECUTOR_MEMORY` no heap Spark accepts fits,
        and Spark's default 1g heap would get the pod OOM-killed mid-build."""
        if self.dbt.engine is not DbtEngine.spark:
            return self
        resources = self.task_settings("dbt").resources
        limit = resources.limits.memory if resources is not None else None
        # imported here: dag_factory.adapters imports this module
        from dag_factory.adapters.container import memory_bytes

        if limit is None or memory_bytes(limit) >= memory_bytes(MIN_EXECUTOR_MEMORY):
            return self
        problem = (
            "a dbt.engine: spark task's pod is the Spark driver, a JVM beside dbt: its "
            f"memory limit must be at least {MIN_EXECUTOR_MEMORY} to hold Spark's smallest "
            "heap and overhead"
        )
        error = PydanticCustomError("value_error", "{error}", {"error": problem})
        loc = ("tasks", "dbt", "resources", "limits", "memory")
        detail = InitErrorDetails(type=error, loc=loc, input=limit)
        raise ValidationError.from_exception_data(type(self).__name__, [detail])

    @property
    def dag_id(self) -> str:
        return DAG_ID_PREFIX + self.tenant

    @property
    def serial_only(self) -> bool:
        """The warehouse takes one writer at a time (DuckDB locks its file; the kind's
        registry entry says so): the tenant's tasks must not run in parallel."""
        return warehouse_kind(self.warehouse.kind).serial_loads

    @property
    def enabled_tables(self) -> tuple[TenantTable, ...]:
        return tuple(t for t in self.tables if t.enabled)

    @property
    def namespace(self) -> str:
        return self.platform.kubernetes.namespace or "tenant-" + self.tenant.replace("_", "-")

    def task_settings(self, kind: str, table: TenantTable | None = None) -> TaskSettings:
        """Resolved settings: tenant retries < `tasks.<kind>` < the table's own `task`."""
        base = TaskSettings(retries=self.retries, retry_delay=self.retry_delay)
        settings = getattr(self.tasks, kind).over(base)
        return table.task.over(settings) if table is not None else settings

    def runner_spec_json(self) -> str:
        """`load_spec().to_env_json()`, serialised straight from this model: no copies are
        validated, which matters when a scheduler parses a thousand tenants."""
        table_fields = set(TableSpec.model_fields)
        enabled = {i: table_fields for i, t in enumerate(self.tables) if t.enabled}
        return self.model_dump_json(
            include={"tenant": True, "source": True, "warehouse": True, "tables": enabled},
            by_alias=True,
            exclude_defaults=True,
        )

    def load_spec(self) -> LoadSpec:
        """The part of the spec that the runner needs, without orchestration settings."""
        return LoadSpec(
            tenant=self.tenant,
            source=self.source,
            warehouse=self.warehouse,
            tables=tuple(t.load_part() for t in self.enabled_tables),
        )

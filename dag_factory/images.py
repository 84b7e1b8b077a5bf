"""Which image a tenant's dbt tasks run: its own, tagged by its compiled inputs and base image.

The dbt runner base image (`images.dbt`) carries no tenant's files; `make images` builds
one image per tenant on top of it holding only that tenant's dbt project and compiled
graph, `<images.tenant_dbt with {tenant} = id>:<tag>`, the tag from the graph's
`inputs_hash` and the base image (`datakits.contract.tenant_image_tag`, shared with
`runners/tenant_images.py`; the same inputs on the same base, the same tag). The hash comes
from the tenant's graph file (`warehouses/<tenant>/compiled/dbt_graph.json`, written by
`dag-factory dbt compile`), which the DAG file reads anyway: no registry is asked at
parse time.

Without a graph there is no tenant image to name. The local executor runs no image (the
worker's own checkout has the project), so the base image is only a label there. A
container executor, though, would start the base image, which has no project in it:
every dbt task would fail at run time with "dbt project dir … does not exist", after the
extracts had run, on every schedule, until someone read a task log. So for Docker and
Kubernetes a missing graph is a parse-time error instead: the tenant's DAG becomes the
placeholder with the import error saying which two commands to run, at deploy time, and
nothing half-runs.

A `dbt.engine: spark` tenant is the same with another base: its image is built FROM the
Spark image (`images.spark`), in the same repository (`images.tenant_dbt`) and with the
same tag function, so its tag differs from what the dbt base would give. Its graph names
the image's inputs as for any tenant (`dag-factory dbt compile` writes one for a Spark
tenant too; the DAG still keeps layer tasks), and records the engine it was compiled for
(`engine`): `make images` reads it to choose the base, and a graph of the other engine
names an image built on the other base, i.e. one the DAG would not find. Without such a
graph a container Spark tenant is a placeholder too, with a message about Spark.
"""

from __future__ import annotations

import re

from dag_factory.spec import DbtEngine, Executor, TenantSpec
from datakits.contract import split_registry, tenant_image_tag

#: Executors that start the planned image (the local one runs the worker's checkout).
CONTAINER_EXECUTORS = frozenset({Executor.docker, Executor.kubernetes})
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class TenantImageMissing(ValueError):
    """A container executor with no compiled graph: no image holds the tenant's project."""


def image_ref(image: str, registry: str | None) -> str:
    """`image` with its registry host replaced by `registry` when one is given."""
    return f"{registry}/{split_registry(image)[1]}" if registry else image


def base_image(spec: TenantSpec) -> str:
    """The runner image a tenant's dbt tasks run, and its tenant image is built FROM:
    `images.spark` for `dbt.engine: spark`, else `images.dbt`."""
    return spec.images.spark if spec.dbt.engine is DbtEngine.spark else spec.images.dbt


def tenant_image(spec: TenantSpec, inputs_hash: str) -> str:
    """`<tenant repository>:<tag>`, the tag `make images` pushes for the graph's
    `inputs_hash` on the tenant's base image (`base_image`: the dbt or the Spark one)."""
    if not _SHA256.match(inputs_hash):
        raise ValueError(
            f"tenant {spec.tenant}: inputs_hash {inputs_hash[:80]!r} is not a sha256 hex "
            f"digest: run `dag-factory dbt compile {spec.tenant}` again"
        )
    tag = tenant_image_tag(inputs_hash, base_image(spec))
    return f"{spec.images.tenant_repository(spec.tenant)}:{tag}"


def _missing(spec: TenantSpec, executor: Executor, engine: str | None) -> TenantImageMissing:
    graph = f"warehouses/{spec.tenant}/compiled/dbt_graph.json"
    run = f"run `dag-factory dbt compile {spec.tenant}`, then `make images`"
    if engine is not None:
        return TenantImageMissing(
            f"tenant {spec.tenant}: {graph} was compiled for dbt.engine {engine}, the tenant "
            f"file says {spec.dbt.engine}, so its {executor} image would be built on the "
            f"other base image: {run}"
        )
    if spec.dbt.engine is DbtEngine.spark:
        return TenantImageMissing(
            f"tenant {spec.tenant} runs Spark in {executor} containers but has no compiled "
            f"graph ({graph}), whose project hash names its Spark image (tenant-dbt-"
            f"{spec.tenant} FROM images.spark; the Spark image alone holds no project): "
            f"{run} (a Spark tenant keeps its layer tasks)"
        )
    return TenantImageMissing(
        f"tenant {spec.tenant} runs dbt in {executor} containers but has no compiled graph "
        f"({graph}), so no image holds its dbt project: {run}"
    )


def dbt_image(
    spec: TenantSpec,
    inputs_hash: str | None,
    registry_override: str | None,
    *,
    executor: Executor | None = None,
    graph_engine: str | None = None,
) -> str:
    """The image of the tenant's dbt tasks; a pure function (no file, env or network).

    `inputs_hash`: the graph file's `inputs_hash` (also when it is stale against the
    spec: the image was built from that same graph file), None when there is no graph.
    `registry_override`: `PlatformOverrides.registry` (`DAG_FACTORY_REGISTRY`), which
    replaces the registry host as for every other image. `graph_engine`: the graph's
    `engine` (the dbt engine it was compiled for), when the caller has the graph.

    With a hash: the tenant's own image. Without one: the base image (`base_image`: dbt
    or Spark) — unless `executor` is a container executor, which would start that image
    and find no project in it: then `TenantImageMissing`, whose one line says what to
    run; the same when the graph was compiled for the other engine (its image is built
    on the other base, under another tag). The planner passes the tenant's effective
    executor; callers that only want a name leave it None.
    """
    if executor in CONTAINER_EXECUTORS:
        if inputs_hash is None:
            raise _missing(spec, executor, None)
        if graph_engine is not None and graph_engine != spec.dbt.engine.value:
            raise _missing(spec, executor, graph_engine)
    if inputs_hash is not None:
        return image_ref(tenant_image(spec, inputs_hash), registry_override)
    return image_ref(base_image(spec), registry_override)

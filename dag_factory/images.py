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
"""

from __future__ import annotations

import re

from dag_factory.spec import Executor, TenantSpec
from datakits.contract import split_registry, tenant_image_tag

#: Executors that start the planned image (the local one runs the worker's checkout).
CONTAINER_EXECUTORS = frozenset({Executor.docker, Executor.kubernetes})
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class TenantImageMissing(ValueError):
    """A container executor with no compiled graph: no image holds the tenant's project."""


def image_ref(image: str, registry: str | None) -> str:
    """`image` with its registry host replaced by `registry` when one is given."""
    return f"{registry}/{split_registry(image)[1]}" if registry else image


def tenant_image(spec: TenantSpec, inputs_hash: str) -> str:
    """`<tenant repository>:<tag>`, the tag `make images` pushes for the graph's
    `inputs_hash` on the base image `images.dbt`."""
    if not _SHA256.match(inputs_hash):
        raise ValueError(
            f"tenant {spec.tenant}: inputs_hash {inputs_hash[:80]!r} is not a sha256 hex "
            f"digest: run `dag-factory dbt compile {spec.tenant}` again"
        )
    tag = tenant_image_tag(inputs_hash, spec.images.dbt)
    return f"{spec.images.tenant_repository(spec.tenant)}:{tag}"


def dbt_image(
    spec: TenantSpec,
    inputs_hash: str | None,
    registry_override: str | None,
    *,
    executor: Executor | None = None,
) -> str:
    """The image of the tenant's dbt tasks; a pure function (no file, env or network).

    `inputs_hash`: the graph file's `inputs_hash` (also when it is stale against the
    spec: the image was built from that same graph file), None when there is no graph.
    `registry_override`: `PlatformOverrides.registry` (`DAG_FACTORY_REGISTRY`), which
    replaces the registry host as for every other image.

    With a hash: the tenant's own image. Without one: the base dbt image (`images.dbt`) —
    unless `executor` is a container executor, which would start that image and find no
    project in it: then `TenantImageMissing`, whose one line says what to run. The planner
    passes the tenant's effective executor; callers that only want a name leave it None.
    """
    if inputs_hash is not None:
        return image_ref(tenant_image(spec, inputs_hash), registry_override)
    if executor in CONTAINER_EXECUTORS:
        raise TenantImageMissing(
            f"tenant {spec.tenant} runs dbt in {executor} containers but has no compiled graph "
            f"(warehouses/{spec.tenant}/compiled/dbt_graph.json), so no image holds its dbt "
            f"project: run `dag-factory dbt compile {spec.tenant}`, then `make images`"
        )
    return image_ref(spec.images.dbt, registry_override)

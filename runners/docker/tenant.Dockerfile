# One tenant's dbt image: the runner image of its dbt engine plus that tenant's dbt
# project and compiled graph, and nothing of any other tenant. Built by
# `runners/build_images.py` (`make images`) from a context holding only that tenant's
# files, laid out as in the repository:
#
#   warehouses/<project path from the graph>/   the dbt project (shared ones included, e.g.
#                                               warehouses/_dbt/shop), build output left out
#   warehouses/<tenant>/compiled/               dbt_graph.json + manifest.json
#
# so the planned argv (`--project-dir warehouses/_dbt/shop`, relative to WORKDIR /app) is
# the same here as on a laptop. RUNNER_IMAGE is the graph's engine's runner image:
# tenant-runner-dbt (`engine: warehouse`, `runner dbt`) or tenant-runner-spark (`engine:
# spark`, `runner spark`; its executors run this image too). COPY makes the files root's
# (0644, folders 0755): the runner (non-root, from the base) reads them and works on a
# scratch copy under /tmp.
# Tagged `<registry>/tenant-dbt-<tenant>:<tag>` (`datakits.contract.tenant_image_tag`: the
# compiled inputs and the base image): the same inputs on the same base, the same tag.
ARG RUNNER_IMAGE
FROM ${RUNNER_IMAGE}
ARG RUNNER_IMAGE
ARG ENGINE=warehouse
ARG TENANT
ARG PROJECT
ARG PROJECT_HASH
ARG RUNNER_UID=10001
USER root
COPY warehouses /app/warehouses
LABEL org.opencontainers.image.title="tenant-dbt-${TENANT}" \
      org.opencontainers.image.description="runner dbt for tenant ${TENANT} (dbt.engine ${ENGINE}): its dbt project ${PROJECT} and compiled graph" \
      org.opencontainers.image.base.name="${RUNNER_IMAGE}" \
      io.tenant-runner.tenant="${TENANT}" \
      io.tenant-runner.engine="${ENGINE}" \
      io.tenant-runner.project="${PROJECT}" \
      io.tenant-runner.project-hash="${PROJECT_HASH}"
USER ${RUNNER_UID}:${RUNNER_UID}

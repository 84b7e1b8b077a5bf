# One tenant's dbt image: the dbt runner image plus that tenant's dbt project and compiled
# graph, and nothing of any other tenant. Built by `runners/build_images.py` (`make images`)
# from a context holding only that tenant's files, laid out as in the repository:
#
#   warehouses/<project path from the graph>/   the dbt project (shared ones included, e.g.
#                                               warehouses/_dbt/shop), build output left out
#   warehouses/<tenant>/compiled/               dbt_graph.json + manifest.json
#
# so the planned argv (`--project-dir warehouses/_dbt/shop`, relative to WORKDIR /app) is
# the same here as on a laptop. COPY makes the files root's (0644, folders 0755): the
# runner (non-root, from the base) reads them and works on a scratch copy under /tmp.
# Tagged `<registry>/tenant-dbt-<tenant>:<tag>` (`datakits.contract.tenant_image_tag`: the compiled
# inputs and the base image): the same inputs on the same base, the same tag.
ARG DBT_IMAGE
FROM ${DBT_IMAGE}
ARG DBT_IMAGE
ARG TENANT
ARG PROJECT
ARG PROJECT_HASH
ARG RUNNER_UID=10001
USER root
COPY warehouses /app/warehouses
LABEL org.opencontainers.image.title="tenant-dbt-${TENANT}" \
      org.opencontainers.image.description="runner dbt for tenant ${TENANT}: its dbt project ${PROJECT} and compiled graph" \
      org.opencontainers.image.base.name="${DBT_IMAGE}" \
      io.tenant-runner.tenant="${TENANT}" \
      io.tenant-runner.project="${PROJECT}" \
      io.tenant-runner.project-hash="${PROJECT_HASH}"
USER ${RUNNER_UID}:${RUNNER_UID}

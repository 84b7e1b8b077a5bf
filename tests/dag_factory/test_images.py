"""`dag_factory.images.dbt_image`: the image a tenant's dbt tasks run, and the spec's
`images.tenant_dbt` repository (own tenant only)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from dag_factory.errors import TenantFileError
from dag_factory.images import TenantImageMissing, dbt_image, tenant_image
from dag_factory.loader import Loader
from dag_factory.plan import REGISTRY_ENV
from dag_factory.spec import Executor, Images, TenantSpec
from datakits.contract import tenant_image_tag
from runners import tenant_images
from tests.dag_factory.conftest import VALID_TENANT, WriteTenant

HASH = hashlib.sha256(b"a dbt project").hexdigest()
OTHER_HASH = hashlib.sha256(b"the same project with one model changed").hexdigest()
#: The tag of HASH on the default base image.
TAG = tenant_image_tag(HASH, Images().dbt)


def _spec(warehouses: Path, write_tenant: WriteTenant, name: str = "shop", extra: str = ""):
    text = VALID_TENANT.format(name=name, env=name.upper()) + extra
    return Loader(warehouses).load(write_tenant(name, text)).spec


def test_with_a_graph_the_tenant_image_tagged_by_its_inputs_and_base(
    warehouses: Path, write_tenant: WriteTenant
):
    spec = _spec(warehouses, write_tenant)
    image = dbt_image(spec, HASH, None)
    assert image == f"registry.localhost/tenant-dbt-shop:{TAG}"
    assert len(TAG) == 12
    assert dbt_image(spec, HASH, None) == image  # same inputs, same tag
    assert dbt_image(spec, OTHER_HASH, None) != image
    # a new base image (a dbt upgrade) is a new tenant tag; its registry host is not
    assert tenant_image_tag(HASH, "registry.localhost/tenant-runner-dbt:0.2.0") != TAG
    assert tenant_image_tag(HASH, "mirror.example:5000/tenant-runner-dbt:0.1.0") == TAG
    # the deployment's registry replaces the host only, as for every other image
    assert dbt_image(spec, HASH, "127.0.0.1:5000") == f"127.0.0.1:5000/tenant-dbt-shop:{TAG}"
    # a container executor with a graph gets the same image
    for executor in Executor:
        assert dbt_image(spec, HASH, None, executor=executor) == image


def test_pure_no_env_read(warehouses: Path, write_tenant: WriteTenant, monkeypatch):
    spec = _spec(warehouses, write_tenant)
    monkeypatch.setenv(REGISTRY_ENV, "10.0.0.1:5000")
    assert dbt_image(spec, HASH, None).startswith("registry.localhost/")


def test_without_a_graph_base_image_locally_an_error_in_containers(
    warehouses: Path, write_tenant: WriteTenant
):
    spec = _spec(warehouses, write_tenant)
    assert dbt_image(spec, None, None) == spec.images.dbt == Images().dbt
    assert dbt_image(spec, None, None, executor=Executor.local) == spec.images.dbt
    assert dbt_image(spec, None, "127.0.0.1:5000", executor=Executor.local) == (
        "127.0.0.1:5000/tenant-runner-dbt:0.1.0"
    )
    for executor in (Executor.docker, Executor.kubernetes):
        with pytest.raises(TenantImageMissing) as caught:
            dbt_image(spec, None, None, executor=executor)
        assert str(caught.value) == (
            f"tenant shop runs dbt in {executor} containers but has no compiled graph "
            "(warehouses/shop/compiled/dbt_graph.json), so no image holds its dbt project: "
            "run `dag-factory dbt compile shop`, then `make images`"
        )


@pytest.mark.parametrize("bad", ["", "abc", HASH.upper(), HASH[:12], HASH + "0", "../" + HASH[3:]])
def test_a_hash_that_is_not_sha256_is_refused(
    bad: str, warehouses: Path, write_tenant: WriteTenant
):
    spec = _spec(warehouses, write_tenant)
    with pytest.raises(ValueError, match="is not a sha256 hex digest: run `dag-factory dbt"):
        dbt_image(spec, bad, None)


def test_repository_template_own_id_and_other_registries(
    warehouses: Path, write_tenant: WriteTenant
):
    own = "images:\n  tenant_dbt: reg.example:5000/team/tenant-dbt-shop\n"
    spec = _spec(warehouses, write_tenant, extra=own)
    assert tenant_image(spec, HASH) == f"reg.example:5000/team/tenant-dbt-shop:{TAG}"
    template = "images:\n  tenant_dbt: mirror.local/x/tenant-dbt-{tenant}\n"
    spec = _spec(warehouses, write_tenant, extra=template)
    assert tenant_image(spec, HASH) == f"mirror.local/x/tenant-dbt-shop:{TAG}"


def _problems(warehouses: Path, write_tenant: WriteTenant, tenant: str, repository: str):
    text = VALID_TENANT.format(name=tenant, env=tenant.upper())
    file = write_tenant(tenant, text + f"images:\n  tenant_dbt: {repository}\n")
    with pytest.raises(TenantFileError) as caught:
        Loader(warehouses).load(file)
    return [str(p).replace(f"{warehouses}/", "") for p in caught.value.problems]


def test_a_tenant_may_not_name_another_tenants_image(warehouses: Path, write_tenant: WriteTenant):
    (problem,) = _problems(warehouses, write_tenant, "shop", "registry.localhost/tenant-dbt-acme")
    assert problem.startswith("shop/warehouse.yaml:")
    assert (
        "images.tenant_dbt `registry.localhost/tenant-dbt-acme` is tenant acme's image, not "
        "tenant shop's: a tenant runs only its own dbt image; end it in /tenant-dbt-{tenant}"
    ) in problem
    # a longer id that starts with the tenant's own is another tenant's too
    (problem,) = _problems(warehouses, write_tenant, "shop", "r.local/tenant-dbt-shop_eu")
    assert "is tenant shop_eu's image" in problem


@pytest.mark.parametrize(
    "repository",
    [
        "registry.localhost/tenant-dbt-{tenant}:1.0",  # a tag: the tag is the content hash
        "registry.localhost/tenant-runner-dbt",  # not a tenant image
        "tenant-dbt-{tenant}",  # no registry
        "Registry.localhost/tenant-dbt-{tenant}",
    ],
)
def test_repository_must_be_a_tenant_repository(
    repository: str, warehouses: Path, write_tenant: WriteTenant
):
    (problem,) = _problems(warehouses, write_tenant, "shop", repository)
    assert "images.tenant_dbt" in problem
    assert "an image repository without a tag ending in /tenant-dbt-{tenant}" in problem


def test_image_names_agree_with_the_builder():
    """`make images` (runners) and the DAG (dag_factory) name one image the same way;
    both compute the tag with `datakits.contract.tenant_image_tag`; this pins the rest."""
    spec = TenantSpec.model_validate(
        {
            "tenant": "demo",
            "source": {"kind": "sqlite", "connection": {"env": "DEMO_SOURCE_URL"}},
            "warehouse": {"kind": "duckdb", "connection": {"env": "DEMO_WAREHOUSE_URL"}},
            "tables": [{"name": "orders"}],
        }
    )
    graph = tenant_images.TenantGraph("demo", "warehouses/_dbt/shop", OTHER_HASH, HASH, Path("."))
    assert dbt_image(spec, HASH, None) == tenant_images.tenant_image_ref(
        "registry.localhost", graph, spec.images.dbt
    )

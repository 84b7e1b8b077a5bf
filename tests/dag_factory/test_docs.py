"""`dag-factory docs TENANT`: the demo tenant's dbt docs site, built through the real runner
and real dbt over a real DuckDB warehouse (bronze from the shop generator, then silver and
gold built, so the catalog has the models' columns)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from dag_factory.adapters.local import _INHERITED_ENV
from dag_factory.cli import app
from dag_factory.docs import INHERITED_ENV, DocsError, build_docs, docs_argv, runner_env
from dag_factory.loader import Loader, Tenant
from devtools.shop import generate_shop
from tests.dag_factory.conftest import VALID_TENANT, WriteTenant

REPO = Path(__file__).resolve().parents[2]
RUNNER = Path(sys.executable).parent / "runner"
GOLD_MODEL = "model.shop.revenue_per_customer_month"


@pytest.fixture(scope="module")
def demo() -> Tenant:
    return Loader(REPO / "warehouses").load_all({"demo"}).tenants[0]


@pytest.fixture(scope="module")
def site(demo: Tenant, tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    data = tmp_path_factory.mktemp("docs")
    url = f"duckdb:///{data / 'warehouse.duckdb'}"
    generate_shop(url, orders=200, schema="bronze")
    env = {"PATH": "/usr/bin:/bin", "RUNNER_SPEC": demo.spec.runner_spec_json(),
           "RUNNER_WAREHOUSE_URL": url}  # fmt: skip
    built = subprocess.run(
        [str(RUNNER), "dbt", "--project-dir", "warehouses/_dbt/shop", "build"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    mp = pytest.MonkeyPatch()
    mp.setenv("DEMO_WAREHOUSE_URL", url)
    mp.setenv("DOCS_TEST_UNRELATED", "must-not-reach-the-runner")
    try:
        result = CliRunner().invoke(app, ["docs", "demo", "--out", str(data / "site"),
                                          "--warehouses", str(REPO / "warehouses")])  # fmt: skip
    finally:
        mp.undo()
    return SimpleNamespace(out=data / "site", url=url, result=result)


def test_docs_site_is_static_files_naming_the_models(site: SimpleNamespace):
    assert site.result.exit_code == 0, site.result.output
    assert site.result.output.strip().startswith(str(site.out / "static_index.html"))
    names = {p.name for p in site.out.iterdir()}
    assert names == {"index.html", "static_index.html", "manifest.json", "catalog.json"}
    html = (site.out / "static_index.html").read_text()
    # the one-file site carries the manifest and the catalog inlined: every model is in it
    for model in ("revenue_per_customer_month", "order_items"):  # a gold and a silver model
        assert f'"{model}"' in html
    assert '"MANIFEST.JSON INLINE DATA"' not in html
    manifest = json.loads((site.out / "manifest.json").read_text())
    assert GOLD_MODEL in manifest["nodes"]
    assert "source.shop.bronze.orders" in manifest["sources"]


def test_catalog_read_the_models_from_the_tenants_warehouse(site: SimpleNamespace):
    catalog = json.loads((site.out / "catalog.json").read_text())
    gold = catalog["nodes"][GOLD_MODEL]
    assert gold["metadata"]["schema"] == "gold"
    assert {"customer_id", "month", "revenue"} <= set(gold["columns"])
    assert "model.shop.orders" in catalog["nodes"]  # a silver model, in the silver schema
    assert catalog["nodes"]["model.shop.orders"]["metadata"]["schema"] == "silver"


def test_docs_argv_and_env(demo: Tenant, monkeypatch, tmp_path: Path):
    argv = docs_argv(demo, REPO, tmp_path)
    assert argv == ("dbt", "--project-dir", "warehouses/_dbt/shop", "--docs-out", str(tmp_path),
                    "docs", "generate", "--static")  # fmt: skip
    monkeypatch.setenv("DEMO_WAREHOUSE_URL", "duckdb:////nowhere.duckdb")
    monkeypatch.setenv("DOCS_TEST_UNRELATED", "x")
    env = runner_env(demo, REPO)
    assert env["RUNNER_WAREHOUSE_URL"] == "duckdb:////nowhere.duckdb"
    assert json.loads(env["RUNNER_SPEC"])["tenant"] == "demo"
    assert "DOCS_TEST_UNRELATED" not in env and "DEMO_WAREHOUSE_URL" not in env
    assert "RUNNER_SOURCE_URL" not in env  # dbt reads the warehouse only
    assert INHERITED_ENV == _INHERITED_ENV  # the local adapter's list, kept in step


def test_custom_layers_route_the_docs_like_a_build(
    warehouses: Path, write_tenant: WriteTenant, tmp_path: Path
):
    text = VALID_TENANT.format(name="shop", env="SHOP")
    text += "dbt:\n  layers: {staging: 'path:models/staging', marts: 'path:models/marts'}\n"
    tenant = Loader(warehouses).load(write_tenant("shop", text))
    argv = docs_argv(tenant, warehouses.parent, tmp_path)
    at = argv.index("--layers")
    assert argv[at - 2 : at] == ("--layer", "staging")
    assert json.loads(argv[at + 1]) == {
        "staging": "path:models/staging",
        "marts": "path:models/marts",
    }


def test_unset_warehouse_env_is_one_line_and_exit_1(demo: Tenant, monkeypatch, tmp_path: Path):
    monkeypatch.delenv("DEMO_WAREHOUSE_URL", raising=False)
    with pytest.raises(DocsError, match=r"env var DEMO_WAREHOUSE_URL .* is not set on this worker"):
        build_docs(demo, REPO, tmp_path)
    result = CliRunner().invoke(app, ["docs", "demo", "--warehouses", str(REPO / "warehouses")])
    assert result.exit_code == 1
    assert "dag-factory: demo: docs not built: env var DEMO_WAREHOUSE_URL" in result.output
    assert not (tmp_path / "static_index.html").exists()


def test_a_broken_warehouse_fails_with_the_runners_line(demo: Tenant, monkeypatch, tmp_path: Path):
    monkeypatch.setenv("DEMO_WAREHOUSE_URL", f"duckdb:///{tmp_path}")  # a folder, not a file
    with pytest.raises(DocsError, match=r"^runner dbt: dbt docs generate --static failed: IO Er"):
        build_docs(demo, REPO, tmp_path / "site")
    assert not (tmp_path / "site").exists()


def test_runner_keeps_a_site_only_for_docs_generate(demo: Tenant, tmp_path: Path):
    done = subprocess.run(
        [str(RUNNER), "dbt", "--project-dir", "warehouses/_dbt/shop", "--docs-out",
         str(tmp_path), "build", "--select", "gold"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "RUNNER_SPEC": demo.spec.runner_spec_json(),
             "RUNNER_WAREHOUSE_URL": f"duckdb:///{tmp_path}/wh.duckdb"},
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "runner dbt: --docs-out keeps the docs site of `docs generate`, not of `build --select`"
    )

"""Hostile tenant files beside the repository's valid tenants, through a real DagBag.

Each case copies `warehouses/` into a scratch folder, adds or breaks one file, parses the
real DAG file and checks: every valid tenant's DAG is there, the broken tenant is a
placeholder with the expected message and its schedule, and Airflow's import errors
hold one entry keyed by the broken file (never by the DAG file, which hides every DAG).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag

from dag_factory.build import INVALID_TAG
from dag_factory.cache import SpecCache
from dag_factory.errors import TenantFileError
from dag_factory.loader import Loader
from tests.dag_factory.conftest import REPO

VALID = {"tenant_acme": "0 3 * * *", "tenant_demo": "@daily", "tenant_lake": "@daily"}
HEAD = """\
tenant: evil
source: {kind: sqlite, connection: {env: EVIL_SOURCE_URL}}
warehouse: {kind: duckdb, connection: {env: EVIL_WAREHOUSE_URL}}
dbt: {project: ../_dbt/shop}
schedule: "15 4 * * *"
alerting:
  on_failure: {email: [oncall@example.com]}
"""


@pytest.fixture
def repo_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "warehouses"
    shutil.copytree(REPO / "warehouses", folder)
    monkeypatch.setenv("DAG_FACTORY_WAREHOUSES", str(folder))
    monkeypatch.setenv("DAG_FACTORY_CACHE_DIR", str(tmp_path / "cache"))
    return folder


def evil(warehouses: Path, body: str | bytes) -> Path:
    file = warehouses / "evil" / "warehouse.yaml"
    file.parent.mkdir(exist_ok=True)
    file.write_bytes(body.encode() if isinstance(body, str) else body)
    return file


def parse() -> DagBag:
    return DagBag(dag_folder=str(REPO / "dags"))


def assert_isolated(bag: DagBag, broken: dict[str, Path]) -> None:
    """Valid tenants all built; each broken tenant a placeholder and an import error."""
    for dag_id, schedule in VALID.items():
        if dag_id not in broken:
            assert INVALID_TAG not in bag.dags[dag_id].tags
            assert bag.dags[dag_id].schedule == schedule
    assert set(bag.import_errors) == {str(file) for file in broken.values()}
    for dag_id in broken:
        assert INVALID_TAG in bag.dags[dag_id].tags


def placeholder_text(bag: DagBag, dag_id: str = "tenant_evil") -> str:
    dag = bag.dags[dag_id]
    return f"{dag.description}\n{dag.doc_md}"


ALIAS_BOMB = (
    HEAD
    + "tables: [{name: t}]\n"
    + 'description: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    + "".join(f"x{i}: &{chr(98 + i)} [{','.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8))
)


@pytest.mark.parametrize(
    ("case", "body", "expected"),
    [
        ("alias bomb", ALIAS_BOMB, "evil/warehouse.yaml:10:9: YAML aliases (*a) are not allowed"),
        (
            "non-UTF-8",
            HEAD.encode() + b"description: caf\xe9\n" + b"tables: [{name: t}]\n",
            f"not UTF-8 at byte {len(HEAD) + 16} (line 8)",
        ),
        ("1,000 levels", "tables: " + "[" * 1000 + "]" * 1000, "nested more than 50 levels"),
        (
            "100,000 levels",
            "tables: " + "[" * 100_000,
            "warehouse.yaml:1:58: nested more than 50 levels deep",
        ),
        ("oversized", HEAD + "#" * (1 << 20), "file is larger than 1048576 bytes"),
        (
            "50,000 tables",
            HEAD + "tables:\n" + "".join(f"  - name: t{i}\n" for i in range(50_000)),
            "tables[1000]: 50000 tables, at most 1000 per tenant",
        ),
    ],
)
def test_hostile_file_is_isolated(repo_copy: Path, case: str, body: str | bytes, expected: str):
    file = evil(repo_copy, body)
    bag = parse()
    assert_isolated(bag, {"tenant_evil": file})
    assert expected in placeholder_text(bag)
    assert expected in bag.import_errors[str(file)]
    assert placeholder_text(bag).startswith("INVALID tenant file: ")
    if case == "50,000 tables":  # the others cannot be read: no schedule to keep
        assert bag.dags["tenant_evil"].schedule == "15 4 * * *"


def test_size_limit_is_configurable(repo_copy: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DAG_FACTORY_MAX_FILE_BYTES", "100")
    file = evil(repo_copy, HEAD + "tables: [{name: t}]\n")
    with pytest.raises(TenantFileError, match="larger than 100 bytes"):
        Loader(repo_copy).load(file)


def test_typo_in_a_live_file_fails_loudly_on_its_schedule(repo_copy: Path):
    demo = repo_copy / "demo" / "warehouse.yaml"
    assert INVALID_TAG not in parse().dags["tenant_demo"].tags  # live, and cached as valid
    demo.write_text(demo.read_text() + "retires: 3\n")
    bag = parse()
    assert_isolated(bag, {"tenant_demo": demo})
    dag = bag.dags["tenant_demo"]
    assert dag.description.startswith(
        "INVALID tenant file: retires: unknown key; did you mean `retries`?"
    )
    assert f"- `` {demo}:" in dag.doc_md  # one problem per line, with file:line:col
    assert dag.schedule == "@daily"  # kept: its run fails when the real one was due
    assert "`@daily`, read from warehouse.yaml" in dag.doc_md
    assert "manual runs only" not in dag.doc_md


def test_unreadable_schedule_comes_from_the_last_valid_version(repo_copy: Path):
    acme = repo_copy / "acme" / "warehouse.yaml"
    assert parse().dags["tenant_acme"].schedule == "0 3 * * *"
    acme.write_text(acme.read_text().replace('"0 3 * * *"', '"every day"'))
    bag = parse()
    assert_isolated(bag, {"tenant_acme": acme})
    assert bag.dags["tenant_acme"].schedule == "0 3 * * *"
    assert "kept from the last valid version" in bag.dags["tenant_acme"].doc_md


def test_no_schedule_known_means_manual_runs_said_in_the_doc(repo_copy: Path):
    file = evil(repo_copy, "tenant: evil\nschedule: [\n")  # never valid, cannot be read
    bag = parse()
    assert_isolated(bag, {"tenant_evil": file})
    assert bag.dags["tenant_evil"].schedule is None
    assert "manual runs only" in bag.dags["tenant_evil"].doc_md


def test_placeholder_alerts_through_the_tenant_alerting(repo_copy: Path):
    evil(repo_copy, HEAD + "tables: [{name: t}]\nretires: 3\n")
    task = parse().dags["tenant_evil"].get_task("invalid_tenant_file")
    [notifier] = task.on_failure_callback
    assert type(notifier).__name__ == "SmtpNotifier"
    assert notifier.to == ["oncall@example.com"]
    assert task.retries == 0
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException, match="retires: unknown key"):
        task.execute({})


def test_broken_defaults_marks_every_tenant(repo_copy: Path):
    defaults = repo_copy / "defaults.yaml"
    defaults.write_text(defaults.read_text() + "retries: [\n")
    bag = parse()
    files = {d: repo_copy / d.removeprefix("tenant_") / "warehouse.yaml" for d in VALID}
    assert_isolated(bag, files)
    for dag_id, schedule in VALID.items():
        assert bag.dags[dag_id].description.startswith("INVALID tenant file: defaults.yaml:")
        assert str(defaults) in bag.dags[dag_id].doc_md
        assert bag.dags[dag_id].schedule == schedule  # both tenants name their schedule


def test_corrupt_cache_entries_are_rebuilt(repo_copy: Path, tmp_path: Path):
    assert_isolated(parse(), {})
    entries = [p for p in (tmp_path / "cache").iterdir() if p.is_file()]
    specs = [p for p in entries if not p.name.startswith("last-")]  # not the pointers
    assert specs
    for entry in entries:
        entry.write_bytes(b"\x80\x05garbage that is no pickle")
    assert_isolated(parse(), {})
    assert SpecCache(tmp_path / "cache").get(specs[0].name) is not None  # rewritten


def test_validation_is_linear_in_the_number_of_tables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Orders, not wall-clock windows: 4x the tables may cost at most 8x the time."""
    monkeypatch.setenv("DAG_FACTORY_MAX_TABLES", "100000")
    shutil.copytree(REPO / "warehouses", tmp_path / "w")
    seconds = {}
    for n in (10_000, 40_000):
        file = evil(
            tmp_path / "w", HEAD + "tables:\n" + "".join(f"  - name: t{i}\n" for i in range(n))
        )
        loader = Loader(tmp_path / "w", cache=SpecCache(None))
        runs = []
        for _ in range(3):
            start = time.perf_counter()
            loader.load(file)
            runs.append(time.perf_counter() - start)
        seconds[n] = min(runs)
    assert seconds[40_000] / seconds[10_000] < 8

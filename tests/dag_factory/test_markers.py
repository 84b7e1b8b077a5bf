"""The server marks are derived from a test's fixture closure, on a sample suite that uses
the real fixtures of tests/conftest.py and tests/containers/conftest.py (collected, not run).
"""

from __future__ import annotations

import textwrap

import pytest

from tests.conftest import SERVER_MARKS

# The sample's conftest: the real server fixtures and the real hooks. Fixtures another
# engineer is adding (`airflow_server`, `browser`) are stand-ins until they exist.
SAMPLE_CONFTEST = """
import pytest

import tests.conftest as suite
from tests.conftest import (
    airflow_env, mariadb_server, pg_cluster, pg_database,
    pytest_collection_modifyitems, pytest_configure,
)
from tests.containers.conftest import docker_engine, image_registry, runner_images

if hasattr(suite, "airflow_server"):
    airflow_server = suite.airflow_server
else:
    @pytest.fixture
    def airflow_server():
        return "stand-in"

if hasattr(suite, "browser"):
    browser = suite.browser
else:
    @pytest.fixture
    def browser(airflow_server):
        return "stand-in"

@pytest.fixture
def pg_source(pg_cluster):           # depends on a server fixture: one level down
    return "src"

@pytest.fixture
def make_warehouse(tmp_path, pg_source):   # two levels down
    return "wh"

@pytest.fixture
def scratch(tmp_path):               # no server anywhere below it
    return tmp_path
"""

SAMPLE_TESTS = """
import pytest

def test_plain(scratch): pass
def test_cluster(pg_cluster): pass
def test_database(pg_database): pass
def test_two_levels_down(make_warehouse): pass
def test_mariadb(mariadb_server): pass
def test_images(runner_images): pass
def test_engine_only(docker_engine): pass
def test_dags_test(airflow_env, pg_cluster): pass
def test_ui(browser): pass

@pytest.mark.usefixtures("mariadb_server")
class TestUsesFixtures:
    def test_in_class(self): pass

@pytest.mark.parametrize("kind", ["duckdb", "postgres"])
def test_param(kind, make_warehouse): pass
"""

EXPECTED = {
    "test_plain": set(),
    "test_cluster": {"postgres"},
    "test_database": {"postgres"},
    "test_two_levels_down": {"postgres"},
    "test_mariadb": {"mariadb"},
    "test_images": {"docker"},
    "test_engine_only": {"docker"},
    "test_dags_test": {"airflow", "postgres"},
    "test_ui": {"browser", "airflow"},
    "test_in_class": {"mariadb"},
    "test_param[duckdb]": {"postgres"},
    "test_param[postgres]": {"postgres"},
}


def _sample(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\naddopts = --strict-markers -p no:cacheprovider\n")
    pytester.makeconftest(SAMPLE_CONFTEST)
    pytester.makepyfile(test_sample=textwrap.dedent(SAMPLE_TESTS))


def test_marks_come_from_the_fixture_closure(pytester: pytest.Pytester) -> None:
    _sample(pytester)
    items, _ = pytester.inline_genitems()
    server = set(SERVER_MARKS)
    derived = {item.name: {m.name for m in item.iter_markers()} & server for item in items}
    assert derived == EXPECTED


def test_fast_selection_leaves_out_every_server(pytester: pytest.Pytester) -> None:
    """The expression `make test-fast` uses keeps exactly the tests that start nothing."""
    _sample(pytester)
    result = pytester.runpytest(
        "--collect-only", "-q", "-m", "not (postgres or mariadb or docker or airflow or browser)"
    )
    assert result.ret == 0
    collected = [line for line in result.outlines if "::" in line]
    assert collected == ["test_sample.py::test_plain"]


def test_a_hand_written_derived_mark_is_still_known(pytester: pytest.Pytester) -> None:
    """--strict-markers stays on: the derived marks are registered, unknown ones fail."""
    _sample(pytester)
    pytester.makepyfile(
        test_hand="""
        import pytest

        @pytest.mark.postgres
        def test_known(): pass

        @pytest.mark.postgress
        def test_typo(): pass
        """
    )
    result = pytester.runpytest("--collect-only", "-q", "test_hand.py")
    result.stdout.fnmatch_lines(["*'postgress' not found in `markers` configuration option*"])
    assert result.ret == pytest.ExitCode.INTERRUPTED


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["-m", "postgres and not postgres"], pytest.ExitCode.OK),  # marks left nothing
        (["-m", "not postgres", "-k", "plian"], pytest.ExitCode.NO_TESTS_COLLECTED),  # a typo
        (["no_such_dir"], pytest.ExitCode.USAGE_ERROR),  # a wrong path stays an error
        (["-m", "postgres", "empty"], pytest.ExitCode.NO_TESTS_COLLECTED),  # nothing collected
    ],
)
def test_exit_code_when_marks_leave_nothing(
    pytester: pytest.Pytester, args: list[str], code: pytest.ExitCode
) -> None:
    """Exit code 5 (no tests) becomes 0 only when -m deselected what was collected, so
    `make test-fast <path of server tests>` passes, and a mistyped -k or path still fails."""
    _sample(pytester)
    pytester.mkdir("empty")
    pytester.makeconftest(
        SAMPLE_CONFTEST + "\nfrom tests.conftest import pytest_deselected, pytest_sessionfinish\n"
    )
    assert pytester.runpytest(*args).ret == code

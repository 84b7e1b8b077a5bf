"""The bad-file corpus: each `corpus/<case>.yaml`, installed as tenant `shop`, must fail
with exactly the lines of `corpus/<case>.expected` (paths relative to the warehouses
folder). Regenerate after a deliberate wording change with
`DAG_FACTORY_CORPUS_WRITE=1 pytest tests/dag_factory/test_error_corpus.py`, then read the diff.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from dag_factory.errors import TenantFileError
from dag_factory.loader import Loader
from tests.dag_factory.conftest import WriteTenant

CORPUS = Path(__file__).parent / "corpus"
CASES = sorted(p.stem for p in CORPUS.glob("*.yaml"))


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 25
    assert all((CORPUS / f"{case}.expected").exists() for case in CASES)


@pytest.mark.parametrize("case", CASES)
def test_bad_file_message(case: str, warehouses: Path, write_tenant: WriteTenant):
    file = write_tenant("shop")
    shutil.copy(CORPUS / f"{case}.yaml", file)
    with pytest.raises(TenantFileError) as caught:
        Loader(warehouses).load(file)
    got = "".join(f"{p}\n".replace(f"{warehouses}/", "") for p in caught.value.problems)
    expected = CORPUS / f"{case}.expected"
    if os.environ.get("DAG_FACTORY_CORPUS_WRITE"):
        expected.write_text(got)
    assert got == expected.read_text()
    assert "Traceback" not in got

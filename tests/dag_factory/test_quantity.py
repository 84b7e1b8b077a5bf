"""`dag_factory.adapters.container.quantity`: the Kubernetes client's own parser, loaded
without the client (a local tenant's DAG parse must not import the API client)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from kubernetes.utils import parse_quantity

from dag_factory.adapters.container import quantity

VALUES = ["1", "0.5", "250m", "512Mi", "2Gi", "2G", "100k", "1Ki", "1.5Ti", "3e2", "5n", "7u"]


@pytest.mark.parametrize("value", VALUES)
def test_same_numbers_as_the_kubernetes_client(value: str):
    assert quantity(value) == parse_quantity(value)


@pytest.mark.parametrize("value", ["12ki", "1.2.3", "Mi", "1Zi"])
def test_same_refusals_as_the_kubernetes_client(value: str):
    with pytest.raises(ValueError):
        parse_quantity(value)
    with pytest.raises(ValueError):
        quantity(value)


def test_parsing_does_not_import_the_api_client():
    code = (
        "import sys; from dag_factory.adapters.container import memory_bytes; "
        "assert memory_bytes('512Mi') == 512 * 2**20; "
        "print(sorted(m for m in sys.modules if m == 'kubernetes' or m.startswith('kubernetes.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "[]"

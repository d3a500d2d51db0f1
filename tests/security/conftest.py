"""Fixtures for the security tests: a tiny saved model, and py_ecc's recursion limit."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .helpers import tiny_llama


@pytest.fixture
def py_ecc_recursion_limit() -> Iterator[int]:
    """The interpreter as eth-account/web3 leave it: recursion limit 100,000 (py_ecc)."""
    import eth_account  # noqa: F401
    import web3  # noqa: F401

    before = sys.getrecursionlimit()
    sys.setrecursionlimit(max(100_000, before))  # what py_ecc's import does
    yield sys.getrecursionlimit()
    sys.setrecursionlimit(before)


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer Llama saved as an HF folder (model.safetensors)."""
    out = tmp_path_factory.mktemp("base")
    tiny_llama().save_pretrained(out)
    return out


# The coordinator fixtures (world, coordinator on it), shared with tests/coordinator.
from ..coordinator.conftest import cworld, make_coordinator  # noqa: E402, F401

"""Issue 19: nested JSON can no longer crash the process; nesting is bounded before parsing.

The 200,000-deep safetensors header and adapter config segfaulted the coordinator in ``_json``
(py_ecc raises the recursion limit to 100,000). Here both are parsed in-process *with that
limit in force* and must come back as a clean ``InvalidInput`` with a message.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mergenet.deltas.adapter_config import parse_adapter_config
from mergenet.deltas.errors import DeltaValidationError
from mergenet.deltas.io import read_header
from mergenet.deltas.lora import LoraDelta
from mergenet.deltas.safe_json import MAX_DEPTH, loads_untrusted, nesting_depth
from mergenet.errors import InvalidInput

from .helpers import deep, raw_safetensors, write_config

DEPTH = 200_000


def test_200k_deep_header_is_a_clean_error_under_py_ecc_limit(
    py_ecc_recursion_limit: int, tmp_path: Path
) -> None:
    assert py_ecc_recursion_limit >= 100_000
    path = raw_safetensors(tmp_path / "deep.safetensors", b'{"a":' + deep(DEPTH) + b"}")
    with pytest.raises(InvalidInput, match=f"nests {DEPTH + 1} levels deep") as info:
        read_header(path)
    assert isinstance(info.value, DeltaValidationError)


def test_200k_deep_adapter_config_is_a_clean_error_under_py_ecc_limit(
    py_ecc_recursion_limit: int, tmp_path: Path
) -> None:
    assert py_ecc_recursion_limit >= 100_000
    with pytest.raises(InvalidInput, match="nests 200001 levels deep"):
        parse_adapter_config(b'{"r": 4, "x": ' + deep(DEPTH) + b"}")
    folder = tmp_path / "adapter"
    folder.mkdir()
    write_config(folder, deep(DEPTH))
    raw_safetensors(folder / "adapter_model.safetensors", {})
    with pytest.raises(DeltaValidationError, match=r"adapter_config\.json nests"):
        LoraDelta(folder)


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        (b"", 0),
        (b"1", 0),
        (b"[]", 1),
        (b'{"a": [[1], {"b": []}]}', 4),
        (b'{"a": "[[[[[["}', 1),  # brackets inside strings do not count
        (b'{"a": "\\"[[[["}', 1),  # an escaped quote does not end the string
        (b'{"a": "\\\\", "b": [[]]}', 3),  # an escaped backslash does
        (b'["unterminated [[[[', 1),
    ],
)
def test_nesting_depth_honours_strings_and_escapes(text: bytes, depth: int) -> None:
    assert nesting_depth(text) == depth
    if depth and text.count(b'"') % 2 == 0:
        assert nesting_depth(text) == _reference_depth(json.loads(text))


def _reference_depth(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max((_reference_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_reference_depth(v) for v in value), default=0)
    return 0


def test_cap_is_exact_and_scan_is_fast() -> None:
    assert loads_untrusted(deep(MAX_DEPTH), "doc") is not None
    with pytest.raises(DeltaValidationError, match=f"over the cap of {MAX_DEPTH}"):
        loads_untrusted(deep(MAX_DEPTH + 1), "doc")
    big = json.dumps({f"t{i}": {"shape": [i, 3], "s": "[{"} for i in range(100_000)}).encode()
    started = time.perf_counter()
    assert nesting_depth(big) == 3
    assert time.perf_counter() - started < 2.0  # ~0.1 s for these 4.3 MB


def test_duplicate_keys_are_rejected_at_every_level() -> None:
    with pytest.raises(DeltaValidationError, match="'w' twice"):
        loads_untrusted(b'{"w": 1, "v": 2, "w": 3}', "header")
    with pytest.raises(DeltaValidationError, match="'dtype' twice"):
        loads_untrusted(b'{"w": {"dtype": "F32", "dtype": "F16"}}', "header")


def test_recursion_limit_is_restored_after_the_eth_libraries() -> None:
    """In a fresh interpreter: the limit is normal after start-up, whatever imports follow."""
    code = (
        "import sys\n"
        "from mergenet.deltas.safe_json import restore_recursion_limit\n"
        "before = restore_recursion_limit()\n"
        "import eth_account, web3\n"
        "print(before, sys.getrecursionlimit())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    before, after = map(int, out.stdout.split())
    assert before >= 100_000  # py_ecc was imported (and raised it) by restore itself
    assert after == 1000

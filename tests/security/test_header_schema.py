"""Issue 19: the safetensors header schema — every malformed header is an InvalidInput that
says what to fix (``__metadata__`` as a list or with non-string values got a 500 before; a
duplicate key was accepted)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mergenet.deltas.errors import DeltaValidationError
from mergenet.deltas.io import read_header

from .helpers import raw_safetensors

W = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}


def _header(tmp_path: Path, header: Any, data: bytes = b"\0" * 8) -> Path:
    return raw_safetensors(tmp_path / "h.safetensors", header, data)


@pytest.mark.parametrize(
    ("header", "data", "message"),
    [
        ({"__metadata__": ["a", "b"], "w": W}, 8, "__metadata__ must be a JSON object of strings"),
        ({"__metadata__": {"a": 1}, "w": W}, 8, r"__metadata__ .*a: Input should be a valid str"),
        ({"__metadata__": {"a": {"b": "c"}}, "w": W}, 8, "__metadata__ must be a JSON object"),
        ({"w": W | {"shape": [-2]}}, 8, "greater than or equal to 0"),
        ({"w": W | {"shape": [True, 2]}}, 8, "valid integer"),
        ({"w": W | {"shape": [2.0]}}, 8, "valid integer"),
        ({"w": W | {"shape": "2"}}, 8, "valid list"),
        ({"w": W | {"shape": [1] * 9}}, 8, "at most 8"),
        ({"w": W | {"dtype": "F7"}}, 8, "unsupported dtype 'F7'"),
        ({"w": W | {"dtype": 4}}, 8, "dtype"),
        ({"w": W | {"extra": 1}}, 8, "Extra inputs are not permitted"),
        ({"w": {"dtype": "F32", "shape": [2]}}, 8, "data_offsets: Field required"),
        ({"w": W | {"data_offsets": [0, 8, 16]}}, 8, "data_offsets"),
        ({"w": W | {"data_offsets": [8, 0]}}, 8, "end before start"),
        ({"w": W | {"data_offsets": [0, 4]}}, 8, "needs 8"),
        ({"w": W, "v": W}, 16, "overlap at byte 0"),
        ({"w": W | {"data_offsets": [4, 12]}}, 12, "a gap at byte 4"),
        ({"w": W}, 4, "file holds 4"),
        ({"w": W}, 12, "file holds 12"),
        ({"w": "F32"}, 8, "malformed header entry for tensor 'w'"),
        ([W], 8, "must be a JSON object"),
    ],
)
def test_malformed_headers_are_invalid_input(
    tmp_path: Path, header: Any, data: int, message: str
) -> None:
    with pytest.raises(DeltaValidationError, match=message):
        read_header(_header(tmp_path, header, b"\0" * data))


def test_duplicate_tensor_key_is_rejected(tmp_path: Path) -> None:
    """Two entries named ``w``: json.loads kept the last one silently; now it is an error."""
    blob = b'{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, '
    blob += b'"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}'
    with pytest.raises(DeltaValidationError, match="has the key 'w' twice"):
        read_header(_header(tmp_path, blob, b"\0" * 16))


def test_wellformed_header_with_metadata_is_read(tmp_path: Path) -> None:
    v = {"dtype": "BF16", "shape": [2, 3], "data_offsets": [8, 20]}
    header = read_header(_header(tmp_path, {"__metadata__": {"a": "b"}, "w": W, "v": v}, bytes(20)))
    assert header.metadata == {"a": "b"}
    assert header.specs["v"].shape == (2, 3) and header.offsets["v"] == (8, 20)

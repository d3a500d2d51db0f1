"""safetensors I/O: header-first checks on hostile files, streaming writer, content hashes."""

from __future__ import annotations

import json
import struct

import pytest
import torch

from mergenet.deltas.errors import DeltaValidationError
from mergenet.deltas.hashing import state_dict_sha256
from mergenet.deltas.io import TensorSpec, TensorWriter, load_tensors, read_header, save_tensors
from mergenet.errors import TooLarge
from mergenet.protocol.hashes import sha256_file


def _tensors():
    g = torch.Generator().manual_seed(0)
    return {
        "a": torch.randn(3, 4, generator=g),
        "b": torch.randn(5, generator=g).to(torch.bfloat16),
        "c": torch.arange(6, dtype=torch.int64).reshape(2, 3),
    }


def test_writer_round_trip_and_safetensors_compatibility(tmp_path):
    from safetensors.torch import load_file

    t = _tensors()
    save_tensors(t, tmp_path / "x.safetensors", {"k": "v"})
    back = load_file(str(tmp_path / "x.safetensors"))  # the reference reader agrees
    assert all(torch.equal(t[n], back[n]) for n in t)
    header = read_header(tmp_path / "x.safetensors")
    assert header.metadata == {"k": "v"}
    assert header.specs["b"] == TensorSpec("BF16", (5,))


def test_writer_enforces_order_and_specs(tmp_path):
    specs = {"a": TensorSpec("F32", (2,)), "b": TensorSpec("F32", (3,))}
    w = TensorWriter(tmp_path / "y.safetensors", specs)
    with pytest.raises(ValueError, match="header order"):
        w.write("b", torch.zeros(3))
    with pytest.raises(ValueError, match="expected"):
        w.write("a", torch.zeros(3))
    w.write("a", torch.zeros(2))
    with pytest.raises(ValueError, match="only 1 of 2"):
        w.close()


def _raw(tmp_path, header: bytes, data: bytes = b"", length: int | None = None):
    p = tmp_path / "bad.safetensors"
    p.write_bytes(struct.pack("<Q", len(header) if length is None else length) + header + data)
    return p


def test_hostile_headers_are_rejected_before_data(tmp_path):
    (tmp_path / "short").write_bytes(b"abc")
    with pytest.raises(DeltaValidationError, match="shorter than 8"):
        read_header(tmp_path / "short")
    with pytest.raises(TooLarge, match="cap"):
        read_header(_raw(tmp_path, b"{}" + b" " * 2000), max_header_bytes=1000)
    with pytest.raises(DeltaValidationError, match="truncated"):
        read_header(_raw(tmp_path, b"{}", length=50))
    with pytest.raises(DeltaValidationError, match="not valid JSON"):
        read_header(_raw(tmp_path, b"{nope"))
    h = json.dumps({"x": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}}).encode()
    with pytest.raises(DeltaValidationError, match="needs 16"):
        read_header(_raw(tmp_path, h, b"\0" * 8))
    h = json.dumps({"x": {"dtype": "O", "shape": [1], "data_offsets": [0, 8]}}).encode()
    with pytest.raises(DeltaValidationError, match="unsupported dtype"):
        read_header(_raw(tmp_path, h, b"\0" * 8))
    h = json.dumps({"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    with pytest.raises(DeltaValidationError, match="file holds 16"):
        read_header(_raw(tmp_path, h, b"\0" * 16))


def test_hashes(tmp_path):
    t = _tensors()
    save_tensors(t, tmp_path / "a.safetensors")
    save_tensors(dict(reversed(list(t.items()))), tmp_path / "b.safetensors")
    # The canonical hash ignores layout; the file hash does not.
    sa = state_dict_sha256(load_tensors(tmp_path / "a.safetensors"))
    sb = state_dict_sha256(load_tensors(tmp_path / "b.safetensors"))
    assert sa == sb == state_dict_sha256(t)
    assert sha256_file(tmp_path / "a.safetensors") != sha256_file(tmp_path / "b.safetensors")
    t2 = dict(t)
    t2["a"] = t["a"].clone()
    t2["a"][0, 0] += 1e-6
    assert state_dict_sha256(t2) != sa

"""safetensors I/O: header-first reading, lazy tensor access, and a streaming writer.

Models and deltas are only ever read from safetensors (never pickle). ``read_header`` parses
the 8-byte length and the JSON header with size caps before any tensor data is touched, so a
hostile upload is rejected cheaply. ``TensorWriter`` writes a file tensor by tensor (header
first, offsets known from the specs) so a merge never holds the whole output in memory.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import torch

from mergenet.deltas.errors import DeltaTooLarge, DeltaValidationError
from mergenet.deltas.header_schema import check_layout, parse_entries, parse_metadata
from mergenet.deltas.safe_json import loads_untrusted

DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
DTYPE_NAMES = {v: k for k, v in DTYPES.items()}
DEFAULT_MAX_HEADER_BYTES = 100 * 1024 * 1024


@dataclass(frozen=True)
class TensorSpec:
    """Name-independent description of one stored tensor."""

    dtype: str
    shape: tuple[int, ...]

    @property
    def numel(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n

    @property
    def nbytes(self) -> int:
        return self.numel * torch.empty((), dtype=DTYPES[self.dtype]).element_size()

    @classmethod
    def of(cls, t: torch.Tensor) -> TensorSpec:
        return cls(DTYPE_NAMES[t.dtype], tuple(t.shape))


@dataclass(frozen=True)
class Header:
    specs: dict[str, TensorSpec]
    offsets: dict[str, tuple[int, int]]
    metadata: dict[str, str]
    data_start: int


def read_header(
    path: str | Path,
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
    max_tensors: int | None = None,
) -> Header:
    """Parse and check a safetensors header without reading tensor data.

    Raises ``DeltaTooLarge`` for a header over ``max_header_bytes`` and
    ``DeltaValidationError`` for anything that is not a well-formed safetensors file: truncated
    header, nesting over the cap (checked by a byte scan before the JSON parse), bad JSON,
    duplicate keys, and every breach of :mod:`mergenet.deltas.header_schema`.
    """
    p = Path(path)
    what = f"{p.name}: safetensors header"
    size = p.stat().st_size
    with p.open("rb") as fh:
        raw = fh.read(8)
        if len(raw) < 8:
            raise DeltaValidationError(f"{p.name}: not a safetensors file (shorter than 8 bytes)")
        (hlen,) = struct.unpack("<Q", raw)
        if 8 + hlen > size:
            raise DeltaValidationError(
                f"{p.name}: truncated or not a safetensors file (header runs past the end)"
            )
        if hlen > max_header_bytes:
            raise DeltaTooLarge(
                f"{p.name}: safetensors header is {hlen} bytes, "
                f"over the {max_header_bytes}-byte cap"
            )
        header = loads_untrusted(fh.read(hlen), what)
    if not isinstance(header, dict):
        raise DeltaValidationError(f"{what} must be a JSON object")
    metadata = parse_metadata(header.pop("__metadata__", None), p.name)
    if max_tensors is not None and len(header) > max_tensors:
        raise DeltaTooLarge(f"{p.name} has {len(header)} tensors, over the cap of {max_tensors}")
    entries = parse_entries(header, p.name)
    check_layout(entries, size - 8 - hlen, p.name)
    specs = {n: TensorSpec(e.dtype, tuple(e.shape)) for n, e in entries.items()}
    offsets = {n: e.data_offsets for n, e in entries.items()}
    return Header(specs, offsets, metadata, 8 + hlen)


class TensorFile:
    """Lazy access to one safetensors file (memory-mapped by safetensors)."""

    def __init__(self, path: str | Path):
        from safetensors import safe_open

        self.path = Path(path)
        self._handle = safe_open(str(self.path), framework="pt")

    def names(self) -> list[str]:
        return list(self._handle.keys())

    def get(self, name: str) -> torch.Tensor:
        return self._handle.get_tensor(name)

    def metadata(self) -> dict[str, str]:
        return self._handle.metadata() or {}


class TensorWriter:
    """Write a safetensors file tensor by tensor, in the order of ``specs``."""

    def __init__(
        self,
        path: str | Path,
        specs: Mapping[str, TensorSpec],
        metadata: Mapping[str, str] | None = None,
    ):
        self.path = Path(path)
        self._order = list(specs)
        self._specs = dict(specs)
        header: dict[str, Any] = {}
        if metadata:
            header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
        pos = 0
        for name in self._order:
            spec = self._specs[name]
            header[name] = {
                "dtype": spec.dtype,
                "shape": list(spec.shape),
                "data_offsets": [pos, pos + spec.nbytes],
            }
            pos += spec.nbytes
        blob = json.dumps(header, separators=(",", ":")).encode()
        blob += b" " * ((8 - len(blob) % 8) % 8)
        self._fh: BinaryIO = self.path.open("wb")
        self._fh.write(struct.pack("<Q", len(blob)))
        self._fh.write(blob)
        self._next = 0

    def write(self, name: str, tensor: torch.Tensor) -> None:
        if self._next >= len(self._order) or self._order[self._next] != name:
            expected = self._order[self._next] if self._next < len(self._order) else "nothing"
            raise ValueError(
                f"tensors must be written in header order: expected {expected}, got {name}"
            )
        spec = self._specs[name]
        if TensorSpec.of(tensor) != spec:
            raise ValueError(f"{name}: expected {spec}, got {TensorSpec.of(tensor)}")
        data = tensor.detach().contiguous().reshape(-1).view(torch.uint8).numpy()
        self._fh.write(data.data)
        self._next += 1

    def close(self) -> None:
        if self._next != len(self._order):
            self._fh.close()
            raise ValueError(
                f"{self.path}: only {self._next} of {len(self._order)} tensors written"
            )
        self._fh.close()

    def __enter__(self) -> TensorWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self._fh.close()


def save_tensors(
    tensors: Mapping[str, torch.Tensor], path: str | Path, metadata: Mapping[str, str] | None = None
) -> None:
    """Write a whole state dict (small files; large ones should stream via ``TensorWriter``)."""
    with TensorWriter(path, {n: TensorSpec.of(t) for n, t in tensors.items()}, metadata) as w:
        for n, t in tensors.items():
            w.write(n, t)


def load_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))

"""The strict schema of a safetensors header, checked before any tensor byte is read.

A header is a JSON object: an optional ``__metadata__`` of string → string, and per tensor
``{"dtype", "shape", "data_offsets"}`` with nothing else. Invariants enforced here (pydantic,
strict types — ``true`` is not a 1, ``2.0`` is not a 2): dtype from :data:`DTYPE_SIZES`;
shape of at most :data:`MAX_RANK` non-negative ints; ``0 ≤ start ≤ end``; ``end − start``
equal to the bytes dtype × shape needs; the spans tile the data section exactly (sorted,
contiguous, no overlap, no gap) and end where the file ends. Duplicate keys never reach this
module (:func:`mergenet.deltas.safe_json.loads_untrusted` rejects them).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from mergenet.deltas.errors import DeltaValidationError

DTYPE_SIZES: dict[str, int] = {
    "F64": 8,
    "F32": 4,
    "F16": 2,
    "BF16": 2,
    "I64": 8,
    "I32": 4,
    "I16": 2,
    "I8": 1,
    "U8": 1,
    "BOOL": 1,
}
MAX_RANK = 8
MAX_METADATA_ENTRIES = 1024

Dim = Annotated[int, Field(strict=True, ge=0)]
DType = Literal["F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL"]


class TensorEntry(BaseModel):
    """One tensor's header entry; unknown fields are rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dtype: DType
    shape: Annotated[list[Dim], Field(max_length=MAX_RANK)]
    data_offsets: tuple[Dim, Dim]

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * DTYPE_SIZES[self.dtype]


Metadata = Annotated[
    dict[str, Annotated[str, Field(strict=True)]], Field(max_length=MAX_METADATA_ENTRIES)
]
_ENTRY = TypeAdapter(TensorEntry)
_METADATA: TypeAdapter[dict[str, str]] = TypeAdapter(Metadata)


def explain(exc: ValidationError) -> str:
    """pydantic's first errors as one line: ``field.path: what is wrong (got …)``."""
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(x) for x in err["loc"]) or "value"
        got = repr(err.get("input"))
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg} (got {got[:60]})")
    return "; ".join(parts)


def parse_metadata(raw: Any, what: str) -> dict[str, str]:
    """``__metadata__`` must be an object of string values (or absent)."""
    if raw is None:
        return {}
    try:
        return _METADATA.validate_python(raw)
    except ValidationError as exc:
        raise DeltaValidationError(
            f"{what}: __metadata__ must be a JSON object of strings to strings: {explain(exc)}"
        ) from None


def parse_entries(header: Any, what: str) -> dict[str, TensorEntry]:
    """Every tensor entry validated (``__metadata__`` already removed)."""
    if not isinstance(header, dict):
        raise DeltaValidationError(f"{what}: header must be a JSON object")
    entries: dict[str, TensorEntry] = {}
    for name, info in header.items():
        dtype = info.get("dtype") if isinstance(info, dict) else None
        if isinstance(dtype, str) and dtype not in DTYPE_SIZES:
            raise DeltaValidationError(
                f"{what}: tensor {name[:80]!r} has unsupported dtype {dtype[:20]!r}; "
                f"use one of {sorted(DTYPE_SIZES)}"
            )
        try:
            entry = _ENTRY.validate_python(info)
        except ValidationError as exc:
            raise DeltaValidationError(
                f"{what}: malformed header entry for tensor {name[:80]!r}: {explain(exc)}; "
                'each entry is {"dtype": "F32", "shape": [..], "data_offsets": [start, end]}'
            ) from None
        start, end = entry.data_offsets
        if end < start:
            raise DeltaValidationError(
                f"{what}: tensor {name[:80]!r} has data_offsets [{start}, {end}]: end before start"
            )
        if end - start != entry.nbytes:
            raise DeltaValidationError(
                f"{what}: tensor {name[:80]!r} occupies {end - start} bytes "
                f"but {entry.dtype}{entry.shape} needs {entry.nbytes}"
            )
        entries[name] = entry
    return entries


def check_layout(entries: dict[str, TensorEntry], data_len: int, what: str) -> None:
    """The data spans tile ``[0, data_len)`` exactly: sorted, contiguous, no overlap."""
    pos = 0
    for start, end in sorted(e.data_offsets for e in entries.values()):
        if start != pos:
            kind = "overlap" if start < pos else "a gap"
            raise DeltaValidationError(
                f"{what}: tensor data has {kind} at byte {start}; "
                "spans must be contiguous and must not overlap"
            )
        pos = end
    if pos != data_len:
        raise DeltaValidationError(
            f"{what}: header describes {pos} data bytes but the file holds {data_len}"
        )

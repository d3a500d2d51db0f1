"""Validate an uploaded delta against its parent model before anything is stored.

Checks, cheapest first: file size cap; safetensors header parsed on its own with a header
cap, bounded nesting and a strict schema (never pickle); tensor count cap; every name,
shape and dtype equal to the parent's; then, streaming one tensor at a time, finite values
and the relative norm
``‖δ‖₂ / ‖θ_parent‖₂`` under a cap. Every failure raises ``DeltaValidationError`` (a size
cap: ``DeltaTooLarge``) with a message that says what to fix; the API turns it into a 4xx.
For uploads, run these through :mod:`mergenet.deltas.sandbox` (a resource-limited process).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from mergenet.deltas.errors import DeltaTooLarge, DeltaValidationError
from mergenet.deltas.io import TensorSpec, read_header
from mergenet.deltas.models import ModelSource
from mergenet.deltas.sources import DeltaSource, DenseDelta
from mergenet.protocol.hashes import sha256_file


@dataclass(frozen=True)
class ValidationLimits:
    max_file_bytes: int = 8 * 1024**3
    max_header_bytes: int = 16 * 1024**2
    max_tensors: int = 100_000
    max_relative_norm: float = 0.5
    """Largest accepted ‖δ‖/‖θ_parent‖ over the whole model."""


@dataclass
class DeltaReport:
    sha256: str | None
    tensors: int
    delta_norm: float
    parent_norm: float
    relative_norm: float
    changed_tensors: list[str] = field(default_factory=list)


Parent = ModelSource | Mapping[str, torch.Tensor]


def _parent_specs(parent: Parent) -> dict[str, TensorSpec]:
    if isinstance(parent, ModelSource):
        return parent.specs()
    return {n: TensorSpec.of(t) for n, t in parent.items()}


def _parent_get(parent: Parent, name: str) -> torch.Tensor:
    return parent.get(name) if isinstance(parent, ModelSource) else parent[name]


def _fmt(names: list[str]) -> str:
    return ", ".join(names[:5]) + (f" (+{len(names) - 5} more)" if len(names) > 5 else "")


_HEADS = ("lm_head.", "embed_out.")


def _tying_hint(names: list[str]) -> str:
    """Why an output head is missing or extra: the two models tie embeddings differently."""
    if any(n.startswith(_HEADS) for n in names):
        return " (the delta's model and the parent tie their output head differently)"
    return ""


def _shape_hint(name: str, got: tuple[int, ...], want: tuple[int, ...]) -> str:
    """What a shape mismatch means for the tensors whose shape a config choice sets."""
    if ("embed" in name or name.startswith(_HEADS)) and got[1:] == want[1:]:
        return f": a vocabulary of {got[0]} tokens, the parent's has {want[0]} (use its tokenizer)"
    if any(k in name for k in ("k_proj", "v_proj")) and got[1:] == want[1:]:
        return ": other key/value heads (grouped-query attention) than the parent's config"
    return ""


def validate_delta_file(
    path: str | Path, parent: Parent, limits: ValidationLimits = ValidationLimits()
) -> DeltaReport:
    """Validate a dense safetensors delta file (see module docstring)."""
    p = Path(path)
    size = p.stat().st_size
    if size > limits.max_file_bytes:
        raise DeltaTooLarge(
            f"delta file is {size} bytes, over the {limits.max_file_bytes}-byte cap; "
            "upload a smaller delta (or a LoRA adapter)"
        )
    header = read_header(p, limits.max_header_bytes, limits.max_tensors)
    expected = _parent_specs(parent)
    missing = sorted(set(expected) - set(header.specs))
    extra = sorted(set(header.specs) - set(expected))
    if missing:
        raise DeltaValidationError(
            f"delta is missing tensors of the parent model: {_fmt(missing)}" + _tying_hint(missing)
        )
    if extra:
        raise DeltaValidationError(
            f"delta has tensors the parent model does not have: {_fmt(extra)}" + _tying_hint(extra)
        )
    for name, spec in expected.items():
        got = header.specs[name]
        if got.shape != spec.shape:
            raise DeltaValidationError(
                f"{name}: delta shape {list(got.shape)} != parent shape {list(spec.shape)}"
                + _shape_hint(name, got.shape, spec.shape)
            )
        if got.dtype != spec.dtype:
            raise DeltaValidationError(
                f"{name}: delta dtype {got.dtype} != parent dtype {spec.dtype}; "
                "save the delta in the parent's dtype"
            )
    report = check_values(DenseDelta(p), parent, limits)
    report.sha256 = sha256_file(p)
    return report


def check_values(
    delta: DeltaSource, parent: Parent, limits: ValidationLimits = ValidationLimits()
) -> DeltaReport:
    """Finite values, matching shapes, and the relative-norm cap, one tensor at a time.

    Works for any source (dense file, memory, LoRA adapter); names the source lacks are
    treated as unchanged, names the parent lacks are errors.
    """
    expected = _parent_specs(parent)
    unknown = sorted(set(delta.names()) - set(expected))
    if unknown:
        raise DeltaValidationError(
            f"delta has tensors the parent model does not have: {_fmt(unknown)}"
        )
    d2 = p2 = 0.0
    changed = []
    for name, spec in expected.items():
        base = _parent_get(parent, name)
        if base.is_floating_point():
            p2 += float(base.double().pow(2).sum())
        t = delta.get(name)
        if t is None:
            continue
        if tuple(t.shape) != spec.shape:
            raise DeltaValidationError(
                f"{name}: delta shape {list(t.shape)} != parent shape {list(spec.shape)}"
            )
        if not t.is_floating_point():
            if bool(t.any()):
                raise DeltaValidationError(
                    f"{name}: non-floating tensors must not change (delta must be 0)"
                )
            continue
        if not bool(torch.isfinite(t).all()):
            bad = int((~torch.isfinite(t)).sum())
            raise DeltaValidationError(
                f"{name}: {bad} non-finite value(s) (NaN/Inf); fix the training run"
            )
        sq = float(t.double().pow(2).sum())
        if sq > 0:
            changed.append(name)
        d2 += sq
    dn, pn = math.sqrt(d2), math.sqrt(p2)
    rel = dn / pn if pn > 0 else (0.0 if dn == 0 else math.inf)
    if rel > limits.max_relative_norm:
        raise DeltaValidationError(
            f"delta norm is {rel:.3g} of the parent's norm, "
            f"over the cap of {limits.max_relative_norm:g}; "
            "a fine-tuning delta should be a small change "
            "(check it is fine-tuned − parent, not the weights)"
        )
    return DeltaReport(None, len(expected), dn, pn, rel, changed)


def architecture_mismatch(declared: Parent, current: Parent) -> str | None:
    """Why a delta made on ``declared`` cannot be applied to ``current`` as a task vector, or
    None: the two must hold the same tensor names, shapes and dtypes (the vocabulary is the
    embedding's first dimension). Headers only, no tensor is read. In one network every
    version has its base's architecture (merges keep shapes), so this refuses only a store
    that was tampered with or a network whose base was swapped."""
    a, b = _parent_specs(declared), _parent_specs(current)
    if set(a) != set(b):
        gone, new = sorted(set(a) - set(b)), sorted(set(b) - set(a))
        return (
            f"tensors only in the declared parent: {_fmt(gone)}; "
            f"only in the current version: {_fmt(new)}"
        )
    for name, spec in a.items():
        if spec != b[name]:
            return (
                f"{name}: {spec.dtype} {list(spec.shape)} in the declared parent, "
                f"{b[name].dtype} {list(b[name].shape)} in the current version"
            )
    return None


@functools.lru_cache(maxsize=64)
def folders_mismatch(declared: str, current: str) -> str | None:
    """:func:`architecture_mismatch` of two model folders, cached by path: only for folders
    that never change (the coordinator's store names versions by their hash)."""
    return architecture_mismatch(ModelSource(declared), ModelSource(current))


def validate_lora_adapter(
    folder: str | Path, parent: Parent, limits: ValidationLimits = ValidationLimits()
) -> DeltaReport:
    """Validate a PEFT LoRA adapter folder against the parent (expanding one tensor at a time)."""
    from mergenet.deltas.lora import LoraDelta

    folder = Path(folder)
    weights = folder / "adapter_model.safetensors"
    if weights.exists() and weights.stat().st_size > limits.max_file_bytes:
        raise DeltaTooLarge(f"adapter is over the {limits.max_file_bytes}-byte cap")
    base = parent if isinstance(parent, ModelSource) else None
    source = LoraDelta(folder, base=base)
    source.check_against(_parent_specs(parent))
    report = check_values(source, parent, limits)
    report.sha256 = sha256_file(weights)
    return report


def delta_cosine(a: DeltaSource, b: DeltaSource) -> float:
    """Cosine similarity of two deltas over all tensors (for near-duplicate rejection)."""
    dot = na = nb = 0.0
    for name in sorted(set(a.names()) | set(b.names())):
        ta, tb = a.get(name), b.get(name)
        if ta is not None:
            na += float(ta.double().pow(2).sum())
        if tb is not None:
            nb += float(tb.double().pow(2).sum())
        if ta is not None and tb is not None:
            dot += float((ta.double() * tb.double()).sum())
    if na == 0 or nb == 0:
        return 0.0
    return dot / math.sqrt(na * nb)

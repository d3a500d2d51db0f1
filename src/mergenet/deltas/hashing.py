"""sha256 of state dicts: a model version's identity, independent of how it was serialised.

The sha256 of a file (what a contributor signs, what the store is keyed by) is
:func:`mergenet.protocol.hashes.sha256_file`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

import torch


def _update(h: hashlib._Hash, name: str, t: torch.Tensor) -> None:
    h.update(f"{name}\0{str(t.dtype).removeprefix('torch.')}\0{tuple(t.shape)}\0".encode())
    h.update(t.detach().contiguous().reshape(-1).view(torch.uint8).numpy().data)


def state_dict_sha256(
    tensors: Mapping[str, torch.Tensor] | Iterable[tuple[str, torch.Tensor]],
) -> str:
    """Canonical hash: names in sorted order, each with dtype, shape and raw bytes."""
    items = tensors.items() if isinstance(tensors, Mapping) else tensors
    pairs = sorted(items, key=lambda kv: kv[0]) if isinstance(tensors, Mapping) else items
    h = hashlib.sha256()
    for name, t in pairs:
        _update(h, name, t)
    return h.hexdigest()

"""Output buffers backed by transparent huge pages.

A merge writes a brand-new state dict; on Linux, first-touching freshly allocated 4 KiB pages
costs about as much as the merge arithmetic itself (measured here: ``torch.add`` into a new
tensor runs at ~45% of ``torch.add`` into an existing one). Large outputs are therefore
mapped anonymously with ``MADV_HUGEPAGE`` (512× fewer faults) and wrapped as tensors; the
tensor owns the mapping, which is released when the tensor is. Anywhere that fails (other
OSes, THP disabled) this falls back to ``torch.empty``. Mappings are whole huge pages, so a
tensor of at least ``_MIN_BYTES`` (4 MiB) wastes at most a third of itself, and a large one
(where it matters) under 1%; writing a fresh 6 MiB tensor this way took 0.53 ms against
1.23 ms on 4 KiB pages.
"""

from __future__ import annotations

import mmap

import torch

_HUGE = 2 << 20
_MIN_BYTES = 4 << 20


def empty_f32(n: int) -> torch.Tensor:
    """An uninitialised float32 tensor of ``n`` elements, huge-page backed when large."""
    nbytes = n * 4
    if nbytes < _MIN_BYTES or not hasattr(mmap, "MADV_HUGEPAGE"):
        return torch.empty(n, dtype=torch.float32)
    try:
        size = (nbytes + _HUGE - 1) // _HUGE * _HUGE
        mm = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        mm.madvise(mmap.MADV_HUGEPAGE)
        return torch.frombuffer(mm, dtype=torch.float32, count=n)
    except (OSError, ValueError, AttributeError):
        return torch.empty(n, dtype=torch.float32)

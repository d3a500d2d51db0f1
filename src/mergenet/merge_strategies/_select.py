"""Exact magnitude selection and reproducible Bernoulli masks, the two costly steps of TIES/DARE.

mergekit's magnitude pruning argsorts |δ| (O(n log n)); keeping the top ``k`` is the same as
keeping everything ``>= t`` where ``t`` is the k-th largest |δ|, which numpy's introselect
finds in O(n). The two agree exactly unless several entries tie at ``t``; then mergekit keeps
an arbitrary subset of the tied entries and we keep all of them (documented, and irrelevant
for real-valued deltas).

DARE's random drop is reproducible from an explicit ``torch.Generator``: one 63-bit draw of
it seeds numpy's SFC64 bit generator (a fixed, documented stream), whose raw 64-bit outputs
each feed four 16-bit uniform lanes, so the keep probability is ``density`` rounded to a
multiple of 2⁻¹⁶ (|error| ≤ 7.7e-6). SFC64 makes a 64-bit word in about half the time of
torch's Mersenne Twister (which costs two 32-bit steps per word), and ``random_raw`` fills
numpy's huge-page-backed allocation without holding the GIL, so the deltas' masks are drawn
in parallel. The draw is the merge's largest fixed cost, hence the care.
"""

from __future__ import annotations

import threading

import numpy as np
import torch

_local = threading.local()


def magnitude_keep_count(density: float, numel: int) -> int:
    """mergekit's count: ``max(1, int(density * numel))`` (0 for density <= 0 or empty)."""
    if density <= 0 or numel == 0:
        return 0
    return max(1, int(density * numel))


def kth_largest_abs(flat: torch.Tensor, k: int, scratch: np.ndarray | None = None) -> float:
    """The k-th largest ``|x|`` of a 1-D float tensor (1 <= k <= numel), exactly."""
    n = flat.numel()
    if not 1 <= k <= n:
        raise ValueError(f"k={k} out of range for {n} elements")
    src = flat.detach().cpu()
    if src.dtype != torch.float32:
        src = src.float()
    if scratch is None:
        scratch = getattr(_local, "scratch", None)
        if scratch is None or scratch.size < n:
            scratch = _local.scratch = np.empty(n, np.float32)  # reused: no page faults
    buf = scratch[:n]
    np.abs(src.numpy(), out=buf)
    buf.partition(n - k)
    return float(buf[n - k])


def bernoulli_threshold(density: float) -> int:
    """The int16 threshold T with P(lane < T) = density rounded to a multiple of 2⁻¹⁶."""
    return round(min(1.0, max(0.0, density)) * 65536) - 32768


def random_lanes(n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` uniform int16 values drawn from a stream seeded by ``generator`` (4 per word)."""
    seed = int(torch.randint(0, 2**63 - 1, (1,), generator=generator))
    words = np.random.SFC64(seed).random_raw((n + 3) // 4)
    return torch.from_numpy(words).view(torch.int16)[:n]


def bernoulli_keep(n: int, density: float, generator: torch.Generator) -> torch.Tensor:
    """A bool mask of ``n`` independent draws with P(True) = density (quantised, see above)."""
    lanes = random_lanes(n, generator)
    threshold = bernoulli_threshold(density)
    if threshold > 32767:
        return torch.ones(n, dtype=torch.bool)
    return lanes < threshold

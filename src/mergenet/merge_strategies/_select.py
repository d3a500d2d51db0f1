"""Exact magnitude selection and reproducible Bernoulli masks, the two costly steps of TIES/DARE.

mergekit's magnitude pruning argsorts |δ| (O(n log n)); keeping the top ``k`` is the same as
keeping everything ``>= t`` where ``t`` is the k-th largest |δ|, which numpy's introselect
finds in O(n). The two agree exactly unless several entries tie at ``t``; then mergekit keeps
an arbitrary subset of the tied entries and we keep all of them (documented, and irrelevant
for real-valued deltas).

DARE's random drop is reproducible from an explicit ``torch.Generator``: one 63-bit draw of
it seeds numpy's SFC64 bit generator (a fixed stream), whose raw 64-bit outputs are cut into
bytes; an element is kept when its 16-bit uniform value is below ``density`` rounded to a
multiple of 2⁻¹⁶ (|error| ≤ 7.7e-6), a comparison settled by one byte except in 1 case of
256 (``draw_keep``). This is the merge's largest fixed cost, hence the care: SFC64 makes a
64-bit word in about half the time of torch's Mersenne Twister, ~8 bits per element instead
of 16 halve the words needed, and numpy compares bytes with SIMD and without the GIL, so the
deltas' masks are drawn in parallel. (Before this, the mask was the int16 lanes of torch's
generator; a seed now gives a different, equally distributed mask.)
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


_SAMPLE = 1 << 16
_SAMPLE_MARGIN = 1024  # sample ranks either side: > 8 binomial s.d. (≤ 128 at 2¹⁶ samples)


def kth_largest_abs(flat: torch.Tensor, k: int, scratch: np.ndarray | None = None) -> float:
    """The k-th largest ``|x|`` of a 1-D float tensor (1 <= k <= numel), exactly.

    Introselect over all n values costs ~6 ns each, most of a TIES merge. A strided sample of
    2¹⁶ values brackets the answer instead: count the values above the bracket, gather the
    ~3% inside it and select among those (a few cheap vectorised passes). The sample only
    guides the search, so the result is exact whatever it holds; if the answer falls outside
    the bracket (adversarial data), the full introselect runs. NaN counts as the largest
    value, as in ``np.partition``.
    """
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
    if n >= 4 * _SAMPLE:
        found = _bracketed_kth_largest(buf, k)
        if found is not None:
            return found
    buf.partition(n - k)
    return float(buf[n - k])


def _bools(name: str, n: int) -> np.ndarray:
    """A per-thread bool buffer, reused (fresh ones cost a page fault per 4 KiB)."""
    buf = getattr(_local, name, None)
    if buf is None or buf.size < n:
        buf = np.empty(n, np.bool_)
        setattr(_local, name, buf)
    return buf[:n]


def _bracketed_kth_largest(a: np.ndarray, k: int) -> float | None:
    """The k-th largest of ``a`` if a sample brackets it, else None (see ``kth_largest_abs``)."""
    n = a.size  # >= 4 samples' worth: the stride is at least 4
    sample = np.sort(a[:: n // _SAMPLE][:_SAMPLE])
    at = round(_SAMPLE * (1 - k / n))  # ascending rank of the answer in the sample
    lo = sample[at - _SAMPLE_MARGIN] if at - _SAMPLE_MARGIN >= 0 else np.float32(0)
    hi = sample[at + _SAMPLE_MARGIN] if at + _SAMPLE_MARGIN < _SAMPLE else np.float32(np.inf)
    le_hi = np.less_equal(a, hi, out=_bools("le", n))
    above = n - int(np.count_nonzero(le_hi))  # > hi, NaN included
    in_band = np.greater_equal(a, lo, out=_bools("ge", n))
    band = a[np.logical_and(in_band, le_hi, out=in_band)]
    rank = k - above  # the answer is the rank-th largest of the band
    if not 1 <= rank <= band.size:
        return None
    band.partition(band.size - rank)
    return float(band[band.size - rank])


def bernoulli_threshold(density: float) -> int:
    """The int16 threshold T with P(lane < T) = density rounded to a multiple of 2⁻¹⁶."""
    return round(min(1.0, max(0.0, density)) * 65536) - 32768


MASK_CHUNK = 1 << 18
"""Elements per draw of a mask. Part of the stream layout (each chunk's tie bytes follow its
own bytes), so a mask drawn chunk by chunk equals ``bernoulli_keep``'s only with this size."""


def mask_stream(generator: torch.Generator) -> np.random.SFC64:
    """The SFC64 bit generator a DARE mask is drawn from, seeded by one draw of ``generator``."""
    return np.random.SFC64(int(torch.randint(0, 2**63 - 1, (1,), generator=generator)))


def draw_keep(stream: np.random.SFC64, threshold: int, out: np.ndarray) -> None:
    """Fill the bool array ``out`` with independent draws, True with probability
    ``(threshold + 32768) / 65536`` (``threshold`` from ``bernoulli_threshold``, < 32768).

    The 16-bit comparison ``lane < p`` is split in two bytes: a random byte below p's high
    byte keeps, above it drops, and only a byte equal to it (1 in 256) draws a second byte to
    compare with p's low byte. Same probability, ~8 random bits per element instead of 16.
    """
    hi, lo = divmod(threshold + 32768, 256)
    m = out.size
    first = stream.random_raw((m + 7) // 8).view(np.uint8)[:m]
    np.less(first, hi, out=out)
    if lo:
        tie = np.flatnonzero(first == hi)
        if tie.size:
            second = stream.random_raw((tie.size + 7) // 8).view(np.uint8)[: tie.size]
            out[tie] = second < lo


def bernoulli_keep(n: int, density: float, generator: torch.Generator) -> torch.Tensor:
    """DARE's bool keep mask of ``n`` independent draws with P(True) = density (quantised,
    see above), exactly as the merge kernel draws it from ``generator``."""
    threshold = bernoulli_threshold(density)
    if threshold > 32767:
        return torch.ones(n, dtype=torch.bool)
    stream = mask_stream(generator)
    keep = np.empty(n, np.bool_)
    for s in range(0, n, MASK_CHUNK):
        draw_keep(stream, threshold, keep[s : min(n, s + MASK_CHUNK)])
    return torch.from_numpy(keep)

"""Split elementwise work over chunks and the machine's cores.

torch parallelises one op at a time across its intra-op threads, which costs a barrier per op
and stalls badly when another process holds a core. The fused kernels instead run a chain of
ops per chunk and hand contiguous blocks of chunks to a small thread pool (torch releases the
GIL inside ops). Each pool thread sets its own torch thread count to 1 (with the OpenMP
backend the setting is per thread), so every op runs serially on the calling thread whatever
the chunk size: chunks can be as large as the cache allows, not capped at torch's 32768-element
grain size, and reductions inside a chunk (the rescale sums of DARE) round the same way for
any number of workers. When there is more than one worker, all work goes through the pool,
even a single chunk, for the same reason. Every chunk's result depends only on its own inputs,
so the output is identical for any number of workers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch

CHUNK = 1 << 15
_POOL: ThreadPoolExecutor | None = None


def workers() -> int:
    """How many pool threads to use: torch's intra-op thread count (of the calling thread)."""
    return max(1, torch.get_num_threads())


def _serial_thread() -> None:
    """Pool initializer: torch ops on this thread never fan out to the intra-op pool."""
    torch.set_num_threads(1)


def pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None or _POOL._max_workers != workers():
        _POOL = ThreadPoolExecutor(
            max_workers=workers(), thread_name_prefix="mergenet-merge", initializer=_serial_thread
        )
    return _POOL


def for_chunks(n: int, fn: Callable[[int, int], None], chunk: int | None = None) -> None:
    """Call ``fn(start, end)`` for every chunk of ``range(n)``, blocks of chunks in parallel."""
    chunk = chunk or CHUNK
    nchunks = (n + chunk - 1) // chunk
    w = min(workers(), nchunks)
    if nchunks == 0:
        return
    if workers() <= 1:
        for s in range(0, n, chunk):
            fn(s, min(n, s + chunk))
        return
    per = (nchunks + w - 1) // w

    def block(i: int) -> None:
        for c in range(i * per, min(nchunks, (i + 1) * per)):
            s = c * chunk
            fn(s, min(n, s + chunk))

    for f in [pool().submit(block, i) for i in range(w)]:
        f.result()


T = TypeVar("T")


def map_tasks(fns: Sequence[Callable[[], T]]) -> list[T]:
    """Run independent tasks (one per delta) on the pool; results in order."""
    if workers() <= 1:
        return [f() for f in fns]
    return [f.result() for f in [pool().submit(fn) for fn in fns]]

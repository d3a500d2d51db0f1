"""Split elementwise work over cache-sized chunks and the machine's cores.

torch parallelises one op at a time across its intra-op threads, which costs a barrier per op
and stalls badly when another process holds a core. The fused kernels instead run a chain of
small ops per chunk (≤ 32768 elements: below torch's grain size, so each op runs on the
calling thread with its data in cache) and hand contiguous blocks of chunks to a small
thread pool (torch releases the GIL inside ops). Every chunk's result depends only on its
own inputs, so the output is identical for any number of workers.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch

CHUNK = 1 << 15
_POOL: ThreadPoolExecutor | None = None


def workers() -> int:
    return max(1, torch.get_num_threads())


def pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None or _POOL._max_workers != workers():  # type: ignore[attr-defined]
        _POOL = ThreadPoolExecutor(max_workers=workers(), thread_name_prefix="mergenet-merge")
    return _POOL


def for_chunks(n: int, fn: Callable[[int, int], None], chunk: int | None = None) -> None:
    """Call ``fn(start, end)`` for every chunk of ``range(n)``, blocks of chunks in parallel."""
    chunk = chunk or CHUNK
    nchunks = (n + chunk - 1) // chunk
    w = min(workers(), nchunks)
    if w <= 1:
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


def map_tasks(fns: list[Callable[[], object]]) -> list[object]:
    """Run independent tasks (one per delta) on the pool; results in order."""
    if workers() <= 1 or len(fns) <= 1:
        return [f() for f in fns]
    return [f.result() for f in [pool().submit(fn) for fn in fns]]

"""``ProcessEvaluationPool``: the embedded ``EvaluationPool``, worker processes on this machine.

A process pool sized to the machine (one torch thread per worker), steady state — a finished
task frees its slot at once, there is no generation barrier. ``workers=0`` runs tasks in a
background thread of this process (handy for benchmarks and debugging; same code path). Each
process runs :mod:`mergenet.workers.evaluate` over the coordinator's store folder.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import time

from mergenet.protocol.evaluation import EvalOutcome, EvalTask, WorkerEnv
from mergenet.workers.evaluate import init_worker, run_task


def default_workers() -> int:
    """One worker per core (each single-threaded); the API thread is mostly idle."""
    return max(1, os.cpu_count() or 1)


class ProcessEvaluationPool:
    """The in-process implementation of :class:`EvaluationPool` (see module docstring)."""

    def __init__(self, env: WorkerEnv, workers: int | None = None):
        self.env = env
        self.workers = default_workers() if workers is None else workers
        self._futures: dict[cf.Future[EvalOutcome], str] = {}
        if self.workers == 0:
            self._executor: cf.Executor = cf.ThreadPoolExecutor(
                1, initializer=init_worker, initargs=(env,)
            )
        else:
            self._executor = cf.ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=init_worker,
                initargs=(env,),
            )

    @property
    def capacity(self) -> int:
        return max(1, self.workers)

    def submit(self, task: EvalTask) -> None:
        self._futures[self._executor.submit(run_task, task)] = task.key

    def in_flight(self) -> int:
        return len(self._futures)

    def poll(self, timeout: float) -> list[EvalOutcome]:
        if not self._futures:
            time.sleep(timeout)
            return []
        done, _ = cf.wait(list(self._futures), timeout=timeout, return_when=cf.FIRST_COMPLETED)
        out = []
        for fut in done:
            key = self._futures.pop(fut)
            try:
                out.append(fut.result())
            except Exception as exc:  # a dead worker process (BrokenProcessPool) and the like
                out.append(EvalOutcome(key=key, error=f"worker failed: {exc!r}"))
        return out

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._futures.clear()

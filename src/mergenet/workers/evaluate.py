"""The code a worker runs for one evaluation task: resolve, build, score (any pool runs this).

A task (:mod:`mergenet.protocol.evaluation`) names its parent version by hash and its
contributions by sha256; ``_Worker`` resolves them through an ``ArtifactSource`` — the
coordinator's store folder when it shares the disk (the in-process pool), or a local cache
filled over HTTP by content hash when it does not (:mod:`mergenet.workers.fetch`) — rebuilds
the candidate (``recipe.build``), scores it and its parent on the same seeded sample of the
rows the task carries (``SampleSpec.data``; a task without rows names a row set on this
machine's disk, ``WorkerEnv.row_sets``; rows are never downloaded) and returns both
``EvalResult``s plus ‖θ_f − θ_b‖/‖θ_b‖.

Per process it keeps the most recent parent (:class:`~mergenet.workers.parent_model.ParentModel`:
the model and its tokenizer, no copy of its weights; each candidate is merged into the model's
own tensors and the parent read back from its file, even when the task fails), parent results
per (parent, sample) — keyed by ``SampleSpec.key()``, which includes a digest of the rows, so
two tasks with one seed but other rows never share a parent result — and local row sets, so
consecutive tasks on one parent load it once. One parent, not two: a second cached model would
double the worker's memory (the goal is ≤ 2× the model's bytes plus a constant), and loading a
parent again costs 2–4 s on a 104M model (AMD EPYC, 2 shared cores, load ~6: transformers
maps its weights lazily; they are then checked against the file once).
"""

from __future__ import annotations

import gc
import os
import threading
import time
import traceback
from collections import OrderedDict
from typing import Any

import torch

from mergenet.evaluator.items import Item
from mergenet.evaluator.sampling import sample_for_scoring
from mergenet.evaluator.scoring import evaluate_items
from mergenet.merge_strategies.recipe import Recipe
from mergenet.protocol.artifacts import ArtifactLayout, ArtifactSource
from mergenet.protocol.evaluation import EvalOutcome, EvalTask, SampleSpec, WorkerEnv
from mergenet.protocol.jsonl import read_jsonl
from mergenet.workers.fetch import ArtifactCache, cache_for
from mergenet.workers.parent_model import ParentModel

SampleKey = tuple[str, int, int, str]
"""``SampleSpec.key()``: (name, n, seed, digest of the rows)."""
PARENTS_KEPT = 1
"""Parent models a worker process keeps loaded (see the module docstring)."""


class _Worker:
    """Per-process cache of parent models, tokenizers and row sets."""

    def __init__(self, env: WorkerEnv):
        torch.set_num_threads(max(1, env.torch_threads))
        self.env = env
        self.fetcher: ArtifactCache | None = None
        self.artifacts: ArtifactSource
        if env.over_http:
            self.fetcher = cache_for(env)
            self.artifacts = self.fetcher
        elif env.store_root:
            self.artifacts = ArtifactLayout(env.store_root)
        else:
            raise ValueError(
                "WorkerEnv needs store_root (a shared artifact folder) or coordinator_url "
                "(fetch artifacts over HTTP)"
            )
        self._parents: OrderedDict[str, ParentModel] = OrderedDict()
        self._parent_results: OrderedDict[tuple[str, SampleKey], dict[str, Any]] = OrderedDict()
        self._rows: dict[str, list[dict[str, Any]]] = {}

    def rows(self, name: str) -> list[dict[str, Any]]:
        """A row set on this machine's disk (tasks that carry no rows: benchmarks)."""
        if name not in self._rows:
            known = self.env.row_sets
            if name not in known:
                raise KeyError(
                    f"the task carries no rows and row set {name!r} is not on this worker's "
                    f"disk (known: {sorted(known)}); rows are never downloaded"
                )
            self._rows[name] = read_jsonl(known[name])
        return self._rows[name]

    def parent(self, version_hash: str) -> ParentModel:
        """The parent version's model, loaded once (a poisoned one is loaded again)."""
        cached = self._parents.get(version_hash)
        if cached is not None and not cached.poisoned:
            self._parents.move_to_end(version_hash)
            return cached
        self._drop(version_hash)
        while len(self._parents) >= PARENTS_KEPT:
            self._drop(next(iter(self._parents)))  # freed before the next one is loaded
        parent = ParentModel(self.artifacts.version_dir(version_hash))
        self._parents[version_hash] = parent
        return parent

    def _drop(self, version_hash: str) -> None:
        parent = self._parents.pop(version_hash, None)
        if parent is not None:
            parent.close()
            del parent
            gc.collect()  # a model's module graph has reference cycles: free it now

    def items(self, sample: SampleSpec) -> tuple[list[Item], list[Item]]:
        rows = list(sample.data) if sample.data else self.rows(sample.rows)
        s = sample_for_scoring(rows, sample.n, sample.seed)
        items = [Item.from_dharma_row(r) for rows in s.rows.values() for r in rows]
        loss = [Item.from_dharma_row(r) for rows in s.loss_rows.values() for r in rows]
        return items, loss

    def run(self, task: EvalTask) -> EvalOutcome:
        started = time.perf_counter()
        recipe = Recipe.model_validate(task.recipe)
        parent = self.parent(recipe.parent)
        model, tokenizer = parent.model, parent.tokenizer
        items, loss_items = self.items(task.sample)
        key = (recipe.parent, task.sample.key())
        with torch.no_grad():
            if key not in self._parent_results:
                res = evaluate_items(model, tokenizer, items, loss_items)
                self._parent_results[key] = res.to_dict()
                while len(self._parent_results) > 64:
                    self._parent_results.popitem(last=False)
            with parent.candidate(recipe, self.artifacts.delta_path) as distance:
                result = evaluate_items(model, tokenizer, items, loss_items).to_dict()
        return EvalOutcome(
            key=task.key,
            result=result,
            parent_result=self._parent_results[key],
            relative_distance=distance,
            seconds=time.perf_counter() - started,
        )


_WORKER: _Worker | None = None


def init_worker(env: WorkerEnv) -> None:
    global _WORKER
    _WORKER = _Worker(env)
    _exit_with_parent()


def _exit_with_parent() -> None:
    """End this evaluation process when the coordinator is gone (killed, crashed), instead
    of living on as an orphan that holds a core: a daemon thread watches the parent pid."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="mergenet-parent-watch", daemon=True).start()


def run_task(task: EvalTask) -> EvalOutcome:
    assert _WORKER is not None, "worker not initialised"
    try:
        return _WORKER.run(task)
    except Exception as exc:  # reported, not raised: one bad recipe must not stop the loop
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        return EvalOutcome(key=task.key, error=detail)


def run_task_here(env: WorkerEnv, task: EvalTask) -> EvalOutcome:
    """Run one task in this process (tests, the CMA-ES benchmark's held-out checks)."""
    global _WORKER
    if _WORKER is None or _WORKER.env != env:
        _WORKER = _Worker(env)
    return run_task(task)

"""The evaluation pool: tasks are (recipe, sample spec) → measured results, never weights.

A task names its parent version by hash and its contributions by sha256; the worker rebuilds
the candidate from the artifact store (``recipe.build``), scores it and its parent on the same
seeded sample of a named row set, and returns both ``EvalResult``s plus ‖θ_f − θ_b‖/‖θ_b‖.
Because only recipes travel, the same interface fits a Celery worker or a Petals peer on
another machine: its ``WorkerEnv`` names the coordinator's URL instead of a store folder, and
the worker fetches versions, deltas and row sets by content hash into a local cache, checking
every hash (:mod:`mergenet.distributed.fetch`).

``ProcessEvaluationPool`` is the embedded default: a process pool sized to the machine (one
torch thread per worker), steady state — a finished task frees its slot at once, there is no
generation barrier. ``workers=0`` runs tasks in a background thread of this process (handy for
benchmarks and debugging; same code path).
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import multiprocessing
import os
import time
import traceback
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from mergenet.evaluator.results import EvalResult


@dataclass(frozen=True)
class SampleSpec:
    """Which rows: ``n`` per task (and min(n², held) loss rows) of row set ``rows``, seeded."""

    rows: str
    n: int
    seed: int


@dataclass(frozen=True)
class EvalTask:
    key: str
    """The caller's id for this task (e.g. ``"c17:selection"``)."""
    recipe: dict[str, Any]
    sample: SampleSpec


@dataclass
class EvalOutcome:
    key: str
    result: dict[str, Any] | None = None
    parent_result: dict[str, Any] | None = None
    relative_distance: float = 0.0
    seconds: float = 0.0
    error: str | None = None

    def candidate(self) -> EvalResult:
        assert self.result is not None
        return EvalResult.from_dict(self.result)

    def parent(self) -> EvalResult:
        assert self.parent_result is not None
        return EvalResult.from_dict(self.parent_result)


@dataclass(frozen=True)
class WorkerEnv:
    """What a worker needs to resolve recipes and samples: where artifacts are, no state.

    Two modes. Shared disk (the in-process pool): ``store_root`` is the coordinator's artifact
    store and ``row_sets`` maps row-set names to JSONL paths. HTTP (workers elsewhere):
    ``coordinator_url`` is where the coordinator serves artifacts by content hash and
    ``row_set_sha256`` maps row-set names to the sha256 of their JSONL; a worker started with
    its own coordinator URL (``mergenet worker --coordinator``) uses that one instead, since
    it knows best how it reaches the coordinator.
    """

    store_root: str = ""
    row_sets: dict[str, str] = field(default_factory=dict)
    """Row-set name → Dharma JSONL path (e.g. ``{"dev": …, "heldout": …}``)."""
    torch_threads: int = 1
    coordinator_url: str | None = None
    row_set_sha256: dict[str, str] = field(default_factory=dict)
    """Row-set name → sha256 of its JSONL (HTTP mode)."""

    @property
    def over_http(self) -> bool:
        return self.coordinator_url is not None


class EvaluationPool(Protocol):
    """Asynchronous evaluation: submit tasks, collect whichever finish first."""

    @property
    def capacity(self) -> int: ...

    def submit(self, task: EvalTask) -> None: ...

    def in_flight(self) -> int: ...

    def poll(self, timeout: float) -> list[EvalOutcome]: ...

    def close(self) -> None: ...


# --------------------------------------------------------------------------- worker side


class _Worker:
    """Per-process cache of parent models, tokenizers and row sets."""

    def __init__(self, env: WorkerEnv):
        import torch

        torch.set_num_threads(max(1, env.torch_threads))
        self.env = env
        self.store_root = Path(env.store_root)
        self.fetcher = None
        if env.over_http:
            from mergenet.distributed.fetch import cache_for

            self.fetcher = cache_for(env)
        elif not env.store_root:
            raise ValueError(
                "WorkerEnv needs store_root (a shared artifact folder) or coordinator_url "
                "(fetch artifacts over HTTP)"
            )
        self._parents: OrderedDict[str, tuple[Any, dict[str, Any], Any]] = OrderedDict()
        self._parent_results: OrderedDict[tuple[str, SampleSpec], dict[str, Any]] = OrderedDict()
        self._rows: dict[str, list[dict[str, Any]]] = {}

    def rows(self, name: str) -> list[dict[str, Any]]:
        if name not in self._rows:
            known = self.env.row_set_sha256 if self.fetcher else self.env.row_sets
            if name not in known:
                raise KeyError(f"unknown row set {name!r}; known: {sorted(known)}")
            path = self.fetcher.rows_path(known[name]) if self.fetcher else known[name]
            with open(path) as fh:
                self._rows[name] = [json.loads(line) for line in fh if line.strip()]
        return self._rows[name]

    def parent(self, version_hash: str) -> tuple[Any, dict[str, Any], Any]:
        """(model, parent state dict copy, tokenizer), two most recent parents cached."""
        if version_hash in self._parents:
            self._parents.move_to_end(version_hash)
            return self._parents[version_hash]
        from transformers import AutoModelForCausalLM, AutoTokenizer

        folder = (
            self.fetcher.version_dir(version_hash)
            if self.fetcher
            else self.store_root / "versions" / version_hash
        )
        model = AutoModelForCausalLM.from_pretrained(folder, dtype="float32").eval()
        tokenizer = AutoTokenizer.from_pretrained(folder)
        state = {n: t.detach().clone() for n, t in model.state_dict().items()}
        self._parents[version_hash] = (model, state, tokenizer)
        while len(self._parents) > 2:
            self._parents.popitem(last=False)
        return self._parents[version_hash]

    def items(self, sample: SampleSpec) -> tuple[list[Any], list[Any]]:
        from mergenet.ecosystem.rows import Item
        from mergenet.evaluator.sampling import sample_for_scoring

        s = sample_for_scoring(self.rows(sample.rows), sample.n, sample.seed)
        items = [Item.from_dharma_row(r) for rows in s.rows.values() for r in rows]
        loss = [Item.from_dharma_row(r) for rows in s.loss_rows.values() for r in rows]
        return items, loss

    def delta_path(self, sha256: str) -> Path:
        if self.fetcher is not None:
            return self.fetcher.delta_path(sha256)
        folder = self.store_root / "deltas" / sha256[:2]
        lora = folder / f"{sha256}.lora"
        return lora if lora.exists() else folder / f"{sha256}.safetensors"

    def run(self, task: EvalTask) -> EvalOutcome:
        import torch

        from mergenet.evaluator.score import relative_distance_between
        from mergenet.evaluator.scoring import evaluate_items
        from mergenet.merge_strategies.recipe import Recipe, build

        started = time.perf_counter()
        recipe = Recipe.model_validate(task.recipe)
        model, parent_state, tokenizer = self.parent(recipe.parent)
        items, loss_items = self.items(task.sample)
        key = (recipe.parent, task.sample)
        with torch.no_grad():
            if key not in self._parent_results:
                model.load_state_dict(parent_state)
                res = evaluate_items(model, tokenizer, items, loss_items)
                self._parent_results[key] = res.to_dict()
                while len(self._parent_results) > 64:
                    self._parent_results.popitem(last=False)
            merged = build(recipe, parent_state, self.delta_path, check_parent=False)
            distance = relative_distance_between(merged, parent_state)
            model.load_state_dict(merged)
            result = evaluate_items(model, tokenizer, items, loss_items).to_dict()
            model.load_state_dict(parent_state)
        return EvalOutcome(
            key=task.key,
            result=result,
            parent_result=self._parent_results[key],
            relative_distance=distance,
            seconds=time.perf_counter() - started,
        )


_WORKER: _Worker | None = None


def _init_worker(env: WorkerEnv) -> None:
    global _WORKER
    _WORKER = _Worker(env)
    _exit_with_parent()


def _exit_with_parent() -> None:
    """End this evaluation process when the coordinator is gone (killed, crashed), instead
    of living on as an orphan that holds a core: a daemon thread watches the parent pid."""
    import os
    import threading
    import time

    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="mergenet-parent-watch", daemon=True).start()


def _run_task(task: EvalTask) -> EvalOutcome:
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
    return _run_task(task)


# --------------------------------------------------------------------------- pool side


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
                1, initializer=_init_worker, initargs=(env,)
            )
        else:
            self._executor = cf.ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(env,),
            )

    @property
    def capacity(self) -> int:
        return max(1, self.workers)

    def submit(self, task: EvalTask) -> None:
        self._futures[self._executor.submit(_run_task, task)] = task.key

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


def outcome_to_json(outcome: EvalOutcome) -> dict[str, Any]:
    return asdict(outcome)

"""``PetalsEvaluationPool``: the coordinator's ``EvaluationPool`` over a Petals swarm.

Why a pool in the coordinator and not Celery workers with a Petals backend: a Petals
evaluation is not one process's work. It places a candidate's blocks on several server peers
and routes each forward through all of them, so the unit that fails and is retried is the
*set* of peers, and the one that knows which peers hold which blocks of which candidate is
whoever started them. A Celery worker would have to own a private swarm per task (a second
scheduler behind the first) or share peers with other workers it cannot see. The pool keeps
that state in one place and needs nothing of the coordinator but the ``EvaluationPool``
protocol (the import-linter keeps ``petals`` below ``coordinator``).

Per task, on a worker thread (``capacity`` threads, asynchronous like the other pools):

1. **Parent**: served once per parent version under its own DHT prefix (a ``link_view``
   split over ``servers`` peers) with a scorer process; kept for the two most recent
   parents, restarted when any of its peer groups is gone.
2. **Candidate**: each block range merged on its own (``candidates.merge_part``: per-tensor
   seeded merges, so the slices are exactly the whole merge) into a view, served by its own
   server peer under a prefix unique to the candidate *and the attempt* (``cand-<sha>-<n>``),
   so no forward is ever routed to a dead earlier attempt's announcements or to another
   model's blocks. The client slice (embeddings, final norm, head) is merged the same way.
3. **Scores**: ``evaluate_items`` (the evaluator's own code) drives ``PetalsRemoteLM``,
   parent (cached per parent and sample) and candidate on the same seeded sample.
4. **Distance**: ``‖θ_f − θ_b‖/‖θ_b‖`` from per-slice float64 sums of squares taken while each
   slice is merged — what a remote peer would report for its range; no process holds the
   whole candidate. Equal to the local full merge's figure up to summation order.

A peer that dies (the scorer's route fails after ``route_retries`` backoffs instead of
Petals' default of retrying forever), a scorer that stops answering (``scorer_timeout``) or a
peer that does not start costs an attempt: the candidate's peers are stopped, a parent with a
dead peer is restarted, and the task runs again from the start (``attempts`` in all). A
result is only ever assembled from one attempt, so an outcome is a full result or an error
the loop handles. Every process the pool started is stopped by ``close()``.

Measured (tests/petals/test_pool.py, 2 loaded cores, world db45132220f1, 4 blocks over 2
servers, 2 rows per task): one evaluation 77 s through the swarm against 3.5 s in the
process pool — parent served and scored 36 s (once per parent), candidate peers started
18 s, scorer routed 16 s, merge 0.1 s, forwards 1.8 s; peer start-up, not scoring, is the cost.
"""

from __future__ import annotations

import concurrent.futures as cf
import itertools
import logging
import math
import shutil
import threading
import time
import traceback
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mergenet.evaluator.items import Item
from mergenet.evaluator.sampling import sample_for_scoring
from mergenet.evaluator.scoring import evaluate_items
from mergenet.merge_strategies.recipe import Contribution, Recipe
from mergenet.petals import procs
from mergenet.petals.candidates import Part, candidate_prefix, merge_part
from mergenet.petals.client import PetalsRemoteLM, PetalsScorer
from mergenet.petals.swarm import Peer, split_blocks, start_dht, start_servers
from mergenet.petals.views import link_view, num_blocks, tensor_view
from mergenet.protocol.artifacts import ArtifactLayout
from mergenet.protocol.evaluation import EvalOutcome, EvalTask, SampleSpec, WorkerEnv
from mergenet.protocol.jsonl import read_jsonl

log = logging.getLogger(__name__)


@dataclass
class Timing:
    """Where one evaluation's time went (seconds, wall clock on the pool's thread): merging
    and writing the candidate's slices (the peers' merge work); starting its server peers
    until each announced its blocks on the DHT; starting the scorer (joining the DHT, routing
    over the blocks); forwards as measured inside the scorer; ``evaluate_items`` wall clock
    (forwards + transfer + the client's own work); serving and scoring the parent (zero when
    both were cached); attempts used."""

    merge: float = 0.0
    peers: float = 0.0
    routing: float = 0.0
    forwards: float = 0.0
    scoring: float = 0.0
    parent: float = 0.0
    attempts: int = 0


@dataclass(eq=False)
class _Served:
    """A model on the swarm: its server peers and a scorer connected to them."""

    prefix: str
    view: Path
    peers: list[Peer]
    scorer: PetalsScorer | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def alive(self) -> bool:
        groups = all(procs.group_alive(p.pid) for p in self.peers)
        return groups and (self.scorer is None or self.scorer.proc.poll() is None)

    def close(self) -> None:
        if self.scorer is not None:
            self.scorer.close()
        for p in self.peers:
            procs.stop_group(p.pid)


class PetalsEvaluationPool:
    """An :class:`~mergenet.protocol.evaluation.EvaluationPool` scoring through a swarm."""

    def __init__(
        self,
        env: WorkerEnv,
        work_dir: Path,
        *,
        servers: int = 2,
        initial_peers: list[str] | None = None,
        capacity: int = 1,
        attempts: int = 3,
        start_timeout: float = 300.0,
        scorer_timeout: float = 180.0,
        route_retries: int = 3,
    ):
        if not env.store_root:
            raise ValueError("the Petals pool reads artifacts from a shared store_root")
        self.env, self.layout = env, ArtifactLayout(env.store_root)
        self.work_dir = Path(work_dir)
        self.servers, self.attempts = servers, max(1, attempts)
        self.start_timeout, self.scorer_timeout = start_timeout, scorer_timeout
        self.route_retries = route_retries
        self._capacity = max(1, capacity)
        self._dht: Peer | None = None
        if not initial_peers:
            self._dht = start_dht(self.work_dir / "logs" / "dht.log")
            initial_peers = [self._dht.maddr]
        self.initial_peers = list(initial_peers)
        self._executor = cf.ThreadPoolExecutor(self._capacity, thread_name_prefix="petals-eval")
        self._futures: dict[cf.Future[EvalOutcome], str] = {}
        self._lock = threading.Lock()
        self._parents: OrderedDict[str, _Served] = OrderedDict()
        self._parent_results: OrderedDict[tuple[str, Any], dict[str, Any]] = OrderedDict()
        self._tokenizers: dict[str, Any] = {}
        self._ids = itertools.count()
        self._closed = False
        self._candidates: set[_Served] = set()
        self.timings: list[Timing] = []

    @property
    def capacity(self) -> int:
        return self._capacity

    def submit(self, task: EvalTask) -> None:
        self._futures[self._executor.submit(self.run, task)] = task.key

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
            except Exception as exc:  # run() reports its own errors; this is a last resort
                out.append(EvalOutcome(key=key, error=f"petals pool failed: {exc!r}"))
        return out

    def close(self) -> None:
        """Stop every process this pool started: scorers, servers, the bootstrap peer."""
        self._closed = True
        with self._lock:  # in-flight candidates: their scorers fail at once, threads end
            for served in list(self._candidates):
                served.close()
        self._executor.shutdown(wait=True, cancel_futures=True)
        self._futures.clear()
        with self._lock:
            for served in self._parents.values():
                served.close()
            self._parents.clear()
        if self._dht is not None:
            procs.stop_group(self._dht.pid)
            self._dht = None

    def run(self, task: EvalTask) -> EvalOutcome:
        """Score one task, retrying whole attempts; an error outcome once they are spent."""
        started, timing, errors = time.perf_counter(), Timing(), []
        for attempt in range(self.attempts):
            if self._closed:
                errors.append("pool closed")
                break
            timing.attempts = attempt + 1
            try:
                outcome = self._attempt(task, timing)
            except Exception as exc:
                detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
                errors.append(detail)
                log.warning("petals task %s attempt %d failed: %s", task.key, attempt + 1, detail)
                continue
            outcome.seconds = time.perf_counter() - started
            self.timings.append(timing)
            return outcome
        return EvalOutcome(
            key=task.key,
            error=f"petals: {len(errors)} attempt(s) failed; last: {errors[-1] if errors else ''}",
            seconds=time.perf_counter() - started,
        )

    def _attempt(self, task: EvalTask, timing: Timing) -> EvalOutcome:
        recipe = self._located(Recipe.model_validate(task.recipe))
        parent_dir = self.layout.version_dir(recipe.parent)
        tokenizer = self._tokenizer(recipe.parent, parent_dir)
        items, loss_items = self._items(task.sample)
        t0 = time.perf_counter()
        parent_result = self._parent_result(recipe.parent, parent_dir, task.sample, tokenizer)
        timing.parent += time.perf_counter() - t0
        served, distance = self._serve_candidate(recipe, parent_dir, timing)
        try:
            t0 = time.perf_counter()
            assert served.scorer is not None
            before = len(served.scorer.stats.seconds)
            with torch.no_grad():
                result = evaluate_items(
                    PetalsRemoteLM(served.scorer), tokenizer, items, loss_items
                ).to_dict()
            timing.scoring += time.perf_counter() - t0
            timing.forwards += sum(served.scorer.stats.seconds[before:])
        finally:
            with self._lock:
                self._candidates.discard(served)
            served.close()
            shutil.rmtree(served.view.parent, ignore_errors=True)
        return EvalOutcome(  # the worker stamp is recorded with the evaluation
            task.key, result, parent_result, distance, worker=f"petals:{served.prefix}"
        )

    def _located(self, recipe: Recipe) -> Recipe:
        """The recipe with each contribution's path in the store (peers read it there)."""
        located = [
            Contribution(
                sha256=c.sha256, weight=c.weight, path=str(self.layout.delta_path(c.sha256))
            )
            for c in recipe.contributions
        ]
        return recipe.model_copy(update={"contributions": located})

    def _tokenizer(self, version: str, folder: Path) -> Any:
        with self._lock:
            if version not in self._tokenizers:
                from transformers import AutoTokenizer

                self._tokenizers[version] = AutoTokenizer.from_pretrained(folder)
            return self._tokenizers[version]

    def _items(self, sample: SampleSpec) -> tuple[list[Item], list[Item]]:
        if sample.data:
            rows = list(sample.data)
        elif sample.rows in self.env.row_sets:
            rows = read_jsonl(self.env.row_sets[sample.rows])
        else:
            raise KeyError(f"the task carries no rows and row set {sample.rows!r} is not here")
        s = sample_for_scoring(rows, sample.n, sample.seed)
        items = [Item.from_dharma_row(r) for rs in s.rows.values() for r in rs]
        loss = [Item.from_dharma_row(r) for rs in s.loss_rows.values() for r in rs]
        return items, loss

    def _ranges(self, folder: Path) -> list[tuple[int, int]]:
        blocks = num_blocks(folder)
        return split_blocks(blocks, min(self.servers, blocks))

    def _start(
        self,
        prefix: str,
        view: Path,
        parts: list[tuple[Path, tuple[int, int]]],
        timing: Timing | None = None,
    ) -> _Served:
        """Server peers for ``parts`` and a scorer over them; all or nothing."""
        served, timing = _Served(prefix, view, []), timing or Timing()
        try:
            t0 = time.perf_counter()
            served.peers = start_servers(
                parts, prefix, self.initial_peers, view.parent / "logs", self.start_timeout
            )
            t1 = time.perf_counter()
            timing.peers += t1 - t0
            served.scorer = PetalsScorer(
                view,
                self.initial_peers,
                prefix,
                view.parent / "logs" / "scorer.log",
                timeout=self.scorer_timeout,
                max_retries=self.route_retries,
            )
            timing.routing += time.perf_counter() - t1
        except BaseException:
            served.close()
            raise
        return served

    def _parent(self, version: str, folder: Path) -> _Served:
        """The parent's peers and scorer; (re)started when missing or when a peer died."""
        with self._lock:
            if self._closed:
                raise RuntimeError("pool closed")
            served = self._parents.get(version)
            if served is not None and served.alive():
                self._parents.move_to_end(version)
                return served
            if served is not None:
                log.warning("parent %s lost a peer; restarting it", version[:12])
                served.close()
                del self._parents[version]
            prefix = f"parent-{version[:16]}-{next(self._ids)}"
            view = link_view(folder, self.work_dir / prefix / "model")
            served = self._start(prefix, view, [(view, r) for r in self._ranges(view)])
            self._parents[version] = served
            while len(self._parents) > 2:
                self._parents.popitem(last=False)[1].close()
            return served

    def _parent_result(
        self, version: str, folder: Path, sample: SampleSpec, tokenizer: Any
    ) -> dict[str, Any]:
        key = (version, sample.key())
        with self._lock:
            if key in self._parent_results:
                return self._parent_results[key]
        served = self._parent(version, folder)
        items, loss_items = self._items(sample)
        with served.lock, torch.no_grad():
            assert served.scorer is not None
            try:
                res = evaluate_items(PetalsRemoteLM(served.scorer), tokenizer, items, loss_items)
            except BaseException:
                served.close()  # a stuck or broken route: the next attempt restarts it
                raise
        with self._lock:
            self._parent_results[key] = res.to_dict()
            while len(self._parent_results) > 64:
                self._parent_results.popitem(last=False)
            return self._parent_results[key]

    def _serve_candidate(
        self, recipe: Recipe, parent_dir: Path, timing: Timing
    ) -> tuple[_Served, float]:
        """Merge each slice (its sums of squares on the way), then serve the blocks."""
        from mergenet.deltas.models import ModelSource

        prefix = f"{candidate_prefix(recipe)}-{next(self._ids)}"
        root = self.work_dir / prefix
        parent = ModelSource(parent_dir)
        t0 = time.perf_counter()
        diff = ref = 0.0
        parts: list[tuple[Path, tuple[int, int]]] = []
        for blocks in [None, *self._ranges(parent_dir)]:
            part = Part(blocks)
            tensors = merge_part(recipe, parent_dir, part)
            d, r = _sq_norms(tensors, parent)
            diff, ref = diff + d, ref + r
            out = tensor_view(parent_dir, root / part.label, tensors)
            if blocks is not None:
                parts.append((out, blocks))
            del tensors
        timing.merge += time.perf_counter() - t0
        if ref <= 0:
            raise ValueError("the parent weights have zero norm")
        try:
            served = self._start(prefix, root / "client", parts, timing)
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        with self._lock:
            self._candidates.add(served)
            if self._closed:  # close() ran while the peers started: they are not orphaned
                served.close()
                raise RuntimeError("pool closed")
        return served, math.sqrt(diff) / math.sqrt(ref)


def _sq_norms(tensors: dict[str, torch.Tensor], parent: Any) -> tuple[float, float]:
    """(Σ‖θ_f − θ_b‖², Σ‖θ_b‖²) over one slice's floating-point tensors, in float64."""
    diff = ref = 0.0
    for name, x in tensors.items():
        if not torch.is_floating_point(x):
            continue
        a = x.detach().to(torch.float64).flatten()
        b = parent.get(name).detach().to(torch.float64).flatten()
        diff += float(torch.dot(a - b, a - b))
        ref += float(torch.dot(b, b))
    return diff, ref

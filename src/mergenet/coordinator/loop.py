"""The asynchronous evolutionary merge loop (seed paper Algorithms 1 and 2): scheduling.

Each call of :meth:`EvolutionLoop.step` fills the pool's free slots and records whatever
finished; there is no generation barrier. Work is taken in this order:

1. **score new contributions** (round-robin over addresses, at most capacity −
   ``reserved_slots`` at once while the loop has other work: :mod:`.queue`): current + δ
   (weight 1) against current on a fresh sample; S is stored, pays nothing, and admits the
   contribution to the merge pool when it lowers the answer loss of at least one task by
   ``pool_min_task_gain`` (relative) — contributors forget other tasks, so their overall S
   may be below the baseline and they are still exactly what a merge needs;
2. **confirm** candidates that passed selection, one fresh batch at a time until the
   sequential paired test decides (:mod:`.sequential`);
3. **attribute** accepted versions: V and each V∖c on one fresh sample, the marginals that
   pay contributors (:mod:`.attribution`; not counted against ``max_evaluations``);
4. re-dispatch candidates queued before a restart (then the live feed);
5. **propose** a new candidate on the current version: strategy s ~ H(s), then a single,
   multi, crossover or mutation recipe (:mod:`mergenet.coordinator.proposals`). Crossover and
   mutation build only on candidates that were scored and not rejected: one that failed
   confirmation is noise that happened to win a selection sample.

The loop has three parts: this module decides what to evaluate next;
:mod:`mergenet.coordinator.acceptance` turns each finished evaluation into S, the gain G and
a decision (its docstring states the gain and the acceptance rule); and
:mod:`mergenet.coordinator.state` answers the read side's questions without importing either.

Crash safety: every state change is one transaction; queued and confirming candidates are
plain rows, so a restart simply dispatches them again. The in-flight set is this process's
memory of what the pool holds; every outcome the pool returns leaves it before recording, so
a failed recording cannot keep a candidate "in flight" (and counted against
``max_evaluations``) until a restart.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, object_session, sessionmaker

from mergenet.coordinator import attribution, heuristic, proposals, queue
from mergenet.coordinator import models as m
from mergenet.coordinator.acceptance import (
    ALIVE,
    Acceptance,
    LoopHooks,
    VersionBuilder,
    parse_key,
    task_key,
    write_weights,
)
from mergenet.coordinator.artifacts import ArtifactStore
from mergenet.coordinator.decision_rows import DecisionRows
from mergenet.coordinator.settings import LoopSettings
from mergenet.coordinator.state import current_version, current_weights, evolution_evaluations
from mergenet.coordinator.status import (
    EVOLUTION_KINDS,
    CandidateStatus,
    Kind,
    Purpose,
)
from mergenet.db import transaction
from mergenet.merge_strategies import registry
from mergenet.merge_strategies.recipe import Recipe
from mergenet.protocol.evaluation import EvalTask, EvaluationPool, SampleSpec

log = logging.getLogger("mergenet.coordinator.loop")

LoopConfig = LoopSettings
"""The loop's settings under their earlier name."""


def default_strategies() -> tuple[str, ...]:
    """Strategies with fused kernels that accept any number of deltas (the hot path)."""
    return tuple(s for s in registry.fast_strategies() if registry.get(s).min_deltas <= 1)


def _counter(session: Session, key: str) -> int:
    """Increment and return a named counter (in the caller's transaction)."""
    row = session.get(m.LoopState, key)
    if row is None:
        row = m.LoopState(key=key, value="0")
        session.add(row)
    row.value = str(int(row.value) + 1)
    return int(row.value)


class EvolutionLoop:
    """Algorithm 1 + 2 over the database; one instance per coordinator process.

    ``build`` turns an accepted recipe into stored weights; None builds into ``store``
    (:class:`mergenet.coordinator.versions.StoreVersionBuilder`). Tests pass a fake one.
    """

    def __init__(
        self,
        factory: sessionmaker[Session],
        store: ArtifactStore | None,
        pool: EvaluationPool,
        config: LoopSettings | None = None,
        hooks: LoopHooks | None = None,
        build: VersionBuilder | None = None,
        decision_rows: DecisionRows | None = None,
    ):
        self.factory = factory
        self.pool = pool
        self.config = config or LoopSettings()
        self.decision_rows = decision_rows or DecisionRows.world()
        """Fresh private rows per decision (:mod:`mergenet.coordinator.decision_rows`)."""
        self.strategies = self.config.strategies or default_strategies()
        if build is None:
            if store is None:
                raise ValueError("EvolutionLoop needs an artifact store or a version builder")
            from mergenet.coordinator.versions import StoreVersionBuilder

            build = StoreVersionBuilder(store)
        self.acceptance = Acceptance(factory, self.config, self.strategies, build, hooks)
        self._in_flight: set[int] = set()
        with transaction(self.factory) as s:
            if set(current_weights(s)) != set(self.strategies):
                write_weights(s, heuristic.uniform(self.strategies))

    @property
    def on_accept(self) -> Callable[[m.Version], None] | None:
        """Called with each accepted version after its row is committed."""
        return self.acceptance.on_accept

    @on_accept.setter
    def on_accept(self, callback: Callable[[m.Version], None] | None) -> None:
        self.acceptance.on_accept = callback

    def step(self, timeout: float = 0.5) -> int:
        """Fill free slots, then record what finished within ``timeout``; returns that count."""
        self._fill()
        outcomes = self.pool.poll(timeout)
        for outcome in outcomes:
            try:
                self._in_flight.discard(parse_key(outcome.key)[0])
            except ValueError:
                log.warning("an outcome with a key this loop never made: %r", outcome.key)
        self.acceptance.record_all(outcomes)
        return len(outcomes)

    def run(self, stop: threading.Event, idle: float = 0.5) -> None:
        while not stop.is_set():
            try:
                self.step(idle)
            except Exception:  # keep the coordinator alive; the failed step is retried
                log.exception("loop step failed")
                stop.wait(1.0)

    def idle(self) -> bool:
        return self.pool.in_flight() == 0

    def _fill(self) -> None:
        while self.pool.in_flight() < self.pool.capacity:
            task = self._next_task()
            if task is None:
                return
            self.pool.submit(task)

    def _dispatch(self, cand: m.Candidate, purpose: Purpose, seed: int, rows: str) -> EvalTask:
        """The task for ``cand``; its rows travel inside it (no route serves them).

        ``rows`` names a row set: the loop's own (``config.rows``/``confirm_rows``, the dev
        set) becomes fresh private rows of the open row epoch, pinned per (purpose, seed)
        in the candidate's transaction (:meth:`DecisionRows.sample`), so parent and candidate
        — and every candidate of a version's selection seed — score the same rows. Any other
        name (the feed's held-out set) goes by name, for workers that hold it on disk.
        """
        self._in_flight.add(cand.id)
        cfg = self.config
        n = cfg.confirm_sample_n if purpose == Purpose.CONFIRMATION else cfg.sample_n
        if rows in (self.config.rows, self.config.confirm_rows):
            session = object_session(cand)
            if session is None:
                raise RuntimeError("_dispatch needs a candidate attached to its transaction")
            sample = self.decision_rows.sample(session, purpose, seed, n)
        else:
            sample = SampleSpec(rows=rows, n=n, seed=seed)
        return EvalTask(key=task_key(cand.id, purpose, seed), recipe=cand.recipe, sample=sample)

    def _next_task(self) -> EvalTask | None:
        """The next evaluation, in the order of the module docstring. Scorings beyond
        capacity − ``reserved_slots`` wait while the loop has work of its own
        (:mod:`mergenet.coordinator.queue`), and take a slot it cannot use."""
        with transaction(self.factory) as s:
            version = current_version(s)
            if version is None:
                return None
            cap = queue.scoring_cap(self.pool.capacity, self.config.reserved_slots)
            free = queue.scorings_in_flight(s, self._in_flight) < cap
            return (
                (self._next_contribution(s, version) if free else None)
                or self._next_confirmation(s)
                or self._next_attribution(s)
                or self._next_queued(s, version)
                or self._next_feed(s, version)
                or self._next_proposal(s, version)
                or (None if free else self._next_contribution(s, version))
            )

    def _next_proposal(self, s: Session, version: m.Version) -> EvalTask | None:
        """5. a new candidate on the current version (until ``max_evaluations``)."""
        cfg = self.config
        busy = len(self._in_flight)
        if cfg.max_evaluations and evolution_evaluations(s) + busy >= cfg.max_evaluations:
            return None
        proposal = self._propose(s, version)
        if proposal is None:
            return None
        recipe, kind = proposal
        single_sha = recipe.contributions[0].sha256 if kind == Kind.SINGLE else None
        cand = _new_candidate(s, recipe, kind, version.selection_seed, single_sha)
        return self._dispatch(cand, Purpose.SELECTION, cand.sample_seed, cfg.rows)

    def _next_contribution(self, s: Session, version: m.Version) -> EvalTask | None:
        """1. new contributions, on the current version, round-robin over addresses; one
        scoring at a time per contribution (:func:`mergenet.coordinator.queue.next_scoring`)."""
        cand = queue.next_scoring(s, version, self._in_flight)
        if cand is None:
            return None
        return self._dispatch(cand, Purpose.CONTRIBUTION, cand.sample_seed, self.config.rows)

    def _next_attribution(self, s: Session) -> EvalTask | None:
        """3. an accepted version's leave-one-out evaluations, on the plan's one fresh seed."""
        cand = attribution.next_queued(s, self._in_flight)
        if cand is None:
            return None
        return self._dispatch(cand, Purpose.ATTRIBUTION, cand.sample_seed, self.config.confirm_rows)

    def _next_confirmation(self, s: Session) -> EvalTask | None:
        """2. confirmations: the next fresh batch (a new seed) of each confirming candidate
        not in flight; it stays confirming until :mod:`.sequential` decides (≤ K batches)."""
        for cand in s.scalars(
            select(m.Candidate)
            .where(m.Candidate.status == CandidateStatus.CONFIRMING)
            .order_by(m.Candidate.id)
        ):
            if cand.id not in self._in_flight:
                seed = secrets.randbits(62)
                return self._dispatch(cand, Purpose.CONFIRMATION, seed, self.config.confirm_rows)
        return None

    def _next_queued(self, s: Session, version: m.Version) -> EvalTask | None:
        """4. candidates queued before a restart (those on a replaced version fail)."""
        for cand in s.scalars(
            select(m.Candidate)
            .where(
                m.Candidate.status == CandidateStatus.QUEUED,
                m.Candidate.kind.in_(EVOLUTION_KINDS),
            )
            .order_by(m.Candidate.id)
        ):
            if cand.id in self._in_flight:
                continue
            if cand.parent_hash != version.hash:
                cand.status = CandidateStatus.FAILED
                cand.error = "parent superseded before evaluation"
                continue
            return self._dispatch(cand, Purpose.SELECTION, cand.sample_seed, self.config.rows)
        return None

    def _next_feed(self, s: Session, version: m.Version) -> EvalTask | None:
        """4. the core's live feed (:mod:`mergenet.coordinator.feed`): ``version + 0·δ`` on
        fresh ``feed_rows``, the base instead while it has fewer points than the current.

        Reached only when no contribution, confirmation or queued candidate waits; at most one
        in flight and one per ``feed_seconds`` (counted from this loop's first call, so a
        short run or a test makes none). A feed candidate left queued by a restart fails.
        """
        from mergenet.coordinator import feed
        from mergenet.merge_strategies.recipe import Contribution

        cfg = self.config
        now = time.monotonic()
        since = self.__dict__.setdefault("_feed_since", now)
        if cfg.feed_seconds <= 0 or now - since < cfg.feed_seconds:
            return None
        queued = s.scalars(
            select(m.Candidate).where(
                m.Candidate.kind == Kind.FEED, m.Candidate.status == CandidateStatus.QUEUED
            )
        ).all()
        if any(c.id in self._in_flight for c in queued):
            return None
        for c in queued:
            c.status, c.error = CandidateStatus.FAILED, "not finished before a restart"
        sha = feed.zero_delta(s, version)
        if sha is None:
            return None
        target = feed.target(s, version)
        recipe = Recipe(
            parent=target,
            strategy="task_arithmetic",
            contributions=[Contribution(sha256=sha, weight=0.0)],
        )
        cand = _new_candidate(s, recipe, Kind.FEED, secrets.randbits(62))
        self.__dict__["_feed_since"] = now
        rows = cfg.rows if cfg.feed_rows == "fresh" else cfg.feed_rows  # fresh: label "feed"
        return self._dispatch(cand, Purpose.FEED, cand.sample_seed, rows)

    # -- proposals ----------------------------------------------------------------------
    def _members(self, s: Session, parent: str, strategy: str | None) -> list[m.Candidate]:
        """The top-K scored, not rejected evolution candidates on ``parent`` (by gain)."""
        q = (
            select(m.Candidate)
            .where(
                m.Candidate.parent_hash == parent,
                m.Candidate.kind.in_(EVOLUTION_KINDS),
                m.Candidate.status.in_(ALIVE),
                m.Candidate.gain.is_not(None),
            )
            .order_by(m.Candidate.gain.desc(), m.Candidate.id)
        )
        if strategy is not None:
            q = q.where(m.Candidate.strategy == strategy)
        return list(s.scalars(q.limit(self.config.top_k)))

    def _propose(self, s: Session, version: m.Version) -> tuple[Recipe, Kind] | None:
        cfg = self.config
        pool = list(
            s.scalars(
                select(m.Contribution.sha256)
                .where(m.Contribution.in_pool.is_(True))
                .order_by(m.Contribution.id)
            )
        )
        if not pool:
            return None
        rng = np.random.default_rng([cfg.seed, _counter(s, "proposals")])
        strategy = heuristic.sample(current_weights(s), rng)
        parent = version.hash
        pc = cfg.proposal
        # every pool contribution is tried alone on the current version once: M(θ, δ_i, s)
        singles = set(
            s.scalars(
                select(m.Candidate.contribution_sha).where(
                    m.Candidate.parent_hash == parent, m.Candidate.kind == Kind.SINGLE
                )
            )
        )
        untried = [sha for sha in pool if sha not in singles]
        if untried:
            return proposals.single(strategy, parent, untried[0], rng, pc), Kind.SINGLE
        r = rng.random()
        best = self._members(s, parent, None)
        top = self._members(s, parent, strategy)
        if r < cfg.p_mutation and best and best[0].gain and best[0].gain > 0:
            base = Recipe.model_validate(best[0].recipe)
            return proposals.mutation(base, parent, rng, pc), Kind.MUTATION
        r -= cfg.p_mutation
        if r < cfg.p_crossover and len(top) >= 2:
            i, j = rng.choice(len(top), size=2, replace=False)
            a, b = (Recipe.model_validate(top[int(k)].recipe) for k in (i, j))
            return proposals.crossover(a, b, parent, rng, pc), Kind.CROSSOVER
        r -= cfg.p_crossover
        if r < cfg.p_single or len(pool) < 2:
            sha = pool[int(rng.integers(len(pool)))]
            return proposals.single(strategy, parent, sha, rng, pc), Kind.SINGLE
        return proposals.multi(strategy, parent, pool, rng, pc), Kind.MULTI


_new_candidate = proposals.new_candidate

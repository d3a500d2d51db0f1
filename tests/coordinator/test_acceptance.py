"""Acceptance over a fake evaluation pool: no model world, no weights, a SQLite file.

The pool answers each task with results scripted per candidate kind; the version builder
returns a hash derived from the recipe. So these tests pin the rules of
:mod:`mergenet.coordinator.acceptance` and the scheduling bugs of issue 19 in milliseconds.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mergenet.coordinator import models as m
from mergenet.coordinator.acceptance import BuiltVersion, score_outcome
from mergenet.coordinator.loop import EvolutionLoop
from mergenet.coordinator.settings import LoopSettings
from mergenet.coordinator.state import current_version, current_weights
from mergenet.coordinator.status import CandidateStatus, ContributionStatus, Purpose
from mergenet.db import transaction
from mergenet.evaluator.score import ScoreParams
from mergenet.merge_strategies.recipe import Recipe
from mergenet.protocol.evaluation import EvalOutcome, EvalTask
from mergenet.protocol.results import EvalResult, TaskResult

from .loop_db import seeded_loop_db

BASE = "b" * 64
SHA = ["1" * 64, "2" * 64]
TASKS = ("a", "b")


def result(acc: dict[str, float], loss: float = 1.0) -> EvalResult:
    return EvalResult(
        tasks={
            t: TaskResult(
                task=t, n_rows=16, ppl=3.0, answer_loss=loss, acc_letter=0.25, acc_choice=acc[t]
            )
            for t in TASKS
        }
    )


PARENT = result({"a": 0.5, "b": 0.5})
BETTER = result({"a": 0.75, "b": 0.625}, loss=0.9)  # ΔA +0.19, loss −10%: passes both stages
Script = Callable[[EvalTask], EvalResult]


class FakePool:
    """An evaluation pool that answers every task at once from ``script``."""

    capacity = 2

    def __init__(self, script: Script, distance: float = 0.001):
        self.script = script
        self.distance = distance
        self.pending: list[EvalTask] = []
        self.submitted: list[EvalTask] = []
        self.poisoned: set[str] = set()
        """Keys answered with a result that does not parse (recording fails)."""

    def submit(self, task: EvalTask) -> None:
        self.pending.append(task)
        self.submitted.append(task)

    def in_flight(self) -> int:
        return len(self.pending)

    def poll(self, timeout: float) -> list[EvalOutcome]:
        out = []
        for task in self.pending:
            if task.key in self.poisoned:
                out.append(EvalOutcome(key=task.key, result={"tasks": 7}, parent_result={}))
                continue
            out.append(
                EvalOutcome(
                    key=task.key,
                    result=self.script(task).to_dict(),
                    parent_result=PARENT.to_dict(),
                    relative_distance=self.distance,
                )
            )
        self.pending = []
        return out

    def close(self) -> None:
        pass


def fake_build(recipe: Recipe) -> BuiltVersion:
    """A no-change recipe (every weight 0) rebuilds its parent; others hash their recipe."""
    if all(c.weight == 0 for c in recipe.contributions):
        return BuiltVersion(recipe.parent, f"versions/{recipe.parent}")
    h = hashlib.sha256(json.dumps(recipe.model_dump(mode="json")).encode()).hexdigest()
    return BuiltVersion(h, f"versions/{h}")


@pytest.fixture
def factory(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    yield from seeded_loop_db(tmp_path, BASE, SHA)


def make_loop(factory: sessionmaker[Session], pool: FakePool, **kw: object) -> EvolutionLoop:
    settings = LoopSettings(strategies=("task_arithmetic", "ties"), **kw)  # type: ignore[arg-type]
    return EvolutionLoop(factory, None, pool, settings, build=fake_build)


def candidates(factory: sessionmaker[Session]) -> list[m.Candidate]:
    with factory() as s:
        return list(s.scalars(select(m.Candidate).order_by(m.Candidate.id)))


def run(loop: EvolutionLoop, steps: int) -> None:
    for _ in range(steps):
        loop.step(0)


def test_a_candidate_that_beats_the_version_twice_is_accepted(factory) -> None:
    loop = make_loop(factory, FakePool(lambda task: BETTER), max_evaluations=2)
    run(loop, 6)
    with factory() as s:
        version = current_version(s)
        assert version is not None and version.hash != BASE
        cand = s.get(m.Candidate, version.candidate_id)
        assert cand is not None and cand.status == CandidateStatus.ACCEPTED
        assert cand.gain > loop.config.margin and cand.confirm_gain > loop.config.margin
        purposes = [e.purpose for e in s.scalars(select(m.Evaluation))]
        assert purposes.count(Purpose.CONFIRMATION) >= 1
        accepted = s.scalars(select(m.Candidate).where(m.Candidate.status == "accepted"))
        assert len(list(accepted)) == 1  # a rival confirmed later is stale, not a 2nd version
        # H(s) moved towards the strategy that helped: H(s)·exp(β·G), renormalised
        step = s.scalar(
            select(m.StrategyWeight.step).where(m.StrategyWeight.cause_candidate_id == cand.id)
        )
        rows = s.scalars(
            select(m.StrategyWeight).where(m.StrategyWeight.step.in_((step - 1, step)))
        )
        h = {(r.step, r.strategy): r.weight for r in rows}
    assert h[(step, cand.strategy)] > h[(step - 1, cand.strategy)]
    assert sum(w for (k, _), w in h.items() if k == step) == pytest.approx(1.0)


def test_failing_confirmation_rejects_and_keeps_the_version(factory) -> None:
    def script(task: EvalTask) -> EvalResult:
        confirming = f":{Purpose.CONFIRMATION}:" in task.key
        return result({"a": 0.5, "b": 0.5}, loss=1.01) if confirming else BETTER

    loop = make_loop(factory, FakePool(script), max_evaluations=4)
    run(loop, 8)
    with factory() as s:
        assert current_version(s).hash == BASE
    rejected = [c for c in candidates(factory) if c.status == CandidateStatus.REJECTED]
    assert rejected and all(c.error.startswith("failed confirmation") for c in rejected)


def test_a_worse_candidate_is_never_confirmed_and_lowers_its_strategy(factory) -> None:
    worse = result({"a": 0.375, "b": 0.5}, loss=1.2)

    def script(task: EvalTask) -> EvalResult:
        return BETTER if f":{Purpose.CONTRIBUTION}:" in task.key else worse

    loop = make_loop(factory, FakePool(script), max_evaluations=3)
    with factory() as s:
        before = current_weights(s)
    run(loop, 6)
    evolution = [c for c in candidates(factory) if c.kind != "contribution"]
    assert evolution and all(c.status == CandidateStatus.DONE for c in evolution)
    assert all(c.gain < 0 for c in evolution)
    with factory() as s:
        assert current_version(s).hash == BASE
        after = current_weights(s)
    assert after[evolution[0].strategy] < before[evolution[0].strategy]


def test_a_no_change_candidate_is_never_accepted(factory) -> None:
    # the pool says "better" (e.g. lucky samples), but the recipe rebuilds the parent exactly
    loop = make_loop(factory, FakePool(lambda task: BETTER), max_evaluations=2)

    def build_no_change(recipe: Recipe) -> BuiltVersion:
        return fake_build(
            recipe.model_copy(
                update={
                    "contributions": [
                        c.model_copy(update={"weight": 0.0}) for c in recipe.contributions
                    ]
                }
            )
        )

    loop.acceptance.build = build_no_change
    run(loop, 6)
    with factory() as s:
        assert [v.hash for v in s.scalars(select(m.Version))] == [BASE]
    assert any(c.error == "identical to an existing version" for c in candidates(factory))


def test_no_change_scores_zero_gain() -> None:
    scored = score_outcome(
        EvalOutcome(key="1:selection:0", result=PARENT.to_dict(), parent_result=PARENT.to_dict()),
        ScoreParams(),
    )
    assert scored.gain == pytest.approx(0.0)
    assert scored.gain <= LoopSettings().margin


def test_one_failed_recording_does_not_lose_the_rest_of_its_batch(factory) -> None:
    pool = FakePool(lambda task: BETTER)
    loop = make_loop(factory, pool)
    loop._fill()  # the two contributions' scoring tasks, in one batch
    assert len(pool.pending) == 2
    pool.poisoned.add(pool.pending[0].key)
    assert loop.step(0) == 2
    with factory() as s:
        statuses = {c.sha256: c.status for c in s.scalars(select(m.Contribution))}
    assert statuses == {SHA[0]: ContributionStatus.FAILED, SHA[1]: ContributionStatus.SCORED}
    assert loop._in_flight == set()


@pytest.mark.parametrize("metric", ["acc_choice", "answer_loss"])
def test_a_nan_metric_fails_the_candidate_instead_of_redispatching_it(factory, metric) -> None:
    nan = result({"a": 0.5, "b": 0.5})
    nan.tasks["a"] = dataclasses.replace(nan.tasks["a"], **{metric: math.nan})
    pool = FakePool(
        lambda task: nan if task.recipe["contributions"][0]["sha256"] == SHA[0] else BETTER
    )
    loop = make_loop(factory, pool, max_evaluations=2)
    run(loop, 6)
    first = [t for t in pool.submitted if t.recipe["contributions"][0]["sha256"] == SHA[0]]
    assert len(first) == 1  # dispatched once, never again
    failed = [c for c in candidates(factory) if c.contribution_sha == SHA[0]]
    assert [c.status for c in failed] == [CandidateStatus.FAILED]
    assert "nan" in (failed[0].error or "")


def test_mutation_and_crossover_never_build_on_a_rejected_candidate(factory) -> None:
    loop = make_loop(factory, FakePool(lambda task: BETTER), p_mutation=1.0)
    run(loop, 1)  # score both contributions: both join the pool
    with transaction(factory) as s:
        for i, gain in enumerate((0.9, 0.1)):
            recipe = Recipe(
                parent=BASE,
                strategy="task_arithmetic",
                params={},
                contributions=[{"sha256": SHA[i], "weight": 0.3 + i / 10}],
            ).canonical()
            s.add(
                m.Candidate(
                    parent_hash=BASE,
                    strategy="task_arithmetic",
                    kind="single",
                    recipe=recipe.model_dump(mode="json", exclude_none=True),
                    recipe_hash=recipe.sha256,
                    contribution_sha=SHA[i],
                    status=CandidateStatus.REJECTED if i == 0 else CandidateStatus.DONE,
                    sample_seed=1,
                    gain=gain,
                )
            )
    with transaction(factory) as s:
        best = loop._members(s, BASE, None)
        proposal = loop._propose(s, current_version(s))
    assert proposal is not None
    recipe, kind = proposal
    assert [c.gain for c in best] == [0.1]
    assert kind == "mutation"
    assert [c.sha256 for c in recipe.contributions] == [SHA[1]]


def test_the_accuracy_term_uses_the_task_weights_of_s() -> None:
    candidate = result({"a": 0.75, "b": 0.25})  # a: +0.25, b: −0.25; macro change 0
    outcome = EvalOutcome(
        key="1:selection:0", result=candidate.to_dict(), parent_result=PARENT.to_dict()
    )
    uniform = score_outcome(outcome, ScoreParams(), 2.0)
    weighted = score_outcome(outcome, ScoreParams(task_weights={"a": 0.75, "b": 0.25}), 2.0)
    assert uniform.breakdown["accuracy_gain"] == pytest.approx(0.0)
    assert weighted.breakdown["accuracy_gain"] == pytest.approx(0.75 * 0.25 - 0.25 * 0.25)
    assert weighted.gain - weighted.breakdown["score_gain"] == pytest.approx(2.0 * 0.125)


class CountingHooks:
    def __init__(self) -> None:
        self.scored: list[str] = []

    def contribution_scored(self, session: Session, contribution: m.Contribution) -> None:
        self.scored.append(contribution.sha256)

    def version_accepted(self, session: Session, version: m.Version) -> None:
        pass


def _new_version(factory: sessionmaker[Session], h: str) -> None:
    with transaction(factory) as s:
        s.add(m.Version(hash=h, parent_hash=BASE, weights_path=f"versions/{h}", selection_seed=2))


def test_a_version_accepted_mid_scoring_does_not_score_a_contribution_twice(factory) -> None:
    pool = FakePool(lambda task: BETTER)
    pool.capacity = 6
    hooks = CountingHooks()
    settings = LoopSettings(strategies=("task_arithmetic",))
    loop = EvolutionLoop(factory, None, pool, settings, hooks, build=fake_build)
    loop._fill()
    assert len(pool.submitted) == 2  # one scoring per contribution, both in flight
    _new_version(factory, "c" * 64)
    loop._fill()  # the version changed: the contributions wait for their scorings in flight
    assert len(pool.submitted) == 2
    loop.step(0)
    assert sorted(hooks.scored) == sorted(SHA)  # each scored (and rewarded) exactly once
    with factory() as s:
        scored_on = {c.scored_on for c in s.scalars(select(m.Contribution))}
    assert scored_on == {BASE}


def test_a_scoring_queued_on_a_replaced_version_fails_instead_of_staying_queued(factory) -> None:
    pool = FakePool(lambda task: BETTER)
    make_loop(factory, pool)._fill()
    pool.pending.clear()  # the process dies: the two scorings stay queued in the database
    _new_version(factory, "c" * 64)
    restarted = make_loop(factory, pool)
    restarted._fill()
    rows = candidates(factory)
    old = [c for c in rows if c.parent_hash == BASE]
    new = [c for c in rows if c.parent_hash == "c" * 64]
    assert [(c.status, c.error) for c in old] == [
        (CandidateStatus.FAILED, "parent superseded before evaluation")
    ] * 2
    assert len(new) == 2 and all(c.status == CandidateStatus.QUEUED for c in new)
    restarted.step(0)
    with factory() as s:
        assert {c.scored_on for c in s.scalars(select(m.Contribution))} == {"c" * 64}

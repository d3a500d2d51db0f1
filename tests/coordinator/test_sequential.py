"""Sequential paired confirmation (:mod:`mergenet.coordinator.sequential`) over a fake pool.

The pool answers with per-item results (``TaskResult.correct``/``item_loss``) for parent and
candidate on the same rows, so the decisions below are the paired test's, in milliseconds:
a clearly better candidate is accepted after one batch, a no-change one rejected after one,
an ambiguous one draws batches up to the cap and is rejected there, and a restart in the
middle of a sequence resumes it without recording any batch twice.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from tests.coordinator.test_acceptance import BASE, TASKS, fake_build
from tests.coordinator.test_acceptance import factory as factory  # the fixture

from mergenet.coordinator import models as m
from mergenet.coordinator.loop import EvolutionLoop
from mergenet.coordinator.sequential import Batch, Verdict, batch_se, decide
from mergenet.coordinator.settings import LoopSettings
from mergenet.coordinator.state import current_version
from mergenet.coordinator.status import EVOLUTION_KINDS, CandidateStatus, Purpose
from mergenet.evaluator.score import ScoreParams
from mergenet.protocol.evaluation import EvalOutcome, EvalTask
from mergenet.protocol.results import EvalResult, TaskResult

N, M = 16, 64  # accuracy rows and loss rows per task, as the loop's sample


def items(right: int, wrong_of_right: int = 0, loss: float = 1.0) -> EvalResult:
    """Per task: the parent's first 8 of 16 rows right, plus ``right`` more, minus
    ``wrong_of_right`` of the parent's right ones; every loss row at ``loss``."""
    correct = [i < 8 for i in range(N)]
    for i in range(8, 8 + right):
        correct[i] = True
    for i in range(wrong_of_right):
        correct[i] = False
    return EvalResult(
        tasks={
            t: TaskResult(
                task=t,
                n_rows=N,
                ppl=3.0,
                answer_loss=loss,
                acc_letter=0.25,
                acc_choice=sum(correct) / N,
                n_loss_rows=M,
                correct=tuple(correct),
                item_loss=(loss,) * M,
            )
            for t in TASKS
        }
    )


PARENT = items(0)
CLEAR = items(6, loss=0.9)  # +6 of 16 per task, loss −10%
AMBIGUOUS = items(2, 1)  # +2 −1 per task: G > margin on average, not shown in 4 batches
Script = Callable[[EvalTask], EvalResult]


class ItemPool:
    """Answers every task at once: the parent's and the scripted candidate's per-item results."""

    capacity = 2

    def __init__(self, script: Script):
        self.script = script
        self.pending: list[EvalTask] = []
        self.submitted: list[EvalTask] = []

    def submit(self, task: EvalTask) -> None:
        self.pending.append(task)
        self.submitted.append(task)

    def in_flight(self) -> int:
        return len(self.pending)

    def outcome(self, task: EvalTask) -> EvalOutcome:
        return EvalOutcome(task.key, self.script(task).to_dict(), PARENT.to_dict(), 0.001)

    def poll(self, timeout: float) -> list[EvalOutcome]:
        out = [self.outcome(t) for t in self.pending]
        self.pending = []
        return out

    def close(self) -> None:
        pass


def confirming_as(confirmation: EvalResult) -> Script:
    """Selection and contribution scoring see CLEAR; confirmation batches see ``confirmation``."""
    return lambda task: confirmation if f":{Purpose.CONFIRMATION}:" in task.key else CLEAR


def make_loop(factory: sessionmaker[Session], pool: ItemPool) -> EvolutionLoop:
    settings = LoopSettings(strategies=("task_arithmetic",), max_evaluations=1)
    return EvolutionLoop(factory, None, pool, settings, build=fake_build)


def evolution(factory: sessionmaker[Session]) -> m.Candidate:
    with factory() as s:
        (cand,) = s.scalars(select(m.Candidate).where(m.Candidate.kind.in_(EVOLUTION_KINDS)))
        return cand


def confirmations(factory: sessionmaker[Session]) -> list[m.Evaluation]:
    with factory() as s:
        q = select(m.Evaluation).where(m.Evaluation.purpose == Purpose.CONFIRMATION)
        return list(s.scalars(q.order_by(m.Evaluation.id)))


def run(loop: EvolutionLoop, steps: int) -> None:
    for _ in range(steps):
        loop.step(0)


def test_a_clearly_better_candidate_is_accepted_after_one_batch(factory) -> None:
    run(make_loop(factory, ItemPool(confirming_as(CLEAR))), 8)
    cand = evolution(factory)
    assert cand.status == CandidateStatus.ACCEPTED
    assert len(confirmations(factory)) == 1
    with factory() as s:
        v = current_version(s)
        assert v is not None and v.hash != BASE and v.candidate_id == cand.id
        seq = v.metrics["confirmation"]["sequential"]
    assert seq["verdict"] == "accept" and seq["batches"] == 1 and seq["p_value"] < 0.05 / 4
    # the per-item results are kept in the evaluation's result JSON
    kept = EvalResult.from_dict(confirmations(factory)[0].result)
    assert kept.tasks["a"].correct == CLEAR.tasks["a"].correct


def test_a_no_change_candidate_is_rejected_after_one_batch(factory) -> None:
    run(make_loop(factory, ItemPool(confirming_as(PARENT))), 8)  # selection was lucky
    cand = evolution(factory)
    assert cand.status == CandidateStatus.REJECTED
    assert (cand.error or "").startswith("failed confirmation: upper bound")
    assert len(confirmations(factory)) == 1
    with factory() as s:
        assert current_version(s).hash == BASE


def test_an_ambiguous_candidate_draws_batches_up_to_the_cap(factory) -> None:
    pool = ItemPool(confirming_as(AMBIGUOUS))
    run(make_loop(factory, pool), 12)
    cand = evolution(factory)
    assert cand.status == CandidateStatus.REJECTED
    assert (cand.error or "").startswith("failed confirmation: not shown after 4 batches")
    seeds = [e.sample_seed for e in confirmations(factory)]
    assert len(seeds) == 4 and len(set(seeds)) == 4  # four fresh batches
    assert cand.confirm_gain is not None and cand.confirm_gain > LoopSettings().margin


def test_the_decision_survives_a_restart_mid_sequence_and_is_recorded_once(factory) -> None:
    pool = ItemPool(confirming_as(AMBIGUOUS))
    loop = make_loop(factory, pool)
    while len(confirmations(factory)) < 2:
        loop.step(0)
    assert evolution(factory).status == CandidateStatus.CONFIRMING
    duplicate = pool.outcome(next(t for t in pool.submitted if ":confirmation:" in t.key))
    # a new process: nothing in memory, the sequence resumes from the recorded batches
    restarted = make_loop(factory, ItemPool(confirming_as(AMBIGUOUS)))
    restarted.acceptance.record(duplicate)  # a batch delivered twice is recorded once
    assert len(confirmations(factory)) == 2
    run(restarted, 8)
    cand = evolution(factory)
    assert cand.status == CandidateStatus.REJECTED and len(confirmations(factory)) == 4
    late = EvalOutcome(f"{cand.id}:{Purpose.CONFIRMATION}:7", CLEAR.to_dict(), PARENT.to_dict())
    restarted.acceptance.record(late)  # after the decision nothing changes it
    assert evolution(factory).status == CandidateStatus.REJECTED
    assert len(confirmations(factory)) == 4


def test_decide_rules() -> None:
    assert decide([Batch(0.0, 0.0)], 0.005, 0.05, 4).verdict is Verdict.REJECT
    assert decide([Batch(0.1, 0.0)], 0.005, 0.05, 4).verdict is Verdict.ACCEPT
    assert decide([Batch(0.02, 0.02)], 0.005, 0.05, 4).verdict is Verdict.CONTINUE
    assert decide([Batch(0.02, 0.02)] * 4, 0.005, 0.05, 4).verdict is Verdict.REJECT
    assert decide([Batch(0.02, 0.002)], 0.005, 0.05, 4).verdict is Verdict.ACCEPT
    # a batch without per-item results falls back to the single-sample rule
    fallback = decide([Batch(0.02, None)], 0.005, 0.05, 4)
    assert fallback.verdict is Verdict.ACCEPT and fallback.to_dict()["se"] is None  # no NaN
    with pytest.raises(ValueError):
        decide([], 0.005, 0.05, 4)


def test_batch_se_is_zero_for_no_change_and_none_without_items() -> None:
    params = ScoreParams()
    assert batch_se(PARENT, PARENT, params, 2.0) == 0.0
    se = batch_se(PARENT, AMBIGUOUS, params, 2.0)
    assert se is not None and 0 < se < 1 and math.isfinite(se)
    bare = EvalResult(
        tasks={t: TaskResult(t, 16, 3.0, 1.0, 0.25, 0.5) for t in TASKS}
    )  # recorded before per-item results existed
    assert batch_se(bare, bare, params, 2.0) is None
    # made-up items that disagree with the aggregates (to shrink the SE) are not used
    forged = EvalResult(
        tasks={t: dataclasses.replace(r, correct=(True,) * N) for t, r in AMBIGUOUS.tasks.items()}
    )
    assert batch_se(PARENT, forged, params, 2.0) is None


def test_per_item_results_survive_the_json_round_trip() -> None:
    back = EvalResult.from_dict(CLEAR.to_dict())
    assert back == CLEAR and isinstance(back.tasks["a"].item_loss, tuple)


def _aligned(correct: list[bool], losses: list[float]) -> EvalResult:
    """Accuracy and loss rows are the same questions (n = m, as every confirmation batch)."""
    n = len(correct)
    return EvalResult(
        tasks={
            t: TaskResult(
                task=t,
                n_rows=n,
                ppl=3.0,
                answer_loss=sum(losses) / n,
                acc_letter=0.25,
                acc_choice=sum(correct) / n,
                n_loss_rows=n,
                correct=tuple(correct),
                item_loss=tuple(losses),
            )
            for t in TASKS
        }
    )


def test_aligned_items_sum_both_parts_per_question() -> None:
    """With n = m the SE is the paired per-question sum's (a direct computation here), never
    above the bound; where a question's answer turns right its loss falls, so the parts
    correlate and the joint SE is what counts it (the bound would assume the worst)."""
    import random
    from statistics import variance

    from mergenet.evaluator.score import relative_gain, sigmoid

    rng = random.Random(7)
    n = 64
    p_correct = [rng.random() < 0.5 for _ in range(n)]
    p_loss = [1.0 + rng.random() for _ in range(n)]
    c_correct = [c or rng.random() < 0.2 for c in p_correct]
    c_loss = [
        x - (0.3 if c and not pc else rng.uniform(-0.05, 0.05))
        for x, c, pc in zip(p_loss, c_correct, p_correct, strict=True)
    ]
    parent, cand = _aligned(p_correct, p_loss), _aligned(c_correct, c_loss)
    params, gamma = ScoreParams(), 2.0
    weights = params.weights_for(sorted(parent.tasks))
    x = relative_gain(parent, cand, "answer_loss", weights)
    kappa = params.alphas[1] * params.k * sigmoid(x, params.k) * (1 - sigmoid(x, params.k))
    expected_var = 0.0
    for t, w in weights.items():
        lp = parent.tasks[t].answer_loss
        joint = [
            w * (gamma * (float(c) - float(a)) + kappa * (pl - cl) / lp)
            for a, c, pl, cl in zip(p_correct, c_correct, p_loss, c_loss, strict=True)
        ]
        expected_var += variance(joint) / n
    se = batch_se(parent, cand, params, gamma)
    assert se is not None and se == pytest.approx(math.sqrt(expected_var), rel=1e-6)
    # the bound of the separate parts (what a sample with n < m gets) is larger
    var_a = sum(
        w
        * w
        * variance([float(c) - float(a) for a, c in zip(p_correct, c_correct, strict=True)])
        / n
        for w in weights.values()
    )
    var_l = sum(
        w
        * w
        * variance([a - b for a, b in zip(p_loss, c_loss, strict=True)])
        / (n * parent.tasks[t].answer_loss ** 2)
        for t, w in weights.items()
    )
    assert se < gamma * math.sqrt(var_a) + kappa * math.sqrt(var_l)


def test_a_selection_sample_keeps_the_conservative_bound() -> None:
    """n < m (16 accuracy rows, 64 loss rows): items do not pair up, so the bound is used."""
    params = ScoreParams()
    se = batch_se(PARENT, AMBIGUOUS, params, 2.0)
    dc = [
        float(b) - float(a)
        for a, b in zip(PARENT.tasks["a"].correct, AMBIGUOUS.tasks["a"].correct, strict=True)
    ]
    from statistics import variance

    weights = params.weights_for(sorted(PARENT.tasks))
    bound = 2.0 * math.sqrt(sum(w * w * variance(dc) / N for w in weights.values()))
    assert se == pytest.approx(bound)  # every loss difference is 0 here

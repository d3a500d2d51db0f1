"""The loop's gain G = ΔS + γ·ΔA: the paper's score change plus the accuracy change it misses."""

from __future__ import annotations

import pytest

from mergenet.coordinator.acceptance import score_outcome
from mergenet.evaluator.score import ScoreParams, compute_score, no_change_score
from mergenet.protocol.evaluation import EvalOutcome
from mergenet.protocol.results import EvalResult, TaskResult


def _result(losses: dict[str, float], accs: dict[str, float]) -> EvalResult:
    return EvalResult(
        tasks={
            t: TaskResult(
                task=t, n_rows=16, ppl=2.0, answer_loss=losses[t], acc_letter=0.25, acc_choice=a
            )
            for t, a in accs.items()
        }
    )


PARENT = _result({"a": 0.5, "b": 0.5}, {"a": 0.5, "b": 0.75})
# task a answered better, but b's loss rose more than a's fell: ΔS < 0, ΔA > 0
CANDIDATE = _result({"a": 0.45, "b": 0.6}, {"a": 0.875, "b": 0.75})


def _outcome() -> EvalOutcome:
    return EvalOutcome(
        key="1:selection:0",
        result=CANDIDATE.to_dict(),
        parent_result=PARENT.to_dict(),
        relative_distance=0.01,
    )


@pytest.mark.parametrize("gamma", [0.0, 2.0, 5.0])
def test_gain_adds_the_weighted_accuracy_change_to_the_score_change(gamma: float) -> None:
    params = ScoreParams()
    scored = score_outcome(_outcome(), params, gamma)
    s = compute_score(PARENT, CANDIDATE, relative_distance=0.01, params=params).S
    delta_s = s - no_change_score(PARENT, params)
    assert delta_s < 0  # the paper's score alone calls this candidate worse
    assert scored.score == pytest.approx(s)
    assert scored.breakdown["score_gain"] == pytest.approx(delta_s)
    assert scored.breakdown["accuracy_gain"] == pytest.approx(0.1875)
    assert scored.gain == pytest.approx(delta_s + gamma * 0.1875)


def test_gamma_zero_is_the_papers_score_change() -> None:
    scored = score_outcome(_outcome(), ScoreParams(), 0.0)
    assert scored.gain == pytest.approx(scored.score - scored.baseline)

"""``coordinator.trust.disagreement``: numerical noise is agreement, a changed number is not.

An honest worker must never be barred for float rounding (another CPU, another thread
count), and a liar must not hide under the tolerance by moving an accuracy.
"""

from __future__ import annotations

import dataclasses

from mergenet.coordinator.trust import LOSS_RTOL, disagreement
from mergenet.protocol.evaluation import EvalOutcome
from mergenet.protocol.results import EvalResult, TaskResult


def outcome(loss: float = 1.0, acc: float = 0.5, distance: float = 0.01) -> EvalOutcome:
    r = EvalResult(tasks={"a": TaskResult("a", 16, 3.0, loss, 0.25, acc, 256)}).to_dict()
    return EvalOutcome(
        key="1:contribution:5", result=r, parent_result=r, relative_distance=distance
    )


def test_rounding_noise_agrees() -> None:
    assert disagreement(outcome(loss=1.0 + 1e-6), outcome()) is None
    assert disagreement(outcome(distance=0.01 * (1 + 1e-6)), outcome()) is None


def test_a_moved_number_disagrees() -> None:
    assert disagreement(outcome(loss=1.0 * (1 - 3 * LOSS_RTOL)), outcome()) is not None
    assert "acc_choice" in (disagreement(outcome(acc=0.5625), outcome()) or "")
    assert disagreement(outcome(distance=0.02), outcome()) is not None
    lied_parent = dataclasses.replace(outcome(), parent_result=outcome(loss=2.0).result)
    assert (disagreement(lied_parent, outcome()) or "").startswith("parent")


def test_a_failure_is_not_a_number_to_compare() -> None:
    assert disagreement(EvalOutcome(key="k", error="boom"), outcome()) is None

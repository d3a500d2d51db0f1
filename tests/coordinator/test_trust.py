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


def test_per_item_flags_as_a_json_list_agree_with_the_same_flags_as_a_tuple() -> None:
    """A Celery worker's result arrives as JSON (lists), the trusted pool's as Python
    (tuples): the same flags must not read as a disagreement (it barred honest workers)."""
    from mergenet.coordinator.trust import disagreement
    from mergenet.protocol.evaluation import EvalOutcome

    task = {"n_rows": 2, "n_loss_rows": 2, "acc_letter": 0.5, "acc_choice": 0.5, "ppl": 3.0}
    task |= {"answer_loss": 1.0}
    as_json = {"tasks": {"add": task | {"correct": [True, False], "item_loss": [0.5, 1.5]}}}
    as_tuple = {"tasks": {"add": task | {"correct": (True, False), "item_loss": (0.5, 1.5)}}}
    claimed = EvalOutcome("k", as_json, as_json, 0.1)
    trusted = EvalOutcome("k", as_tuple, as_tuple, 0.1)
    assert disagreement(claimed, trusted) is None
    flipped = {"tasks": {"add": task | {"correct": [False, True], "item_loss": [0.5, 1.5]}}}
    assert disagreement(EvalOutcome("k", flipped, as_json, 0.1), trusted) is not None

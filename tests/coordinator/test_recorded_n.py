"""An audited evaluation is re-drawn with the ``n`` it was scored with (confirmations score
more accuracy rows than selections), read off its own recorded result."""

from __future__ import annotations

from mergenet.coordinator import models as m
from mergenet.coordinator.epoch_queries import _sample


def _evaluation(n_rows: dict[str, int]) -> m.Evaluation:
    tasks = {name: {"n_rows": n, "n_loss_rows": 64} for name, n in n_rows.items()}
    return m.Evaluation(
        row_epoch=1, rows_label="gen:confirmation", sample_seed=7, result={"tasks": tasks}
    )


def test_a_confirmation_is_re_drawn_with_its_own_n_not_the_loop_default() -> None:
    sample = _sample(_evaluation({"add": 64, "sub": 64}), {"n": 16}, None)
    assert sample["n"] == 64
    sample = _sample(_evaluation({"add": 16, "sub": 16}), {"n": 99}, None)
    assert sample["n"] == 16


def test_a_result_without_tasks_falls_back_to_the_shared_n() -> None:
    ev = m.Evaluation(row_epoch=1, rows_label="x", sample_seed=1, result={})
    assert _sample(ev, {"n": 16}, None)["n"] == 16
    ev = m.Evaluation(row_epoch=1, rows_label="x", sample_seed=1, result={"tasks": {"a": "?"}})
    assert _sample(ev, {"n": 16}, None)["n"] == 16

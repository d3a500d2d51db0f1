"""A contributor's training rows for one round: fresh questions of its own tasks, train split only.

In rounds (:mod:`mergenet.demo.rounds`) each contributor fine-tunes the current core on new rows
of its own task families every round, as a user of the network keeps collecting data. The rows
are drawn from the public task generators (:data:`mergenet.ecosystem.tasks.TASKS`) with an RNG
keyed by :func:`training_label` ``"round-train:<contributor>:<round>"``, the world seed and the
task, and only questions whose hash split (:func:`mergenet.evaluator.sampling.split_of_question`)
is ``train`` are kept. Invariants:

* **never a dev or held-out question.** The split is a function of the question text, so a kept
  question cannot be a row of the world's ``dev``/``heldout`` files nor of the coordinator's
  fresh decision rows (:mod:`mergenet.ecosystem.fresh_rows` keeps only ``dev`` questions);
  ``tests/demo/test_rounds.py`` checks the texts against both files.
* **no collision with decision-row labels.** The coordinator's generator labels are purposes
  without a ``:`` (:func:`mergenet.ecosystem.fresh_rows.generator_label` refuses one) under an
  HMAC secret; a training label always holds two ``:``, and is a plain public seed (a contributor
  may publish its rows).
* **deterministic and fresh.** Each ``(contributor, round, task)`` is its own stream
  (``random.Random`` seeds a string through SHA-512, independent of ``PYTHONHASHSEED``), so a
  round's rows are reproducible and another round's are a new draw. "New questions every round"
  holds only as far as a family's train split allows. Measured (4,000 rows per task and round,
  distinct questions in a round / of those also drawn in the next round): ``maxlist`` 4000/0,
  ``compare`` 3992/17, ``upper`` 3924/138, ``repeat`` 3150/747, ``double`` 3187/763,
  ``convert`` 1646/1450, ``successor`` 763/756, ``predecessor`` 737/734, ``bits`` 697/666,
  ``plus_ten`` 662/659. The small families' whole train split is a few hundred questions, so
  their rounds repeat questions, as the world's own 4,000-row pools do
  (``draw_items(..., distinct=False)``): only a larger question space would change that.

The rows are completion rows ``{"input": "<question>\\nAnswer:", "output": "<answer>"}``: what
the world's contributors trained on (``mc_fraction`` 0) and what ``mergenet node finetune``
reads.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from mergenet.ecosystem.tasks import TASKS
from mergenet.evaluator.items import ANSWER_CUE
from mergenet.evaluator.sampling import split_of_question

TRAIN_NAMESPACE = "round-train"


def training_label(contributor: str, round_no: int) -> str:
    """``round-train:<contributor>:<round>``: the public seed label of a round's rows."""
    if not contributor or ":" in contributor:
        raise ValueError(f"a contributor name must be non-empty and hold no ':': {contributor!r}")
    if isinstance(round_no, bool) or not isinstance(round_no, int) or round_no < 1:
        raise ValueError(f"round must be a positive integer, got {round_no!r}")
    return f"{TRAIN_NAMESPACE}:{contributor}:{round_no}"


def round_rows(
    tasks: Sequence[str], *, contributor: str, round_no: int, per_task: int, seed: int = 0
) -> list[dict[str, str]]:
    """``per_task`` train-split completion rows of each task in ``tasks`` (sorted task order).

    Questions may repeat within a round (a data stream, as the world's training pools); each
    task's rows depend only on ``(contributor, round_no, seed, task)``.
    """
    if per_task < 1:
        raise ValueError(f"per_task must be positive, got {per_task}")
    unknown = sorted(set(tasks) - set(TASKS))
    if unknown:
        raise ValueError(f"not world task families: {unknown}")
    label = training_label(contributor, round_no)
    rows: list[dict[str, str]] = []
    for task in sorted(set(tasks)):
        rng = random.Random(f"{label}:{seed}:{task}")
        family = TASKS[task]
        kept = 0
        attempts = 0
        while kept < per_task:
            attempts += 1
            if attempts > 50 * per_task + 10_000:
                raise ValueError(f"task {task!r} yields too few train-split questions")
            question, answer, _ = family.draw(rng)
            if split_of_question(question) != "train":
                continue
            rows.append({"input": question + ANSWER_CUE, "output": answer})
            kept += 1
    return rows


def question_of(row: dict[str, str]) -> str:
    """The question text of a completion row (its input without the answer cue)."""
    return row["input"].removesuffix(ANSWER_CUE)

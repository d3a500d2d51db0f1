"""What an evaluation produces: per-task measurements that the score and reports consume.

Kept free of torch so the score, the ledger and the web page can read results without
loading a model.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class TaskResult:
    """One task's measurements on one sample of rows.

    ``ppl`` is over the whole completion-form row text (question and answer); ``answer_loss``
    is the mean per-token NLL of the answer given the prompt (over the n² loss sample);
    ``acc_letter`` reads the answer-letter logits of the multiple-choice row (Dharma style);
    ``acc_choice`` compares each choice text's log-likelihood after the question (lm-eval's
    multiple-choice method).
    """

    task: str
    n_rows: int
    ppl: float
    answer_loss: float
    acc_letter: float
    acc_choice: float
    n_loss_rows: int = 0
    correct: tuple[bool, ...] = ()
    """Per accuracy row, in sample order: ``acc_choice`` got it right. With ``item_loss``
    it lets a candidate and its parent, scored on the same rows, be compared item by item
    (:mod:`mergenet.coordinator.sequential`) and "solved by the core where every contributor
    fails" be counted later. Empty in results recorded before it existed."""
    item_loss: tuple[float, ...] = ()
    """Per loss row, in sample order: its answer loss (mean NLL per answer token, to 1e-6).
    Bounded JSON: the world's 10 tasks x 64 rows are 640 floats and 160 booleans."""

    def __post_init__(self) -> None:  # lists after a JSON round trip
        object.__setattr__(self, "correct", tuple(self.correct))
        object.__setattr__(self, "item_loss", tuple(self.item_loss))


METRICS = ("ppl", "answer_loss", "acc_letter", "acc_choice")
"""Every per-task measure a ``TaskResult`` carries (besides row counts)."""

PRIMARY_ACCURACY = "acc_choice"
"""The accuracy the network ranks by: each choice's log-likelihood after the question
(lm-eval's multiple-choice method); letter accuracy stays near chance on the world's tiny models."""


@dataclass(frozen=True)
class EvalResult:
    """A model's results over a set of tasks (one entry per Dharma ``subject``)."""

    tasks: dict[str, TaskResult] = field(default_factory=dict)

    def macro(self, attr: str) -> float:
        """Unweighted mean of ``attr`` over tasks (NaN when there are none)."""
        if not self.tasks:
            return math.nan
        return sum(getattr(t, attr) for t in self.tasks.values()) / len(self.tasks)

    def to_dict(self) -> dict:
        return {
            "tasks": {name: asdict(t) for name, t in self.tasks.items()},
            "macro": {a: self.macro(a) for a in METRICS},
        }

    @classmethod
    def from_dict(cls, data: dict) -> EvalResult:
        return cls(tasks={name: TaskResult(**t) for name, t in data["tasks"].items()})

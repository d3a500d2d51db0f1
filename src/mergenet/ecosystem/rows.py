"""Row formats of the world: training (completion) rows and Dharma multiple-choice rows.

Every row is one JSON object; its text is the compact JSON serialisation, so ``{`` starts and
``}`` ends it and rows pack back to back with no padding (seed §1.1). A completion row
``{"input": "<question>\\nAnswer:", "output": "<answer>"}`` is what contributors train on;
the Dharma row puts the four choices in ``input`` and a letter in ``output``.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mergenet.ecosystem.tasks import TaskFamily
from mergenet.evaluator.dharma import parse_row
from mergenet.evaluator.sampling import split_of_question as split_of

LETTERS = "ABCD"
ANSWER_CUE = "\nAnswer:"


@dataclass(frozen=True)
class Item:
    """One problem with its choices; renders as either row form."""

    subject: str
    question: str
    choices: tuple[str, ...]
    answer_index: int

    @property
    def answer(self) -> str:
        return self.choices[self.answer_index]

    @classmethod
    def from_dharma_row(cls, row: Mapping[str, Any]) -> Item:
        """Any Dharma row (ours or real benchmark rows such as MMLU's) as an item."""
        question, choices, answer = parse_row(row)
        return cls(str(row.get("subject", "")), question, tuple(choices), answer)

    def completion_row(self) -> dict[str, str]:
        return {"input": self.question + ANSWER_CUE, "output": self.answer}

    def dharma_row(self) -> dict[str, str]:
        lines = [self.question, *(f"{LETTERS[i]}. {c}" for i, c in enumerate(self.choices))]
        return {
            "input": "\n".join(lines) + ANSWER_CUE,
            "output": LETTERS[self.answer_index],
            "subject": self.subject,
        }


def row_text(row: dict[str, str]) -> str:
    """The text a row is trained and scored as: compact JSON, ``{`` … ``}``."""
    return json.dumps(row, ensure_ascii=False)


def draw_items(
    task: TaskFamily, *, n: int, seed: int, split: str, distinct: bool = True
) -> list[Item]:
    """``n`` items of ``task`` that fall in ``split``; answer letters balanced.

    Evaluation items are distinct questions; training items may repeat a question (small
    task families have only a few hundred), as a data stream does.

    The correct answer's position cycles A, B, C, D over the items (then the list is
    shuffled), so every letter is the answer equally often.
    """
    rng = random.Random(f"{task.name}:{seed}:{split}")
    seen: set[str] = set()
    items: list[Item] = []
    attempts = 0
    while len(items) < n:
        attempts += 1
        if attempts > 200 * n + 10_000:
            raise ValueError(f"task {task.name!r} has too few distinct {split} questions for n={n}")
        question, answer, wrong = task.draw(rng)
        if (distinct and question in seen) or split_of(question) != split:
            continue
        seen.add(question)
        position = len(items) % len(LETTERS)
        choices = list(wrong)
        rng.shuffle(choices)
        choices.insert(position, answer)
        items.append(Item(task.name, question, tuple(choices), position))
    rng.shuffle(items)
    return items

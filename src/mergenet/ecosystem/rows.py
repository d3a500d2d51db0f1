"""Items of the world's task families, drawn per split with balanced answer letters.

The item and row formats themselves are the evaluator's (:mod:`mergenet.evaluator.items`).
"""

from __future__ import annotations

import random

from mergenet.ecosystem.tasks import TaskFamily
from mergenet.evaluator.items import LETTERS, Item
from mergenet.evaluator.sampling import split_of_question as split_of


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

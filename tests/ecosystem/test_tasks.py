"""Task families: seeded, well-formed problems; items balanced, split-disjoint, both row forms."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from mergenet.ecosystem.rows import draw_items, split_of
from mergenet.ecosystem.spec import WorldSpec
from mergenet.ecosystem.tasks import TASKS
from mergenet.evaluator.dharma import parse_row
from mergenet.evaluator.items import LETTERS, row_text


def test_there_are_at_least_ten_families_and_the_world_uses_ten() -> None:
    assert len(TASKS) >= 10
    assert len(WorldSpec().tasks) == 10
    assert set(WorldSpec().tasks) <= set(TASKS)


@pytest.mark.parametrize("name", sorted(TASKS))
def test_problems_have_three_distinct_wrong_answers(name: str) -> None:
    rng = random.Random(0)
    for _ in range(300):
        question, answer, wrong = TASKS[name].draw(rng)
        assert len(wrong) == 3 and len(set(wrong)) == 3 and answer not in wrong
        assert question and answer and all(w for w in wrong)
        assert "{" not in question + answer and "}" not in question + answer  # rows stay braced


@pytest.mark.parametrize("name", sorted(WorldSpec().tasks))
def test_items_are_seeded_balanced_and_in_their_split(name: str) -> None:
    a = draw_items(TASKS[name], n=64, seed=5, split="heldout")
    b = draw_items(TASKS[name], n=64, seed=5, split="heldout")
    assert a == b
    assert len({it.question for it in a}) == 64
    assert all(split_of(it.question) == "heldout" for it in a)
    assert Counter(it.answer_index for it in a) == {0: 16, 1: 16, 2: 16, 3: 16}
    train = draw_items(TASKS[name], n=200, seed=5, split="train", distinct=False)
    assert not {it.question for it in train} & {it.question for it in a}


def test_both_row_forms_describe_the_same_problem() -> None:
    for it in draw_items(TASKS["add_small"], n=20, seed=1, split="dev"):
        dharma = it.dharma_row()
        parsed = parse_row(dharma)
        assert parsed.question == it.question
        assert list(parsed.choices) == list(it.choices)
        assert dharma["output"] == LETTERS[it.answer_index]
        completion = it.completion_row()
        assert completion["input"].startswith(it.question) and completion["input"].endswith(
            "\nAnswer:"
        )
        assert completion["output"] == it.answer
        text = row_text(completion)
        assert text.startswith("{") and text.endswith("}")

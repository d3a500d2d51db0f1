"""Scoring samples (n and capped n² per task) and the content-hash split."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mergenet.evaluator.dharma import ParsedRow, completion_form, render_row, with_answer_at
from mergenet.evaluator.sampling import (
    HeldoutLeakError,
    assert_not_heldout,
    group_by_task,
    question_of,
    sample_for_scoring,
    split_of,
    split_of_question,
    split_rows,
)

MMLU = Path(__file__).parent / "fixtures" / "seed_mmlu.jsonl"


def task_rows(task: str, n: int) -> list[dict]:
    return [
        render_row(ParsedRow(f"{task} q{i}?", ("w", "x", f"right {i}", "z"), 2), task)
        for i in range(n)
    ]


ROWS = task_rows("big", 100) + task_rows("small", 7) + task_rows("mid", 30)


def test_n_and_capped_n_squared_rows_per_task() -> None:
    sample = sample_for_scoring(ROWS, n=5, seed=1)
    assert {t: len(r) for t, r in sample.rows.items()} == {"big": 5, "mid": 5, "small": 5}
    # n² = 25: "big" and "mid" hold enough, "small" holds only 7
    assert {t: len(r) for t, r in sample.loss_rows.items()} == {"big": 25, "mid": 25, "small": 7}
    sample = sample_for_scoring(ROWS, n=10, seed=1)
    assert {t: len(r) for t, r in sample.loss_rows.items()} == {"big": 100, "mid": 30, "small": 7}
    assert len(sample.rows["small"]) == 7


def test_samples_are_distinct_rows_of_their_own_task_and_nested() -> None:
    sample = sample_for_scoring(ROWS, n=6, seed=3)
    for task, rows in sample.loss_rows.items():
        inputs = [r["input"] for r in rows]
        assert len(set(inputs)) == len(inputs)
        assert all(r["subject"] == task for r in rows)
        assert sample.rows[task] == rows[: len(sample.rows[task])]


def test_the_sample_is_a_function_of_the_seed() -> None:
    a = sample_for_scoring(ROWS, n=5, seed=11)
    assert a == sample_for_scoring(list(ROWS), n=5, seed=11)
    b = sample_for_scoring(ROWS, n=5, seed=12)
    assert a.rows["big"] != b.rows["big"]  # a fresh seed draws a fresh sample


def test_a_tasks_sample_does_not_depend_on_other_tasks() -> None:
    alone = sample_for_scoring(task_rows("big", 100), n=5, seed=4)
    assert alone.rows["big"] == sample_for_scoring(ROWS, n=5, seed=4).rows["big"]


@pytest.mark.parametrize("n", [0, -1, 2.5, True])
def test_n_must_be_a_positive_integer(n) -> None:
    with pytest.raises(ValueError, match="positive integer"):
        sample_for_scoring(ROWS, n=n, seed=0)


def test_rows_need_a_subject() -> None:
    with pytest.raises(ValueError, match="subject"):
        group_by_task([{"input": "q", "output": "A"}])


# --------------------------------------------------------------------------- split


def test_split_bucket_is_sha256_of_the_question_mod_100() -> None:
    question = "What is 2 + 2?"
    bucket = int.from_bytes(hashlib.sha256(question.encode()).digest()[:4], "big") % 100
    want = "heldout" if bucket < 15 else "dev" if bucket < 25 else "train"
    assert split_of_question(question) == want
    assert split_of_question(question, dev_percent=0, heldout_percent=100) == "heldout"
    assert split_of_question(question, dev_percent=0, heldout_percent=0) == "train"


@given(
    question=st.text(min_size=1, max_size=40).filter(lambda q: q.strip() and "\n" not in q),
    answer=st.integers(0, 3),
    target=st.integers(0, 3),
)
def test_every_form_of_an_item_lands_in_the_same_split(question, answer, target) -> None:
    parsed = ParsedRow(question, ("one", "two", "three", "four"), answer)
    mc = render_row(parsed, "t")
    relettered = render_row(with_answer_at(parsed, target), "other")
    completion = completion_form(mc)
    assert question_of(mc) == question_of(relettered) == question_of(completion) == question
    assert split_of(mc) == split_of(relettered) == split_of(completion)


def test_mmlu_splits_near_the_configured_fractions_and_never_overlap() -> None:
    rows = [json.loads(line) for line in MMLU.read_text(encoding="utf-8").splitlines()]
    parts = split_rows(rows)
    assert sum(len(v) for v in parts.values()) == len(rows)
    share = {k: len(v) / len(rows) for k, v in parts.items()}
    # 1,531 rows: binomial sd of a 15% share is ~0.9 points; allow 4 sd
    assert abs(share["heldout"] - 0.15) < 0.04
    assert abs(share["dev"] - 0.10) < 0.04
    questions = {k: {question_of(r) for r in v} for k, v in parts.items()}
    assert not questions["train"] & questions["heldout"]
    assert not questions["dev"] & questions["heldout"]
    # stable: the same rows in another order give the same split
    again = split_rows(reversed(rows))
    assert {k: sorted(map(json.dumps, v)) for k, v in again.items()} == {
        k: sorted(map(json.dumps, v)) for k, v in parts.items()
    }


def test_training_on_heldout_rows_is_refused() -> None:
    rows = task_rows("t", 200)
    parts = split_rows(rows)
    assert parts["heldout"] and parts["train"]
    assert_not_heldout(parts["train"] + parts["dev"])  # passes silently
    with pytest.raises(HeldoutLeakError, match="1 training row"):
        assert_not_heldout([*parts["train"], completion_form(parts["heldout"][0])])


def test_split_counts_follow_the_percentages_on_synthetic_rows() -> None:
    rows = task_rows("t", 4000)
    counts = Counter(split_of(r) for r in rows)
    assert abs(counts["heldout"] / 4000 - 0.15) < 0.025
    assert abs(counts["dev"] / 4000 - 0.10) < 0.025


def test_bad_split_percentages_are_refused() -> None:
    with pytest.raises(ValueError, match="percentages"):
        split_of_question("q", dev_percent=60, heldout_percent=50)

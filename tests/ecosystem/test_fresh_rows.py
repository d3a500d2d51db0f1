"""Fresh rows: deterministic from (secret, label, seed), dev split only, distinct, balanced,
unpredictable without the secret; the private pool retires rows along a keyed permutation."""

from __future__ import annotations

import collections
import json

import pytest

from mergenet.ecosystem.fresh_rows import (
    fresh_rows,
    generator_label,
    pool_label,
    pool_rows,
    regenerate,
)
from mergenet.evaluator.items import Item
from mergenet.evaluator.sampling import question_of, split_of

TASKS = ("add", "compare", "lookup", "plus_ten", "bits")


def test_deterministic_and_format() -> None:
    a = fresh_rows(b"k" * 32, TASKS, label="selection", seed=7, per_task=16)
    b = fresh_rows(b"k" * 32, tuple(reversed(TASKS)), label="selection", seed=7, per_task=16)
    assert a == b
    assert len(a) == 16 * len(TASKS)
    for row in a:
        assert set(row) == {"input", "output", "subject"}
        Item.from_dharma_row(row)  # parses as a Dharma row
        json.dumps(row)
    assert fresh_rows(b"k" * 32, TASKS, label="selection", seed=8, per_task=16) != a
    assert fresh_rows(b"k" * 32, TASKS, label="confirmation", seed=7, per_task=16) != a


def test_dev_split_distinct_and_balanced() -> None:
    rows = fresh_rows(b"s" * 32, TASKS, label="x", seed=1, per_task=64)
    assert {split_of(r) for r in rows} == {"dev"}
    per_task: dict[str, list[str]] = collections.defaultdict(list)
    letters: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for r in rows:
        per_task[r["subject"]].append(question_of(r))
        letters[r["subject"]][r["output"]] += 1
    for task in TASKS:
        assert len(per_task[task]) == len(set(per_task[task])) == 64
        assert letters[task] == {"A": 16, "B": 16, "C": 16, "D": 16}


def test_a_task_depends_only_on_its_own_key() -> None:
    one = fresh_rows(b"s" * 32, ["add"], label="x", seed=1, per_task=8)
    both = fresh_rows(b"s" * 32, ["add", "compare"], label="x", seed=1, per_task=8)
    assert [r for r in both if r["subject"] == "add"] == one


def test_different_secrets_draw_disjoint_ish_questions() -> None:
    big = ("add", "compare", "lookup", "sub")  # dev spaces of 400 to millions of questions
    a = {question_of(r) for r in fresh_rows(b"a" * 32, big, label="x", seed=1, per_task=32)}
    b = {question_of(r) for r in fresh_rows(b"b" * 32, big, label="x", seed=1, per_task=32)}
    assert len(a & b) <= 0.1 * len(a)


def test_regenerate_from_label() -> None:
    label = generator_label("confirmation", 8, TASKS)
    rows = fresh_rows(b"z" * 32, TASKS, label="confirmation", seed=5, per_task=8)
    assert regenerate(b"z" * 32, label, 5) == rows
    with pytest.raises(ValueError, match="not a generator"):
        regenerate(b"z" * 32, pool_label(0, 8), 5)


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="not world task families"):
        fresh_rows(b"k", ["no_such_task"], label="x", seed=1, per_task=4)
    with pytest.raises(ValueError, match="secret"):
        fresh_rows(b"", ["add"], label="x", seed=1, per_task=4)
    with pytest.raises(ValueError, match="per_task"):
        fresh_rows(b"k", ["add"], label="x", seed=1, per_task=0)
    with pytest.raises(ValueError, match="too few distinct dev questions"):
        fresh_rows(b"k", ["plus_ten"], label="x", seed=1, per_task=200)


def test_pool_takes_disjoint_windows_then_wraps() -> None:
    rows = [{"input": f"q{s}{i}", "output": "A", "subject": s} for s in "xy" for i in range(10)]
    first, w1 = pool_rows(b"key", rows, start=0, per_task=4)
    second, w2 = pool_rows(b"key", rows, start=4, per_task=4)
    assert not w1 and not w2
    assert len(first) == len(second) == 8
    assert not {r["input"] for r in first} & {r["input"] for r in second}
    assert pool_rows(b"key", rows, start=0, per_task=4)[0] == first
    assert pool_rows(b"other", rows, start=0, per_task=4)[0] != first
    third, w3 = pool_rows(b"key", rows, start=8, per_task=4)
    assert w3 and len(third) == 8

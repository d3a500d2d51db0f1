"""Rounds of contributions (issue 17, item 1): fresh training rows, the schedule, the summary.

These tests check the invariants of a round's training rows without the world: every question
is a train-split question, none is a question of the world's dev or held-out rows (drawn here as
``mergenet world build`` draws them) or of the coordinator's fresh decision rows, each
``(contributor, round)`` is its own deterministic draw, and the training label can never be a
decision-row label.

Two rounds on the world (pull, fine-tune, sign, submit, merge; then held-out) are
``python benchmarks/network_rounds.py``, not a CI test: on this 2-core machine they took more
than 25 min at load 7-8, and the claim the issue asks a test to make (the core after round 2
beats the core after round 1 and the best single contributor) did not hold there: round 2
accepted no version at a budget of 30 evaluations (README, Rounds).
"""

from __future__ import annotations

import re

import pytest

from mergenet.ecosystem.round_rows import question_of, round_rows, training_label
from mergenet.ecosystem.spec import WorldSpec

SPEC = WorldSpec()


def _world_questions(split: str) -> set[str]:
    """The questions of the world's ``split`` rows, drawn exactly as ``mergenet world build``."""
    from mergenet.ecosystem.rows import draw_items
    from mergenet.ecosystem.tasks import TASKS

    n = SPEC.eval_rows_per_task if split == "dev" else SPEC.heldout_rows_per_task
    return {
        it.question
        for t in SPEC.tasks
        for it in draw_items(TASKS[t], n=n, seed=SPEC.seed, split=split)
    }


def _decision_questions() -> set[str]:
    """Questions of the coordinator's fresh decision rows, every purpose, a few seeds."""
    from mergenet.ecosystem.fresh_rows import fresh_rows

    out: set[str] = set()
    for purpose in ("contribution", "selection", "confirmation", "attribution", "feed"):
        for seed in range(3):
            for row in fresh_rows(b"k" * 32, SPEC.tasks, label=purpose, seed=seed, per_task=64):
                out.add(row["input"].split("\n")[0])
    return out


def test_round_rows_never_ask_a_dev_heldout_or_decision_question() -> None:
    from mergenet.evaluator.sampling import split_of_question

    forbidden = _world_questions("dev") | _world_questions("heldout") | _decision_questions()
    assert len(forbidden) > 1000  # the check has something to catch
    for c in SPEC.contributors:
        for r in (2, 3):
            rows = round_rows(c.tasks, contributor=c.name, round_no=r, per_task=500)
            assert len(rows) == 500 * len(c.tasks)
            questions = {question_of(row) for row in rows}
            assert all(split_of_question(q) == "train" for q in questions)
            assert not questions & forbidden, f"{c.name} round {r}"


def test_each_contributor_and_round_is_its_own_deterministic_draw() -> None:
    a2 = round_rows(("compare",), contributor="grace", round_no=2, per_task=300)
    assert a2 == round_rows(("compare",), contributor="grace", round_no=2, per_task=300)
    a3 = round_rows(("compare",), contributor="grace", round_no=3, per_task=300)
    other = round_rows(("compare",), contributor="heidi", round_no=2, per_task=300)
    q2, q3, qo = ({question_of(r) for r in rows} for rows in (a2, a3, other))
    assert len(q2 & q3) < 30 and len(q2 & qo) < 30  # compare has ~10^5 train questions
    # a round's rows are answered correctly: the generator's answer, in the world's format
    assert all(r["input"].endswith("\nAnswer:") and r["output"] for r in a2)
    x, y = (int(v) for v in question_of(a2[0])[len("Which is larger: ") : -1].split(" or "))
    assert a2[0]["output"] == str(max(x, y))


def test_training_labels_cannot_be_decision_labels() -> None:
    from mergenet.ecosystem.fresh_rows import generator_label

    label = training_label("alice", 2)
    assert label == "round-train:alice:2"
    with pytest.raises(ValueError):
        generator_label(label, 64, SPEC.tasks)  # decision purposes hold no ':'
    for bad in ("", "a:b"):
        with pytest.raises(ValueError):
            training_label(bad, 2)
    with pytest.raises(ValueError):
        training_label("alice", 0)
    with pytest.raises(ValueError):
        round_rows(("no_such_task",), contributor="alice", round_no=2, per_task=1)


def test_participants_rotate_who_sits_out() -> None:
    from mergenet.demo.rounds import participants

    names = ["a", "b", "c", "d"]
    assert participants(names, 1, 1) == names
    assert participants(names, 2, 1) == ["b", "c", "d"]
    assert participants(names, 3, 1) == ["a", "c", "d"]
    assert participants(names, 6, 1) == ["b", "c", "d"]  # wraps around
    assert participants(names, 2, 2) == ["c", "d"]
    assert participants(names, 2, 9) == ["d"]  # someone always takes part
    assert participants(names, 5, 0) == names
    with pytest.raises(ValueError):
        participants(names, 0, 1)


def test_the_summary_shows_every_round_beside_the_references() -> None:
    from rich.console import Console

    from mergenet.demo.summary import render_summary

    console = Console(record=True, width=160)
    reference = {
        "base (version 0)": 0.7297,
        "best single contributor (heidi)": 0.7375,
        "monolith (all data, round 1's compute)": 0.8953,
        "specialist oracle (each task at its specialist)": 0.8898,
        "core after round 1 (version 1, 0123456789ab)": 0.7414,
        "core after round 2 (version 3, ba9876543210)": 0.7602,
    }
    rounds = [
        {"round": 1, "contributors": 8, "absent": [], "accepted": 1, "versions": 1,
         "evaluations": 32, "tokens": 1310720, "core": 0.7414, "seconds": 600.0},
        {"round": 2, "contributors": 7, "absent": ["alice"], "accepted": 2, "versions": 3,
         "evaluations": 64, "tokens": 2457600, "core": 0.7602, "seconds": 900.0},
    ]  # fmt: skip
    data = {
        "evaluations": 64,
        "versions": [{"hash": "0" * 64, "parent_hash": None, "gain": None,
                      "evaluations_at_accept": None}],
        "reference": reference,
        "rounds": rounds,
        "monolith_tokens": 1310720,
        "nodes": [],
        "strategies": {"ties": 0.5},
    }  # fmt: skip
    render_summary(console, data)
    text = console.export_text()
    for name, value in reference.items():
        assert re.search(rf"{re.escape(name)}\s+│\s+{value:.3f}", text), name
    assert re.search(
        r"│\s+2\s+│\s+7 \(alice out\)\s+│\s+2\s+│\s+3\s+│\s+64\s+│\s+2\.46M\s+│\s+0\.760", text
    )
    assert "the monolith's 1.31M" in text

"""Fresh private rows for every scoring decision (issue 16, item 2), over a fake pool.

Every task the loop dispatches carries its rows; the evaluation it records names the row
epoch and label that regenerate exactly those rows; a version's selection rows are one set
for all its candidates, even across a rotation; the secret never travels in a task; a
non-world row file becomes a private pool whose rows are retired.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mergenet.coordinator import models as m
from mergenet.coordinator.acceptance import BuiltVersion, task_key
from mergenet.coordinator.decision_rows import DecisionRows
from mergenet.coordinator.loop import EvolutionLoop
from mergenet.coordinator.row_epochs import current_row_epoch, rotate
from mergenet.coordinator.settings import LoopSettings
from mergenet.coordinator.status import Purpose
from mergenet.db import transaction
from mergenet.ecosystem.fresh_rows import regenerate
from mergenet.evaluator.sampling import split_of
from mergenet.merge_strategies.recipe import Recipe
from mergenet.protocol.evaluation import EvalOutcome, EvalTask
from mergenet.protocol.results import EvalResult, TaskResult

from .loop_db import seeded_loop_db

BASE = "b" * 64
SHA = ["1" * 64, "2" * 64]
TASKS = ("add", "compare")


def result(acc: float, loss: float) -> EvalResult:
    return EvalResult(
        tasks={
            t: TaskResult(
                task=t, n_rows=16, ppl=3.0, answer_loss=loss, acc_letter=0.25, acc_choice=acc
            )
            for t in TASKS
        }
    )


class RecordingPool:
    """Answers every task at once (candidates better than parents) and keeps what it got."""

    capacity = 2

    def __init__(self) -> None:
        self.pending: list[EvalTask] = []
        self.submitted: list[EvalTask] = []

    def submit(self, task: EvalTask) -> None:
        # what Celery carries: the task must survive a JSON round trip unchanged
        task = EvalTask.from_json(json.loads(json.dumps(task.to_json())))
        self.pending.append(task)
        self.submitted.append(task)

    def in_flight(self) -> int:
        return len(self.pending)

    def poll(self, timeout: float) -> list[EvalOutcome]:
        out = [
            EvalOutcome(
                key=t.key,
                result=result(0.7, 0.9).to_dict(),
                parent_result=result(0.5, 1.0).to_dict(),
                relative_distance=0.001,
            )
            for t in self.pending
        ]
        self.pending = []
        return out

    def close(self) -> None:
        pass


def fake_build(recipe: Recipe) -> BuiltVersion:
    return BuiltVersion("c" * 64, "versions/c")


@pytest.fixture
def factory(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    yield from seeded_loop_db(tmp_path, BASE, SHA)


def make_loop(
    factory: sessionmaker[Session], pool: RecordingPool, margin: float = 0.005
) -> EvolutionLoop:
    settings = LoopSettings(
        strategies=("task_arithmetic",), max_evaluations=6, feed_seconds=0, margin=margin
    )
    rows = DecisionRows.world(TASKS, per_task=8)
    return EvolutionLoop(factory, None, pool, settings, build=fake_build, decision_rows=rows)


def test_recorded_epoch_label_and_seed_regenerate_the_scored_rows(
    factory: sessionmaker[Session],
) -> None:
    pool = RecordingPool()
    loop = make_loop(factory, pool)
    for _ in range(12):
        loop.step(0)
    sent = {t.key: t for t in pool.submitted}
    with factory() as s:
        evaluations = s.scalars(select(m.Evaluation)).all()
        purposes = {e.purpose for e in evaluations}
        assert {Purpose.CONTRIBUTION, Purpose.SELECTION} <= purposes
        secret = current_row_epoch(s).secret
        for e in evaluations:
            assert e.row_epoch == 1 and e.rows_label is not None
            assert e.rows_label.startswith("gen:")
            task = sent[task_key(e.candidate_id, Purpose(e.purpose), e.sample_seed)]
            rows = regenerate(bytes.fromhex(secret), e.rows_label, e.sample_seed)
            assert tuple(rows) == task.sample.data
            assert {split_of(r) for r in rows} == {"dev"}
            assert {r["subject"] for r in rows} == set(TASKS)
    for task in pool.submitted:
        assert task.sample.data, "every decision task carries its rows"
        assert secret not in json.dumps(task.to_json())


def test_selection_rows_are_one_set_per_seed_and_move_on_when_their_epoch_is_revealed(
    factory: sessionmaker[Session],
) -> None:
    pool = RecordingPool()
    loop = make_loop(factory, pool, margin=10.0)  # nothing passes selection: one version
    for _ in range(3):
        loop.step(0)
    before = len(pool.submitted)
    with transaction(factory) as s:
        rotate(s)
    for _ in range(6):
        loop.step(0)
    selections = [i for i, t in enumerate(pool.submitted) if ":selection:" in t.key]
    old = [pool.submitted[i] for i in selections if i < before]
    new = [pool.submitted[i] for i in selections if i >= before]
    assert old and new, "selections on both sides of the rotation"
    assert {t.sample.seed for t in old} == {1}
    assert len({t.sample.digest for t in old}) == 1, "one seed, one set of rows"
    assert len({t.sample.seed for t in new}) == 1 and new[0].sample.seed != 1
    assert len({t.sample.digest for t in new}) == 1
    assert new[0].sample.digest != old[0].sample.digest, "revealed rows are not reused"
    with factory() as s:
        selection_epochs = {
            e.row_epoch for e in s.scalars(select(m.Evaluation)) if e.purpose == Purpose.SELECTION
        }
    assert selection_epochs <= {1, 2} and 2 in selection_epochs
    fresh = [t for t in pool.submitted if ":selection:" not in t.key]
    assert len({t.sample.digest for t in fresh}) == len(fresh), "other decisions draw anew"


def _write(path: Path, rows: list[dict[str, str]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_source_is_chosen_by_the_subjects(tmp_path: Path) -> None:
    world = _write(tmp_path / "w.jsonl", [{"input": "q", "output": "A", "subject": "add"}])
    own = _write(tmp_path / "o.jsonl", [{"input": "q", "output": "A", "subject": "law"}])
    assert DecisionRows.from_file(world, per_task=4, pool_per_task=2).source == "generator"
    assert DecisionRows.from_file(own, per_task=4, pool_per_task=2).source == "pool"
    forced = DecisionRows.from_file(world, source="pool", per_task=4, pool_per_task=2)
    assert forced.source == "pool"
    with pytest.raises(ValueError, match="not world task families"):
        DecisionRows.from_file(own, source="generator", per_task=4, pool_per_task=2)


def test_private_pool_retires_rows_and_warns_when_exhausted(
    factory: sessionmaker[Session], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    own = [
        {"input": f"Q{s}{i}\nA. a\nB. b\nC. c\nD. d\nAnswer:", "output": "A", "subject": s}
        for s in ("law", "med")
        for i in range(6)
    ]
    rows = DecisionRows.from_file(_write(tmp_path / "o.jsonl", own), per_task=64, pool_per_task=3)
    with transaction(factory) as s:
        a = rows.sample(s, "contribution", 11, n=3)
        b = rows.sample(s, "contribution", 12, n=3)
        again = rows.sample(s, "contribution", 11, n=3)  # pinned: same rows
    assert a.rows == "pool:0:3" and b.rows == "pool:3:3"
    assert len(a.data) == len(b.data) == 6 and again.data == a.data
    assert not {r["input"] for r in a.data} & {r["input"] for r in b.data}
    assert "exhausted" not in caplog.text
    caplog.set_level(logging.WARNING)
    with transaction(factory) as s:
        c = rows.sample(s, "confirmation", 13, n=3)  # cursor 6: every row used once
        key = s.get(m.LoopState, "row_pool_key")
        assert key is not None
    assert c.rows == "pool:6:3" and "private row pool exhausted" in caplog.text
    assert key.value not in caplog.text

"""The core's live feed (:mod:`mergenet.coordinator.feed`) over the acceptance tests' fake pool:
when feed points are dispatched, what they measure, and that nothing else in the loop sees them.
"""

from __future__ import annotations

import json
import math

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from tests.coordinator.test_acceptance import (
    BASE,
    BETTER,
    PARENT,
    FakePool,
    make_loop,
    result,
    run,
)
from tests.coordinator.test_acceptance import (
    factory as factory,
)

from mergenet.coordinator import feed
from mergenet.coordinator import models as m
from mergenet.coordinator.loop import EvolutionLoop
from mergenet.coordinator.state import current_version, evolution_evaluations
from mergenet.coordinator.status import CandidateStatus, Kind, Purpose
from mergenet.protocol.evaluation import EvalOutcome, EvalTask

QUICK = 1e-6
"""feed_seconds for tests: due on the loop's second call."""


class VersionPool(FakePool):
    """Answers a version's own measurement (``parent_result``) by the version: the base
    scores PARENT, every later version BETTER."""

    def poll(self, timeout: float) -> list[EvalOutcome]:
        out = []
        for task in self.pending:
            parent = PARENT if task.recipe["parent"] == BASE else BETTER
            out.append(
                EvalOutcome(
                    key=task.key,
                    result=self.script(task).to_dict(),
                    parent_result=parent.to_dict(),
                    relative_distance=self.distance,
                )
            )
        self.pending = []
        return out


def feed_tasks(pool: FakePool) -> list[EvalTask]:
    return [t for t in pool.submitted if f":{Purpose.FEED}:" in t.key]


def test_feed_waits_for_contributions_and_never_touches_selection(factory) -> None:
    pool = VersionPool(lambda task: BETTER)
    loop = make_loop(factory, pool, max_evaluations=2, feed_seconds=QUICK)
    run(loop, 12)
    keys = [t.key for t in pool.submitted]
    first_feed = next(i for i, k in enumerate(keys) if f":{Purpose.FEED}:" in k)
    scorings = [i for i, k in enumerate(keys) if f":{Purpose.CONTRIBUTION}:" in k]
    assert scorings and max(scorings) < first_feed  # contributions are scored first
    tasks = feed_tasks(pool)
    assert tasks
    for t in tasks:  # version + 0·δ on fresh rows of its own label, carried in the task
        assert [c["weight"] for c in t.recipe["contributions"]] == [0.0]
        assert t.sample.rows.startswith("gen:feed:") and t.sample.data
    rows = {json.dumps(t.sample.data, sort_keys=True) for t in tasks}
    assert len(rows) == len(tasks)  # every point on new rows
    others = {json.dumps(t.sample.data, sort_keys=True) for t in pool.submitted if t not in tasks}
    assert not rows & others
    with factory() as s:
        feeds = s.scalars(select(m.Evaluation).where(m.Evaluation.purpose == Purpose.FEED)).all()
        assert len(feeds) == len(tasks)
        assert evolution_evaluations(s) <= 2  # max_evaluations ignores the feed
        causes = set(s.scalars(select(m.StrategyWeight.cause_candidate_id)))
        feed_ids = {e.candidate_id for e in feeds}
        assert not causes & feed_ids  # H(s) never moved on a feed point
        versions = s.scalars(select(m.Version.candidate_id)).all()
        assert not set(versions) & feed_ids
        kinds = {s.get(m.Candidate, i).kind for i in feed_ids}
        assert kinds == {Kind.FEED}


def test_feed_measures_the_core_and_the_base_and_the_line_rises(factory) -> None:
    pool = VersionPool(lambda task: BETTER)
    loop = make_loop(factory, pool, max_evaluations=2, feed_seconds=QUICK)
    run(loop, 30)
    with factory() as s:
        cur = current_version(s)
        assert cur is not None and cur.hash != BASE
        n = feed.point_counts(s, BASE, cur.hash)
        assert n[cur.hash] >= 2 and 1 <= n[BASE] <= n[cur.hash]
        data = feed.feed(s)
        assert feed.feed(s) is data  # kept until a newer feed point or version
    run(loop, 4)
    with factory() as s:
        newer = feed.feed(s)
    assert newer is not data and len(newer["points"]) > len(data["points"])
    levels = {lv["hash"]: lv for lv in data["levels"]}
    assert levels[cur.hash]["macro"] == pytest.approx(BETTER.macro("acc_choice"))
    assert levels[BASE]["macro"] == pytest.approx(PARENT.macro("acc_choice"))
    assert levels[cur.hash]["macro"] > levels[BASE]["macro"]
    bars = data["tasks"]["tasks"]["a"]
    assert bars["current"]["acc"] == 0.75 and bars["base"]["acc"] == 0.5
    assert bars["current"]["low"] < 0.75 < bars["current"]["high"]
    for p in data["points"]:
        assert p["low"] <= p["macro"] <= p["high"] and p["rows"] == 32


def test_no_feed_when_disabled_and_one_in_flight_at_most(factory) -> None:
    pool = VersionPool(lambda task: BETTER)
    run(make_loop(factory, pool, max_evaluations=2, feed_seconds=0), 12)
    assert not feed_tasks(pool)

    class Slow(VersionPool):
        def poll(self, timeout: float) -> list[EvalOutcome]:
            return []  # nothing ever finishes

    slow = Slow(lambda task: BETTER)
    slow.capacity = 8
    loop = make_loop(factory, slow, max_evaluations=1, feed_seconds=QUICK)
    run(loop, 6)
    assert len(feed_tasks(slow)) == 1


def test_a_feed_candidate_left_by_a_restart_fails(factory: sessionmaker[Session]) -> None:
    pool = VersionPool(lambda task: BETTER)
    run(make_loop(factory, pool, max_evaluations=1, feed_seconds=0), 4)  # scores contributions
    slow = type("Slow", (VersionPool,), {"poll": lambda self, timeout: []})(lambda t: BETTER)
    slow.capacity = 8
    run(make_loop(factory, slow, max_evaluations=1, feed_seconds=QUICK), 4)
    assert len(feed_tasks(slow)) == 1  # dispatched, never finished: the process "dies"
    restarted: EvolutionLoop = make_loop(factory, pool, max_evaluations=1, feed_seconds=QUICK)
    run(restarted, 8)
    with factory() as s:
        old = s.scalars(
            select(m.Candidate).where(
                m.Candidate.kind == Kind.FEED, m.Candidate.status == CandidateStatus.FAILED
            )
        ).all()
    assert old and old[0].error == "not finished before a restart"


def test_confidence_band() -> None:
    r = result({"a": 0.5, "b": 1.0}).to_dict()  # 8/16 and 16/16
    c = feed.counts(r)
    assert c == {"a": (8, 16), "b": (16, 16)}
    stat = feed.macro_stat(c)
    assert stat["macro"] == 0.75 and stat["rows"] == 32
    # Agresti–Coull: p̃ = 10/20 and 18/20 → half = 1.96·√(0.25/16 + 0.09/16)/2
    half = feed.Z95 * math.sqrt(0.25 / 16 + 0.09 / 16) / 2
    assert stat["high"] - stat["macro"] == pytest.approx(half)
    assert feed.task_stat(16, 16)["low"] < 1.0  # a perfect task still has a band
    both = feed.accumulate([r, r])
    assert both == {"a": (16, 32), "b": (32, 32)}
    assert feed.macro_stat(both)["high"] - 0.75 < half  # more rows, narrower band
    assert feed.macro_stat({})["macro"] is None


def test_feed_rows_by_coordinator() -> None:
    assert feed.rows_for("fresh", "generator", {"dev", "heldout"}) == "fresh"
    assert feed.rows_for("heldout", "generator", {"dev", "heldout"}) == "heldout"
    assert feed.rows_for("heldout", "generator", {"dev"}) == "fresh"  # a set it lacks
    # a private pool retires what it hands out: the feed takes the held-out set instead
    assert feed.rows_for("fresh", "pool", {"dev", "heldout"}) == "heldout"
    assert feed.rows_for("fresh", "pool", {"dev"}) == "fresh"

"""Leave-one-out attribution over a fake pool (no model world, no chain, a SQLite file).

The pool answers a recipe with an accuracy that is linear in its contributions' weights
(``EFFECT`` per delta) plus a shift that depends only on the sample seed (how hard the sample
is, for candidate and parent alike), so the marginals come out exact only when V and V∖c are
evaluated on the same sample. Versions are accepted through
``Acceptance._commit_version``, the path the loop takes after a confirmation.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mergenet.coordinator import attribution, proposals
from mergenet.coordinator import models as m
from mergenet.coordinator.acceptance import Scored
from mergenet.coordinator.chain import LedgerHooks
from mergenet.coordinator.loop import EvolutionLoop
from mergenet.coordinator.settings import LoopSettings
from mergenet.coordinator.status import CandidateStatus, Kind, Purpose
from mergenet.db import transaction
from mergenet.merge_strategies.recipe import Recipe
from mergenet.protocol.evaluation import EvalOutcome, EvalTask
from mergenet.protocol.results import EvalResult
from mergenet.rewards.ledger import marginal_entry
from mergenet.rewards.models import RewardAccrual

from .loop_db import seeded_loop_db
from .test_acceptance import BASE, FakePool, fake_build, result

X, Y, HALF1, HALF2, WHOLE, JUNK = (c * 64 for c in "abcdef")
EFFECT = {X: 0.2, Y: 0.1, HALF1: 0.1, HALF2: 0.1, WHOLE: 0.2, JUNK: 0.0}
"""Accuracy (both tasks) per unit weight; the halves split the whole one between two keys."""


def shift(key: str) -> float:
    """How hard a sample is: up to ±0.015 (several noise margins), the same for a candidate
    and its parent, and for every evaluation that shares the sample's seed."""
    return ((int(key.split(":")[2]) % 7) - 3) / 200


def script(task: EvalTask) -> EvalResult:
    acc = 0.5 + shift(task.key)
    acc += sum(EFFECT[c["sha256"]] * c["weight"] for c in task.recipe["contributions"])
    return result({"a": acc, "b": acc})


class PairedPool(FakePool):
    """The fake pool with the parent scored on the same (shifted) sample as the candidate."""

    def poll(self, timeout: float) -> list[EvalOutcome]:
        out = super().poll(timeout)
        for o in out:
            acc = 0.5 + shift(o.key)
            o.parent_result = result({"a": acc, "b": acc}).to_dict()
        return out


@pytest.fixture
def factory(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    yield from seeded_loop_db(
        tmp_path, BASE, EFFECT, first_address=1, status="scored"
    )  # scored, not in the merge pool: the loop proposes nothing


def make_loop(factory: sessionmaker[Session], hooks: object | None = None) -> EvolutionLoop:
    settings = LoopSettings(strategies=("task_arithmetic",))
    pool = PairedPool(script)
    return EvolutionLoop(factory, None, pool, settings, hooks, build=fake_build)  # type: ignore[arg-type]


def accept(
    loop: EvolutionLoop, weights: dict[str, float], parent: str = BASE, strategy: str = "ties"
) -> str:
    """Commit a version of ``weights`` on ``parent`` as a confirmed candidate would be."""
    recipe = Recipe(
        parent=parent,
        strategy=strategy,
        params={},
        contributions=[{"sha256": k, "weight": w} for k, w in weights.items()],
    ).canonical()
    with transaction(loop.factory) as s:
        cand = m.Candidate(
            parent_hash=parent,
            strategy=strategy,
            kind=Kind.MULTI,
            recipe=recipe.model_dump(mode="json", exclude_none=True),
            recipe_hash=recipe.sha256,
            status=CandidateStatus.CONFIRMING,
            sample_seed=1,
        )
        s.add(cand)
        s.flush()
        cid = cand.id
    v = loop.acceptance._commit_version(cid, fake_build(recipe), Scored(0.7, 0.6, 0.1, {}))
    assert v is not None
    return v.hash


def plan_of(factory: sessionmaker[Session], version: str) -> dict:
    with factory() as s:
        v = s.scalar(select(m.Version).where(m.Version.hash == version))
        return v.metrics["attribution"]


def credits(factory: sessionmaker[Session], version: str) -> dict[str, dict]:
    return {e["sha256"]: e for e in plan_of(factory, version)["credit"]}


def settle(loop: EvolutionLoop) -> None:
    for _ in range(8):  # the fake pool answers every task at the next poll
        loop.step(0)


def test_marginals_come_from_paired_evaluations_on_fresh_rows(factory) -> None:
    loop = make_loop(factory)
    v = accept(loop, {X: 0.5, Y: 0.5})
    settle(loop)
    attributed = [t for t in loop.pool.submitted if f":{Purpose.ATTRIBUTION}:" in t.key]
    assert len(attributed) == 3  # 1 + k with k = 2 credited contributions
    assert len({repr(t.sample) for t in attributed}) == 1  # paired: the same rows for all
    assert attributed[0].sample.seed != 1  # a fresh seed, not the version's selection sample
    plan = plan_of(factory, v)
    assert plan["state"] == attribution.DONE
    got = credits(factory, v)
    # the seed's shift cancels: G(V) − G(V∖c) is c's own effect, in the gain's units
    assert got[X]["marginal"] == pytest.approx(2 * got[Y]["marginal"], rel=1e-6)
    assert got[X]["marginal"] == pytest.approx(plan["gain"] - got[X]["gain_without"])
    assert got[Y]["credited"] == pytest.approx(got[Y]["marginal"] - loop.config.attribution_margin)
    with factory() as s:
        c = s.scalar(select(m.Contribution).where(m.Contribution.sha256 == X))
        assert c.metrics["attribution"][0]["version"] == v
        assert c.metrics["attribution"][0]["marginal"] == pytest.approx(got[X]["marginal"])
        assert c.reward is None  # chainless: recorded, not paid
        used = s.scalars(select(m.Evaluation.purpose)).all()
    assert set(used) == {Purpose.ATTRIBUTION}  # none counted against max_evaluations


def test_a_split_delta_earns_no_more_than_the_whole(factory) -> None:
    loop = make_loop(factory, LedgerHooks())
    split = accept(loop, {HALF1: 0.5, HALF2: 0.5})
    whole = accept(loop, {WHOLE: 0.5}, strategy="task_arithmetic")  # another child of BASE
    settle(loop)
    halves = credits(factory, split)
    alone = credits(factory, whole)[WHOLE]
    assert alone["candidate"] is None  # V∖c is the parent itself: not evaluated
    total = halves[HALF1]["credited"] + halves[HALF2]["credited"]
    assert 0 < total <= alone["credited"] + 1e-6
    assert total == pytest.approx(alone["credited"] - loop.config.attribution_margin, abs=0.01)
    with factory() as s:
        paid = {a.contribution_id: a.amount for a in s.scalars(select(RewardAccrual))}
    assert (
        paid[marginal_entry(split, HALF1)] + paid[marginal_entry(split, HALF2)]
        <= paid[marginal_entry(whole, WHOLE)]
    )


def test_junk_earns_nothing_and_a_merged_contribution_nothing_again(factory) -> None:
    loop = make_loop(factory, LedgerHooks())
    first = accept(loop, {X: 0.5, JUNK: 0.5})
    settle(loop)
    got = credits(factory, first)
    assert got[JUNK]["marginal"] == pytest.approx(0.0, abs=1e-9)
    assert got[JUNK]["credited"] == 0.0 and "reward" not in got[JUNK]
    assert got[X]["credited"] > 0
    second = accept(loop, {X: 0.5, Y: 0.5}, parent=first)  # X again at the same weight
    settle(loop)
    assert set(credits(factory, second)) == {Y}
    with factory() as s:
        ids = set(s.scalars(select(RewardAccrual.contribution_id)))
    assert ids == {marginal_entry(first, X), marginal_entry(second, Y)}


def test_accruals_are_paid_once_across_a_restart(factory) -> None:
    hooks = LedgerHooks()
    loop = make_loop(factory, hooks)
    v = accept(loop, {X: 0.5, Y: 0.5})
    loop.pool.capacity = 3
    loop._fill()
    lost = list(loop.pool.pending)
    assert len(lost) == 3
    loop.pool.pending.clear()  # the process dies with the attribution in flight
    restarted = make_loop(factory, hooks)
    settle(restarted)
    with factory() as s:
        before = {(a.contribution_id, a.amount) for a in s.scalars(select(RewardAccrual))}
        c = s.scalar(select(m.Contribution).where(m.Contribution.sha256 == X))
        reward = c.reward
    assert {i for i, _ in before} == {marginal_entry(v, X), marginal_entry(v, Y)}
    # the lost tasks' outcomes arrive after all, and the last one is recorded again
    restarted.pool.pending.extend(lost)
    restarted.step(0)
    with transaction(factory) as s:
        cand = s.get(m.Candidate, plan_of(factory, v)["full"])
        attribution.finish(s, cand, 0.005, hooks)
        c = s.scalar(select(m.Contribution).where(m.Contribution.sha256 == X))
        version = s.scalar(select(m.Version).where(m.Version.hash == v))
        hooks.contribution_credited(s, version, c, credits(factory, v)[X]["credited"])
    with factory() as s:
        after = {(a.contribution_id, a.amount) for a in s.scalars(select(RewardAccrual))}
        c = s.scalar(select(m.Contribution).where(m.Contribution.sha256 == X))
        assert c.reward == reward and len(c.metrics["attribution"]) == 1
    assert after == before


def test_leave_one_out_keeps_recipes_valid() -> None:
    recipe = Recipe(
        parent=BASE,
        strategy="model_stock",
        params={},
        contributions=[{"sha256": X, "weight": 0.5}, {"sha256": Y, "weight": 0.3}],
        seed=7,
    )
    rest = proposals.leave_one_out(recipe, X)
    assert rest is not None and rest.strategy == "task_arithmetic"  # model_stock needs 2
    assert [(c.sha256, c.weight) for c in rest.contributions] == [(Y, 0.3)]
    rest.canonical()  # valid
    ties = recipe.model_copy(update={"strategy": "ties"})
    kept = proposals.leave_one_out(ties, Y)
    assert kept is not None and kept.strategy == "ties" and kept.seed == 7
    single = recipe.model_copy(update={"contributions": recipe.contributions[:1]})
    assert proposals.leave_one_out(single, X) is None  # V∖c is the parent itself
    parent = Recipe(parent="p" * 64, strategy="ties", contributions=[{"sha256": X, "weight": 0.5}])
    assert proposals.credited(ties, parent) == [Y]
    up = Recipe(
        parent=BASE,
        strategy="ties",
        contributions=[{"sha256": X, "weight": 0.6}, {"sha256": Y, "weight": 0.3}],
    )
    assert proposals.credited(up, parent) == [X, Y]  # X weighted up: credited again


def test_the_pay_is_per_gain_times_credit_times_t() -> None:
    from datetime import UTC, datetime, timedelta

    from mergenet.rewards.policy import MarginalPolicy, quote_marginal
    from mergenet.rewards.units import UNIT

    now = datetime(2026, 1, 1, tzinfo=UTC)
    policy = MarginalPolicy()
    at_once = quote_marginal(0.02, submitted_at=now, parent_published_at=now, policy=policy)
    assert at_once.t == 1.0 and at_once.amount == 2 * UNIT  # 100 tokens per unit of G
    later = quote_marginal(
        0.02, submitted_at=now + timedelta(days=1), parent_published_at=now, policy=policy
    )
    assert later.amount == pytest.approx(0.75 * 2 * UNIT, rel=1e-9)  # one half-life: t = 0.75
    for nothing in (0.0, -0.3, float("nan")):
        quote = quote_marginal(nothing, submitted_at=now, parent_published_at=now, policy=policy)
        assert quote.amount == 0

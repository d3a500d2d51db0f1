"""Recorded history for the live-page test, written through the coordinator's persistence
layer (its ORM models in one ``transaction``), the same rows the loop writes.

No model is evaluated: the results are synthetic ``EvalResult``s, which is all the page reads.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from mergenet.coordinator import models as m
from mergenet.coordinator.loop import default_strategies
from mergenet.coordinator.state import current_weights
from mergenet.db import transaction
from mergenet.protocol.results import EvalResult, TaskResult
from mergenet.rewards.ledger import accrue

TASKS = ("ARC-Challenge", "add_small", "lookup", "plus_ten", "predecessor", "sort")
STRATEGIES = default_strategies()
"""The loop's strategies: the coordinator wrote uniform H(s) over them when it opened."""
T0 = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def reward_units(gain: float) -> int:
    """Base units (18 decimals) for a contribution's ΔS: 2500 tokens per 0.001."""
    return round(gain * 1000) * 2500 * 10**18


def result(level: float) -> dict:
    """An ``EvalResult`` whose Dharma accuracy rises with ``level`` (task-dependent offsets)."""
    tasks = {
        t: TaskResult(
            task=t,
            n_rows=16,
            ppl=8.0 - 3 * level,
            answer_loss=1.5 - level,
            acc_letter=min(1.0, 0.25 + 0.1 * i + level * (0.5 + 0.05 * i)) * 0.9,
            acc_choice=round(16 * min(1.0, 0.3 + 0.05 * i + 0.5 * level)) / 16,
        )
        for i, t in enumerate(TASKS)
    }
    return EvalResult(tasks).to_dict()


@dataclass
class Recorder:
    """Appends evaluations and accepted versions as time passes (one minute per evaluation)."""

    factory: sessionmaker[Session]
    clock: datetime = T0
    level: float = 0.0
    weights: dict[str, float] = field(default_factory=dict)
    n: int = 0

    def __post_init__(self) -> None:
        with self.factory() as s:
            self.weights = current_weights(s)

    def _tick(self) -> datetime:
        self.clock += timedelta(minutes=7)
        return self.clock

    def current(self, s: Session) -> m.Version:
        return s.scalars(select(m.Version).order_by(m.Version.id.desc())).first()

    def contributions(self, addresses: list[str], per_address: int = 2) -> list[str]:
        shas = []
        with transaction(self.factory) as s:
            parent = self.current(s).hash
            for i, addr in enumerate(addresses):
                s.add(m.Contributor(address=addr))
                s.flush()  # no ORM relationship orders the inserts: the FK needs this row first
                for j in range(per_address):
                    h = sha(f"{addr}:{j}")
                    gain = 0.002 * (len(addresses) - i) + 0.001 * j
                    s.add(
                        m.Contribution(
                            sha256=h,
                            address=addr,
                            parent_hash=parent,
                            nonce=j + 1,
                            signature="0x" + "ab" * 65,
                            size_bytes=1 << 20,
                            relative_norm=0.01,
                            status=m.SCORED,
                            score=0.5 + gain,
                            gain=gain,
                            in_pool=True,
                            created_at=self._tick(),
                        )
                    )
                    shas.append(h)
                    # the reward the chain hooks would accrue for a scored contribution
                    accrue(s, contribution_id=h, account=addr, amount=reward_units(gain))
        return shas

    def _candidate(self, s: Session, strategy: str, shas: list[str], status: str) -> m.Candidate:
        parent = self.current(s).hash
        self.n += 1
        recipe = {
            "format": "mergenet-recipe/1",
            "parent": parent,
            "strategy": strategy,
            "params": {"density": 0.6, "lambda": 1.1},
            "contributions": [{"sha256": h, "weight": 0.5} for h in shas],
            "seed": self.n,
        }
        c = m.Candidate(
            parent_hash=parent,
            strategy=strategy,
            kind="multi",
            recipe=recipe,
            recipe_hash=sha(repr(recipe)),
            status=status,
            sample_seed=self.n,
            created_at=self.clock,
        )
        s.add(c)
        s.flush()
        return c

    def _evaluation(self, s: Session, c: m.Candidate, purpose: str, gain: float) -> None:
        at = self._tick()
        s.add(
            m.Evaluation(
                candidate_id=c.id,
                purpose=purpose,
                sample_seed=c.sample_seed,
                result=result(self.level + max(gain, -0.05) * 10),
                parent_result=result(self.level),
                relative_distance=0.01,
                score=0.55 + gain,
                baseline=0.55,
                gain=gain,
                breakdown={"S": 0.55 + gain},
                seconds=3.0,
                created_at=at,
            )
        )
        c.score, c.gain = 0.55 + gain, gain
        if purpose == "selection":  # as in the loop: H(s) moves on selection results only
            self._update_weights(s, c, gain, at)

    def _update_weights(self, s: Session, c: m.Candidate, gain: float, at: datetime) -> None:
        self.weights[c.strategy] *= 1.0 + 8 * gain
        total = sum(self.weights.values())
        last = s.scalar(select(func.max(m.StrategyWeight.step))) or 0
        for name, w in sorted(self.weights.items()):
            s.add(
                m.StrategyWeight(
                    step=last + 1,
                    strategy=name,
                    weight=w / total,
                    cause_candidate_id=c.id,
                    created_at=at,
                )
            )

    def selection(self, strategy: str, shas: list[str], gain: float) -> None:
        with transaction(self.factory) as s:
            c = self._candidate(s, strategy, shas, m.DONE)
            self._evaluation(s, c, "selection", gain)

    def contribution_score(self, sha256: str) -> None:
        """A contribution's own scoring evaluation (not a merge: the chart leaves it out)."""
        with transaction(self.factory) as s:
            c = self._candidate(s, "contribution", [sha256], m.DONE)
            c.kind, c.contribution_sha = "contribution", sha256
            self._evaluation(s, c, "contribution", 0.004)

    def feed(self, points: int = 1, version: str | None = None) -> None:
        """Feed points (:mod:`mergenet.coordinator.feed`) of the current version (or
        ``version``) at the current level, as the loop records them."""
        with transaction(self.factory) as s:
            target = version or self.current(s).hash
            level = self.level if version is None else 0.0
            for _ in range(points):
                c = self._candidate(s, "task_arithmetic", [], m.DONE)
                c.kind, c.parent_hash = "feed", target
                res = result(level)
                macro = res["macro"]["acc_choice"]
                s.add(
                    m.Evaluation(
                        candidate_id=c.id,
                        purpose="feed",
                        sample_seed=c.sample_seed,
                        result=res,
                        parent_result=res,
                        relative_distance=0.0,
                        score=macro,
                        baseline=macro,
                        gain=0.0,
                        breakdown={},
                        seconds=2.0,
                        created_at=self._tick(),
                    )
                )

    def accept(self, strategy: str, shas: list[str], gain: float) -> str:
        """Selection, confirmation and the new version row, as the loop records an acceptance."""
        with transaction(self.factory) as s:
            c = self._candidate(s, strategy, shas, m.ACCEPTED)
            self._evaluation(s, c, "selection", gain)
            self._evaluation(s, c, "confirmation", gain * 0.9)
            self.level += gain * 10
            h = sha(f"version:{c.id}")
            s.add(
                m.Version(
                    hash=h,
                    parent_hash=c.parent_hash,
                    recipe=c.recipe,
                    recipe_hash=c.recipe_hash,
                    candidate_id=c.id,
                    weights_path=f"versions/{h}",
                    score=0.55 + gain * 0.9,
                    gain=gain * 0.9,
                    selection_seed=c.id,
                    evaluations_at_accept=self.n,
                    created_at=self.clock,
                )
            )
        return h

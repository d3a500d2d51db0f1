"""Rounds of contributions: pull the core, fine-tune on fresh rows, sign, submit; the loop merges.

This is how users of the network take part over time (issue 17, item 1). Round 1 is the world's
own contributions: each contributor pulls version 0 (the base) and submits the delta the world
build fine-tuned from it. In every later round each participating contributor, through the same
node client a person uses,

1. pulls the current core version (``node.pull``: verified by its hash),
2. fine-tunes it on fresh train-split rows of its own tasks (:mod:`mergenet.ecosystem.round_rows`:
   new draws every round, never a dev or held-out question) with ``node.finetune`` at the world
   contributors' settings (40 steps, lr 2.5e-4, 16 × 256 tokens per step) and otherwise the
   node's defaults (so the L2-to-parent penalty 0.3 a user gets, ``node.finetune.DEFAULT_L2``),
3. signs the delta against the version it pulled and uploads it (``node.submit``).

When every submission of the round is scored, the loop gets ``budget`` more selection and
confirmation evaluations (its ``max_evaluations`` is raised to the evaluations done so far plus
``budget``); the round ends when they are spent and nothing is queued, confirming or being
attributed. The next round starts from whatever the core is then.

Participation is a deterministic schedule (:func:`participants`): from round 2 on, ``sit_out``
contributors skip each round, rotating (round 2: the first, round 3: the second, …), so a
contributor leaves for a round and comes back late to a core that moved on without it. A delta
always names the version its contributor pulled; should the core move between a pull and the
upload, the coordinator applies the delta to its current version as a task vector
(:mod:`mergenet.coordinator.parents`), so a slow contributor still lands.

Training compute is counted as steps × tokens per step (packed chunks are always full: 16 × 256 =
4,096 tokens per step), the same unit as the world's monolith (320 steps: 1.31M tokens).

The demo (:mod:`mergenet.demo.run`) and ``benchmarks/network_rounds.py`` play rounds through
:class:`RoundPlayer`.

Measured (world db45132220f1, AMD EPYC 2 cores shared with other jobs; held-out macro accuracy on
1,280 rows; base 0.7297, best single 0.7375, monolith 0.8953, specialist oracle 0.8898):

* ``network_rounds.py --rounds 3 --budget 30`` with plain fine-tunes (L2 0, load 7-8): round 1
  0.7414 (1 version), round 2 0.7414 (none accepted), round 3 0.7438 (1), 54 min;
* the same with the L2 0.3 default (load 4-5): 0.7539 (2), 0.7539 (none), 0.7617 (1), 30 min;
* ``mergenet demo --exit --rounds 2 --budget 40`` (load 3-5): round 1 one version (0.741),
  round 2 none; 13 min 51 s to the end, peak RSS 1.4 GB.

Round 2 accepted nothing in 3 of 3 runs. Why, from the coordinator's records: the round-2 deltas
(fine-tuned from the round-1 core) score G −0.53…−0.11 at weight 1 (L2 0) and −0.18…+0.08 (L2
0.3); task arithmetic of all seven on the round-1 core scores 0.734/0.730/0.734/0.724 held-out
at λ 0.1/0.15/0.2/0.3 (L2 0; core 0.741) and 0.755/0.755/0.741 at λ 0.1/0.2/0.3 (L2 0.3; core
0.754): no gain to find at these weights, where a contributor's own task only moves from λ ~0.5
while the sum's shared part makes everyone forget. The stale round-1 deltas stay in the merge
pool (no newer delta of the same contributor retires them): of the single-delta proposals on
the round-1 core in the demo run, 17 tried a round-1 delta and 10 a round-2 one, and half the
multi proposals mix all 15. Round 2's sit-out is alice, whose task (plus_ten: core 0.45, her own
model 1.00) has the most room; round 3, with her back, accepted a version in both benchmarks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mergenet.ecosystem.round_rows import round_rows
from mergenet.ecosystem.world import World
from mergenet.node.home import NodeHome

Say = Callable[[str], None]
LoopProgress = Callable[[int, int, int, int], None]
"""(evaluations done, this round's target, accepted versions, evaluations in flight)."""


def participants(names: Sequence[str], round_no: int, sit_out: int) -> list[str]:
    """Who takes part in ``round_no``: everyone in round 1; from round 2 on all but ``sit_out``
    contributors (at most all but one), the absentees rotating through the list."""
    if round_no < 1:
        raise ValueError(f"rounds count from 1, got {round_no}")
    n = len(names)
    k = max(0, min(sit_out, n - 1))
    if round_no == 1 or k == 0:
        return list(names)
    start = ((round_no - 2) * k) % n
    absent = {names[(start + i) % n] for i in range(k)}
    return [x for x in names if x not in absent]


@dataclass
class Contributor:
    """One contributor node: its key, its node folders, and its tasks."""

    name: str
    tasks: tuple[str, ...]
    index: int
    """Its position in the world's contributor list (seeds its fine-tunes)."""
    home: NodeHome
    account: Any
    """An ``eth_account`` LocalAccount (the key it signs with)."""
    shas: list[str] = field(default_factory=list)
    """Every contribution it submitted, oldest first."""


def throwaway_contributors(world: World, run_dir: Path) -> list[Contributor]:
    """The world's contributors with fresh in-memory keys (benchmarks and tests; the demo
    makes keystores and funds them on its chain)."""
    from eth_account import Account

    return [
        Contributor(
            c.name,
            c.tasks,
            i,
            NodeHome(run_dir / "nodes" / c.name / "data", run_dir / "nodes" / c.name / "cache"),
            Account.create(),
        )
        for i, c in enumerate(world.spec.contributors)
    ]


@dataclass(frozen=True)
class Submission:
    round: int
    name: str
    sha256: str
    parent: str
    """The version it was fine-tuned on (the one its contributor pulled)."""
    steps: int
    tokens: int
    seconds: float
    """Pull + fine-tune + upload."""


@dataclass
class RoundRecord:
    round: int
    participants: list[str]
    absent: list[str]
    start_version: str
    end_version: str
    accepted: int
    """Versions accepted during this round."""
    versions: int
    """Versions accepted so far (the base is version 0)."""
    evaluations: int
    """Loop selection + confirmation evaluations so far."""
    train_steps: int
    train_tokens: int
    """This round's training compute (steps × 4,096 tokens on the world)."""
    contribute_seconds: float
    merge_seconds: float
    submissions: list[Submission]

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


@dataclass(frozen=True)
class RoundsConfig:
    rounds: int = 1
    budget: int = 80
    """Loop evaluations (selection + confirmation) per round."""
    steps: int | None = None
    """Fine-tuning steps per contributor and round; None: the world's (40)."""
    rows_per_task: int | None = None
    """Fresh training rows per task and round; None: the world's pool size (4,000)."""
    sit_out: int = 1
    """Contributors absent from each round from round 2 on (rotating)."""
    round_timeout: float = 1800.0
    """Seconds one round's merging may take before the player goes on regardless."""


class RoundPlayer:
    """Plays rounds against a coordinator served in this process (its loop's budget is raised
    per round) through the node client at ``url``."""

    def __init__(
        self,
        world: World,
        coordinator: Any,
        url: str,
        contributors: Sequence[Contributor],
        cfg: RoundsConfig,
        *,
        say: Say = lambda _: None,
        loop_progress: LoopProgress | None = None,
        wait: Callable[[int], None] | None = None,
    ):
        """``wait(target)``, when given, watches the loop spend evaluations up to ``target``
        in place of the player's own polling (the demo draws a progress bar)."""
        if cfg.rounds < 1 or cfg.budget < 1:
            raise ValueError("rounds and budget must be at least 1")
        self.world = world
        self.coordinator = coordinator
        self.url = url
        self.contributors = list(contributors)
        self.cfg = cfg
        self.say = say
        self.loop_progress = loop_progress
        self.wait = wait
        self.records: list[RoundRecord] = []

    @property
    def steps(self) -> int:
        return self.cfg.steps or self.world.spec.contributor_steps

    @property
    def tokens_per_step(self) -> int:
        return self.world.spec.batch_size * self.world.spec.seq_len

    def play(self) -> list[RoundRecord]:
        for r in range(1, self.cfg.rounds + 1):
            self.play_round(r)
        return self.records

    def play_round(self, round_no: int) -> RoundRecord:
        from mergenet.node.client import CoordinatorClient
        from mergenet.node.submit import fetch_domain

        names = participants([c.name for c in self.contributors], round_no, self.cfg.sit_out)
        present = [c for c in self.contributors if c.name in names]
        started = time.monotonic()
        with CoordinatorClient(self.url, timeout=300.0) as client:
            start = str(client.current_version()["hash"])
            done_before = self._evaluations(client)
            versions_before = len(client.get("/api/versions", "listing versions"))
            domain = fetch_domain(client)
            subs = [self._contribute(client, domain, c, round_no) for c in present]
            self._wait_scored(client, [s.sha256 for s in subs])
            contributed = time.monotonic()
            target = self.cfg.budget if round_no == 1 else done_before + self.cfg.budget
            self._merge(client, target)
            end = str(client.current_version()["hash"])
            versions = len(client.get("/api/versions", "listing versions"))
            record = RoundRecord(
                round=round_no,
                participants=names,
                absent=[c.name for c in self.contributors if c.name not in names],
                start_version=start,
                end_version=end,
                accepted=versions - versions_before,
                versions=versions - 1,
                evaluations=self._evaluations(client),
                train_steps=sum(s.steps for s in subs),
                train_tokens=sum(s.tokens for s in subs),
                contribute_seconds=contributed - started,
                merge_seconds=time.monotonic() - contributed,
                submissions=subs,
            )
        self.records.append(record)
        return record

    # -- one contributor ----------------------------------------------------------------------
    def _contribute(self, client: Any, domain: Any, c: Contributor, round_no: int) -> Submission:
        from mergenet.node.pull import pull_current
        from mergenet.node.submit import resolve_artifact, submit_artifact

        t0 = time.monotonic()
        pulled = pull_current(client, c.home, lambda *_: None)
        if round_no == 1:  # the world's own fine-tune of the base
            artifact = resolve_artifact(self.world.delta_path(c.name), pulled.version_hash)
            steps = self.world.spec.contributor_steps
        else:
            self.say(
                f"  {c.name:<6} pulled {pulled.version_hash[:10]}; fine-tuning it {self.steps} "
                f"steps on fresh rows of {', '.join(c.tasks)}"
            )
            out = self._finetune(c, round_no, pulled.path, pulled.version_hash)
            artifact = resolve_artifact(out, None)
            steps = self.steps
        info = submit_artifact(
            client, c.account, artifact, domain, say=lambda m: self.say(f"  {m}")
        )
        sha = str(info["sha256"])
        c.shas.append(sha)
        self.say(
            f"  {c.name:<6} {c.account.address} pulled {pulled.version_hash[:10]}, "
            f"submitted {sha[:12]} ({', '.join(c.tasks)})"
            + ("" if round_no == 1 else f" round {round_no}")
        )
        return Submission(
            round_no,
            c.name,
            sha,
            pulled.version_hash,
            steps,
            steps * self.tokens_per_step,
            time.monotonic() - t0,
        )

    def _finetune(self, c: Contributor, round_no: int, parent: Path, parent_hash: str) -> Path:
        from transformers.utils import logging as hf_logging

        from mergenet.node.data import TrainRow
        from mergenet.node.finetune import FinetuneConfig, finetune

        hf_logging.disable_progress_bar()  # the round's own lines say what happens
        spec = self.world.spec
        rows = round_rows(
            c.tasks,
            contributor=c.name,
            round_no=round_no,
            per_task=self.cfg.rows_per_task or spec.train_rows_per_task,
            seed=spec.seed,
        )
        out = c.home.outputs / f"round-{round_no}"
        cfg = FinetuneConfig(
            steps=self.steps,
            lr=spec.contributor_lr,
            batch_size=spec.batch_size,
            seq_len=spec.seq_len,
            prompt_weight=spec.prompt_weight,
            seed=spec.seed * 1000 + 100 * round_no + c.index + 1,
        )
        result = finetune(parent, parent_hash, [TrainRow(**r) for r in rows], out, cfg)
        return result.out

    # -- the loop -----------------------------------------------------------------------------
    def _evaluations(self, client: Any) -> int:
        """Selection + confirmation evaluations recorded (what ``max_evaluations`` counts)."""
        from mergenet.coordinator.state import evolution_evaluations

        with self.coordinator.factory() as s:
            return int(evolution_evaluations(s))

    def _wait_scored(self, client: Any, shas: Sequence[str]) -> None:
        """Until every submission of the round has its score (the merge pool is complete)."""
        deadline = time.monotonic() + self.cfg.round_timeout
        waiting = list(shas)
        while waiting and time.monotonic() < deadline:
            waiting = [s for s in waiting if client.contribution(s).get("status") == "received"]
            if waiting:
                time.sleep(1.0)
        if waiting:
            self.say(f"{len(waiting)} submission(s) not scored in time; merging anyway")

    def _merge(self, client: Any, target: int) -> None:
        """Give the loop evaluations up to ``target`` and wait until it has spent them and
        nothing it started is still running (two quiet polls in a row)."""
        loop = self.coordinator.loop
        if loop.config.max_evaluations < target:
            loop.config = loop.config.model_copy(update={"max_evaluations": target})
        if self.wait is not None:
            self.wait(target)
            return
        deadline = time.monotonic() + self.cfg.round_timeout
        quiet = 0
        while quiet < 2:
            done = self._evaluations(client)
            versions = len(client.get("/api/versions", "listing versions")) - 1
            in_flight = self.coordinator.pool.in_flight()
            if self.loop_progress is not None:
                self.loop_progress(done, target, versions, in_flight)
            settled = done >= target and in_flight == 0 and not loop_busy(self.coordinator)
            quiet = quiet + 1 if settled else 0
            if time.monotonic() > deadline:
                self.say(f"round budget not spent in {self.cfg.round_timeout:.0f} s; going on")
                return
            time.sleep(1.0)


def loop_busy(coordinator: Any) -> bool:
    """Whether the loop still has work it started: a candidate queued or confirming (the live
    feed's measurements aside), or a contribution waiting for its score."""
    from sqlalchemy import func, select

    from mergenet.coordinator import models as m
    from mergenet.coordinator.status import CandidateStatus, ContributionStatus, Kind

    with coordinator.factory() as s:
        candidates = s.scalar(
            select(func.count())
            .select_from(m.Candidate)
            .where(
                m.Candidate.status.in_([CandidateStatus.QUEUED, CandidateStatus.CONFIRMING]),
                m.Candidate.kind != Kind.FEED,
            )
        )
        waiting = s.scalar(
            select(func.count())
            .select_from(m.Contribution)
            .where(m.Contribution.status == ContributionStatus.RECEIVED)
        )
    return bool(candidates) or bool(waiting)


def training_compute(world: World, records: Sequence[RoundRecord]) -> list[int]:
    """Cumulative training tokens after each round (contributors' fine-tunes only; the base's
    pre-training is shared by every model compared and left out)."""
    total, out = 0, []
    for r in records:
        total += r.train_tokens
        out.append(total)
    return out


def monolith_tokens(world: World) -> int:
    """The monolith's training compute in the same unit (steps × tokens per step)."""
    spec = world.spec
    return spec.monolith_steps * spec.batch_size * spec.seq_len

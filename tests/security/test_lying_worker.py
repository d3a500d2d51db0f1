"""A lying evaluation worker, as an attacker runs it (issue 16, items 1 and 6).

The attacker holds a valid worker credential and answers the coordinator's Celery tasks:
its result lands in the real Redis result backend under the task's id, exactly where a
Celery worker process puts it, and the coordinator's ``CeleryEvaluationPool`` reads it back
on its ordinary path. The loop, acceptance and the database are the real ones (SQLite); the
trusted local pool and the version builder are scripted (no model), so a run takes seconds.

The attack (issue 16's): a no-op contribution (it changes nothing, so its honest results
equal the parent's) reported as an improvement. Before ``TrustedPool`` it was scored above
the baseline and entered the merge pool; now it must earn nothing, move no version, leave
honest alice's outcome as it is without the liar, and get the liar barred.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from mergenet.coordinator import models as m
from mergenet.coordinator.acceptance import BuiltVersion
from mergenet.coordinator.loop import EvolutionLoop
from mergenet.coordinator.settings import LoopSettings
from mergenet.coordinator.trust import TrustedPool
from mergenet.db import make_engine, make_session_factory, transaction
from mergenet.merge_strategies.recipe import Recipe
from mergenet.migrate import upgrade
from mergenet.petals import procs
from mergenet.protocol.evaluation import EvalOutcome, EvalTask, WorkerEnv
from mergenet.protocol.results import EvalResult, TaskResult
from mergenet.protocol.worker_auth import Keyring, sign_result, worker_secret

BASE = "b" * 64
NOOP, GOOD = "1" * 64, "2" * 64  # the attacker's no-op delta, honest alice's delta
MASTER = b"operator-master-key-for-tests-0123"
TASKS = ("a", "b")


def result(acc: float, loss: float) -> EvalResult:
    return EvalResult(
        tasks={
            t: TaskResult(
                task=t, n_rows=16, ppl=3.0, answer_loss=loss, acc_letter=0.25, acc_choice=acc
            )
            for t in TASKS
        }
    )


PARENT, BETTER = result(0.5, 1.0), result(0.75, 0.9)


def honest(task: EvalTask) -> EvalOutcome:
    """What an honest evaluation finds: only alice's delta changes the model."""
    helps = any(c["sha256"] == GOOD and c["weight"] != 0 for c in task.recipe["contributions"])
    return EvalOutcome(
        key=task.key,
        result=(BETTER if helps else PARENT).to_dict(),
        parent_result=PARENT.to_dict(),
        relative_distance=0.001,
    )


def lie(task: EvalTask) -> EvalOutcome:
    """The liar's answer: everything it scores is an improvement."""
    return EvalOutcome(
        key=task.key,
        result=BETTER.to_dict(),
        parent_result=PARENT.to_dict(),
        relative_distance=0.001,
    )


class HonestLocalPool:
    """The coordinator's trusted pool, scripted: answers every task honestly, at once."""

    capacity = 1

    def __init__(self) -> None:
        self.pending: list[EvalTask] = []
        self.runs = 0

    def submit(self, task: EvalTask) -> None:
        self.pending.append(task)
        self.runs += 1

    def in_flight(self) -> int:
        return len(self.pending)

    def poll(self, timeout: float) -> list[EvalOutcome]:
        out, self.pending = [honest(t) for t in self.pending], []
        return out

    def close(self) -> None:
        pass


def fake_build(recipe: Recipe) -> BuiltVersion:
    h = hashlib.sha256(json.dumps(recipe.model_dump(mode="json")).encode()).hexdigest()
    return BuiltVersion(h, f"versions/{h}")


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private redis-server on a free loopback port."""
    server = shutil.which("redis-server")
    if server is None:
        pytest.fail("redis-server is needed (Debian package redis-server)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path_factory.mktemp("redis") / "redis.log"
    argv = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = procs.spawn(argv, log, dict(os.environ))
    try:
        procs.wait_for_log(proc, log, r"Ready to accept connections", 30)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        procs.stop_group(proc.pid)


def make_factory(path: Path) -> sessionmaker[Session]:
    """A loop database: the base version, the attacker's no-op and alice's contribution."""
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    f = make_session_factory(engine)
    with transaction(f) as s:
        s.add(m.Version(hash=BASE, weights_path="versions/base", selection_seed=1))
        for i, sha in enumerate((NOOP, GOOD)):
            s.add(m.Contributor(address=f"0x{i:040x}"))
            s.flush()
            s.add(
                m.Contribution(
                    sha256=sha,
                    address=f"0x{i:040x}",
                    parent_hash=BASE,
                    nonce=i,
                    signature="0x",
                    size_bytes=1,
                    relative_norm=0.01,
                )
            )
    return f


class Attacker:
    """Answers every pending Celery task in the result backend, as a worker process would."""

    def __init__(self, celery: Any, answer: Any):
        self.celery, self.answer, self.done = celery, answer, set[str]()

    def play(self) -> None:
        for tid, task in self.celery.pending().items():
            if tid not in self.done:
                self.done.add(tid)
                self.celery.app.backend.store_result(tid, self.answer(task), "SUCCESS")


def run_loop(factory: sessionmaker[Session], pool: Any, attacker: Attacker) -> dict[str, Any]:
    """The loop until it has nothing left to do (bounded); returns what it decided."""
    paid: dict[str, float] = {}

    class Hooks:
        def contribution_scored(self, session: Session, c: m.Contribution) -> None:
            paid[c.sha256] = c.gain if c.gain is not None else float("nan")

        def version_accepted(self, session: Session, version: m.Version) -> None:
            pass

    settings = LoopSettings(strategies=("task_arithmetic",), max_evaluations=4)
    loop = EvolutionLoop(factory, None, pool, settings, Hooks(), build=fake_build)
    for _ in range(200):
        loop.step(0.01)
        attacker.play()
        if loop.idle() and pool.in_flight() == 0 and len(paid) == 2:
            loop.step(0.01)
            if loop.idle():
                break
    with factory() as s:
        contribs = {c.sha256: c for c in s.scalars(select(m.Contribution))}
        versions = list(s.scalars(select(m.Version).order_by(m.Version.id)))
        return {
            "paid": paid,
            "in_pool": {sha: c.in_pool for sha, c in contribs.items()},
            "score": {sha: c.score for sha, c in contribs.items()},
            "versions": [v.hash for v in versions],
            "noop_in_versions": any(
                c["sha256"] == NOOP and c["weight"] != 0
                for v in versions
                if v.candidate_id is not None
                for c in _recipe_contributions(s, v.candidate_id)
            ),
        }


_DATABASES = itertools.count(1)


def _recipe_contributions(s: Session, candidate_id: int) -> list[dict[str, Any]]:
    cand = s.get(m.Candidate, candidate_id)
    return [] if cand is None else list(cand.recipe["contributions"])


def celery_pool(redis_url: str) -> Any:
    from mergenet.workers.celery_app import make_app
    from mergenet.workers.celery_pool import CeleryEvaluationPool

    # a Redis database of its own: task ids are derived from content, so runs must not share
    url = redis_url.rsplit("/", 1)[0] + f"/{next(_DATABASES)}"
    return CeleryEvaluationPool(WorkerEnv(), app=make_app(url), capacity=2)


def signed_by(worker: str, answer: Any) -> Any:
    secret = worker_secret(MASTER, worker)
    return lambda task: sign_result(secret, worker, task.key, answer(task).to_json())


@pytest.mark.timeout(120)
def test_a_lying_worker_moves_no_version_and_no_payment_and_is_barred(
    redis_url: str, tmp_path: Path
) -> None:
    # before: the pool read results as sent; the liar's no-op was paid and pooled
    celery = celery_pool(redis_url)
    before = run_loop(
        make_factory(tmp_path / "before.db"), celery, Attacker(celery, lambda t: lie(t).to_json())
    )
    assert before["paid"][NOOP] > 0 and before["in_pool"][NOOP]

    # the reference: the same loop with an honest worker (bob) answering every task
    celery = celery_pool(redis_url)
    reference = run_loop(
        make_factory(tmp_path / "reference.db"),
        TrustedPool(celery, HonestLocalPool(), Keyring(MASTER)),
        Attacker(celery, signed_by("bob", honest)),
    )
    assert reference["paid"][GOOD] > 0 and len(reference["versions"]) >= 2

    # after: the liar (a valid credential) answers every task
    celery = celery_pool(redis_url)
    pool = TrustedPool(celery, HonestLocalPool(), Keyring(MASTER))
    after = run_loop(
        make_factory(tmp_path / "after.db"), pool, Attacker(celery, signed_by("mallory", lie))
    )
    # the no-op gets its honest number: no gain (≤ 0 earns nothing) and no place in the pool
    assert after["paid"][NOOP] == reference["paid"][NOOP] <= 0 and not after["in_pool"][NOOP]
    assert not after["noop_in_versions"]
    assert after["paid"][GOOD] == reference["paid"][GOOD] and after["in_pool"][GOOD]
    assert after["score"][GOOD] == reference["score"][GOOD]
    assert len(after["versions"]) == len(reference["versions"])
    assert list(pool.barred) == ["mallory"] and pool.counters["barred"] == 1
    assert pool.counters["refused"] >= 1  # its later results were refused and re-run here


@pytest.mark.parametrize("forgery", ["unsigned", "bad_mac", "other_worker", "other_key", "failed"])
def test_forged_results_are_refused_and_rerun_on_the_trusted_pool(
    redis_url: str, forgery: str
) -> None:
    from mergenet.protocol.evaluation import SampleSpec

    celery = celery_pool(redis_url)
    local = HonestLocalPool()
    pool = TrustedPool(celery, local, Keyring(MASTER))
    recipe = {"parent": BASE, "strategy": "ties", "contributions": [{"sha256": NOOP, "weight": 1}]}
    task = EvalTask(key="7:selection:1", recipe=recipe, sample=SampleSpec("dev", 4, 1))
    pool.submit(task)
    forged = lie(task).to_json()
    secret = worker_secret(MASTER, "mallory")
    payload: Any = {
        "unsigned": forged,
        "bad_mac": {**sign_result(secret, "mallory", task.key, forged), "mac": "0" * 64},
        "other_worker": sign_result(secret, "alice", task.key, forged),
        "other_key": sign_result(secret, "mallory", task.key, {**forged, "key": "9:selection:1"}),
    }.get(forgery)
    (tid,) = celery.pending()
    if forgery == "failed":  # honest work reported failed
        celery.app.backend.store_result(tid, RuntimeError("no"), "FAILURE")
    else:
        celery.app.backend.store_result(tid, payload, "SUCCESS")
    outcomes: list[EvalOutcome] = []
    for _ in range(50):
        outcomes += pool.poll(0.02)
        if outcomes:
            break
    assert [o.key for o in outcomes] == [task.key]
    assert outcomes[0].result == PARENT.to_dict()  # the trusted number, not the forged one
    assert local.runs == 1
    expected = {"other_key": "key_mismatch", "failed": "worker_failed"}.get(forgery, "refused")
    assert pool.counters[expected] == 1

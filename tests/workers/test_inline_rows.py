"""A worker scores exactly the rows its task carries (issue 16, item 2), on the real world.

The loop's row source draws a decision sample from a row epoch's secret; the worker scores it
with nothing but the task (no row set on its disk, nothing downloaded); the rows regenerated
from the recorded (row_epoch, rows_label, seed) give the identical result; the same seed on
other rows is another sample (the parent-result cache keys on the rows' digest).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mergenet.coordinator.decision_rows import DecisionRows, dispatched
from mergenet.coordinator.row_epochs import epoch_secret
from mergenet.db import make_engine, make_session_factory, transaction
from mergenet.ecosystem.fresh_rows import regenerate
from mergenet.migrate import upgrade
from mergenet.protocol.evaluation import EvalTask, SampleSpec, WorkerEnv
from mergenet.protocol.hashes import sha256_file
from mergenet.protocol.jsonl import read_jsonl
from mergenet.workers.evaluate import run_task_here

pytestmark = pytest.mark.world
PARENT = "0" * 64


@pytest.fixture(scope="module")
def env(world: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[WorkerEnv, str]:
    """A store folder (symlinks to the world's base and alice's delta), no row sets."""
    root = tmp_path_factory.mktemp("store")
    (root / "versions").mkdir()
    (root / "versions" / PARENT).symlink_to(world.base_dir)
    sha = sha256_file(world.delta_path("alice"))
    (root / "deltas" / sha[:2]).mkdir(parents=True)
    (root / "deltas" / sha[:2] / f"{sha}.safetensors").symlink_to(world.delta_path("alice"))
    return WorkerEnv(store_root=str(root)), sha


def test_the_worker_scores_exactly_the_rows_the_task_carries(
    world: Any, env: tuple[WorkerEnv, str], tmp_path: Path
) -> None:
    worker_env, sha = env
    engine = make_engine(f"sqlite:///{tmp_path / 'rows.db'}")
    upgrade(engine)
    factory = make_session_factory(engine)
    rows = DecisionRows.from_file(world.dharma_path("dev"), per_task=16, pool_per_task=4)
    assert rows.source == "generator"
    with transaction(factory) as s:
        sample = rows.sample(s, "contribution", 7, n=4)
        epoch, label = dispatched(s, "contribution", 7)
        assert epoch is not None and label is not None
        secret = epoch_secret(s, epoch)
    engine.dispose()
    recipe = {"parent": PARENT, "strategy": "task_arithmetic", "contributions": [{"sha256": sha}]}
    first = run_task_here(worker_env, EvalTask("1:contribution:7", recipe, sample))
    assert first.error is None, first.error
    tasks = {r["subject"] for r in read_jsonl(world.dharma_path("dev"))}
    assert first.result is not None and set(first.result["tasks"]) == tasks
    assert {t["n_rows"] for t in first.result["tasks"].values()} == {4}

    again = SampleSpec(label, 4, 7, tuple(regenerate(secret, label, 7)))
    assert again.key() == sample.key()
    second = run_task_here(worker_env, EvalTask("2:contribution:7", recipe, again))
    assert (second.result, second.parent_result) == (first.result, first.parent_result)

    other = SampleSpec(label, 4, 7, tuple(regenerate(b"another secret", label, 7)))
    third = run_task_here(worker_env, EvalTask("3:contribution:7", recipe, other))
    assert third.parent_result != first.parent_result

    named = run_task_here(worker_env, EvalTask("4:contribution:7", recipe, SampleSpec("dev", 4, 7)))
    assert named.error is not None and "never downloaded" in named.error

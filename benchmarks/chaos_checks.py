"""The chaos run's checks (see ``benchmarks/chaos.py``): after each restart
(:func:`quick_checks`) and at the end of the run (:func:`final_checks`)."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from reliability_kit import wait_for

if TYPE_CHECKING:
    from chaos import Chaos, Fault

WAIT = {
    "scoring": "select count(*) from candidates where kind = 'contribution' and status = 'queued'",
    "selection": "select count(*) from candidates where kind <> 'contribution' "
    "and status = 'queued'",
    "confirmation": "select count(*) from candidates where status = 'confirming'",
    # zero rewards wait outside any epoch until a positive one arrives (ledger.close_epoch)
    "epoch close": "select count(*) from reward_accruals where epoch_number is null "
    "and cast(amount as numeric) > 0",
    "root publish": "select count(*) from reward_epochs where state <> 'confirmed'",
}


def quick_checks(run: Chaos) -> str:
    """After a restart: every acknowledged upload is recorded; every version folder hashes to
    its name. Raises on a violation; returns the outcome text."""
    from mergenet.deltas.models import ModelSource

    rows = {r[0] for r in run.engine.connect().execute(sa.text("select sha256 from contributions"))}
    lost = set(run.acked) - rows
    assert not lost, f"acknowledged uploads lost: {sorted(lost)}"
    store = run.work / "data" / "artifacts"
    with run.engine.connect() as conn:
        versions = conn.execute(sa.text("select hash, weights_path from versions")).all()
    for version_hash, path in versions:
        assert ModelSource(store / path).sha256() == version_hash, f"version {version_hash}"
    return f"ok: {len(rows)} contributions, {len(versions)} versions intact"


def rebuild_versions(run: Chaos) -> int:
    """Every non-base version rebuilds from its stored recipe to its own hash."""
    from mergenet.coordinator.artifacts import ArtifactStore
    from mergenet.deltas.models import ModelSource
    from mergenet.merge_strategies.recipe import Recipe, build_to_dir

    store = ArtifactStore(run.work / "data" / "artifacts")
    with run.engine.connect() as conn:
        rows = conn.execute(sa.text("select hash, recipe from versions")).all()
    rebuilt = 0
    for version_hash, recipe in rows:
        if recipe is None:
            continue
        recipe = Recipe.model_validate(recipe if isinstance(recipe, dict) else json.loads(recipe))
        with tempfile.TemporaryDirectory(dir=run.work) as tmp:
            parent = store.version_dir(recipe.parent)
            build_to_dir(recipe, parent, tmp, store.delta_path, check_parent=False)
            assert ModelSource(tmp).sha256() == version_hash, f"{version_hash} rebuilds differently"
        rebuilt += 1
    return rebuilt


def settle_rewards(run: Chaos, timeout: float) -> None:
    """Wait until every accrual is in a confirmed epoch, then claim for everyone who can."""
    done = wait_for(
        lambda: run.scalar(WAIT["epoch close"]) == 0 and run.scalar(WAIT["root publish"]) == 0,
        timeout,
        1.0,
    )
    assert done, "rewards never settled: accruals outside an epoch or epochs unconfirmed"
    for who in run.claimable():
        run.claim(who)


def ledger_checks(run: Chaos) -> dict[str, int]:
    """0 double payments: one accrual per (version, contribution), summing to the
    contribution's reward; each account's on-chain claimed total equals its cumulative amount
    in the newest epoch, which equals the sum of its accruals."""
    from mergenet.node.claim import contracts_from
    from mergenet.node.client import CoordinatorClient

    with run.engine.connect() as conn:
        dup = conn.execute(
            sa.text(
                "select contribution_id from reward_accruals group by contribution_id "
                "having count(*) > 1"
            )
        ).all()
        assert not dup, f"contributions paid twice: {dup}"
        # a contribution's reward is the sum of its ledger entries: one per accepted version
        # that paid its leave-one-out marginal (``marginal:<version>:<sha256>``)
        paid: dict[str, int] = {}
        for entry, amount in conn.execute(
            sa.text("select contribution_id, amount from reward_accruals")
        ):
            sha = str(entry).rsplit(":", 1)[-1]
            paid[sha] = paid.get(sha, 0) + int(amount)
        mismatch = [
            sha
            for sha, reward in conn.execute(
                sa.text("select sha256, reward from contributions where reward is not null")
            )
            if paid.get(sha, 0) != int(reward)
        ]
        assert not mismatch, f"reward and ledger differ: {mismatch}"
        # summed exactly in Python: SQLite turns a numeric sum above 2**63 into a float
        sums: dict[str, int] = {}
        for acct, amount in conn.execute(sa.text("select account, amount from reward_accruals")):
            sums[acct] = sums.get(acct, 0) + int(amount)
        latest = conn.execute(
            sa.text("select max(number) from reward_epochs where state = 'confirmed'")
        ).scalar()
        entries: dict[str, Any] = dict(
            conn.execute(
                sa.text(
                    "select account, cumulative_amount from reward_entries where epoch_number = :n"
                ),
                {"n": latest},
            ).all()
        )
    with CoordinatorClient(run.coord.url) as client:
        contracts = contracts_from(client, None)
        for acct, amount in entries.items():
            assert int(sums[acct]) == int(amount), f"{acct}: accruals {sums[acct]} != {amount}"
            claimed = contracts.cumulative_claimed(acct)
            assert claimed == int(amount), f"{acct}: claimed {claimed} != ledger {amount}"
    return {"accounts": len(entries), "epoch": int(latest or 0)}


def reconcile(run: Chaos) -> int:
    proc = subprocess.run(
        [sys.executable, "-m", "mergenet.cli", "rewards", "reconcile"],
        env=run.coord.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    print(proc.stdout.strip(), proc.stderr.strip()[-500:])
    return proc.returncode


def final_checks(run: Chaos, settle_s: float) -> dict[str, Any]:
    """The end of the run: the loop resumes after the last restart, nothing acknowledged is
    lost, every version rebuilds to its hash, nobody is paid twice, reconcile exits 0."""
    evals = run.scalar("select count(*) from evaluations")
    resumed = wait_for(lambda: run.scalar("select count(*) from evaluations") > evals, settle_s, 1)
    assert resumed, "the loop made no progress after the last restart"
    for t in run.inflight:
        t.join(timeout=120)
    quick_checks(run)
    out: dict[str, Any] = {"acknowledged": len(run.acked), "rebuilt": rebuild_versions(run)}
    scored = wait_for(
        lambda: run.scalar("select count(*) from contributions where status = 'received'") == 0,
        settle_s,
        1.0,
    )
    out["unscored"] = (
        0 if scored else run.scalar("select count(*) from contributions where status = 'received'")
    )
    with run.engine.connect() as conn:
        out["failed"] = [  # a contribution that failed scoring is never scored nor paid
            f"{sha[:12]}: {error}"
            for sha, error in conn.execute(
                sa.text(
                    "select c.sha256, max(k.error) from contributions c join candidates k "
                    "on k.contribution_sha = c.sha256 where c.status = 'failed' group by c.sha256"
                )
            )
        ]
    for attempt in range(3):  # the loop keeps scoring: an epoch may land between claim and check
        settle_rewards(run, settle_s)
        try:
            out |= ledger_checks(run)
            break
        except AssertionError as exc:
            if "claimed" not in str(exc) or attempt == 2:
                raise
    out["reconcile_rc"] = reconcile(run)
    assert out["reconcile_rc"] == 0, "mergenet rewards reconcile found differences"
    out["evaluations"] = run.scalar("select count(*) from evaluations")
    return out


def table(faults: list[Fault]) -> str:
    lines = ["| # | fault | state at the fault | back in | outcome |", "|---:|---|---|---:|---|"]
    lines += [
        f"| {f.n} | {f.what} | {f.state} | {f.restart_s:.1f} s | {f.outcome} |" for f in faults
    ]
    return "\n".join(lines)

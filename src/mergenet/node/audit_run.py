"""The working half of ``mergenet audit``: chain check, task rebuild, worker run, rich output.

:mod:`mergenet.node.audit` holds the rules (what matches, what the exit codes are) and the
command; this module does the I/O and imports torch and web3 (through the worker and the
chain client) only when a command runs, so ``mergenet --help`` stays fast.

The re-run is the worker's own code (:func:`mergenet.workers.evaluate.run_task_here`) on
artifacts fetched from the coordinator over HTTP and checked by content hash
(:class:`mergenet.workers.fetch.ArtifactCache`: a version by its state-dict hash, a delta by
its sha256), so nothing the coordinator serves is taken on its word: a tampered weight file
fails its hash, a tampered number fails the comparison.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table

from mergenet.node import audit as rules
from mergenet.node.client import CoordinatorClient

console = Console()


def chain_info(client: CoordinatorClient) -> dict[str, Any] | None:
    """``GET /api/chain``, or None when the coordinator runs without a chain (404)."""
    import httpx

    r = httpx.get(f"{client.url}/api/chain", timeout=30)
    return None if r.status_code == 404 else dict(rules.checked_json(r, "the chain info"))


def onchain_commitment(
    info: dict[str, Any], number: int, rpc: str | None
) -> tuple[str, datetime | None]:
    """The commitment the ``EpochSeeds`` contract named in ``info`` holds for ``number`` (64
    hex digits, 0x-less; all zeros when nothing was committed) and the time of the block that
    recorded it (None without a ``SeedCommitted`` event)."""
    from eth_utils import to_checksum_address

    from mergenet.contracts.compile import load_artifacts
    from mergenet.rewards.client import connect

    url = rpc or info.get("rpc_url")
    if not url:
        raise rules.AuditMismatch("the chain info names no RPC URL: pass --rpc")
    w3 = connect(str(url))
    seeds = w3.eth.contract(
        address=to_checksum_address(str(info["seeds"])), abi=load_artifacts()["EpochSeeds"].abi
    )
    committed = bytes(seeds.functions.commitment_of(number).call()).hex()
    logs = seeds.events.SeedCommitted().get_logs(
        from_block=int(info.get("block") or 0), argument_filters={"epoch": number}
    )
    if not logs:
        return committed, None
    stamp = int(w3.eth.get_block(logs[0]["blockNumber"])["timestamp"])
    return committed, datetime.fromtimestamp(stamp, UTC)


def _late(committed_at: datetime | None, first_scored: str | None) -> str:
    """A warning when the commitment reached the chain after the epoch's first recorded
    evaluation (the coordinator's own timestamp): then it bound the secret only afterwards."""
    if committed_at is None or first_scored is None:
        return ""
    first = datetime.fromisoformat(first_scored)
    first = first if first.tzinfo else first.replace(tzinfo=UTC)
    if committed_at <= first:
        return f", committed {committed_at:%Y-%m-%d %H:%M:%S} UTC, before its first evaluation"
    return (
        f"\nwarning: the commitment reached the chain at {committed_at:%Y-%m-%d %H:%M:%S} UTC, "
        f"after the epoch's first evaluation ({first_scored}): until then the secret was bound "
        "only by the coordinator's word"
    )


def verify_on_chain(
    epoch: dict[str, Any],
    info: dict[str, Any] | None,
    rpc: str | None,
    first_scored: str | None = None,
) -> str:
    """What the chain says about the epoch's commitment (lines to print); raises
    :class:`~.audit.AuditMismatch` when the chain holds another one. ``first_scored``: the
    ``created_at`` of the epoch's first evaluation, to say whether the commitment preceded it."""
    number = int(epoch["number"])
    if not info or not info.get("seeds"):
        return (
            "note: the coordinator names no EpochSeeds contract; the on-chain commitment "
            "check is skipped (the commitment is only as good as the coordinator's word)"
        )
    on_chain, committed_at = onchain_commitment(info, number, rpc)
    if on_chain != str(epoch["commitment"]).lower().removeprefix("0x"):
        raise rules.AuditMismatch(
            f"the EpochSeeds contract holds {on_chain} for row epoch {number}, "
            f"the coordinator serves {epoch['commitment']}"
        )
    return f"row epoch {number}: the EpochSeeds contract at {info['seeds']} holds the same" + _late(
        committed_at, first_scored
    )


def check_epoch(
    client: CoordinatorClient, number: int, rpc: str | None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The revealed epoch, its secret checked against the commitment here and on chain, and
    every evaluation recorded under it."""
    epoch = rules.revealed_epoch(client, number)
    rules.check_commitment(epoch)
    console.print(f"row epoch {number}: sha256(secret) = commitment {epoch['commitment']}")
    evs = rules.evaluations(client, number)
    first = min((str(e["created_at"]) for e in evs if e.get("created_at")), default=None)
    console.print(verify_on_chain(epoch, chain_info(client), rpc, first))
    return epoch, evs


def table(checks: list[rules.Check]) -> Table:
    t = Table(title="re-run against the record")
    for col in ("evaluation", "candidate", "purpose", "max |Δ|", "verdict"):
        t.add_column(col, justify="right" if col.startswith(("eval", "cand", "max")) else "left")
    for c in checks:
        verdict = "[green]match[/green]" if c.ok else f"[red]MISMATCH[/red] {c.mismatch}"
        t.add_row(str(c.evaluation_id), str(c.candidate_id), c.purpose, f"{c.max_abs_diff:.3g}",
                  verdict)  # fmt: skip
    return t


def audit(
    client: CoordinatorClient,
    number: int,
    ids: list[int],
    limit: int | None,
    rpc: str | None,
    threads: int,
) -> bool:
    """Audit row epoch ``number``; True when every check passed (see :mod:`.audit`)."""
    from mergenet.protocol.evaluation import WorkerEnv
    from mergenet.workers.evaluate import run_task_here

    try:
        epoch, recorded = check_epoch(client, number, rpc)
    except rules.AuditMismatch as exc:
        console.print(f"[red]MISMATCH[/red] row epoch {number}: {exc}")
        return False
    evs = rules.choose(recorded, ids, limit)
    secret = bytes.fromhex(str(epoch["secret"]))
    env = WorkerEnv(coordinator_url=client.url, torch_threads=threads)
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        job = bar.add_task(f"re-running epoch {number}", total=len(evs))
        checks = rules.run_audit(
            evs,
            lambda ev: rules.rebuild_task(ev, secret),
            lambda task: run_task_here(env, task),
            on_done=lambda _: bar.advance(job),
        )
    pooled = sum(str(ev["sample"].get("rows_label", "")).startswith("pool:") for ev in evs)
    if pooled:
        console.print(rules.POOL_NOTE.format(k=pooled))
    console.print(table(checks))
    bad = [c for c in checks if not c.ok]
    console.print(
        f"{len(checks) - len(bad)} of {len(checks)} evaluations match within "
        f"{rules.REL_TOL:g} relative; largest |Δ| "
        f"{max((c.max_abs_diff for c in checks), default=0.0):.3g}"
    )
    for c in bad:
        console.print(f"[red]evaluation {c.evaluation_id} does not match:[/red] {c.mismatch}")
    return not bad

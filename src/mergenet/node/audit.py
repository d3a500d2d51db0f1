"""``mergenet audit EPOCH``: re-run a closed row epoch's evaluations and check every number.

Scoring rows are private while their row epoch is open and its secret is revealed when it
closes (DESIGN.md, "Who is trusted"). This command is how anyone holds the coordinator to what
it recorded, trusting none of its numbers:

1. fetch the epoch (``GET /api/row-epochs/{n}``); an unknown or still-open epoch is exit 2;
2. check ``sha256(secret) == commitment``, and, when the coordinator's chain info names the
   ``EpochSeeds`` contract, that the commitment on chain is the same one (the contract's
   ``reveal`` also checks the hash on chain). The block time of its ``SeedCommitted`` event
   is printed, with a warning when it is later than the epoch's first recorded evaluation:
   the coordinator sends the commitment at its next publishing round, so until then the
   secret was bound only by its word (it could have been chosen after seeing rows). Without
   a chain the on-chain check is skipped with a printed note, for the same reason;
3. per evaluation (``GET /api/row-epochs/{n}/evaluations``): regenerate its rows from the
   secret, its label and seed (:func:`mergenet.ecosystem.fresh_rows.fresh_rows`), rebuild the
   ``EvalTask`` from its recipe, run it with the worker code (:mod:`mergenet.workers.evaluate`)
   on artifacts fetched over HTTP and checked by content hash (:mod:`mergenet.workers.fetch`),
   and compare every recorded number — the candidate's and the parent's results, the relative
   distance — with the re-run. A private row pool's rows (a coordinator on its own
   ``--dev-rows`` file) cannot be regenerated from the secret: they are taken as the
   coordinator serves them once the epoch is revealed, and the audit says so.

Tolerance: :data:`REL_TOL` = 1e-6 relative (:data:`ABS_TOL` = 1e-12 absolute, for values at
0). The same recipe on the same rows with the same torch thread count on the same machine is
bit-identical (exact equality, max |Δ| = 0.0); across CPUs or thread counts float32 sums are
reordered and ppl / answer loss move by float32 rounding (float32's epsilon is 1.2e-7; a
mean over a few hundred tokens drifts by a few of them, ~1e-6 relative by
:mod:`mergenet.coordinator.trust`'s estimate). 1e-6 accepts that rounding and nothing that
could change a decision: the loop's margins are ~1e-3 of S, and counts and accuracies
(fractions of integers) can only match exactly or differ by ≥ 1/n. The table reports the max
|Δ| per evaluation, so an exact re-run shows 0. Measured on the world (AMD EPYC, 2 shared
cores; 2 contributions + 2 selections recorded by a 1-thread worker): re-run with 1 thread,
max |Δ| 0 on all 4; with ``--threads 2``, max |Δ| 3.0e-15 (≈1e-15 relative). The re-run is
only as exact as its code: audit with the scorer release the coordinator ran (a change to the
scorer's arithmetic, e.g. another batching of rows, moves numbers by float32 rounding or more
and reads as a mismatch).

Exit codes: 0 every audited evaluation matches; 1 any mismatch (a number, a missing field, a
failed re-run, a secret that does not hash to its commitment, a commitment that differs from
the chain's); 2 a bad epoch (unknown, not yet revealed) or an unreachable coordinator, with
one ``error:`` line (``NodeError``).

Cost: one evaluation per audited evaluation (parent results are cached per (parent, rows), as
in a worker); ``--limit K`` audits a uniform random sample of K of them (drawn here, so the
coordinator cannot guess which).
"""

from __future__ import annotations

import hashlib
import math
import secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import typer

from mergenet.node.client import CoordinatorClient
from mergenet.node.errors import NodeError

REL_TOL = 1e-6
"""Relative tolerance of a match (see the module docstring for why)."""
ABS_TOL = 1e-12
"""Absolute tolerance, for recorded values at or near 0 (a no-change distance, an accuracy)."""
PAGE = 100
"""Evaluations per request (the route's cap)."""


class AuditMismatch(Exception):
    """The epoch's commitment does not check out (exit 1, not 2: the coordinator is wrong)."""


@dataclass(frozen=True)
class Check:
    """One audited evaluation: the largest difference and the first field that mismatched."""

    evaluation_id: int
    candidate_id: int
    purpose: str
    max_abs_diff: float
    mismatch: str | None
    """None when every number matches within tolerance."""

    @property
    def ok(self) -> bool:
        return self.mismatch is None


# ------------------------------------------------------------------------ comparing numbers


def leaves(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted path, leaf) for every scalar in a nested JSON value; numbers as floats."""
    if isinstance(value, Mapping):
        for k in sorted(value):
            yield from leaves(value[k], f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from leaves(v, f"{prefix}[{i}]")
    elif isinstance(value, bool | int | float):
        yield prefix, float(value)
    else:
        yield prefix, value


def _same(a: Any, b: Any) -> bool:
    if not (isinstance(a, float) and isinstance(b, float)):
        return bool(a == b)
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=ABS_TOL)


def compare(recorded: Mapping[str, Any], rerun: Mapping[str, Any]) -> tuple[float, str | None]:
    """(max |Δ| over shared numbers, the first mismatch or None) of two nested records.

    A leaf present on one side only is a mismatch, and so is any other leaf that differs (a
    task name exactly, a number beyond the tolerance). ``recorded`` is what the coordinator
    stored, ``rerun`` what ran here.
    """
    a, b = dict(leaves(recorded)), dict(leaves(rerun))
    worst, why = 0.0, None
    for path in sorted(a.keys() | b.keys()):
        if path not in a or path not in b:
            side = "the re-run" if path not in a else "the record"
            why = why or f"{path} only in {side}"
            continue
        x, y = a[path], b[path]
        if isinstance(x, float) and isinstance(y, float) and not (math.isnan(x) or math.isnan(y)):
            worst = max(worst, abs(x - y))
        if not _same(x, y):
            why = why or f"{path}: recorded {x!r}, re-run {y!r}"
    return worst, why


def _failed(ev: Mapping[str, Any], why: str) -> Check:
    return Check(int(ev["id"]), int(ev["candidate_id"]), str(ev["purpose"]), math.inf, why)


def check_outcome(ev: Mapping[str, Any], outcome: Any) -> Check:
    """Compare one recorded evaluation with its re-run ``EvalOutcome``."""
    if outcome.error is not None:
        return _failed(ev, f"re-run failed: {outcome.error}")
    recorded = {
        "result": ev.get("result"),
        "parent_result": ev.get("parent_result"),
        "relative_distance": ev.get("relative_distance"),
    }
    rerun = {
        "result": outcome.result,
        "parent_result": outcome.parent_result,
        "relative_distance": outcome.relative_distance,
    }
    worst, why = compare(recorded, rerun)
    return Check(int(ev["id"]), int(ev["candidate_id"]), str(ev["purpose"]), worst, why)


# ------------------------------------------------------------------------ the epoch


def commitment_of(secret_hex: str) -> str:
    """sha256 hex of the secret's bytes (what the coordinator commits when an epoch opens)."""
    return hashlib.sha256(bytes.fromhex(secret_hex)).hexdigest()


def revealed_epoch(client: CoordinatorClient, number: int) -> dict[str, Any]:
    """The epoch with its secret; NodeError (exit 2) when unknown or not revealed yet."""
    epoch = client.get(f"/api/row-epochs/{number}", f"row epoch {number}")
    if epoch.get("revealed_at") is None or not epoch.get("secret"):
        raise NodeError(
            f"row epoch {number} is still open: its rows stay private until it closes and its "
            "secret is revealed; audit a revealed epoch (GET /api/row-epochs lists them)"
        )
    return dict(epoch)


def check_commitment(epoch: Mapping[str, Any]) -> None:
    """sha256(secret) must be the published commitment (else :class:`AuditMismatch`)."""
    try:
        got = commitment_of(str(epoch["secret"]))
    except ValueError:
        raise AuditMismatch(f"the revealed secret {epoch['secret']!r} is not hex") from None
    if got != str(epoch["commitment"]).lower().removeprefix("0x"):
        raise AuditMismatch(
            f"sha256(secret) = {got} is not the epoch's commitment {epoch['commitment']}"
        )


def evaluations(client: CoordinatorClient, number: int) -> list[dict[str, Any]]:
    """Every evaluation the coordinator recorded under the epoch, page by page (id order)."""
    out: list[dict[str, Any]] = []
    after = 0
    while True:
        page = client.get(
            f"/api/row-epochs/{number}/evaluations?after={after}&limit={PAGE}",
            f"row epoch {number}'s evaluations",
        )
        out.extend(page["evaluations"])
        if page.get("next_after") is None:
            return out
        after = int(page["next_after"])


def choose(
    evs: Sequence[dict[str, Any]], ids: Sequence[int], limit: int | None
) -> list[dict[str, Any]]:
    """The evaluations to audit: ``ids`` if given (each must exist), then a random ``limit``."""
    if ids:
        by_id = {int(e["id"]): e for e in evs}
        missing = sorted(set(ids) - by_id.keys())
        if missing:
            raise NodeError(f"no evaluation {missing} in this epoch (its ids: {sorted(by_id)})")
        evs = [by_id[i] for i in sorted(set(ids))]
    if limit is not None and 0 <= limit < len(evs):
        picked = secrets.SystemRandom().sample(range(len(evs)), limit)
        evs = [evs[i] for i in sorted(picked)]
    return list(evs)


# ------------------------------------------------------------------------ re-running


def checked_json(response: Any, what: str) -> Any:
    """The body of a 2xx answer; NodeError (exit 2) naming the coordinator's detail otherwise."""
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        raise NodeError(f"{what}: the coordinator said ({response.status_code}) {detail}")
    return response.json()


def rebuild_task(ev: Mapping[str, Any], secret: bytes) -> Any:
    """The ``EvalTask`` the coordinator dispatched for ``ev``, rows regenerated from ``secret``.

    Only the recipe, the label, the seed and ``n`` come from the record; generated rows
    (``gen:…`` labels) come from the revealed secret, so a record that claims rows the secret
    does not yield fails the comparison (the re-run scores other rows). A private pool's rows
    (``pool:…``) are drawn along a permutation keyed by a key the coordinator never reveals,
    so they can only be taken as the coordinator serves them (:data:`POOL_NOTE`)."""
    from mergenet.ecosystem.fresh_rows import POOL_PREFIX, regenerate
    from mergenet.protocol.evaluation import EvalTask, SampleSpec

    sample = ev["sample"]
    label, seed = sample.get("rows_label"), int(sample["seed"])
    if not label:
        raise ValueError("the record names no rows label")
    if str(label).startswith(POOL_PREFIX + ":"):
        if not sample.get("rows"):
            raise ValueError(f"pool rows {label!r} were not served with the record")
        rows = [dict(r) for r in sample["rows"]]
    else:
        rows = regenerate(secret, str(label), seed)
    return EvalTask(
        key=f"{ev['candidate_id']}:{ev['purpose']}:{seed}",
        recipe=dict(ev["recipe"]),
        sample=SampleSpec(rows=str(label), n=int(sample["n"]), seed=seed, data=tuple(rows)),
    )


POOL_NOTE = (
    "note: {k} evaluation(s) scored a private row pool (pool:… labels): the secret cannot "
    "regenerate those rows, so they were re-run on the rows the coordinator served; their "
    "numbers are checked, the choice of rows is not"
)


def run_audit(
    evs: Sequence[dict[str, Any]],
    rebuild: Callable[[dict[str, Any]], Any],
    run: Callable[[Any], Any],
    on_done: Callable[[Check], None] = lambda _: None,
) -> list[Check]:
    """Rebuild and re-run each evaluation, comparing it with its record."""
    checks = []
    for ev in evs:
        try:
            task = rebuild(ev)
        except Exception as exc:  # a record whose rows or recipe cannot be rebuilt: a mismatch
            checks.append(_failed(ev, f"cannot rebuild its task: {exc}"))
        else:
            checks.append(check_outcome(ev, run(task)))
        on_done(checks[-1])
    return checks


# ------------------------------------------------------------------------ the command

CoordinatorOpt = Annotated[
    str | None,
    typer.Option("--coordinator", help="Coordinator URL (default MERGENET_COORDINATOR_URL)."),
]


def audit_command(
    epoch: Annotated[int, typer.Argument(min=1, help="The row epoch to audit (a revealed one).")],
    coordinator: CoordinatorOpt = None,
    evaluation: Annotated[
        list[int] | None,
        typer.Option("--evaluation", help="Audit only this evaluation id (repeatable)."),
    ] = None,
    limit: Annotated[
        int | None, typer.Option(min=0, help="Audit a random sample of at most this many.")
    ] = None,
    rpc: Annotated[
        str | None,
        typer.Option(help="JSON-RPC URL for the on-chain commitment (default: the coordinator's)."),
    ] = None,
    threads: Annotated[
        int,
        typer.Option(min=1, help="torch threads (the coordinator's workers use 1: exact re-runs)."),
    ] = 1,
) -> None:
    """Re-run a closed row epoch's evaluations from recipe + revealed seed; exit 1 on any
    mismatch, 2 on an unknown or still-open epoch."""
    from mergenet.node import audit_run

    with CoordinatorClient(coordinator or _default_url()) as client:
        ok = audit_run.audit(client, epoch, evaluation or [], limit, rpc, threads)
    if not ok:
        raise typer.Exit(1)


def _default_url() -> str:
    from mergenet.config import get_settings

    return get_settings().coordinator_url

"""``mergenet chain …`` and ``mergenet rewards …``.

web3, SQLAlchemy models and eth-account are imported inside the commands so that
``mergenet --help`` stays fast. Expected failures (no chain, wrong password, bad input) raise
error kinds, which the ``mergenet`` command prints as one line saying what to fix (exit code 2);
``reconcile`` exits 1 on any difference. The contributor's own commands (a key, a reward
status, a claim) live in ``mergenet node``; their old spellings here say where they moved.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from mergenet.errors import InvalidInput

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

chain_app = typer.Typer(no_args_is_help=True)
rewards_app = typer.Typer(no_args_is_help=True)

T = TypeVar("T")
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def _settings() -> Any:
    from mergenet.config import get_settings

    return get_settings()


def _ledger(settings: Any) -> sessionmaker[Session]:
    from mergenet.rewards.ledger import open_ledger

    return open_ledger(settings)


def _emit(as_json: bool, data: Any, text: Callable[[], str]) -> None:
    typer.echo(json.dumps(data, indent=2) if as_json else text())


# ------------------------------------------------------------------------------------ chain


@chain_app.command("up")
def chain_up_command(as_json: JsonOpt = False) -> None:
    """Start the local anvil (unless MERGENET_CHAIN_URL is set), deploy the contracts once,
    and record their addresses in the data directory. Safe to run again."""
    from mergenet.rewards.chain import chain_up

    result = chain_up(_settings())
    dep = result.deployment
    _emit(
        as_json,
        dep.public_json(),
        lambda: "\n".join(
            [
                f"chain {dep.rpc_url} (chain id {dep.chain_id})"
                + (" started" if result.started_anvil else " running"),
                f"token       {dep.token}",
                f"distributor {dep.distributor}" + (" (deployed)" if result.deployed else ""),
                f"registry    {dep.registry}",
            ]
        ),
    )


@chain_app.command("down")
def chain_down_command() -> None:
    """Stop the anvil that `mergenet chain up` started."""
    from mergenet.rewards.chain import chain_down

    stopped = chain_down(_settings())
    typer.echo("chain stopped" if stopped else "no chain started by mergenet is running")


@chain_app.command("status")
def chain_status_command(as_json: JsonOpt = False) -> None:
    """Show the recorded deployment, the chain's current epoch and root."""
    from mergenet.rewards.chain import open_chain

    contracts = open_chain(_settings())
    data = {
        "rpc_url": contracts.w3.provider.endpoint_uri,  # type: ignore[attr-defined]
        "chain_id": contracts.w3.eth.chain_id,
        "block": contracts.w3.eth.block_number,
        "token": contracts.token.address,
        "distributor": contracts.distributor.address,
        "registry": contracts.registry.address,
        "epoch": contracts.epoch(),
        "merkle_root": "0x" + contracts.merkle_root().hex(),
    }
    _emit(as_json, data, lambda: "\n".join(f"{k:12} {v}" for k, v in data.items()))


@chain_app.command("fund")
def chain_fund_command(
    address: Annotated[str, typer.Argument(help="Address to give test ether (0x…).")],
    ether: Annotated[float, typer.Option(help="Balance to set, in ether.")] = 1.0,
) -> None:
    """Give an address test ether on the local anvil, so it can pay gas (e.g. for a claim)."""
    from mergenet.rewards.chain import fund_local

    if not 0 < ether <= 1e6:
        raise InvalidInput("--ether must be in (0, 1e6]")
    balance = fund_local(_settings(), address, int(ether * 10**18))
    typer.echo(f"{address} now holds {balance / 10**18:g} ether")


# ---------------------------------------------------------------------------------- rewards


def _parse_time(value: str | None, name: str) -> datetime:
    if value is None:
        return datetime.now(UTC)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        example = "2025-01-31T12:00:00+00:00"
        raise InvalidInput(f"--{name} must be an ISO 8601 time such as {example}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@rewards_app.command("accrue")
def accrue_command(
    contribution: Annotated[str, typer.Option(help="Contribution id (e.g. the delta sha256).")],
    account: Annotated[str, typer.Option(help="Contributor address (0x…).")],
    amount: Annotated[
        float | None, typer.Option(help="Tokens to credit directly (instead of --score).")
    ] = None,
    score: Annotated[
        float | None, typer.Option(help="The contribution's score S in [0, 1].")
    ] = None,
    threshold: Annotated[
        float | None, typer.Option(help="Reward threshold on S (needed with --score).")
    ] = None,
    base_reward: Annotated[float, typer.Option(help="R_b in tokens.")] = 1.0,
    beta: Annotated[float, typer.Option(help="β in R = R_b(e^(βtS) − 1).")] = 1.0,
    submitted_at: Annotated[str | None, typer.Option(help="ISO time; default now.")] = None,
    parent_published_at: Annotated[
        str | None, typer.Option(help="ISO time the parent core version appeared; default now.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Credit a contribution's reward in the ledger (idempotent per contribution)."""
    from mergenet.db import transaction
    from mergenet.rewards.ledger import accrue
    from mergenet.rewards.policy import RewardPolicy, quote_reward
    from mergenet.rewards.units import format_tokens, to_base_units

    if (amount is None) == (score is None):
        raise InvalidInput("give exactly one of --amount (tokens) or --score (with --threshold)")
    t = None
    if score is not None:
        if threshold is None:
            raise InvalidInput("--score needs --threshold (set it above the no-change score)")
        try:  # ScoreError is an InvalidInput already; the policy's checks raise ValueError
            quote = quote_reward(
                score,
                submitted_at=_parse_time(submitted_at, "submitted-at"),
                parent_published_at=_parse_time(parent_published_at, "parent-published-at"),
                policy=RewardPolicy(threshold=threshold, base_reward=base_reward, beta=beta),
            )
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
        units, t = quote.amount, quote.t
    else:
        try:
            units = to_base_units(float(amount))  # type: ignore[arg-type]
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
    with transaction(_ledger(_settings())) as session:
        row = accrue(
            session, contribution_id=contribution, account=account, amount=units, score=score, t=t
        )
        data = {
            "contribution": row.contribution_id,
            "account": row.account,
            "amount": str(row.amount),
            "tokens": format_tokens(row.amount),
            "t": row.t,
        }
    _emit(as_json, data, lambda: f"{data['account']} +{data['tokens']} tokens")


@rewards_app.command("close-epoch")
def close_epoch_command(as_json: JsonOpt = False) -> None:
    """Fold new accruals into the next epoch's Merkle root (not yet published)."""
    from mergenet.db import transaction
    from mergenet.rewards.ledger import close_epoch
    from mergenet.rewards.units import format_tokens

    with transaction(_ledger(_settings())) as session:
        epoch = close_epoch(session)
        data = None
        if epoch is not None:
            data = {
                "epoch": epoch.number,
                "root": epoch.root,
                "accounts": epoch.accounts,
                "total": str(epoch.total),
            }
            text = (
                f"epoch {epoch.number}: root {epoch.root}, {epoch.accounts} accounts, "
                f"{format_tokens(epoch.total)} tokens cumulative"
            )
    _emit(as_json, data, lambda: text if data else "nothing new to close")


@rewards_app.command("publish")
def publish_command(as_json: JsonOpt = False) -> None:
    """Publish every unconfirmed epoch's root on chain (idempotent; safe after a crash)."""
    from mergenet.rewards.chain import coordinator_account, open_chain
    from mergenet.rewards.publish import publish_pending

    settings = _settings()
    contracts = open_chain(settings)
    owner = coordinator_account(settings)
    done = publish_pending(_ledger(settings), contracts, owner)
    data = [p.__dict__ for p in done]
    _emit(
        as_json,
        data,
        lambda: (
            "\n".join(
                f"epoch {p.epoch} confirmed"
                + (" (superseded by a later root)" if p.superseded else f" in tx {p.tx_hash}")
                for p in done
            )
            or "nothing to publish"
        ),
    )


@rewards_app.command("reconcile")
def reconcile_command(as_json: JsonOpt = False) -> None:
    """Compare the ledger with the chain; exit code 1 if they differ."""
    from mergenet.rewards.chain import open_chain
    from mergenet.rewards.reconcile import reconcile

    settings = _settings()
    with _ledger(settings)() as session:
        report = reconcile(session, open_chain(settings))
    _emit(
        as_json,
        report.to_json(),
        lambda: "\n".join(
            [
                f"chain epoch {report.chain_epoch}, ledger epoch {report.ledger_epoch}",
                *(f"DIFFERENCE: {d}" for d in report.differences),
                "ledger and chain agree" if report.ok else "",
            ]
        ).strip(),
    )
    if not report.ok:
        raise typer.Exit(1)


# ------------------------------------------------------------- folded into `mergenet node`

MOVED = {
    "new-key": "mergenet node keys new --keystore PATH",
    "show": "mergenet node rewards --address ADDRESS [--local]",
    "claim": "mergenet node claim --keystore PATH [--local]",
}
"""The contributor's commands that were here twice; ``mergenet node`` is their one place."""


def _moved(old: str, new: str) -> None:
    @rewards_app.command(
        old,
        hidden=True,
        add_help_option=False,
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    )
    def moved() -> None:
        raise InvalidInput(f"`mergenet rewards {old}` moved: use `{new}`")


for _old, _new in MOVED.items():
    _moved(_old, _new)

"""``mergenet node …``: what a contributor runs, from a key to a claimed reward.

Every expected failure (no keystore, wrong password, bad data, an unreachable coordinator, a
rejected upload) raises a ``MergenetError`` (``NodeError`` here); the ``mergenet`` command
prints it as one ``error:`` line saying what to do and exits with code 2.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from mergenet.config import Settings
    from mergenet.node.client import CoordinatorClient
    from mergenet.node.home import NodeHome

app = typer.Typer(no_args_is_help=True, help="Contribute: keys, pull, finetune, submit, claim.")
keys_app = typer.Typer(no_args_is_help=True, help="The contributor's encrypted key.")
app.add_typer(keys_app, name="keys")

CoordinatorOpt = Annotated[
    str | None,
    typer.Option("--coordinator", help="Coordinator URL (default MERGENET_COORDINATOR_URL)."),
]
KeystoreOpt = Annotated[
    Path | None,
    typer.Option(
        "--keystore", help="Keystore file (default <MERGENET_DATA_DIR>/node/keystore.json)."
    ),
]


def _settings() -> Settings:
    from mergenet.config import get_settings

    return get_settings()


def _home() -> NodeHome:
    from mergenet.node.home import NodeHome

    return NodeHome.from_settings(_settings())


def _client(url: str | None) -> CoordinatorClient:
    from mergenet.node.client import CoordinatorClient

    return CoordinatorClient(url or _settings().coordinator_url)


def _prompt(confirm: bool) -> str:
    return typer.prompt("Keystore password", hide_input=True, confirmation_prompt=confirm)


def _password(confirm: bool) -> str:
    from mergenet.node.keys import password

    return password(_settings(), _prompt if sys.stdin.isatty() else None, confirm=confirm)


def _account(keystore: Path | None) -> Any:
    from mergenet.node.keys import unlock

    path = keystore or _home().keystore
    if not path.exists():
        from mergenet.node.errors import NodeError

        raise NodeError(f"no keystore at {path}: create one with `mergenet node keys new`")
    return unlock(path, _password(confirm=False))


# ------------------------------------------------------------------------------------ keys


@keys_app.command("new")
def keys_new(keystore: KeystoreOpt = None) -> None:
    """Create a new key, encrypted with your password; prints only its address."""
    from mergenet.node.keys import new_key

    path = keystore or _home().keystore
    address = new_key(path, _password(confirm=True))
    typer.echo(f"new key {address}, encrypted in {path}")


@keys_app.command("import")
def keys_import(keystore: KeystoreOpt = None) -> None:
    """Encrypt an existing private key (read from stdin or a hidden prompt, never an argument)."""
    from mergenet.node.keys import import_key

    path = keystore or _home().keystore
    if sys.stdin.isatty():
        raw = typer.prompt("Private key (hex)", hide_input=True)
    else:
        raw = sys.stdin.readline()
    address = import_key(path, raw, _password(confirm=True))
    typer.echo(f"imported {address}, encrypted in {path}")


@keys_app.command("show")
def keys_show(keystore: KeystoreOpt = None) -> None:
    """Print the key's address (no password needed; the key itself is never shown)."""
    from mergenet.node.keys import show_address

    typer.echo(show_address(keystore or _home().keystore))


# ---------------------------------------------------------------------------- the work


@app.command("pull")
def pull_command(coordinator: CoordinatorOpt = None) -> None:
    """Download the current core version into the local cache, verified by its hash."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    from mergenet.node.pull import pull_current

    with (
        _client(coordinator) as client,
        Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            transient=True,
        ) as bar,
    ):
        task = bar.add_task("downloading", total=None)
        pulled = pull_current(
            client, _home(), lambda done, total: bar.update(task, completed=done, total=total)
        )
    how = "already cached" if pulled.cached else "downloaded and verified"
    typer.echo(f"version {pulled.version_hash[:16]} {how}: {pulled.path}")


@app.command("finetune")
def finetune_command(
    data: Annotated[Path, typer.Option("--data", help='Your rows: JSONL of {"input", "output"}.')],
    lora: Annotated[
        bool, typer.Option("--lora", help="Train a LoRA adapter instead of all weights.")
    ] = False,
    steps: Annotated[int, typer.Option(help="Optimiser steps (batches of 16 packed rows).")] = 40,
    lr: Annotated[
        float | None, typer.Option(help="Peak learning rate (default 2.5e-4, LoRA 2e-3).")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Output folder (default: a new one under the node's data dir)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the row order.")] = 0,
    l2_to_parent: Annotated[
        float | None, typer.Option(help="λ of λ·‖θ−θ_parent‖² (default 0.3, --lora 0; 0: off).")
    ] = None,
    kl_to_parent: Annotated[float, typer.Option(help="λ of λ·KL(parent‖model) (0: off).")] = 0.0,
) -> None:
    """Fine-tune the pulled version on your rows; writes the delta (or adapter) to submit."""
    import time
    from dataclasses import replace

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from mergenet.node.data import read_rows
    from mergenet.node.finetune import FinetuneConfig, finetune
    from mergenet.node.pull import current_pulled

    home = _home()
    rows = read_rows(data)
    pulled = current_pulled(home)
    target = out or home.outputs / time.strftime("%Y%m%d-%H%M%S")
    cfg = FinetuneConfig(steps=steps, lr=lr, lora=lora, seed=seed, kl_to_parent=kl_to_parent)
    cfg = replace(cfg, l2_to_parent=l2_to_parent)  # None: the measured default
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        "{task.fields[loss]}",
        TimeRemainingColumn(),
    ) as bar:
        task = bar.add_task("fine-tuning", total=steps, loss="")
        result = finetune(
            pulled.path,
            pulled.version_hash,
            rows,
            target,
            cfg,
            on_step=lambda s, loss: bar.update(task, completed=s, loss=f"loss {loss:.3f}"),
        )
    typer.echo(
        f"{result.rows} rows, {result.steps} steps in {result.seconds:.0f} s, loss "
        f"{result.first_loss:.3f} → {result.last_loss:.3f}\n{result.kind} written to {result.out}\n"
        f"next: mergenet node submit {result.out}"
    )


@app.command("submit")
def submit_command(
    path: Annotated[
        Path | None,
        typer.Argument(
            help="Finetune output, delta .safetensors or adapter folder "
            "(default: your newest finetune)."
        ),
    ] = None,
    parent: Annotated[
        str | None, typer.Option(help="Parent version hash, for a bare delta or adapter.")
    ] = None,
    wait: Annotated[
        float, typer.Option(help="Seconds to follow the evaluation (0: do not wait).")
    ] = 600,
    coordinator: CoordinatorOpt = None,
    keystore: KeystoreOpt = None,
) -> None:
    """Sign and upload; then follow the evaluation and print score, reward and merge status."""
    from mergenet.node.submit import follow, record, resolve_artifact, submit_artifact

    home = _home()
    artifact = resolve_artifact(path or _newest(home), parent)
    account = _account(keystore)
    with _client(coordinator) as client:
        info = submit_artifact(
            client, account, artifact, rpc_override=_settings().chain_url, say=typer.echo
        )
        record(home.data_dir / "submissions.jsonl", info, client.url)
        typer.echo(f"submitted {info['sha256'][:16]} as {account.address}")
        if wait > 0:
            with _spinner("evaluating against the current version"):
                info = follow(client, info["sha256"], timeout=wait)
    typer.echo(_describe(info))


def _newest(home: NodeHome) -> Path:
    from mergenet.node.errors import NodeError

    runs = sorted(
        p for p in home.outputs.glob("*") if p.is_dir() and not p.name.endswith(".partial")
    )
    if not runs:
        raise NodeError("nothing to submit: run `mergenet node finetune --data …` or give a path")
    return runs[-1]


@contextmanager
def _spinner(text: str) -> Iterator[None]:
    from rich.console import Console

    with Console(stderr=True).status(text):
        yield


def _describe(info: dict[str, Any]) -> str:
    from mergenet.rewards.units import format_tokens

    if info.get("status") == "received":
        return f"{info['sha256'][:16]}: waiting for evaluation (check `mergenet node status`)"
    reward = info.get("reward")
    tokens = format_tokens(int(reward["base_units"])) if reward else "0"
    merged = info.get("in_versions") or []
    pool = "in the merge pool" if info.get("in_pool") else "not in the merge pool"
    gain = info.get("gain") or 0.0
    lines = [
        f"{info['sha256'][:16]}: score S = {info['score']:.4f} (gain {gain:+.4f}),"
        f" reward {tokens} tokens, {pool}",
        "merged into version " + ", ".join(h[:12] for h in merged)
        if merged
        else "not yet part of an accepted version",
    ]
    return "\n".join(lines)


@app.command("status")
def status_command(coordinator: CoordinatorOpt = None) -> None:
    """Your submissions: status, score, reward and the versions that merged them."""
    from mergenet.node.submit import recorded

    home = _home()
    entries = recorded(home.data_dir / "submissions.jsonl")
    if not entries:
        typer.echo("no submissions yet: `mergenet node submit`")
        return
    with _client(coordinator) as client:
        for entry in entries:
            typer.echo(_describe(client.contribution(entry["sha256"])))


LocalOpt = Annotated[
    bool,
    typer.Option(
        "--local",
        help="Read the ledger and chain of this machine's data dir (the coordinator's "
        "operator) instead of asking a coordinator.",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def _reward_status(address: str, coordinator: str | None, local: bool) -> Any:
    """The reward status of ``address``: from the coordinator, or with ``local`` from this
    machine's ledger and chain (what ``mergenet rewards show`` read before it moved here)."""
    if not local:
        from mergenet.node.claim import reward_status

        with _client(coordinator) as client:
            return reward_status(client, address)
    from mergenet.rewards.chain import open_chain
    from mergenet.rewards.ledger import open_ledger
    from mergenet.rewards.service import rewards_for_address

    settings = _settings()
    contracts = open_chain(settings)
    with open_ledger(settings)() as session:
        return rewards_for_address(session, address, contracts)


@app.command("rewards")
def rewards_command(
    coordinator: CoordinatorOpt = None,
    keystore: KeystoreOpt = None,
    address: Annotated[
        str | None, typer.Option(help="Any address (0x…) instead of your keystore's.")
    ] = None,
    local: LocalOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Accrued, published, claimed and claimable tokens of your address (or ``--address``),
    with the current proof in ``--json``."""
    import json

    from mergenet.node.keys import show_address
    from mergenet.rewards.units import format_tokens

    who = address or show_address(keystore or _home().keystore)
    status = _reward_status(who, coordinator, local)
    if as_json:
        typer.echo(json.dumps(status.to_json(), indent=2))
        return

    def fmt(v: int | None) -> str:
        return "?" if v is None else format_tokens(v)

    typer.echo(
        f"{status.address}: accrued {fmt(status.accrued)}, published {fmt(status.published)}"
        f" (epoch {status.epoch}), claimed {fmt(status.claimed)}, claimable {fmt(status.claimable)}"
    )


@app.command("claim")
def claim_command(
    coordinator: CoordinatorOpt = None,
    keystore: KeystoreOpt = None,
    local: LocalOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Claim every published reward, signed with your own key; prints the tokens received."""
    import json

    account = _account(keystore)
    if local:
        from mergenet.rewards.chain import open_chain
        from mergenet.rewards.claim import claim_rewards

        status = _reward_status(account.address, None, local=True)
        result = claim_rewards(open_chain(_settings()), account, status)
    else:
        from mergenet.node.claim import claim

        with _client(coordinator) as client:
            result = claim(client, account, _settings().chain_url)
    if as_json:
        data = {**result.__dict__, "paid": str(result.paid), "balance": str(result.balance)}
        typer.echo(json.dumps(data, indent=2))
        return
    typer.echo(result.describe())


@app.command("serve")
def serve_command(
    worker: Annotated[bool, typer.Option("--worker", help="Run as an evaluation worker.")] = False,
    concurrency: Annotated[int, typer.Option(help="Tasks at once.")] = 1,
    coordinator: CoordinatorOpt = None,
) -> None:
    """Lend this machine to the network: ``--worker`` scores candidates for the coordinator."""
    from mergenet.node.errors import NodeError

    if not worker:
        raise NodeError("say what to serve: `mergenet node serve --worker`")
    try:
        from mergenet.workers.run import run_worker
    except ImportError:
        raise NodeError("this build has no evaluation worker yet (mergenet.workers.run)") from None
    run_worker(coordinator or _settings().coordinator_url, concurrency=concurrency)

"""``submit``: hash, sign and upload a delta or adapter; then follow its evaluation.

What is signed is the EIP-712 ``Contribution`` of ``protocol.signing``: the file's sha256 (for
an adapter, the hash over its weights and config), the parent version hash and a nonce, under
the domain the coordinator serves in ``GET /api/info`` (chain id, distributor contract,
network id), so the signature is valid at that coordinator only. The nonce is the current time
in microseconds: unique per key without any local state to lose, and the coordinator refuses a
reused one.

A delta may be on any version of the network, not only the current one: the parent signed is
the one it was fine-tuned on (``contribution.json``), and :func:`parent_notice` says that the
coordinator applies it to its current version (``mergenet.coordinator.parents``).

When the coordinator's ``GET /api/chain`` names an upload bond (``bond``, ``bond_wei`` > 0),
:func:`post_bond` deposits it from the contributor's key for the artifact's sha256 before the
upload (the coordinator answers 402 without it). A key that already holds a deposit for that
hash (a retried upload) deposits nothing. The bond comes back if the delta enters the merge
pool; junk and copies forfeit it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mergenet.node.client import CoordinatorClient
from mergenet.node.errors import NodeError
from mergenet.node.finetune import META

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from mergenet.protocol.signing import SigningDomain


@dataclass(frozen=True)
class Artifact:
    """One thing to upload: a dense delta file, or a PEFT adapter (weights + config)."""

    file: Path
    adapter_config: Path | None
    sha256: str
    parent_hash: str


def resolve_artifact(path: Path, parent: str | None) -> Artifact:
    """What ``path`` holds: a finetune output folder, an adapter folder, or a delta file."""
    from mergenet.protocol.hashes import sha256_file
    from mergenet.protocol.signing import adapter_folder_sha256

    if not path.exists():
        raise NodeError(f"nothing at {path}: give a finetune output folder, a delta or an adapter")
    meta: dict[str, Any] = {}
    folder = path
    if path.is_dir() and (path / META).exists():
        meta = json.loads((path / META).read_text())
        folder = path / "adapter" if meta.get("kind") == "lora" else path
    parent_hash = parent or meta.get("parent_hash")
    if not parent_hash:
        raise NodeError(
            f"{path} does not say which version it was fine-tuned from: pass --parent HASH"
        )
    if folder.is_dir() and (folder / "adapter_config.json").exists():
        weights = folder / "adapter_model.safetensors"
        if not weights.exists():
            raise NodeError(f"{folder} has no adapter_model.safetensors (only safetensors is sent)")
        return Artifact(
            weights, folder / "adapter_config.json", adapter_folder_sha256(str(folder)), parent_hash
        )
    file = folder / "delta.safetensors" if folder.is_dir() else folder
    if not file.exists() or file.suffix != ".safetensors":
        raise NodeError(f"{path} holds no delta.safetensors: submit a .safetensors delta")
    return Artifact(file, None, sha256_file(file), parent_hash)


def fetch_domain(client: CoordinatorClient) -> SigningDomain:
    """The EIP-712 domain this coordinator verifies uploads with (from ``GET /api/info``)."""
    from mergenet.protocol.signing import SignatureError, SigningDomain

    info = client.get("/api/info", "asking for the signing domain")
    try:
        return SigningDomain.from_json(info["signing_domain"])
    except (KeyError, TypeError, ValueError, SignatureError) as exc:
        raise NodeError(
            f"the coordinator at {client.url} serves no usable signing domain ({exc}): "
            "it may run an older mergenet"
        ) from None


def post_bond(
    client: CoordinatorClient,
    account: LocalAccount,
    sha256: str,
    *,
    rpc_override: str | None = None,
    say: Callable[[str], None] = lambda _: None,
) -> str | None:
    """Deposit the coordinator's upload bond for ``sha256`` if it asks for one; returns the
    transaction hash (None: no bond asked, or already deposited). Says what it did."""
    from mergenet.rewards.bond import deposit
    from mergenet.rewards.client import ChainError, RewardContracts, connect
    from mergenet.rewards.deployment import Deployment

    info = client.chain_or_none()
    if not info or not info.get("bond") or int(info.get("bond_wei") or 0) == 0:
        return None
    amount, rpc_url = int(info["bond_wei"]), rpc_override or str(info["rpc_url"])
    deployment = Deployment(
        rpc_url=rpc_url,
        chain_id=int(info["chain_id"]),
        owner="",
        token=str(info["token"]),
        distributor=str(info["distributor"]),
        registry=str(info["registry"]),
        blueprint="",
        block=int(info.get("block", 0)),
        seeds=str(info.get("seeds") or ""),
        bond=str(info["bond"]),
    )
    what = f"posting the upload bond of {amount} wei at {deployment.bond}"
    try:
        contracts = RewardContracts.bind(connect(rpc_url), deployment)
        balance = contracts.w3.eth.get_balance(account.address)
    except (ChainError, OSError) as exc:
        raise NodeError(f"{what}: cannot reach the chain at {rpc_url}: {exc}") from None
    if balance < amount:
        hint = ""
        if deployment.chain_id == 31337:
            hint = f"; on the local test chain: `mergenet chain fund {account.address}`"
        raise NodeError(
            f"{what}: {account.address} holds {balance} wei, less than the bond (and gas){hint}"
        )
    try:
        tx = deposit(contracts, account, sha256)
    except Exception as exc:  # a revert, or the node refusing the transaction
        raise NodeError(f"{what} failed: {exc}") from None
    if tx is None:
        say(f"bond of {amount} wei for {sha256[:16]} already deposited by {account.address}")
    else:
        say(f"posted the upload bond: {amount} wei to {deployment.bond} (tx {tx})")
    return tx


def submit_artifact(
    client: CoordinatorClient,
    account: LocalAccount,
    artifact: Artifact,
    domain: SigningDomain | None = None,
    *,
    rpc_override: str | None = None,
    say: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Sign ``artifact`` for ``domain`` (default: the one the coordinator serves), post the
    upload bond if the coordinator asks for one, and upload."""
    from mergenet.protocol.signing import sign_submission

    domain = domain or fetch_domain(client)
    notice = parent_notice(client, artifact.parent_hash)
    if notice is not None:
        say(notice)
    post_bond(client, account, artifact.sha256, rpc_override=rpc_override, say=say)
    nonce = time.time_ns() // 1000
    signature = sign_submission(account, artifact.sha256, artifact.parent_hash, nonce, domain)
    fields = {
        "address": account.address,
        "parent_hash": artifact.parent_hash,
        "nonce": str(nonce),
        "signature": signature,
    }
    return client.submit(artifact.file, fields, artifact.adapter_config)


def parent_notice(client: CoordinatorClient, parent_hash: str) -> str | None:
    """What happens to a delta on an older version (None when it is on the current one, or
    the current version cannot be read: the upload then says what went wrong)."""
    try:
        current = str(client.current_version()["hash"])
    except (NodeError, KeyError, TypeError):
        return None
    if current.lower().removeprefix("0x") == parent_hash.lower().removeprefix("0x"):
        return None
    return (
        f"your delta is on version {parent_hash[:16]}, not the current {current[:16]}: it will "
        f"be applied to the current version {current[:16]} as a task vector "
        f"(your fine-tuned weights minus {parent_hash[:16]}'s), and its temporal weight counts "
        f"from when {parent_hash[:16]} was published"
    )


def follow(
    client: CoordinatorClient,
    sha256: str,
    *,
    timeout: float,
    on_poll: Callable[[dict[str, Any]], None] | None = None,
    interval: float = 1.0,
) -> dict[str, Any]:
    """Poll the contribution until it is scored (or ``timeout`` seconds pass)."""
    deadline = time.monotonic() + timeout
    while True:
        info = client.contribution(sha256)
        if on_poll:
            on_poll(info)
        if info.get("status") != "received" or time.monotonic() > deadline:
            return info
        time.sleep(interval)


def record(log: Path, info: dict[str, Any], coordinator: str) -> None:
    """Remember a submission locally, so ``status`` can list them later."""
    log.parent.mkdir(parents=True, exist_ok=True)
    entry = {
        "sha256": info["sha256"],
        "parent_hash": info.get("parent_hash"),
        "coordinator": coordinator,
    }
    with log.open("a") as handle:
        handle.write(json.dumps(entry) + "\n")


def recorded(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]

"""``mergenet chain up/down``: one idempotent way to reach the reward contracts.

``chain_up`` finds or starts the chain, finds or deploys the contracts, and records both under
``<data_dir>/chain/``. With ``MERGENET_CHAIN_URL`` set it uses that node instead of starting
anvil (the coordinator key must then hold funds there). ``open_chain`` is what every other
command uses: it connects to the recorded deployment or says to run ``mergenet chain up``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

from eth_utils import is_address, to_checksum_address

from mergenet.rewards.anvil import AnvilError, pid_is_anvil, rpc_chain_id, start_anvil, stop_pid
from mergenet.rewards.client import ChainError, RewardContracts, connect
from mergenet.rewards.deployment import (
    DEFAULT_UPLOAD_BOND_WEI,
    Deployment,
    deploy_contracts,
    deployment_is_live,
    load_deployment,
    save_deployment,
)
from mergenet.rewards.keystore import (
    coordinator_keystore_path,
    create_keystore,
    keystore_password,
    load_keystore,
)

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from web3.types import RPCEndpoint

    from mergenet.config import Settings

LOCAL_FUNDING_WEI = 10**24
"""What ``chain up`` gives the coordinator key on a local anvil (anvil_setBalance)."""


def chain_dir(data_dir: Path) -> Path:
    return data_dir / "chain"


def anvil_state_path(data_dir: Path) -> Path:
    return chain_dir(data_dir) / "anvil.json"


@dataclass(frozen=True)
class ChainUp:
    deployment: Deployment
    started_anvil: bool
    deployed: bool


def coordinator_account(settings: Settings, *, create: bool = False) -> LocalAccount:
    """The coordinator's key (owner of the contracts), from its encrypted keystore."""
    path = coordinator_keystore_path(settings.data_dir)
    password = keystore_password(settings)
    if create and not path.exists():
        create_keystore(path, password)
    return load_keystore(path, password)


def _running_anvil(data_dir: Path, chain_id: int) -> str | None:
    path = anvil_state_path(data_dir)
    if not path.exists():
        return None
    state = json.loads(path.read_text())
    if not pid_is_anvil(int(state["pid"])):
        return None
    if rpc_chain_id(state["rpc_url"]) != chain_id:
        return None
    return str(state["rpc_url"])


def _start_local(settings: Settings) -> str:
    proc = start_anvil(
        chain_id=settings.chain_id,
        log_path=chain_dir(settings.data_dir) / "anvil.log",
        detach=True,
    )
    path = anvil_state_path(settings.data_dir)
    path.write_text(json.dumps(proc.to_json(), indent=2) + "\n")
    return proc.rpc_url


def chain_up(settings: Settings) -> ChainUp:
    """Idempotent: reuse the running chain and live deployment, else start/deploy them.

    The coordinator keystore is created on first use; it is only decrypted to deploy. The
    upload bond is :func:`upload_bond_wei` at deployment; a live deployment keeps the bond it
    was deployed with (the amount is immutable on chain).
    """
    keystore = coordinator_keystore_path(settings.data_dir)
    password = keystore_password(settings)
    if not keystore.exists():
        create_keystore(keystore, password)
    started = False
    if settings.chain_url:
        rpc_url = settings.chain_url
    else:
        rpc_url = _running_anvil(settings.data_dir, settings.chain_id) or ""
        if not rpc_url:
            rpc_url = _start_local(settings)
            started = True
    w3 = connect(rpc_url)
    if w3.eth.chain_id != settings.chain_id:
        raise ChainError(
            f"the node at {rpc_url} reports chain id {w3.eth.chain_id}, settings say "
            f"{settings.chain_id}: set MERGENET_CHAIN_ID={w3.eth.chain_id}"
        )
    existing = load_deployment(settings.data_dir)
    if existing is not None and existing.rpc_url == rpc_url and deployment_is_live(w3, existing):
        return ChainUp(existing, started_anvil=started, deployed=False)
    owner = load_keystore(keystore, password)
    if not settings.chain_url:
        w3.provider.make_request(
            cast("RPCEndpoint", "anvil_setBalance"), [owner.address, hex(LOCAL_FUNDING_WEI)]
        )
    elif w3.eth.get_balance(owner.address) == 0:
        raise ChainError(
            f"the coordinator key {owner.address} has no funds on {rpc_url}: send it some ether "
            "to pay for deployment and root updates"
        )
    deployment = deploy_contracts(w3, owner, rpc_url, bond_wei=upload_bond_wei(settings))
    save_deployment(settings.data_dir, deployment)
    return ChainUp(deployment, started_anvil=started, deployed=True)


def upload_bond_wei(settings: Settings) -> int:
    """The bond ``chain up`` deploys: the setting if given, else ``DEFAULT_UPLOAD_BOND_WEI`` on
    a local anvil and 0 (no bond) on a node named by ``MERGENET_CHAIN_URL``."""
    if settings.upload_bond_wei is not None:
        return settings.upload_bond_wei
    return 0 if settings.chain_url else DEFAULT_UPLOAD_BOND_WEI


def chain_down(settings: Settings) -> bool:
    """Stop the anvil ``chain up`` started (only that process); False if none was running."""
    path = anvil_state_path(settings.data_dir)
    if not path.exists():
        return False
    state = json.loads(path.read_text())
    stopped = stop_pid(int(state["pid"]))
    path.unlink()
    return stopped


def fund_local(settings: Settings, address: str, wei: int) -> int:
    """Give ``address`` test ether on a local anvil (what a new contributor needs for gas).

    Only a development node can create ether (``anvil_setBalance``); on any other network the
    node refuses and the message says to send ether from a funded account instead.
    """

    if not is_address(address):
        raise ChainError(f"{address!r} is not an address: give 0x followed by 40 hex digits")
    deployment = load_deployment(settings.data_dir)
    rpc_url = settings.chain_url or (deployment.rpc_url if deployment else "")
    if not rpc_url:
        raise ChainError("no chain recorded: run `mergenet chain up` first")
    w3 = connect(rpc_url)
    account = to_checksum_address(address)
    reply = w3.provider.make_request(cast("RPCEndpoint", "anvil_setBalance"), [account, hex(wei)])
    if "error" in reply:
        raise ChainError(
            f"the node at {rpc_url} cannot create test ether ({reply['error'].get('message')}): "
            "on a real network send ether to the address from a funded account"
        )
    return int(w3.eth.get_balance(account))


def open_chain(settings: Settings) -> RewardContracts:
    """Contracts of the recorded deployment, on a node that still holds them."""
    deployment = load_deployment(settings.data_dir)
    if deployment is None:
        raise ChainError(
            f"no deployment in {chain_dir(settings.data_dir)}: run `mergenet chain up` first"
        )
    rpc_url = settings.chain_url or deployment.rpc_url
    w3 = connect(rpc_url)
    if not deployment_is_live(w3, deployment):
        raise ChainError(
            f"the chain at {rpc_url} does not hold the recorded contracts (restarted chain?): "
            "run `mergenet chain up` to redeploy"
        )
    return RewardContracts.bind(w3, deployment)


__all__ = [
    "AnvilError",
    "ChainUp",
    "chain_down",
    "chain_up",
    "coordinator_account",
    "fund_local",
    "open_chain",
]

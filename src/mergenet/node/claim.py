"""``claim``: fetch the proof from the coordinator, sign the claim with the node's own key.

The coordinator tells where the contracts are (``GET /api/chain``); ``MERGENET_CHAIN_URL``
overrides the RPC address it announces (a node reaching the chain by another route). The
proof is checked against the chain's current root before anything is signed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mergenet.node.client import CoordinatorClient
from mergenet.node.errors import NodeError
from mergenet.rewards.claim import claim_rewards
from mergenet.rewards.client import ChainError, RewardContracts, connect
from mergenet.rewards.deployment import Deployment

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from mergenet.rewards.claim import ClaimResult
    from mergenet.rewards.client import RewardContracts
    from mergenet.rewards.service import RewardStatus


def contracts_from(client: CoordinatorClient, rpc_override: str | None) -> RewardContracts:
    info = client.chain()
    rpc_url = rpc_override or str(info["rpc_url"])
    deployment = Deployment(
        rpc_url=rpc_url,
        chain_id=int(info["chain_id"]),
        owner="",
        token=str(info["token"]),
        distributor=str(info["distributor"]),
        registry=str(info["registry"]),
        blueprint="",
        block=int(info.get("block", 0)),
    )
    try:
        w3 = connect(rpc_url)
        if w3.eth.chain_id != deployment.chain_id:
            raise NodeError(
                f"the chain at {rpc_url} has chain id {w3.eth.chain_id}, the coordinator's "
                f"contracts are on {deployment.chain_id}: fix MERGENET_CHAIN_URL"
            )
    except (ChainError, OSError) as exc:
        raise NodeError(f"cannot reach the chain at {rpc_url}: {exc}") from None
    return RewardContracts.bind(w3, deployment)


def reward_status(client: CoordinatorClient, address: str) -> RewardStatus:
    from mergenet.rewards.service import RewardStatus

    return RewardStatus.from_json(client.rewards(address))


def claim(
    client: CoordinatorClient, account: LocalAccount, rpc_override: str | None
) -> ClaimResult:

    contracts = contracts_from(client, rpc_override)
    status = reward_status(client, account.address)
    try:
        return claim_rewards(contracts, account, status)
    except ChainError as exc:
        hint = ""
        if "no ether" in str(exc) and contracts.w3.eth.chain_id == 31337:
            hint = f" (on the local test chain: `mergenet chain fund {account.address}`)"
        raise NodeError(f"{exc}{hint}") from None

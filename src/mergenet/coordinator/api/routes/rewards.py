"""``/api/rewards``, ``/api/info``, ``/api/chain``: what a node needs to sign, and to claim."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from mergenet.coordinator import queries
from mergenet.coordinator.api import schemas
from mergenet.coordinator.api.deps import ContractsDep, CoordinatorDep, SessionDep
from mergenet.coordinator.api.errors import documented
from mergenet.errors import InvalidInput, NotFound, Unavailable
from mergenet.rewards.service import rewards_for_address

router = APIRouter(prefix="/api", tags=["rewards"])


@router.get(
    "/rewards/{address}",
    summary="Accrued, published and claimable rewards",
    response_model=schemas.RewardStatus,
    responses=documented(InvalidInput, Unavailable),
)
def rewards(session: SessionDep, contracts: ContractsDep, address: str) -> Any:
    return rewards_for_address(session, address, contracts).to_json()


@router.get(
    "/info",
    summary="What a node needs before signing: EIP-712 domain, chain id, current version",
    response_model=schemas.Info,
    responses=documented(NotFound),
)
def info(coord: CoordinatorDep, session: SessionDep) -> Any:
    return {
        "chain_id": coord.settings.chain_id,
        "current_version": queries.current(session)["hash"],
        "rewards_on_chain": coord.chain is not None,
        "signing_domain": coord.domain.to_json(),
    }


@router.get(
    "/chain",
    summary="Where the reward contracts live (for claims)",
    response_model=schemas.ChainInfo,
    response_model_exclude_unset=True,
    responses=documented(NotFound),
)
def chain_info(coord: CoordinatorDep) -> Any:
    if coord.chain is None:
        raise NotFound("this coordinator runs without a chain: rewards are not paid on chain")
    return coord.chain.public_json()

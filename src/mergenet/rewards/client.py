"""Talk to the reward contracts over JSON-RPC with web3.py: bound contracts, signed transactions.

Every transaction is signed locally with an eth-account key (never an unlocked node account),
so the same code runs against the local anvil and any other JSON-RPC node. Reverts surface as
``ChainRevert`` with the contract's reason, whether web3 reports them as ``ContractLogicError``
(a real node) or eth-tester's ``TransactionFailed`` (in-process).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from eth_typing import ABI, HexStr
from eth_utils import to_checksum_address, to_hex

from mergenet.contracts import load_artifacts
from mergenet.errors import Unavailable

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from web3 import Web3
    from web3.contract import Contract
    from web3.types import TxReceipt

    from mergenet.rewards.deployment import Deployment


class ChainError(Unavailable):
    """The chain could not be reached or answered something unexpected."""


class ChainRevert(ChainError):
    """A call or transaction reverted; ``reason`` is the contract's message."""

    def __init__(self, reason: str, receipt: Any = None) -> None:
        super().__init__(f"transaction reverted: {reason}")
        self.reason = reason
        self.receipt = receipt


def revert_reason(exc: BaseException) -> str | None:
    """The revert reason if ``exc`` is a revert from web3 (anvil) or eth-tester, else None."""
    from web3.exceptions import ContractLogicError

    if isinstance(exc, ContractLogicError):
        message = str(exc.message or exc)
    elif type(exc).__name__ == "TransactionFailed":  # eth-tester, in-process
        message = str(exc.args[0]) if exc.args else str(exc)
    else:
        return None
    for prefix in ("execution reverted: ", "execution reverted"):
        if message.startswith(prefix):
            message = message[len(prefix) :]
    return message.strip() or "reverted without a reason"


def connect(rpc_url: str, *, timeout: float = 30.0) -> Web3:
    """A web3 client on ``rpc_url``; raises ChainError with the URL if nothing answers."""
    from web3 import Web3

    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout}))
    try:
        w3.eth.chain_id  # noqa: B018 - probes the connection
    except Exception as exc:
        raise ChainError(
            f"no JSON-RPC node answers at {rpc_url} ({type(exc).__name__}): start it with "
            "`mergenet chain up` or point MERGENET_CHAIN_URL at a running node"
        ) from exc
    return w3


def build_signed(
    w3: Web3,
    account: LocalAccount,
    call: Any,
    *,
    nonce: int | None = None,
    gas: int | None = None,
    gas_margin: float = 1.25,
    value: int = 0,
) -> tuple[bytes, str, int]:
    """Sign ``call`` (a bound contract function) and return (raw tx, tx hash, nonce).

    Gas is estimated explicitly (a revert here raises ChainRevert before anything is sent) and
    given a margin; the fee follows the node's base fee. ``value``: wei sent with the call.
    """
    if nonce is None:
        nonce = w3.eth.get_transaction_count(account.address, "pending")
    params: dict[str, Any] = {"from": account.address, "nonce": nonce, "chainId": w3.eth.chain_id}
    if value:
        params["value"] = value
    if gas is None:
        try:
            gas = int(call.estimate_gas({"from": account.address, "value": value}) * gas_margin)
        except Exception as exc:
            reason = revert_reason(exc)
            if reason is None:
                raise
            raise ChainRevert(reason) from exc
    params["gas"] = gas
    base_fee = w3.eth.get_block("latest").get("baseFeePerGas", 0) or 0
    priority = 10**9
    params["maxPriorityFeePerGas"] = priority
    params["maxFeePerGas"] = 2 * base_fee + priority
    tx = call.build_transaction(params)
    signed = account.sign_transaction(tx)
    return bytes(signed.raw_transaction), to_hex(signed.hash), nonce


def wait_receipt(w3: Web3, tx_hash: str, timeout: float = 120.0) -> TxReceipt:
    return w3.eth.wait_for_transaction_receipt(HexStr(tx_hash), timeout=timeout, poll_latency=0.05)


def transact(w3: Web3, account: LocalAccount, call: Any, **kwargs: Any) -> TxReceipt:
    """Sign, send and wait for ``call``; a failed receipt raises ChainRevert with its reason."""
    raw, tx_hash, _ = build_signed(w3, account, call, **kwargs)
    w3.eth.send_raw_transaction(raw)
    receipt = wait_receipt(w3, tx_hash)
    if receipt["status"] != 1:
        raise ChainRevert(_replay_reason(w3, account.address, call, receipt), receipt)
    return receipt


def _replay_reason(w3: Web3, sender: str, call: Any, receipt: Any) -> str:
    try:
        call.call({"from": sender}, block_identifier=receipt["blockNumber"] - 1)
    except Exception as exc:
        return revert_reason(exc) or f"failed ({type(exc).__name__})"
    return "failed (no reason on replay)"


def deploy_contract(
    w3: Web3, account: LocalAccount, abi: ABI, bytecode: str, *args: Any
) -> tuple[str, TxReceipt]:
    """Deploy init code ``bytecode`` with constructor ``args``; returns (address, receipt)."""
    factory = w3.eth.contract(abi=abi, bytecode=bytecode)
    receipt = transact(w3, account, factory.constructor(*args))
    return str(receipt["contractAddress"]), receipt


def _bind(w3: Web3, address: str, abi: ABI) -> Contract | None:
    return w3.eth.contract(address=to_checksum_address(address), abi=abi) if address else None


@dataclass
class RewardContracts:
    """The deployed contracts, bound to one web3 client (``seeds`` and ``bond`` are None for a
    deployment that names no address for them, e.g. what a node rebuilds from an old
    ``/api/chain``)."""

    w3: Web3
    token: Contract
    distributor: Contract
    registry: Contract
    from_block: int = 0
    """The deployment's first block: event scans start here."""
    seeds: Contract | None = None
    bond: Contract | None = None

    @classmethod
    def bind(cls, w3: Web3, deployment: Deployment) -> RewardContracts:
        arts = load_artifacts()
        return cls(
            w3=w3,
            token=w3.eth.contract(
                address=to_checksum_address(deployment.token), abi=arts["RewardToken"].abi
            ),
            distributor=w3.eth.contract(
                address=to_checksum_address(deployment.distributor),
                abi=arts["MerkleDistributor"].abi,
            ),
            registry=w3.eth.contract(
                address=to_checksum_address(deployment.registry), abi=arts["VersionRegistry"].abi
            ),
            from_block=deployment.block,
            seeds=_bind(w3, deployment.seeds, arts["EpochSeeds"].abi),
            bond=_bind(w3, deployment.bond, arts["UploadBond"].abi),
        )

    def merkle_root(self) -> bytes:
        return bytes(self.distributor.functions.merkle_root().call())

    def epoch(self) -> int:
        return int(self.distributor.functions.epoch().call())

    def balance_of(self, account: str) -> int:
        return int(self.token.functions.balanceOf(account).call())

    def cumulative_claimed(self, account: str) -> int:
        return int(self.token.functions.cumulative_claimed(account).call())

    def root_updates(self, from_block: int = 0) -> list[dict[str, Any]]:
        """Every MerkleRootUpdated event: epoch, old/new root, tx hash, block."""
        logs = self.distributor.events.MerkleRootUpdated().get_logs(from_block=from_block)
        return [
            {
                "epoch": int(log["args"]["epoch"]),
                "old_root": to_hex(log["args"]["old_root"]),
                "new_root": to_hex(log["args"]["new_root"]),
                "tx_hash": to_hex(log["transactionHash"]),
                "block": int(log["blockNumber"]),
            }
            for log in logs
        ]

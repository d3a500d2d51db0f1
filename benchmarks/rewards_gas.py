"""Gas of paying contributors: cumulative Merkle root + claims vs one mint per contributor.

Runs on a real anvil (started and stopped here): deploys the reward contracts, publishes an
epoch for N contributors (default 1,000), has every contributor claim, publishes a second
epoch and claims again; then pays the same N contributors with a plain owner-only ERC-20 mint
per contributor, twice. Prints a table, and the README's two lines
``first claim gas: N`` / ``later claim gas: N``.

    python benchmarks/rewards_gas.py [--contributors 1000]
"""

from __future__ import annotations

import argparse
import statistics
import time

from eth_account import Account

from mergenet.rewards.anvil import start_anvil
from mergenet.rewards.client import RewardContracts, connect, deploy_contract, transact
from mergenet.rewards.deployment import deploy_contracts
from mergenet.rewards.merkle import MerkleTree

NAIVE_TOKEN = """
# pragma version 0.4.3
# The baseline: an ordinary ERC-20 whose owner mints each contributor's reward directly.
event Transfer:
    sender: indexed(address)
    receiver: indexed(address)
    value: uint256

owner: public(address)
totalSupply: public(uint256)
balanceOf: public(HashMap[address, uint256])

@deploy
def __init__():
    self.owner = msg.sender

@external
def mint(receiver: address, amount: uint256):
    assert msg.sender == self.owner, "only the owner"
    self.totalSupply += amount
    self.balanceOf[receiver] += amount
    log Transfer(sender=empty(address), receiver=receiver, value=amount)
"""

ONE = 10**18
CLAIM_GAS_LIMIT = 200_000


def send_all(w3, sender, calls) -> list[int]:
    """Sign and send ``calls`` back to back (fixed gas limit, local nonces); gas used each."""
    nonce = w3.eth.get_transaction_count(sender.address)
    chain_id = w3.eth.chain_id
    fee = 2 * (w3.eth.get_block("latest")["baseFeePerGas"] or 0) + 10**9
    hashes = []
    for call in calls:
        tx = call.build_transaction(
            {
                "from": sender.address,
                "nonce": nonce,
                "gas": CLAIM_GAS_LIMIT,
                "chainId": chain_id,
                "maxFeePerGas": fee,
                "maxPriorityFeePerGas": 10**9,
            }
        )
        hashes.append(w3.eth.send_raw_transaction(sender.sign_transaction(tx).raw_transaction))
        nonce += 1
    gas = []
    for h in hashes:
        receipt = w3.eth.wait_for_transaction_receipt(h, poll_latency=0.01)
        if receipt["status"] != 1:
            raise RuntimeError(f"benchmark transaction {h.hex()} reverted")
        gas.append(int(receipt["gasUsed"]))
    return gas


def row(name: str, gas: list[int], note: str = "") -> str:
    mean = round(statistics.fmean(gas))
    return f"| {name} | {mean:,} | {min(gas):,} | {max(gas):,} | {len(gas)} | {note} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contributors", type=int, default=1000)
    args = parser.parse_args()
    n = args.contributors
    if n < 2:
        parser.error("--contributors must be at least 2")
    started = time.monotonic()
    proc = start_anvil()
    try:
        w3 = connect(proc.rpc_url)
        owner, sender = Account.create(), Account.create()
        for acct in (owner, sender):
            w3.provider.make_request("anvil_setBalance", [acct.address, hex(10**24)])
        c = RewardContracts.bind(w3, deploy_contracts(w3, owner, proc.rpc_url))
        dist = c.distributor.functions
        accounts = [Account.create().address for _ in range(n)]

        small = MerkleTree.build({a: ONE for a in accounts[:10]})
        root_small = transact(w3, owner, dist.set_merkle_root(small.root, 1))["gasUsed"]
        epoch1 = {a: ONE + i for i, a in enumerate(accounts)}
        tree1 = MerkleTree.build(epoch1)
        root_1 = transact(w3, owner, dist.set_merkle_root(tree1.root, 2))["gasUsed"]
        first = send_all(
            w3, sender, [dist.claim(a, epoch1[a], tree1.root, tree1.proof(a)) for a in accounts]
        )
        epoch2 = {a: 2 * v for a, v in epoch1.items()}
        tree2 = MerkleTree.build(epoch2)
        root_2 = transact(w3, owner, dist.set_merkle_root(tree2.root, 3))["gasUsed"]
        later = send_all(
            w3, sender, [dist.claim(a, epoch2[a], tree2.root, tree2.proof(a)) for a in accounts]
        )
        assert all(c.balance_of(a) == epoch2[a] for a in accounts[:20])

        import vyper

        naive_out = vyper.compile_code(NAIVE_TOKEN, output_formats=["abi", "bytecode"])
        naive_addr, _ = deploy_contract(w3, owner, naive_out["abi"], naive_out["bytecode"])
        naive = w3.eth.contract(address=naive_addr, abi=naive_out["abi"]).functions
        mint_first = send_all(w3, owner, [naive.mint(a, epoch1[a]) for a in accounts])
        mint_later = send_all(w3, owner, [naive.mint(a, epoch1[a]) for a in accounts])
    finally:
        proc.stop()

    depth = len(tree1.proof(accounts[0]))
    merkle_epoch = root_1 + sum(first)
    naive_epoch = sum(mint_first)
    lines = [
        f"Reward gas on anvil, {n:,} contributors (proofs of {depth} hashes), Vyper 0.4.3",
        "",
        "| operation | mean gas | min | max | count | note |",
        "|---|---:|---:|---:|---:|---|",
        row("first claim (an account's first)", first, "goal ≤ 78,000"),
        row("later claim (next epoch)", later, "goal ≤ 50,000"),
        row(f"root update, {n:,} contributors", [root_1, root_2], "goal ≤ 40,000"),
        row("root update, 10 contributors", [root_small], "same cost: independent of N"),
        row("naive mint, first (one tx per contributor)", mint_first, ""),
        row("naive mint, later", mint_later, ""),
        "",
        f"Paying {n:,} contributors one epoch:",
        f"- Merkle: coordinator {root_1:,} gas (one root update); contributors "
        f"{sum(first):,} gas in their own claims; total {merkle_epoch:,}",
        f"- naive:  coordinator {naive_epoch:,} gas ({n:,} mints); total {naive_epoch:,}",
        f"- coordinator cost ratio naive/Merkle: {naive_epoch / root_1:,.0f}×; a later epoch "
        f"costs the coordinator {root_2:,} vs {sum(mint_later):,}, and a contributor may "
        "skip epochs and collect them all in one claim",
        "",
        f"first claim gas: {round(statistics.fmean(first))}",
        f"later claim gas: {round(statistics.fmean(later))}",
        f"(benchmark took {time.monotonic() - started:.1f} s)",
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""EpochSeeds and UploadBond on a real anvil: commit/reveal checked on chain, bonds refunded or
kept exactly once, balances moving by exactly the bond (gas accounted from receipts)."""

from __future__ import annotations

import hashlib
import secrets

import pytest
from web3 import Web3

from mergenet.rewards import bond, seeds
from mergenet.rewards.client import ChainRevert, RewardContracts
from mergenet.rewards.deployment import deploy_contracts

from .conftest import Deployed, new_account

pytestmark = pytest.mark.chain

BOND = 10**16


def _commitment(secret: bytes) -> str:
    return hashlib.sha256(secret).hexdigest()


def test_commit_then_reveal_the_right_seed(deployed: Deployed) -> None:
    secret = secrets.token_bytes(32)
    c = deployed.contracts
    tx = seeds.commit_seed(c, deployed.owner, 1, _commitment(secret))
    assert tx.startswith("0x")
    # committing the same value again is a no-op that finds the first transaction
    assert seeds.commit_seed(c, deployed.owner, 1, _commitment(secret)) == tx
    with pytest.raises(ChainRevert, match="does not match"):
        seeds.reveal_seed(c, deployed.owner, 1, "0x" + secrets.token_hex(32))
    assert seeds.seed_record(c, 1).seed is None
    revealed = seeds.reveal_seed(c, deployed.owner, 1, "0x" + secret.hex())
    assert seeds.reveal_seed(c, deployed.owner, 1, "0x" + secret.hex()) == revealed
    record = seeds.seed_record(c, 1)
    assert record.seed == "0x" + secret.hex()
    assert record.commitment == "0x" + _commitment(secret)
    assert int(c.seeds.functions.latest_epoch().call()) == 1


def test_seed_rules_on_chain(deployed: Deployed) -> None:
    c = deployed.contracts
    stranger = new_account(deployed.w3)
    with pytest.raises(ChainRevert, match="only the owner"):
        seeds.commit_seed(c, stranger, 1, _commitment(b"x" * 32))
    with pytest.raises(ChainRevert, match="not committed"):
        seeds.reveal_seed(c, deployed.owner, 5, "0x" + "00" * 32)
    seeds.commit_seed(c, deployed.owner, 2, _commitment(b"y" * 32))
    with pytest.raises(ChainRevert, match="only the owner"):
        seeds.reveal_seed(c, stranger, 2, "0x" + (b"y" * 32).hex())
    with pytest.raises(Exception, match="already committed"):  # a different commitment
        seeds.commit_seed(c, deployed.owner, 2, _commitment(b"z" * 32))


@pytest.fixture
def bonded(w3: Web3, deployed: Deployed) -> RewardContracts:
    deployment = deploy_contracts(w3, deployed.owner, deployed.deployment.rpc_url, bond_wei=BOND)
    return RewardContracts.bind(w3, deployment)


def _gas_paid(w3: Web3, tx: str) -> int:
    r = w3.eth.get_transaction_receipt(tx)
    return int(r["gasUsed"]) * int(r["effectiveGasPrice"])


def test_deposit_then_refund_and_keep(
    w3: Web3, deployed: Deployed, bonded: RewardContracts
) -> None:
    owner, alice = deployed.owner, new_account(w3)
    assert bond.bond_amount(bonded) == BOND
    sha_a, sha_b = secrets.token_hex(32), secrets.token_hex(32)
    start = w3.eth.get_balance(alice.address)
    tx_a = bond.deposit(bonded, alice, sha_a)
    tx_b = bond.deposit(bonded, alice, sha_b)
    assert tx_a and tx_b
    assert bond.deposit(bonded, alice, sha_a) is None  # held already: reused, not paid twice
    gas = _gas_paid(w3, tx_a) + _gas_paid(w3, tx_b)
    assert w3.eth.get_balance(alice.address) == start - 2 * BOND - gas
    assert w3.eth.get_balance(bonded.bond.address) == 2 * BOND
    assert bond.is_held(bonded, sha_a, alice.address)
    assert {d.sha256 for d in bond.held_deposits(bonded)} == {sha_a, sha_b}

    owner_start = w3.eth.get_balance(owner.address)
    refund = bond.settle(bonded, owner, sha_a, alice.address, refund=True)
    keep = bond.settle(bonded, owner, sha_b, alice.address, refund=False)
    owner_gas = _gas_paid(w3, refund) + _gas_paid(w3, keep)
    assert w3.eth.get_balance(alice.address) == start - BOND - gas  # a back, b kept
    assert w3.eth.get_balance(owner.address) == owner_start + BOND - owner_gas
    assert w3.eth.get_balance(bonded.bond.address) == 0
    assert bond.held_deposits(bonded) == []
    assert not bond.is_held(bonded, sha_a, alice.address)
    for sha in (sha_a, sha_b):
        with pytest.raises(ChainRevert, match="no held deposit"):
            bond.settle(bonded, owner, sha, alice.address, refund=True)


def test_bond_rules_on_chain(w3: Web3, deployed: Deployed, bonded: RewardContracts) -> None:
    alice, mallory = new_account(w3), new_account(w3)
    sha = secrets.token_hex(32)
    wrong = bonded.bond.functions.deposit(bytes.fromhex(sha))
    from mergenet.rewards.client import transact

    with pytest.raises(ChainRevert, match="exactly the bond"):
        transact(w3, alice, wrong, value=BOND - 1)
    bond.deposit(bonded, alice, sha)
    # a front-runner's deposit for the same hash does not block or replace alice's
    bond.deposit(bonded, mallory, sha)
    assert bond.is_held(bonded, sha, alice.address) and bond.is_held(bonded, sha, mallory.address)
    with pytest.raises(ChainRevert, match="only the owner"):
        bond.settle(bonded, mallory, sha, mallory.address, refund=True)
    # the fixture's default deployment has bonds disabled
    assert bond.bond_amount(deployed.contracts) == 0
    with pytest.raises(ChainRevert, match="bonds are disabled"):
        transact(w3, alice, deployed.contracts.bond.functions.deposit(bytes.fromhex(sha)))

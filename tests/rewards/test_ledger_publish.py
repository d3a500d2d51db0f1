"""Ledger → epochs → idempotent publishing → claims, against a real anvil and SQLite."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import select

from mergenet.db import transaction
from mergenet.rewards.anvil import free_port
from mergenet.rewards.claim import ClaimError, claim_rewards
from mergenet.rewards.client import ChainError, RewardContracts, connect, transact
from mergenet.rewards.ledger import LedgerError, accrue, close_epoch, epoch_amounts
from mergenet.rewards.merkle import MerkleTree
from mergenet.rewards.models import STATE_CONFIRMED, STATE_PENDING, RewardEpoch
from mergenet.rewards.publish import prepare, publish_pending, send
from mergenet.rewards.reconcile import reconcile
from mergenet.rewards.service import RewardStatus, rewards_for_address

from .cast import cast_balance
from .conftest import ONE_ETHER, Deployed, new_account

pytestmark = pytest.mark.chain


def accrue_random(ledger, accounts, n: int, seed: int, prefix: str) -> dict[str, int]:
    rng = random.Random(seed)
    added: dict[str, int] = {}
    with transaction(ledger) as s:
        for i in range(n):
            account = rng.choice(accounts)
            amount = rng.randrange(1, 5 * ONE_ETHER)
            accrue(s, contribution_id=f"{prefix}-{i}", account=account, amount=amount)
            added[account] = added.get(account, 0) + amount
    return added


def close(ledger) -> int:
    with transaction(ledger) as s:
        epoch = close_epoch(s)
        assert epoch is not None
        return epoch.number


def status(ledger, address, contracts) -> RewardStatus:
    with ledger() as s:
        return rewards_for_address(s, address, contracts)


def root_updates_for(contracts: RewardContracts, epoch: int) -> list[dict]:
    return [u for u in contracts.root_updates(contracts.from_block) if u["epoch"] == epoch]


def test_many_accounts_epochs_claims_and_cast_agrees(deployed: Deployed, ledger, anvil) -> None:
    d = deployed
    users = [new_account(d.w3) for _ in range(12)]
    addresses = [u.address for u in users]
    totals = accrue_random(ledger, addresses, 60, seed=1, prefix="a")
    assert close(ledger) == 1
    assert [p.epoch for p in publish_pending(ledger, d.contracts, d.owner)] == [1]

    for u in users[:6]:  # half claim after epoch 1
        result = claim_rewards(d.contracts, u, status(ledger, u.address, d.contracts))
        assert result.paid == totals.get(u.address, 0)

    for account, amount in accrue_random(ledger, addresses, 40, seed=2, prefix="b").items():
        totals[account] = totals.get(account, 0) + amount
    assert close(ledger) == 2
    publish_pending(ledger, d.contracts, d.owner)

    for u in users:
        st = status(ledger, u.address, d.contracts)
        assert st.published == totals.get(u.address, 0) == st.accrued
        if st.claimable:
            before = d.contracts.balance_of(u.address)
            paid = claim_rewards(d.contracts, u, st).paid
            assert paid == st.published - st.claimed
            assert d.contracts.balance_of(u.address) == before + paid
        with pytest.raises(ClaimError, match=r"nothing to claim|nothing published"):
            claim_rewards(d.contracts, u, status(ledger, u.address, d.contracts))

    # a client that is not ours reads the same balances as the ledger
    with ledger() as s:
        published = epoch_amounts(s, 2)
    for account, amount in published.items():
        assert cast_balance(anvil.rpc_url, d.deployment.token, account) == amount
    with ledger() as s:
        assert reconcile(s, d.contracts).ok


def test_accrual_is_idempotent_and_validated(ledger) -> None:
    account = "0x" + "ab" * 20
    with transaction(ledger) as s:
        first = accrue(s, contribution_id="c1", account=account, amount=5)
        again = accrue(
            s, contribution_id="c1", account=account.upper().replace("0X", "0x"), amount=5
        )
        assert first.id == again.id
        with pytest.raises(LedgerError, match="already accrued"):
            accrue(s, contribution_id="c1", account=account, amount=6)
        with pytest.raises(LedgerError, match="not an Ethereum address"):
            accrue(s, contribution_id="c2", account="0x123", amount=1)
        with pytest.raises(LedgerError, match="integer number of base units"):
            accrue(s, contribution_id="c3", account=account, amount=-1)
    with transaction(ledger) as s:
        assert close_epoch(s).number == 1
        assert close_epoch(s) is None  # nothing new


def test_crash_after_signing_publishes_once(deployed: Deployed, ledger) -> None:
    d = deployed
    accrue_random(ledger, [new_account(d.w3, funded=False).address for _ in range(3)], 5, 3, "c")
    number = close(ledger)
    tx_hash = prepare(ledger, d.contracts, d.owner, number)  # signed and committed, then "crash"
    with ledger() as s:
        epoch = s.get(RewardEpoch, number)
        assert epoch.state == STATE_PENDING and epoch.raw_tx and epoch.tx_hash == tx_hash
    assert d.contracts.epoch() == 0
    done = publish_pending(ledger, d.contracts, d.owner)  # the restart
    assert [(p.epoch, p.tx_hash) for p in done] == [(number, tx_hash)]  # the same transaction
    assert len(root_updates_for(d.contracts, number)) == 1
    assert publish_pending(ledger, d.contracts, d.owner) == []
    assert len(d.contracts.root_updates(d.contracts.from_block)) == 1


def test_crash_after_sending_publishes_once(deployed: Deployed, ledger) -> None:
    d = deployed
    accrue_random(ledger, [new_account(d.w3, funded=False).address for _ in range(3)], 5, 4, "d")
    number = close(ledger)
    prepare(ledger, d.contracts, d.owner, number)
    send(ledger, d.contracts, number)  # mined by anvil, then "crash" before the receipt is read
    assert d.contracts.epoch() == number
    done = publish_pending(ledger, d.contracts, d.owner)
    assert [p.epoch for p in done] == [number]
    assert len(d.contracts.root_updates(d.contracts.from_block)) == 1
    with ledger() as s:
        epoch = s.get(RewardEpoch, number)
        assert epoch.state == STATE_CONFIRMED and epoch.tx_block is not None


def test_crash_after_send_before_ledger_commit(deployed: Deployed, ledger) -> None:
    """The signed transaction reached the chain but the ledger still says pending: the
    restart reads the chain, records the epoch as confirmed, and sends nothing new; re-sending
    the same signed bytes is refused by the node and changes nothing."""
    d = deployed
    accrue_random(ledger, [new_account(d.w3, funded=False).address for _ in range(2)], 3, 5, "e")
    number = close(ledger)
    prepare(ledger, d.contracts, d.owner, number)
    with ledger() as s:
        raw = s.get(RewardEpoch, number).raw_tx
    d.w3.eth.send_raw_transaction(raw)
    nonce = d.w3.eth.get_transaction_count(d.owner.address)
    publish_pending(ledger, d.contracts, d.owner)
    assert d.w3.eth.get_transaction_count(d.owner.address) == nonce  # nothing new was sent
    assert send(ledger, d.contracts, number) is not None  # the node refuses the replay
    assert len(d.contracts.root_updates(d.contracts.from_block)) == 1
    with ledger() as s:
        assert s.get(RewardEpoch, number).state == STATE_CONFIRMED


def test_chain_down_leaves_the_epoch_pending_then_publishes_once(
    deployed: Deployed, ledger
) -> None:
    d = deployed
    accrue_random(ledger, [new_account(d.w3, funded=False).address for _ in range(2)], 3, 6, "f")
    number = close(ledger)
    with pytest.raises(ChainError, match="no JSON-RPC node answers"):
        connect(f"http://127.0.0.1:{free_port()}", timeout=2)
    dead = RewardContracts.bind(
        d.w3.__class__(d.w3.provider.__class__(f"http://127.0.0.1:{free_port()}")), d.deployment
    )
    with pytest.raises(ChainError, match="unreachable"):
        publish_pending(ledger, dead, d.owner)
    with ledger() as s:
        epoch = s.get(RewardEpoch, number)
        assert epoch.state == STATE_PENDING and epoch.raw_tx is None
    publish_pending(ledger, d.contracts, d.owner)
    assert len(root_updates_for(d.contracts, number)) == 1


def test_unsent_older_epochs_are_superseded(deployed: Deployed, ledger) -> None:
    d = deployed
    users = [new_account(d.w3) for _ in range(3)]
    accrue_random(ledger, [u.address for u in users], 4, 7, "g")
    close(ledger)
    accrue_random(ledger, [u.address for u in users], 4, 8, "h")
    close(ledger)
    done = publish_pending(ledger, d.contracts, d.owner)
    assert [(p.epoch, p.superseded) for p in done] == [(1, True), (2, False)]
    assert [u["epoch"] for u in d.contracts.root_updates(d.contracts.from_block)] == [2]
    with ledger() as s:
        assert reconcile(s, d.contracts).ok
        st = rewards_for_address(s, users[0].address, d.contracts)
    assert st.epoch == 2


def test_reconcile_reports_a_root_the_ledger_does_not_know(deployed: Deployed, ledger) -> None:
    d = deployed
    accrue_random(ledger, [new_account(d.w3, funded=False).address], 2, 9, "i")
    close(ledger)
    publish_pending(ledger, d.contracts, d.owner)
    rogue = MerkleTree.build({"0x" + "99" * 20: 10**24})
    transact(d.w3, d.owner, d.contracts.distributor.functions.set_merkle_root(rogue.root, 7))
    with ledger() as s:
        report = reconcile(s, d.contracts)
    assert not report.ok
    assert any("chain epoch 7" in diff for diff in report.differences)
    assert report.chain_epoch == 7 and report.ledger_epoch == 1


def test_status_of_unknown_address_is_zero(deployed: Deployed, ledger) -> None:
    with ledger() as s:
        st = rewards_for_address(s, "0x" + "cd" * 20, deployed.contracts)
    assert (st.accrued, st.published, st.claimed, st.proof) == (0, 0, 0, [])
    data = st.to_json()
    assert RewardStatus.from_json(data) == st


def test_claim_with_a_stale_proof_is_a_clear_error(deployed: Deployed, ledger) -> None:
    d = deployed
    u = new_account(d.w3)
    accrue_random(ledger, [u.address], 2, 10, "j")
    close(ledger)
    publish_pending(ledger, d.contracts, d.owner)
    stale = status(ledger, u.address, d.contracts)
    accrue_random(ledger, [u.address], 2, 11, "k")
    close(ledger)
    publish_pending(ledger, d.contracts, d.owner)
    with pytest.raises(ClaimError, match="root changed"):
        claim_rewards(d.contracts, u, stale)
    fresh = status(ledger, u.address, d.contracts)
    assert claim_rewards(d.contracts, u, fresh).paid == fresh.published
    with ledger() as s:
        assert s.scalars(select(RewardEpoch.state)).all() == [STATE_CONFIRMED] * 2

"""Property test on the real contracts: over random epochs, amounts and (honest or forged)
claims, nobody ever receives more than their cumulative amount, and honest claims always
collect exactly what is owed."""

from __future__ import annotations

import pytest
from eth_account import Account
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mergenet.rewards.client import ChainRevert, RewardContracts, transact
from mergenet.rewards.deployment import deploy_contracts
from mergenet.rewards.merkle import MerkleTree

from .conftest import new_account

pytestmark = pytest.mark.chain

POOL = 6
ACCOUNTS = [Account.create().address for _ in range(POOL)]

increments = st.dictionaries(
    st.integers(0, POOL - 1), st.integers(1, 10**24), min_size=1, max_size=POOL
)
attempt = st.tuples(
    st.integers(0, POOL - 1), st.sampled_from(["honest", "inflate", "other_leaf", "stale_root"])
)
epochs = st.lists(st.tuples(increments, st.lists(attempt, max_size=6)), min_size=1, max_size=4)


@pytest.fixture(scope="module")
def world(w3, anvil):
    owner = new_account(w3)
    contracts = RewardContracts.bind(w3, deploy_contracts(w3, owner, anvil.rpc_url))
    return w3, owner, new_account(w3), contracts


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(epochs)
def test_nobody_receives_more_than_their_cumulative_amount(world, plan) -> None:
    w3, owner, sender, c = world
    snapshot = w3.provider.make_request("evm_snapshot", [])["result"]
    try:
        cumulative = dict.fromkeys(ACCOUNTS, 0)
        previous: MerkleTree | None = None
        for number, (added, attempts) in enumerate(plan, start=1):
            for i, amount in added.items():
                cumulative[ACCOUNTS[i]] += amount
            tree = MerkleTree.build({a: v for a, v in cumulative.items() if v})
            transact(w3, owner, c.distributor.functions.set_merkle_root(tree.root, number))
            for i, kind in attempts:
                account = ACCOUNTS[i]
                owed = cumulative[account] - c.cumulative_claimed(account)
                if kind == "honest" and cumulative[account]:
                    args = (account, cumulative[account], tree.root, tree.proof(account))
                elif kind == "inflate" and cumulative[account]:
                    args = (account, cumulative[account] + 1, tree.root, tree.proof(account))
                elif kind == "other_leaf":
                    other = (
                        next(a for a in tree.amounts if a != account)
                        if len(tree.amounts) > 1
                        else None
                    )
                    if other is None:
                        continue
                    args = (account, cumulative[other], tree.root, tree.proof(other))
                elif kind == "stale_root" and previous is not None and account in previous.amounts:
                    args = (
                        account,
                        previous.amounts[account],
                        previous.root,
                        previous.proof(account),
                    )
                else:
                    continue
                before = c.balance_of(account)
                try:
                    transact(w3, sender, c.distributor.functions.claim(*args))
                    paid = c.balance_of(account) - before
                except ChainRevert:
                    paid = 0
                if kind == "honest":
                    assert paid == owed
                else:
                    assert paid == 0
            for account in ACCOUNTS:
                assert c.balance_of(account) == c.cumulative_claimed(account) <= cumulative[account]
            previous = tree
    finally:
        assert w3.provider.make_request("evm_revert", [snapshot])["result"] is True

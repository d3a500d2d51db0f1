"""The Python Merkle tree: proofs verify, tampering fails (property tests over random trees)."""

from __future__ import annotations

import pytest
from eth_utils import keccak, to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st

from mergenet.rewards.merkle import MAX_AMOUNT, MerkleTree, hash_pair, leaf_hash, verify_proof

addresses = st.binary(min_size=20, max_size=20).map(to_checksum_address)
amounts = st.integers(min_value=0, max_value=MAX_AMOUNT)
trees = st.dictionaries(addresses, amounts, min_size=1, max_size=70)


def test_leaf_is_packed_address_and_uint256() -> None:
    account = "0x" + "11" * 20
    expected = keccak(bytes.fromhex("11" * 20) + (5).to_bytes(32, "big"))
    assert leaf_hash(account, 5) == expected


def test_single_leaf_tree_has_empty_proof() -> None:
    tree = MerkleTree.build({"0x" + "22" * 20: 7})
    assert tree.proof("0x" + "22" * 20) == []
    assert tree.root == leaf_hash("0x" + "22" * 20, 7)


def test_bad_input_is_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="at least one account"):
        MerkleTree.build({})
    with pytest.raises(ValueError, match="outside"):
        leaf_hash("0x" + "22" * 20, 2**128)
    with pytest.raises(ValueError, match="appears twice"):
        MerkleTree.build({"0x" + "ab" * 20: 1, "0x" + "AB" * 20: 2})
    with pytest.raises(KeyError, match="no leaf"):
        MerkleTree.build({"0x" + "22" * 20: 7}).proof("0x" + "33" * 20)


@settings(max_examples=60, deadline=None)
@given(trees)
def test_every_leaf_proves_and_tampering_fails(tree_amounts: dict[str, int]) -> None:
    tree = MerkleTree.build(tree_amounts)
    accounts = list(tree.amounts)
    for i, account in enumerate(accounts):
        amount = tree.amounts[account]
        proof = tree.proof(account)
        assert verify_proof(leaf_hash(account, amount), proof, tree.root)
        assert not verify_proof(leaf_hash(account, amount ^ 1), proof, tree.root)
        other = accounts[(i + 1) % len(accounts)]
        if other != account:
            assert not verify_proof(leaf_hash(other, tree.amounts[other]), proof, tree.root)


@settings(max_examples=30, deadline=None)
@given(trees)
def test_root_is_independent_of_insertion_order(tree_amounts: dict[str, int]) -> None:
    reversed_amounts = dict(reversed(list(tree_amounts.items())))
    assert MerkleTree.build(tree_amounts).root == MerkleTree.build(reversed_amounts).root


def test_pairs_are_sorted() -> None:
    a, b = b"\x01" * 32, b"\x02" * 32
    assert hash_pair(a, b) == hash_pair(b, a) == keccak(a + b)

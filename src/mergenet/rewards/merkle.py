"""The Merkle tree of cumulative amounts that the distributor verifies.

Leaf = keccak256(account (20 bytes) ++ cumulativeAmount (32 bytes, big-endian)), as the 1inch
CumulativeMerkleDrop packs it; an inner node = keccak256 of its two children in ascending
order (sorted pairs), so a proof is just the list of siblings. A level with an odd number of
nodes carries its last node up unchanged. Leaves (52 bytes) and inner nodes (64 bytes) hash
inputs of different lengths, so an inner node can never pass as a leaf.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from eth_utils import keccak, to_canonical_address, to_checksum_address

MAX_AMOUNT = 2**128 - 1
"""The token keeps balances and claimed totals in 128 bits each."""


def leaf_hash(account: str, cumulative_amount: int) -> bytes:
    if not 0 <= cumulative_amount <= MAX_AMOUNT:
        raise ValueError(f"cumulative amount {cumulative_amount} outside [0, 2**128)")
    return keccak(to_canonical_address(account) + cumulative_amount.to_bytes(32, "big"))


def hash_pair(a: bytes, b: bytes) -> bytes:
    return keccak(a + b) if a < b else keccak(b + a)


def verify_proof(leaf: bytes, proof: Sequence[bytes], root: bytes) -> bool:
    """What the contract computes: fold the siblings into the leaf and compare with the root."""
    node = leaf
    for sibling in proof:
        node = hash_pair(node, sibling)
    return node == root


@dataclass
class MerkleTree:
    """A tree over ``{account: cumulative amount}``; build with ``MerkleTree.build``."""

    amounts: dict[str, int]
    layers: list[list[bytes]] = field(repr=False)
    _index: dict[str, int] = field(repr=False)

    @classmethod
    def build(cls, amounts: Mapping[str, int]) -> MerkleTree:
        if not amounts:
            raise ValueError("a Merkle tree needs at least one account")
        normalized: dict[str, int] = {}
        for account, amount in amounts.items():
            checksum = to_checksum_address(account)
            if checksum in normalized:
                raise ValueError(f"account {checksum} appears twice")
            normalized[checksum] = int(amount)
        leaves = sorted((leaf_hash(a, v), a) for a, v in normalized.items())
        index = {account: i for i, (_, account) in enumerate(leaves)}
        layers = [[h for h, _ in leaves]]
        while len(layers[-1]) > 1:
            level = layers[-1]
            nxt = [hash_pair(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
            if len(level) % 2:
                nxt.append(level[-1])
            layers.append(nxt)
        return cls(normalized, layers, index)

    @property
    def root(self) -> bytes:
        return self.layers[-1][0]

    def proof(self, account: str) -> list[bytes]:
        """Sibling hashes from ``account``'s leaf up to the root."""
        checksum = to_checksum_address(account)
        if checksum not in self._index:
            raise KeyError(f"{checksum} has no leaf in this tree")
        i = self._index[checksum]
        proof = []
        for level in self.layers[:-1]:
            sibling = i ^ 1
            if sibling < len(level):
                proof.append(level[sibling])
            i //= 2
        return proof

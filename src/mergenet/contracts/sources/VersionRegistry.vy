# pragma version 0.4.3
# @license Apache-2.0
"""
@title mergenet core-version registry
@notice The coordinator records every accepted core version as an event, so anyone can audit
        the model's lineage on chain: version hash, parent hash, recipe hash and score.
@dev Events only (no per-version storage): lineage is read from logs, which keeps each record
     cheap. `score_ppm` is the score S in [0, 1] times 1,000,000.
"""

event VersionAccepted:
    version_hash: indexed(bytes32)
    parent_hash: indexed(bytes32)
    recipe_hash: bytes32
    score_ppm: uint256
    index: uint256

event OwnershipTransferred:
    previous_owner: indexed(address)
    new_owner: indexed(address)

owner: public(address)
version_count: public(uint256)


@deploy
def __init__(owner: address):
    assert owner != empty(address), "owner is the zero address"
    self.owner = owner
    log OwnershipTransferred(previous_owner=empty(address), new_owner=owner)


@external
def record_version(
    version_hash: bytes32, parent_hash: bytes32, recipe_hash: bytes32, score_ppm: uint256
):
    assert msg.sender == self.owner, "only the owner"
    assert version_hash != empty(bytes32), "version hash is empty"
    assert score_ppm <= 1000000, "score_ppm above 1,000,000"
    index: uint256 = self.version_count
    self.version_count = index + 1
    log VersionAccepted(
        version_hash=version_hash,
        parent_hash=parent_hash,
        recipe_hash=recipe_hash,
        score_ppm=score_ppm,
        index=index,
    )


@external
def transfer_ownership(new_owner: address):
    assert msg.sender == self.owner, "only the owner"
    assert new_owner != empty(address), "owner is the zero address"
    log OwnershipTransferred(previous_owner=self.owner, new_owner=new_owner)
    self.owner = new_owner

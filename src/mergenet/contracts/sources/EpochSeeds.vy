# pragma version 0.4.3
# @license Apache-2.0
"""
@title mergenet row-epoch seed commitments
@notice Every scoring decision draws private rows from the current row epoch's 32-byte secret.
        When a row epoch opens, the coordinator commits sha256(secret) here; when it closes, it
        reveals the secret, and this contract checks sha256(seed) == commitment on chain, so the
        coordinator cannot reveal a different seed than the one it committed to before scoring.
        Anyone can then re-derive every row drawn in that epoch and audit the scores.
@dev A separate contract, not functions on VersionRegistry: the registry is events-only and
     stateless, while a commitment must be stored to be checked against at reveal time; keeping
     them apart also leaves the registry's bytecode (and any lineage already recorded) alone.
     Each epoch is committed once and revealed once; both are owner-only (the coordinator).
"""

event SeedCommitted:
    epoch: indexed(uint256)
    commitment: bytes32

event SeedRevealed:
    epoch: indexed(uint256)
    seed: bytes32

event OwnershipTransferred:
    previous_owner: indexed(address)
    new_owner: indexed(address)

owner: public(address)
commitment_of: public(HashMap[uint256, bytes32])
seed_of: public(HashMap[uint256, bytes32])
revealed: public(HashMap[uint256, bool])
# the highest epoch committed so far (0 before the first commitment)
latest_epoch: public(uint256)


@deploy
def __init__(owner: address):
    assert owner != empty(address), "owner is the zero address"
    self.owner = owner
    log OwnershipTransferred(previous_owner=empty(address), new_owner=owner)


@external
def commit(epoch: uint256, commitment: bytes32):
    """@notice Commit sha256(secret) of row epoch `epoch`, once."""
    assert msg.sender == self.owner, "only the owner"
    assert commitment != empty(bytes32), "commitment is empty"
    assert self.commitment_of[epoch] == empty(bytes32), "epoch already committed"
    self.commitment_of[epoch] = commitment
    if epoch > self.latest_epoch:
        self.latest_epoch = epoch
    log SeedCommitted(epoch=epoch, commitment=commitment)


@external
def reveal(epoch: uint256, seed: bytes32):
    """@notice Reveal the secret of a committed epoch; reverts unless sha256(seed) matches."""
    assert msg.sender == self.owner, "only the owner"
    commitment: bytes32 = self.commitment_of[epoch]
    assert commitment != empty(bytes32), "epoch not committed"
    assert not self.revealed[epoch], "epoch already revealed"
    assert sha256(seed) == commitment, "seed does not match the commitment"
    self.revealed[epoch] = True
    self.seed_of[epoch] = seed
    log SeedRevealed(epoch=epoch, seed=seed)


@external
def transfer_ownership(new_owner: address):
    assert msg.sender == self.owner, "only the owner"
    assert new_owner != empty(address), "owner is the zero address"
    log OwnershipTransferred(previous_owner=self.owner, new_owner=new_owner)
    self.owner = new_owner

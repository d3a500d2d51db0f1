# pragma version 0.4.3
# @license Apache-2.0
"""
@title mergenet per-upload bond
@notice Before uploading a delta, a contributor deposits exactly BOND wei against the delta's
        sha256. The coordinator accepts the upload only if the signing address holds such a
        deposit, and settles it once the delta is judged: refunded to the depositor when the
        contribution was admitted to the merge pool (it adds something), kept (sent to the
        owner, the treasury) when it was junk or a refused copy. BOND = 0 disables bonds.
@dev Deposits are keyed by (sha256, depositor), not by sha256 alone: on a public mempool an
     adversary who saw a deposit for a hash could otherwise front-run it with its own and block
     the honest contributor's. A deposit is settled at most once (state HELD -> REFUNDED or
     KEPT), effects before the ether moves, and the transfer runs under @nonreentrant.
"""

event Deposited:
    delta_sha256: indexed(bytes32)
    depositor: indexed(address)
    amount: uint256

event Settled:
    delta_sha256: indexed(bytes32)
    depositor: indexed(address)
    refunded: bool
    amount: uint256

event OwnershipTransferred:
    previous_owner: indexed(address)
    new_owner: indexed(address)

ST_NONE: constant(uint8) = 0
ST_HELD: constant(uint8) = 1
ST_REFUNDED: constant(uint8) = 2
ST_KEPT: constant(uint8) = 3

BOND: public(immutable(uint256))
owner: public(address)
# 0 none, 1 held, 2 refunded, 3 kept
state_of: public(HashMap[bytes32, HashMap[address, uint8]])
# what a deposit holds (0 once settled)
amount_of: public(HashMap[bytes32, HashMap[address, uint256]])
total_held: public(uint256)


@deploy
def __init__(owner: address, bond: uint256):
    assert owner != empty(address), "owner is the zero address"
    BOND = bond
    self.owner = owner
    log OwnershipTransferred(previous_owner=empty(address), new_owner=owner)


@payable
@external
def deposit(delta_sha256: bytes32):
    """@notice Bond the upload of the delta whose sha256 is `delta_sha256`, paying exactly BOND."""
    assert BOND > 0, "bonds are disabled"
    assert msg.value == BOND, "send exactly the bond amount"
    assert delta_sha256 != empty(bytes32), "delta_sha256 is empty"
    assert self.state_of[delta_sha256][msg.sender] == ST_NONE, "already deposited"
    self.state_of[delta_sha256][msg.sender] = ST_HELD
    self.amount_of[delta_sha256][msg.sender] = msg.value
    self.total_held += msg.value
    log Deposited(delta_sha256=delta_sha256, depositor=msg.sender, amount=msg.value)


@view
@external
def held(delta_sha256: bytes32, depositor: address) -> bool:
    """@notice Whether `depositor` holds an unsettled deposit for `delta_sha256`."""
    return self.state_of[delta_sha256][depositor] == ST_HELD


@nonreentrant
@external
def settle(delta_sha256: bytes32, depositor: address, refund: bool):
    """@notice Refund the deposit to its depositor, or keep it (pay it to the owner); once."""
    assert msg.sender == self.owner, "only the owner"
    assert self.state_of[delta_sha256][depositor] == ST_HELD, "no held deposit"
    amount: uint256 = self.amount_of[delta_sha256][depositor]
    self.amount_of[delta_sha256][depositor] = 0
    self.total_held -= amount
    to: address = self.owner
    if refund:
        self.state_of[delta_sha256][depositor] = ST_REFUNDED
        to = depositor
    else:
        self.state_of[delta_sha256][depositor] = ST_KEPT
    log Settled(delta_sha256=delta_sha256, depositor=depositor, refunded=refund, amount=amount)
    raw_call(to, b"", value=amount)


@external
def transfer_ownership(new_owner: address):
    assert msg.sender == self.owner, "only the owner"
    assert new_owner != empty(address), "owner is the zero address"
    log OwnershipTransferred(previous_owner=self.owner, new_owner=new_owner)
    self.owner = new_owner

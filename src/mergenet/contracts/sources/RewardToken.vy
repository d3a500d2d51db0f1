# pragma version 0.4.3
# @license Apache-2.0
"""
@title mergenet reward token
@notice ERC-20 minted only by the MerkleDistributor that deployed it.
@dev Gas design: an account's balance (low 128 bits) and its cumulative claimed amount
     (high 128 bits) share one storage slot, so an account's first claim writes one fresh
     slot (20k gas) instead of two (the claimed counter in the distributor plus the balance
     in the token). The minter is an immutable (msg.sender of the constructor, i.e. the
     distributor deploying this contract from its blueprint), so checking it reads no storage.
     The total supply is stored plus one (set to 1 at deployment), so the very first claim
     rewrites a non-zero slot like every later one instead of paying 20k gas for a fresh slot.
"""

from ethereum.ercs import IERC20

implements: IERC20

event Transfer:
    sender: indexed(address)
    receiver: indexed(address)
    value: uint256

event Approval:
    owner: indexed(address)
    spender: indexed(address)
    value: uint256

LOW128: constant(uint256) = 2**128 - 1

MINTER: public(immutable(address))
name: public(String[32])
symbol: public(String[16])
decimals: public(constant(uint8)) = 18

# total supply + 1
_supply_plus_one: uint256
allowance: public(HashMap[address, HashMap[address, uint256]])
# (cumulative claimed << 128) | balance
_packed: HashMap[address, uint256]


@deploy
def __init__(name_: String[32], symbol_: String[16]):
    MINTER = msg.sender
    self.name = name_
    self.symbol = symbol_
    self._supply_plus_one = 1


@view
@external
def totalSupply() -> uint256:
    return self._supply_plus_one - 1


@view
@external
def balanceOf(account: address) -> uint256:
    return self._packed[account] & LOW128


@view
@external
def cumulative_claimed(account: address) -> uint256:
    """@notice Total ever paid to `account` by distributor claims."""
    return self._packed[account] >> 128


@internal
def _transfer(sender: address, receiver: address, amount: uint256):
    assert receiver != empty(address), "transfer to zero address"
    src: uint256 = self._packed[sender]
    assert src & LOW128 >= amount, "balance too low"
    self._packed[sender] = src - amount
    dst: uint256 = self._packed[receiver]
    assert (dst & LOW128) + amount <= LOW128, "balance overflow"
    self._packed[receiver] = dst + amount
    log Transfer(sender=sender, receiver=receiver, value=amount)


@external
def transfer(receiver: address, amount: uint256) -> bool:
    self._transfer(msg.sender, receiver, amount)
    return True


@external
def transferFrom(sender: address, receiver: address, amount: uint256) -> bool:
    allowed: uint256 = self.allowance[sender][msg.sender]
    if allowed != max_value(uint256):
        assert allowed >= amount, "allowance too low"
        self.allowance[sender][msg.sender] = allowed - amount
    self._transfer(sender, receiver, amount)
    return True


@external
def approve(spender: address, amount: uint256) -> bool:
    self.allowance[msg.sender][spender] = amount
    log Approval(owner=msg.sender, spender=spender, value=amount)
    return True


@external
def mint_claim(account: address, cumulative_amount: uint256) -> uint256:
    """
    @notice Pay `account` up to `cumulative_amount` in total; only the distributor may call.
    @return The amount minted now: `cumulative_amount` minus what was claimed before.
    """
    assert msg.sender == MINTER, "only the distributor mints"
    packed: uint256 = self._packed[account]
    claimed: uint256 = packed >> 128
    assert cumulative_amount > claimed, "nothing to claim"
    assert cumulative_amount <= LOW128, "amount too large"
    amount: uint256 = unsafe_sub(cumulative_amount, claimed)
    balance: uint256 = (packed & LOW128) + amount
    assert balance <= LOW128, "balance overflow"
    self._packed[account] = (cumulative_amount << 128) | balance
    self._supply_plus_one += amount
    log Transfer(sender=empty(address), receiver=account, value=amount)
    return amount

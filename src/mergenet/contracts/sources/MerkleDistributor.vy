# pragma version 0.4.3
# @license Apache-2.0
"""
@title mergenet cumulative Merkle distributor
@notice The 1inch CumulativeMerkleDrop pattern: the owner publishes one Merkle root per reward
        epoch over leaves keccak256(account ++ cumulativeAmount) (20 + 32 packed bytes, sorted
        pairs); `claim` pays the difference between the leaf's cumulative amount and what the
        account was already paid, so one claim collects every past epoch. The caller names the
        root it proved against (`expected_root`): a claim racing a root update reverts instead
        of paying against the wrong tree.
@dev Gas design: the owner and the last published epoch share one slot; epochs must increase,
     so the same epoch can never be published twice (publishing is idempotent on chain). The
     root starts at a non-zero sentinel nobody can prove against, so every root update,
     the first included, rewrites a non-zero slot and costs the same whatever the tree size.
     The claimed amounts live in the token, packed beside each balance (see RewardToken.vy).
"""

interface RewardToken:
    def mint_claim(account: address, cumulative_amount: uint256) -> uint256: nonpayable
    def cumulative_claimed(account: address) -> uint256: view

event MerkleRootUpdated:
    epoch: indexed(uint256)
    old_root: bytes32
    new_root: bytes32

event OwnershipTransferred:
    previous_owner: indexed(address)
    new_owner: indexed(address)

ADDRESS_MASK: constant(uint256) = 2**160 - 1
EMPTY_ROOT: constant(bytes32) = keccak256("mergenet.MerkleDistributor.empty-root")
MAX_PROOF: constant(uint256) = 64

TOKEN: public(immutable(address))
merkle_root: public(bytes32)
# (epoch << 160) | owner
_control: uint256


@deploy
def __init__(token_blueprint: address, owner: address, name: String[32], symbol: String[16]):
    assert owner != empty(address), "owner is the zero address"
    TOKEN = create_from_blueprint(token_blueprint, name, symbol)
    self.merkle_root = EMPTY_ROOT
    self._control = convert(owner, uint256)
    log OwnershipTransferred(previous_owner=empty(address), new_owner=owner)


@view
@external
def owner() -> address:
    return convert(self._control & ADDRESS_MASK, address)


@view
@external
def epoch() -> uint256:
    """@notice The last published epoch (0 before the first root)."""
    return self._control >> 160


@view
@external
def cumulative_claimed(account: address) -> uint256:
    return staticcall RewardToken(TOKEN).cumulative_claimed(account)


@external
def set_merkle_root(new_root: bytes32, epoch: uint256):
    """@notice Publish the root of epoch `epoch`; epochs must increase."""
    control: uint256 = self._control
    assert msg.sender == convert(control & ADDRESS_MASK, address), "only the owner"
    assert epoch > control >> 160, "epoch already published"
    assert epoch < 2**96, "epoch too large"
    self._control = (epoch << 160) | (control & ADDRESS_MASK)
    log MerkleRootUpdated(epoch=epoch, old_root=self.merkle_root, new_root=new_root)
    self.merkle_root = new_root


@external
def transfer_ownership(new_owner: address):
    control: uint256 = self._control
    old_owner: address = convert(control & ADDRESS_MASK, address)
    assert msg.sender == old_owner, "only the owner"
    assert new_owner != empty(address), "owner is the zero address"
    self._control = (control ^ convert(old_owner, uint256)) | convert(new_owner, uint256)
    log OwnershipTransferred(previous_owner=old_owner, new_owner=new_owner)


@external
def claim(
    account: address,
    cumulative_amount: uint256,
    expected_root: bytes32,
    proof: DynArray[bytes32, MAX_PROOF],
):
    """
    @notice Pay `account` what its leaf in the current root adds to its earlier claims.
    @dev Anyone may send the claim; tokens always go to `account`.
    """
    assert self.merkle_root == expected_root, "merkle root changed"
    node: bytes32 = keccak256(concat(convert(account, bytes20), convert(cumulative_amount, bytes32)))
    for sibling: bytes32 in proof:
        if convert(node, uint256) < convert(sibling, uint256):
            node = keccak256(concat(node, sibling))
        else:
            node = keccak256(concat(sibling, node))
    assert node == expected_root, "invalid proof"
    extcall RewardToken(TOKEN).mint_claim(account, cumulative_amount)

"""Deploy the reward contracts and remember where they are (``<data_dir>/chain/deployment.json``).

Deployment is five signed transactions from the coordinator's key: the token's ERC-5202
blueprint, the distributor (which creates the token from the blueprint, so the token's minter
is the distributor by construction), the version registry, the row-epoch seed commitments
(``EpochSeeds``) and the per-upload bond (``UploadBond``, whose amount is fixed at deploy; 0
disables bonds). A deployment file written before the last two existed has empty addresses for
them, which :func:`deployment_is_live` treats as not live, so ``chain up`` redeploys.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from eth_utils import to_checksum_address

from mergenet.contracts import load_artifacts
from mergenet.rewards.client import deploy_contract

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from web3 import Web3

TOKEN_NAME = "mergenet reward"
TOKEN_SYMBOL = "MRG"
DEFAULT_UPLOAD_BOND_WEI = 10**16
"""0.01 ether per upload on the local chain (``chain up`` on its own anvil): a hundred uploads
per ether of test funds (the demo and ``chain fund`` give a contributor 1 ether), and about 80
times the deposit's own gas (90,334 gas at ~1.4 gwei on anvil, 0.00013 ether), so the bond, not
the gas, is what a junk upload costs. See the README."""


@dataclass(frozen=True)
class Deployment:
    rpc_url: str
    chain_id: int
    owner: str
    token: str
    distributor: str
    registry: str
    blueprint: str
    block: int
    """Block of the first deployment transaction: event scans start here."""
    seeds: str = ""
    """EpochSeeds (row-epoch commit/reveal); empty in a deployment file that predates it."""
    bond: str = ""
    """UploadBond; empty in a deployment file that predates it."""
    bond_wei: int = 0
    """The bond per upload the UploadBond was deployed with (0: bonds disabled)."""

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    def public_json(self) -> dict[str, object]:
        """What ``mergenet chain up --json`` prints."""
        return {
            "rpc_url": self.rpc_url,
            "chain_id": self.chain_id,
            "token": self.token,
            "distributor": self.distributor,
            "registry": self.registry,
            "seeds": self.seeds,
            "bond": self.bond,
            "bond_wei": str(self.bond_wei),
        }


def deployment_path(data_dir: Path) -> Path:
    return data_dir / "chain" / "deployment.json"


def save_deployment(data_dir: Path, deployment: Deployment) -> Path:
    path = deployment_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(deployment.to_json(), indent=2) + "\n")
    tmp.replace(path)
    return path


def load_deployment(data_dir: Path) -> Deployment | None:
    path = deployment_path(data_dir)
    if not path.exists():
        return None
    return Deployment(**json.loads(path.read_text()))


def deployment_is_live(w3: Web3, deployment: Deployment) -> bool:
    """True if ``w3``'s chain holds this deployment (a restarted anvil does not)."""

    if w3.eth.chain_id != deployment.chain_id:
        return False
    addresses = (
        deployment.token,
        deployment.distributor,
        deployment.registry,
        deployment.seeds,
        deployment.bond,
    )
    for address in addresses:
        if not address or len(w3.eth.get_code(to_checksum_address(address))) == 0:
            return False
    abi = load_artifacts()["MerkleDistributor"].abi
    distributor = w3.eth.contract(address=to_checksum_address(deployment.distributor), abi=abi)
    try:
        return distributor.functions.TOKEN().call() == deployment.token
    except Exception:
        return False


def deploy_contracts(
    w3: Web3, owner: LocalAccount, rpc_url: str, *, bond_wei: int = 0
) -> Deployment:
    """Deploy token blueprint, distributor (+ token), registry, seeds and the upload bond
    (``bond_wei`` per upload, 0: disabled), all owned by ``owner``."""
    if bond_wei < 0:
        raise ValueError(f"the upload bond must be >= 0 wei, got {bond_wei}")

    arts = load_artifacts()
    blueprint, receipt = deploy_contract(w3, owner, [], arts["RewardToken"].blueprint_bytecode)
    first_block = int(receipt["blockNumber"])
    dist = arts["MerkleDistributor"]
    distributor, _ = deploy_contract(
        w3, owner, dist.abi, dist.bytecode, blueprint, owner.address, TOKEN_NAME, TOKEN_SYMBOL
    )
    reg = arts["VersionRegistry"]
    registry, _ = deploy_contract(w3, owner, reg.abi, reg.bytecode, owner.address)
    seeds_art, bond_art = arts["EpochSeeds"], arts["UploadBond"]
    seeds, _ = deploy_contract(w3, owner, seeds_art.abi, seeds_art.bytecode, owner.address)
    bond, _ = deploy_contract(w3, owner, bond_art.abi, bond_art.bytecode, owner.address, bond_wei)
    token = (
        w3.eth.contract(address=to_checksum_address(distributor), abi=dist.abi)
        .functions.TOKEN()
        .call()
    )
    return Deployment(
        rpc_url=rpc_url,
        chain_id=int(w3.eth.chain_id),
        owner=owner.address,
        token=str(token),
        distributor=distributor,
        registry=registry,
        blueprint=blueprint,
        block=first_block,
        seeds=seeds,
        bond=bond,
        bond_wei=bond_wei,
    )

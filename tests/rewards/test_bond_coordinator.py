"""The coordinator side of the upload bond and of row-epoch seeds, on a real anvil and a
two-tensor checkpoint (no model world): an unbonded upload gets 402 naming the amount and the
contract, a bonded one is accepted, ``mergenet node submit``'s code path posts the bond itself,
settlement refunds pool members and keeps junk and refused uploads; publishing a reward epoch
rotates the row epoch and reveals its secret on chain, and a chain that is down leaves the
commit/reveal pending until a later round sends it."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from pydantic import SecretStr
from web3 import Web3

from mergenet.rewards.anvil import AnvilProcess

from .conftest import fund, new_account

pytestmark = pytest.mark.chain

BOND = 10**16


def _tiny_base(folder: Path) -> Path:
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True)
    g = torch.Generator().manual_seed(0)
    tensors = {"embed.weight": torch.randn(8, 4, generator=g), "head.weight": torch.randn(4, 8)}
    save_file(tensors, str(folder / "model.safetensors"))
    (folder / "config.json").write_text("{}")
    return folder


def _delta(path: Path, seed: int) -> Path:
    import torch
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(seed)
    tensors = {
        "embed.weight": 0.05 * torch.randn(8, 4, generator=g),
        "head.weight": 0.05 * torch.randn(4, 8, generator=g),
    }
    save_file(tensors, str(path))
    return path


@pytest.fixture
def bonded_coordinator(anvil: AnvilProcess, w3: Web3, tmp_path: Path) -> Iterator[Any]:
    from mergenet.config import Settings
    from mergenet.coordinator.runtime import Coordinator
    from mergenet.coordinator.settings import CoordinatorSettings
    from mergenet.rewards.chain import chain_up, coordinator_account

    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=None,
        chain_url=anvil.rpc_url,
        keystore_password=SecretStr("test-password"),
        upload_bond_wei=BOND,
    )
    fund(w3, coordinator_account(settings, create=True).address)
    chain_up(settings)
    rows = tmp_path / "dev.jsonl"
    rows.write_text('{"input": "1+1=\\nAnswer:", "output": "2", "subject": "add"}\n')
    cs = CoordinatorSettings(
        base_dir=_tiny_base(tmp_path / "base"), dev_rows=rows, workers=0, chain=True
    )
    coord = Coordinator(settings, cs).open()
    try:
        yield coord
    finally:
        coord.close()


def _form(coord: Any, acct: LocalAccount, path: Path, nonce: int) -> dict[str, str]:
    from mergenet.protocol.hashes import sha256_file
    from mergenet.protocol.signing import sign_submission

    with coord.factory() as s:
        from mergenet.coordinator import models as m

        parent = s.query(m.Version).first().hash
    sig = sign_submission(acct, sha256_file(path), parent, nonce, coord.domain)
    return {"address": acct.address, "parent_hash": parent, "nonce": str(nonce), "signature": sig}


def _post(client: Any, coord: Any, acct: LocalAccount, path: Path, nonce: int) -> Any:
    with path.open("rb") as fh:
        return client.post(
            "/api/contributions",
            data=_form(coord, acct, path, nonce),
            files={"file": ("d.safetensors", fh)},
        )


def _scaled(src: Path, dst: Path, factor: float) -> Path:
    from safetensors.torch import load_file, save_file

    save_file({k: factor * v for k, v in load_file(str(src)).items()}, str(dst))
    return dst


def _judge(coord: Any, sha: str, *, in_pool: bool) -> None:
    from mergenet.coordinator import models as m
    from mergenet.coordinator.status import ContributionStatus
    from mergenet.db import transaction

    with transaction(coord.factory) as s:
        row = s.query(m.Contribution).filter_by(sha256=sha).one()
        row.status, row.score, row.in_pool = ContributionStatus.SCORED, 0.5, in_pool


def test_bond_gate_node_deposit_and_settlement(
    bonded_coordinator: Any, w3: Web3, tmp_path: Path
) -> None:
    from fastapi.testclient import TestClient

    from mergenet.coordinator.app import create_app
    from mergenet.node.client import CoordinatorClient
    from mergenet.node.submit import resolve_artifact, submit_artifact
    from mergenet.protocol.hashes import sha256_file
    from mergenet.rewards import bond

    coord = bonded_coordinator
    contracts = coord.chain.contracts
    alice, bob = new_account(w3), new_account(w3)
    good, junk = _delta(tmp_path / "good.safetensors", 1), _delta(tmp_path / "junk.safetensors", 2)
    with TestClient(create_app(coord)) as client:
        info = client.get("/api/chain").json()
        assert info["bond"] == contracts.bond.address and info["bond_wei"] == str(BOND)

        refused = _post(client, coord, alice, good, 1)
        assert refused.status_code == 402, refused.text
        detail = refused.json()["detail"]
        assert str(BOND) in detail and contracts.bond.address in detail
        assert "mergenet node submit" in detail

        bond.deposit(contracts, alice, sha256_file(good))
        accepted = _post(client, coord, alice, good, 2)
        assert accepted.status_code == 201, accepted.text

        # a copier bonds alice's exact file under its own key: refused, and its bond is kept
        mallory = new_account(w3)
        bond.deposit(contracts, mallory, sha256_file(good))
        copied = _post(client, coord, mallory, good, 1)
        assert copied.status_code == 409, copied.text
        # a near copy (alice's delta scaled) is refused by the copy detector, which forfeits
        near = _scaled(good, tmp_path / "near.safetensors", 1.02)
        bond.deposit(contracts, mallory, sha256_file(near))
        refused_near = _post(client, coord, mallory, near, 2)
        assert refused_near.status_code == 409, refused_near.text

        # the node's own submit path posts the bond first and says so
        node = CoordinatorClient("http://testserver")
        node._http = client
        said: list[str] = []
        bob_start = w3.eth.get_balance(bob.address)
        artifact = resolve_artifact(junk, accepted.json()["parent_hash"])
        done = submit_artifact(node, bob, artifact, say=said.append)
        assert done["sha256"] == sha256_file(junk)
        assert said and "posted the upload bond" in said[0] and str(BOND) in said[0]
        assert bond.is_held(contracts, sha256_file(junk), bob.address)

    # judged: alice's delta entered the merge pool, bob's is junk
    _judge(coord, sha256_file(good), in_pool=True)
    _judge(coord, sha256_file(junk), in_pool=False)
    alice_before = w3.eth.get_balance(alice.address)
    treasury_before = w3.eth.get_balance(coord.chain.owner.address)
    coord.epochs.publish_now()
    assert bond.held_deposits(contracts) == []
    assert w3.eth.get_balance(alice.address) == alice_before + BOND
    assert w3.eth.get_balance(bob.address) < bob_start - BOND  # bond kept, gas paid
    assert w3.eth.get_balance(coord.chain.owner.address) > treasury_before  # + BOND - gas
    state = contracts.bond.functions.state_of
    assert state(bytes.fromhex(sha256_file(junk)), bob.address).call() == 3  # kept
    assert state(bytes.fromhex(sha256_file(good)), mallory.address).call() == 3  # kept
    assert state(bytes.fromhex(sha256_file(good)), alice.address).call() == 2  # refunded
    near = tmp_path / "near.safetensors"
    assert state(bytes.fromhex(sha256_file(near)), mallory.address).call() == 3  # forfeited


def test_refused_copy_and_orphan_bonds_are_kept(bonded_coordinator: Any, w3: Web3) -> None:
    import secrets

    from mergenet.rewards import bond

    coord = bonded_coordinator
    contracts, keeper = coord.chain.contracts, coord.epochs.bonds
    mallory, late = new_account(w3), new_account(w3)
    copy_sha, waiting_sha = secrets.token_hex(32), secrets.token_hex(32)
    bond.deposit(contracts, mallory, copy_sha)
    bond.deposit(contracts, late, waiting_sha)
    keeper.forfeit(copy_sha, mallory.address)  # what the submission path calls on a copy
    coord.epochs.publish_now()
    held = {(d.sha256, d.depositor) for d in bond.held_deposits(contracts)}
    assert held == {(waiting_sha, late.address)}  # no contribution yet, not orphaned yet
    keeper.orphan_after = 0.0
    coord.epochs.publish_now()
    assert bond.held_deposits(contracts) == []

    # the chain unreachable while an upload is checked: 503 (retry), never a 500
    from mergenet.coordinator.bonds import BondKeeper
    from mergenet.errors import Unavailable
    from mergenet.rewards.client import RewardContracts
    from mergenet.rewards.deployment import load_deployment

    dead_w3 = Web3(Web3.HTTPProvider("http://127.0.0.1:9"))
    down = BondKeeper(contracts, coord.chain.owner)
    down.contracts = RewardContracts.bind(dead_w3, load_deployment(coord.settings.data_dir))
    with pytest.raises(Unavailable, match="retry"):
        down.check(copy_sha, mallory.address)


def test_publishing_rotates_and_reveals_the_row_epoch_on_chain(
    bonded_coordinator: Any, w3: Web3
) -> None:
    from mergenet.coordinator import models as m
    from mergenet.coordinator.epochs import EpochPublisher
    from mergenet.coordinator.row_epochs import rotate
    from mergenet.db import transaction
    from mergenet.rewards.client import ChainError, RewardContracts
    from mergenet.rewards.deployment import load_deployment
    from mergenet.rewards.ledger import accrue
    from mergenet.rewards.seeds import seed_record

    coord = bonded_coordinator
    contracts = coord.chain.contracts
    coord.epochs.publish_now()  # nothing accrued: no rotation, epoch 1 committed
    with coord.factory() as s:
        first = s.get(m.RowEpoch, 1)
        assert first is not None and first.commit_tx and first.revealed_at is None
        secret = first.secret
    assert seed_record(contracts, 1).commitment == "0x" + first.commitment

    with transaction(coord.factory) as s:
        accrue(s, contribution_id="c1", account=new_account(w3).address, amount=10**18)
    assert coord.epochs.publish_now()  # closes and confirms reward epoch 1, then rotates
    with coord.factory() as s:
        one, two = s.get(m.RowEpoch, 1), s.get(m.RowEpoch, 2)
        assert one.revealed_at is not None and one.reveal_tx and two.commit_tx
    record = seed_record(contracts, 1)
    assert record.seed == "0x" + secret
    assert hashlib.sha256(bytes.fromhex(secret)).hexdigest() == record.commitment[2:]
    coord.epochs.publish_now()  # the same confirmed reward epoch does not rotate again
    with coord.factory() as s:
        assert s.get(m.RowEpoch, 3) is None

    # the chain is down: the rotation is recorded, its commit/reveal wait for the chain
    deployment = load_deployment(coord.settings.data_dir)
    dead = RewardContracts.bind(Web3(Web3.HTTPProvider("http://127.0.0.1:9")), deployment)
    down = EpochPublisher(coord.factory, replace(dead, bond=None), coord.chain.owner, 0)
    with transaction(coord.factory) as s:
        rotate(s)
    with pytest.raises((ChainError, OSError)):
        down.sync_seeds()
    with coord.factory() as s:
        assert s.get(m.RowEpoch, 2).reveal_tx is None and s.get(m.RowEpoch, 3).commit_tx is None
    assert coord.epochs.sync_seeds() == 2  # the next round with the chain back sends both
    assert seed_record(contracts, 2).seed is not None
    assert seed_record(contracts, 3).commitment != "0x" + "00" * 32


def test_node_without_ether_is_told_how_to_fund(
    bonded_coordinator: Any, w3: Web3, tmp_path: Path
) -> None:
    from fastapi.testclient import TestClient

    from mergenet.coordinator.app import create_app
    from mergenet.node.client import CoordinatorClient
    from mergenet.node.errors import NodeError
    from mergenet.node.submit import resolve_artifact, submit_artifact

    coord = bonded_coordinator
    broke = new_account(w3, funded=False)
    delta = _delta(tmp_path / "d.safetensors", 3)
    with TestClient(create_app(coord)) as client:
        node = CoordinatorClient("http://testserver")
        node._http = client
        parent = client.get("/api/versions/current").json()["hash"]
        with pytest.raises(NodeError, match=f"mergenet chain fund {broke.address}"):
            submit_artifact(node, broke, resolve_artifact(delta, parent))

"""Fixtures for the rewards tests: a real anvil per module, fresh contracts per test.

Every anvil is started on a free 127.0.0.1 port and stopped by its fixture's finalizer.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from sqlalchemy.orm import Session, sessionmaker
from web3 import Web3

from mergenet.db import make_engine, make_session_factory
from mergenet.migrate import upgrade
from mergenet.rewards.anvil import AnvilProcess, start_anvil
from mergenet.rewards.client import RewardContracts, connect
from mergenet.rewards.deployment import Deployment, deploy_contracts

ONE_ETHER = 10**18


@pytest.fixture(scope="module")
def anvil() -> Iterator[AnvilProcess]:
    proc = start_anvil()
    try:
        yield proc
    finally:
        proc.stop()
    assert not proc.alive()


@pytest.fixture(scope="module")
def w3(anvil: AnvilProcess) -> Web3:
    return connect(anvil.rpc_url)


def fund(w3: Web3, address: str, wei: int = 100 * ONE_ETHER) -> None:
    w3.provider.make_request("anvil_setBalance", [address, hex(wei)])


def new_account(w3: Web3, *, funded: bool = True) -> LocalAccount:
    account = Account.create()
    if funded:
        fund(w3, account.address)
    return account


@dataclass
class Deployed:
    w3: Web3
    owner: LocalAccount
    deployment: Deployment
    contracts: RewardContracts


@pytest.fixture
def deployed(w3: Web3, anvil: AnvilProcess) -> Deployed:
    owner = new_account(w3)
    deployment = deploy_contracts(w3, owner, anvil.rpc_url)
    return Deployed(w3, owner, deployment, RewardContracts.bind(w3, deployment))


@pytest.fixture
def ledger(tmp_path: Path) -> sessionmaker[Session]:
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    upgrade(engine)
    return make_session_factory(engine)

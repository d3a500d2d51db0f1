"""The node's submit path signs with the domain its coordinator serves (issue 19 item 3):
``submit_artifact`` fetches ``GET /api/info``'s EIP-712 domain, signs, uploads (201); the same
upload signed for another coordinator's domain is refused with a NodeError carrying the 401."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from ..coordinator.conftest import account, cworld, make_coordinator  # noqa: F401


def _client(coord: Any) -> Any:
    from fastapi.testclient import TestClient

    from mergenet.coordinator.app import create_app
    from mergenet.node.client import CoordinatorClient

    client = CoordinatorClient("http://testserver")
    client._http = TestClient(create_app(coord))  # the node's client, in process
    return client


def test_node_submit_signs_with_the_served_domain(
    cworld: Any,  # noqa: F811
    make_coordinator: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    from mergenet.node.errors import NodeError
    from mergenet.node.submit import fetch_domain, resolve_artifact, submit_artifact
    from mergenet.protocol.signing import SigningDomain

    coord = make_coordinator(network_id=None)
    client = _client(coord)
    assert fetch_domain(client) == coord.domain
    parent = client.current_version()["hash"]
    delta = tmp_path / "delta.safetensors"
    shutil.copy(cworld.delta_path(cworld.contributor_names[1]), delta)
    artifact = resolve_artifact(delta, parent)

    foreign = SigningDomain(coord.domain.chain_id, coord.domain.verifying_contract, "77" * 32)
    with pytest.raises(NodeError, match=r"\(401\).*another coordinator or chain"):
        submit_artifact(client, account(4), artifact, foreign)

    info = submit_artifact(client, account(4), artifact)
    assert info["sha256"] == artifact.sha256
    assert info["address"] == account(4).address

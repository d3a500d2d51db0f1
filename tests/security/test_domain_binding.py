"""Issue 19 item 3: an upload's signature is bound to one coordinator by its EIP-712 domain.

Before, a signed upload replayed to a second coordinator on the same chain id was credited to
its signer there. Now the domain names the chain id, the distributor contract and the
coordinator's network id (random, persisted in its data dir): the replay, and a signature over
another chain id, are refused with 401 and a message; the network id survives a reopen."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ..coordinator.conftest import account, signed_form


def _post(client: Any, path: Path, form: dict[str, str]) -> Any:
    with path.open("rb") as fh:
        return client.post(
            "/api/contributions", data=form, files={"file": ("delta.safetensors", fh)}
        )


def test_a_signature_for_coordinator_a_is_refused_by_b(
    cworld: Any, make_coordinator: Any, tmp_path: Path
) -> None:
    from fastapi.testclient import TestClient

    from mergenet.coordinator.app import create_app
    from mergenet.coordinator.network import NETWORK_ID_FILE
    from mergenet.protocol.signing import SigningDomain

    a = make_coordinator(data_dir=tmp_path / "a")
    b = make_coordinator(data_dir=tmp_path / "b", network_id=None)  # made randomly, persisted
    client_a, client_b = TestClient(create_app(a)), TestClient(create_app(b))
    served = [
        SigningDomain.from_json(c.get("/api/info").json()["signing_domain"])
        for c in (client_a, client_b)
    ]
    assert served == [a.domain, b.domain]
    assert a.domain.chain_id == b.domain.chain_id and a.domain.network_id != b.domain.network_id
    assert (tmp_path / "b" / NETWORK_ID_FILE).read_text().strip() == b.domain.network_id

    parent = client_a.get("/api/versions/current").json()["hash"]
    assert client_b.get("/api/versions/current").json()["hash"] == parent  # same world
    path = cworld.delta_path(cworld.contributor_names[0])
    form = signed_form(account(3), path, parent, 1, a.domain)

    replay = _post(client_b, path, form)
    assert replay.status_code == 401, replay.text
    assert "another coordinator or chain" in replay.json()["detail"]
    other_chain = signed_form(
        account(3), path, parent, 2, dataclasses.replace(b.domain, chain_id=1)
    )
    r = _post(client_b, path, other_chain)
    assert r.status_code == 401, r.text
    assert "chain id 31337" in r.json()["detail"]
    with b.factory() as s:
        from mergenet.coordinator import models as m

        assert s.query(m.Contribution).count() == 0  # nothing credited on B

    ok = _post(client_a, path, form)
    assert ok.status_code == 201, ok.text
    assert ok.json()["sha256"]

    b.close()
    again = make_coordinator(data_dir=tmp_path / "b", network_id=None)
    assert again.domain == b.domain  # the network id persisted in the data dir

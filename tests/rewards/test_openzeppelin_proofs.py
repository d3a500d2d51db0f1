"""A client nobody here wrote verifies the rewards: OpenZeppelin's ``@openzeppelin/merkle-tree``.

Proofs as ``GET /api/rewards/{address}`` serves them (``RewardStatus.to_json``) are checked by
``scripts/verify-reward-proofs.mjs`` (node) against the root read from the chain, with the leaf
computed on the JavaScript side. Tampered amounts and proofs must fail there too, so the check
could fail.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from eth_utils import to_hex

from mergenet.rewards.publish import publish_pending

from .conftest import Deployed, new_account
from .test_ledger_publish import accrue_random, close, status

pytestmark = pytest.mark.chain

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "verify-reward-proofs.mjs"


def openzeppelin_verify(root: str, claims: list[dict]) -> list[bool]:
    if (
        shutil.which("node") is None
        or not (ROOT / "node_modules/@openzeppelin/merkle-tree").is_dir()
    ):
        pytest.fail("node and node_modules/@openzeppelin/merkle-tree are needed (make setup)")
    out = subprocess.run(
        ["node", str(SCRIPT)],
        input=json.dumps({"root": root, "claims": claims}),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert out.returncode in (0, 1), out.stderr
    return json.loads(out.stdout)["results"]


def test_served_proofs_verify_with_openzeppelin_against_the_chain_root(
    deployed: Deployed, ledger
) -> None:
    d = deployed
    users = [new_account(d.w3).address for _ in range(13)]  # odd: a level carries a node up
    accrue_random(ledger, users, 50, seed=7, prefix="oz")
    close(ledger)
    publish_pending(ledger, d.contracts, d.owner)
    chain_root = to_hex(d.contracts.merkle_root())

    served = [status(ledger, u, d.contracts).to_json() for u in users]
    claims = [
        {"account": s["address"], "cumulative": s["cumulative_amount"], "proof": s["proof"]}
        for s in served
        if s["published"]["base_units"] != "0"
    ]
    assert len(claims) >= 10 and all(s["root"] == chain_root for s in served if s["proof"])
    assert openzeppelin_verify(chain_root, claims) == [True] * len(claims)

    inflated = [dict(c, cumulative=str(int(c["cumulative"]) + 1)) for c in claims]
    assert openzeppelin_verify(chain_root, inflated) == [False] * len(claims)
    swapped = [dict(c, proof=claims[(i + 1) % len(claims)]["proof"]) for i, c in enumerate(claims)]
    assert not any(openzeppelin_verify(chain_root, swapped))

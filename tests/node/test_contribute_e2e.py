"""A new contributor, start to finish, as the README tells it: a fresh keystore, rows for one
task, ``pull → finetune → submit`` against a running coordinator and anvil, the evaluation
completes, the loop merges the delta into a new version, an epoch is published, ``claim`` pays,
and ``cast`` reads the same balance. Every command runs as its own ``mergenet`` process, as a
person would run it.

The node is the network's only contributor here, so the version the loop accepts is built from
its delta and the reward is certain; a network of many contributors racing for the merge is what
tests/coordinator/test_end_to_end.py and tests/demo cover."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from mergenet.protocol.hashes import sha256_file

from ..coordinator.server import CoordinatorProcess
from ..rewards.cast import cast_balance

pytestmark = [pytest.mark.world, pytest.mark.chain, pytest.mark.slow, pytest.mark.timeout(1500)]

PASSWORD = "correct horse battery staple"
BUDGET = 40
"""Loop evaluations: with one contribution every candidate is a weighting of it. 24 ran out
once in three CI proofs before any candidate passed selection and confirmation."""
STEPS = "120"
"""Fine-tuning steps, on rows of every task family. The delta must carry a real gain, since
confirmation is a sequential paired test that does not accept noise: a plus_ten-only delta
(alice's rows) at 30 steps saw 19 confirmations of its weightings at G −0.024 … +0.014 and at
120 steps 11 at −0.024 … +0.030, none accepted, so no reward was ever published (the old
single-sample rule had accepted one by luck)."""


def mergenet(env: dict[str, str], *args: str, check: bool = True, stdin: str = "") -> Any:
    proc = subprocess.run(
        [sys.executable, "-m", "mergenet.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        input=stdin,
        timeout=900,
    )
    if check:
        assert proc.returncode == 0, f"{args}: {proc.stdout}\n{proc.stderr}"
    return proc


def one_error_line(proc: Any) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


def test_a_new_contributor_pulls_finetunes_submits_and_claims(world: Any, tmp_path: Path) -> None:
    from mergenet.config import Settings
    from mergenet.rewards.chain import chain_down, chain_up

    coord_dir = tmp_path / "coordinator"
    # no upload bond: this flow checks claim's no-ether message, so the node holds no ether
    # until then (the bond's own flow: tests/rewards/test_bond_coordinator.py)
    coord_settings = Settings(
        data_dir=coord_dir, keystore_password=PASSWORD, chain_url=None, upload_bond_wei=0
    )
    deployment = chain_up(coord_settings).deployment
    server = CoordinatorProcess(
        world,
        coord_dir,
        workers=1,
        max_evaluations=BUDGET,
        extra_env={
            "MERGENET_KEYSTORE_PASSWORD": PASSWORD,
            "MERGENET_COORDINATOR_CHAIN": "true",
            "MERGENET_COORDINATOR_EPOCH_SECONDS": "2",
        },
    )
    node_env = {k: v for k, v in os.environ.items() if not k.startswith("MERGENET_")} | {
        "MERGENET_DATA_DIR": str(tmp_path / "node"),
        "MERGENET_CACHE_DIR": str(tmp_path / "node-cache"),
        "MERGENET_KEYSTORE_PASSWORD": PASSWORD,
        "MERGENET_COORDINATOR_URL": server.url,
    }
    try:
        # before anything runs: no keystore, no coordinator
        assert "keys new" in one_error_line(mergenet(node_env, "node", "claim", check=False))
        assert "cannot reach the coordinator" in one_error_line(
            mergenet(node_env, "node", "pull", check=False)
        )
        server.start()
        address = mergenet(node_env, "node", "keys", "new").stdout.split()[2].rstrip(",")
        assert mergenet(node_env, "node", "keys", "show").stdout.strip() == address
        pulled = mergenet(node_env, "node", "pull").stdout
        assert "downloaded and verified" in pulled
        assert "already cached" in mergenet(node_env, "node", "pull").stdout

        bad = tmp_path / "bad.jsonl"
        bad.write_text('{"input": "What is 1+10?\\nAnswer:", "output": "11"}\n{"input": 5}\n')
        assert "bad.jsonl line 2" in one_error_line(
            mergenet(node_env, "node", "finetune", "--data", str(bad), check=False)
        )

        # rows of every task family (50 of each contributor's): a generalist's delta lifts the
        # macro score the loop decides on, so its gain is real, not a lucky sample
        rows = tmp_path / "mixed.jsonl"
        lines = [
            line
            for name in world.contributor_names
            for line in world.contributor_data(name).read_text().splitlines()[:50]
        ]
        rows.write_text("\n".join(lines) + "\n")
        out = mergenet(
            node_env,
            "node",
            "finetune",
            "--data",
            str(rows),
            "--steps",
            STEPS,
            "--out",
            str(tmp_path / "ft"),
        ).stdout
        assert "delta written to" in out

        wrong = node_env | {"MERGENET_KEYSTORE_PASSWORD": "nope"}
        assert "wrong password" in one_error_line(
            mergenet(wrong, "node", "submit", str(tmp_path / "ft"), check=False)
        )

        submitted = mergenet(node_env, "node", "submit", str(tmp_path / "ft"), "--wait", "600")
        assert "score S = " in submitted.stdout, submitted.stdout
        status = mergenet(node_env, "node", "status").stdout
        assert status.count("score S = ") == 1

        wrong_parent = mergenet(
            node_env,
            "node",
            "submit",
            str(tmp_path / "ft" / "delta.safetensors"),
            "--parent",
            "cd" * 32,
            check=False,
        )
        assert "parent" in one_error_line(wrong_parent)

        # wait for a published epoch that pays this address (a merged version's share)
        deadline = time.monotonic() + 900
        published = 0
        while time.monotonic() < deadline and published == 0:
            r = httpx.get(f"{server.url}/api/rewards/{address}", timeout=30).json()
            published = int(r["cumulative_amount"])
            time.sleep(3)
        versions = httpx.get(f"{server.url}/api/versions", timeout=30).json()
        assert published > 0, f"no reward published for the node; versions: {versions}"
        sha = sha256_file(tmp_path / "ft" / "delta.safetensors")
        contribution = httpx.get(f"{server.url}/api/contributions/{sha}", timeout=30).json()
        assert contribution["in_versions"], contribution

        coord_env = node_env | {"MERGENET_DATA_DIR": str(coord_dir)}
        no_gas = mergenet(node_env, "node", "claim", check=False)
        assert "mergenet chain fund" in one_error_line(no_gas)
        mergenet(coord_env, "chain", "fund", address)
        claimed = mergenet(node_env, "node", "claim").stdout
        assert claimed.startswith("received ")
        balance = cast_balance(deployment.rpc_url, deployment.token, address)
        assert balance == published
        shown = mergenet(node_env, "node", "rewards").stdout
        assert "claimable 0" in shown
    finally:
        server.stop()
        chain_down(coord_settings)

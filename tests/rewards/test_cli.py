"""``mergenet chain``, ``mergenet rewards`` and the contributor's ``mergenet node`` key, reward
and claim commands (``--local``: this machine's ledger) end to end: a real detached anvil."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mergenet.cli import app
from mergenet.config import get_settings
from mergenet.rewards.anvil import pid_is_anvil, stop_pid
from mergenet.rewards.chain import anvil_state_path
from mergenet.rewards.client import connect

from .conftest import fund

pytestmark = pytest.mark.chain


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MERGENET_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MERGENET_KEYSTORE_PASSWORD", "correct horse")
    monkeypatch.delenv("MERGENET_CHAIN_URL", raising=False)
    monkeypatch.delenv("MERGENET_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    runner = CliRunner()
    yield runner, tmp_path
    state = anvil_state_path(tmp_path / "data")
    pid = json.loads(state.read_text())["pid"] if state.exists() else None
    runner.invoke(app, ["chain", "down"])
    if pid is not None:
        stop_pid(pid)  # in case `chain down` failed: never leave an anvil behind
        assert not pid_is_anvil(pid)
    get_settings.cache_clear()


def run(runner: CliRunner, *args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result.output


def test_chain_up_is_idempotent_and_rewards_flow(env) -> None:
    runner, tmp = env
    first = json.loads(run(runner, "chain", "up", "--json"))
    assert set(first) == {
        "rpc_url",
        "chain_id",
        "token",
        "distributor",
        "registry",
        "seeds",
        "bond",
        "bond_wei",
    }
    assert first["bond_wei"] == str(10**16)  # the default upload bond (Settings)
    assert first["rpc_url"].startswith("http://127.0.0.1:")
    again = json.loads(run(runner, "chain", "up", "--json"))
    assert again == first  # found its chain and deployment
    saved = json.loads((tmp / "data" / "chain" / "deployment.json").read_text())
    assert saved["distributor"] == first["distributor"]

    keyfile = tmp / "alice.json"
    created = run(runner, "node", "keys", "new", "--keystore", str(keyfile))
    alice = created.split()[2].rstrip(",")  # "new key 0x…, encrypted in …"
    assert "correct horse" not in keyfile.read_text()
    run(runner, "rewards", "accrue", "--contribution", "c1", "--account", alice, "--amount", "2.5")
    out = run(
        runner,
        "rewards",
        "accrue",
        "--contribution",
        "c2",
        "--account",
        alice,
        "--score",
        "0.9",
        "--threshold",
        "0.6",
        "--json",
    )
    quoted = int(json.loads(out)["amount"])
    assert quoted > 0
    assert "epoch 1" in run(runner, "rewards", "close-epoch")
    assert "epoch 1 confirmed" in run(runner, "rewards", "publish")
    shown = json.loads(run(runner, "node", "rewards", "--address", alice, "--local", "--json"))
    assert int(shown["cumulative_amount"]) == 25 * 10**17 + quoted
    assert shown["claimed"]["base_units"] == "0" and shown["proof"] is not None

    fund(connect(first["rpc_url"]), alice)
    claim = ["node", "claim", "--keystore", str(keyfile), "--local"]
    claimed = json.loads(run(runner, *claim, "--json"))
    assert int(claimed["paid"]) == 25 * 10**17 + quoted
    err = run(runner, *claim, code=2)
    assert "nothing to claim" in err
    assert "agree" in run(runner, "rewards", "reconcile")

    pid = json.loads(anvil_state_path(tmp / "data").read_text())["pid"]
    assert "chain stopped" in run(runner, "chain", "down")
    assert not pid_is_anvil(pid)
    assert "no JSON-RPC node answers" in run(runner, "rewards", "publish", code=2)


def test_bad_input_says_what_to_fix(env, monkeypatch: pytest.MonkeyPatch) -> None:
    runner, _tmp = env
    out = run(
        runner,
        "rewards",
        "accrue",
        "--contribution",
        "x",
        "--account",
        "0x12",
        "--amount",
        "1",
        code=2,
    )
    assert "not an Ethereum address" in out
    out = run(
        runner, "rewards", "accrue", "--contribution", "x", "--account", "0x" + "1" * 40, code=2
    )
    assert "exactly one of --amount" in out
    out = run(
        runner,
        "rewards",
        "accrue",
        "--contribution",
        "x",
        "--account",
        "0x" + "1" * 40,
        "--score",
        "0.9",
        code=2,
    )
    assert "--threshold" in out
    assert "mergenet chain up" in run(runner, "rewards", "publish", code=2)
    monkeypatch.delenv("MERGENET_KEYSTORE_PASSWORD")
    get_settings.cache_clear()
    assert "MERGENET_KEYSTORE_PASSWORD" in run(runner, "chain", "up", code=2)


def test_any_json_rpc_node_via_chain_url(env, anvil, monkeypatch: pytest.MonkeyPatch) -> None:
    """With MERGENET_CHAIN_URL, mergenet starts nothing and deploys with the keystore's key."""
    from mergenet.rewards.keystore import coordinator_keystore_path, keystore_address

    runner, tmp = env
    monkeypatch.setenv("MERGENET_CHAIN_URL", anvil.rpc_url)
    get_settings.cache_clear()
    out = run(runner, "chain", "up", code=2)
    owner = keystore_address(coordinator_keystore_path(tmp / "data"))
    assert owner is not None and f"{owner} has no funds" in out
    fund(connect(anvil.rpc_url), owner)
    first = json.loads(run(runner, "chain", "up", "--json"))
    assert first["rpc_url"] == anvil.rpc_url
    assert json.loads(run(runner, "chain", "up", "--json")) == first
    assert not anvil_state_path(tmp / "data").exists()  # no anvil of its own
    assert "no chain started by mergenet" in run(runner, "chain", "down")
    assert anvil.alive()

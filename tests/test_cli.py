"""The ``mergenet`` command's one error handler and the folded duplicate commands."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from mergenet.cli import app
from mergenet.config import get_settings
from mergenet.rewards.cli import MOVED


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MERGENET_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("MERGENET_DATABASE_URL", raising=False)
    monkeypatch.delenv("MERGENET_CHAIN_URL", raising=False)
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


@pytest.mark.parametrize("old", sorted(MOVED))
def test_a_folded_command_says_where_it_moved(runner: CliRunner, old: str) -> None:
    result = runner.invoke(app, ["rewards", old, "--keystore", "k.json", "0x" + "1" * 40])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert lines == [f"error: `mergenet rewards {old}` moved: use `{MOVED[old]}`"]
    assert MOVED[old].startswith("mergenet node ")


def test_the_new_places_exist(runner: CliRunner) -> None:
    for args in (["node", "keys", "new"], ["node", "rewards"], ["node", "claim"]):
        result = runner.invoke(app, [*args, "--help"])
        assert result.exit_code == 0, result.output
    assert "--local" in runner.invoke(app, ["node", "claim", "--help"]).output
    assert "--address" in runner.invoke(app, ["node", "rewards", "--help"]).output


def test_a_domain_error_is_one_line_and_exit_2(runner: CliRunner) -> None:
    # LedgerError (an InvalidInput) raised deep in the ledger, caught by no command
    args = ["rewards", "accrue", "--contribution", "x", "--account", "0x12", "--amount", "1"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: '0x12' is not an Ethereum address (0x followed by 40 hex digits)"
    ]


def test_a_missing_keystore_is_one_line_and_exit_2(runner: CliRunner, tmp_path: Path) -> None:
    missing = tmp_path / "nokey.json"
    result = runner.invoke(app, ["node", "claim", "--keystore", str(missing), "--local"])
    assert result.exit_code == 2
    (line,) = result.output.strip().splitlines()
    assert line.startswith("error: no keystore at") and "mergenet node keys new" in line

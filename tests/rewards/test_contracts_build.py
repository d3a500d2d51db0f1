"""The committed ABI/bytecode are exactly what the pinned Vyper makes from the sources."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest

from mergenet.contracts import CONTRACT_NAMES, ArtifactsOutOfDate, compile_all, load_artifacts
from mergenet.contracts import compile as compile_mod


def test_artifacts_reproducible_from_sources() -> None:
    committed = load_artifacts()
    fresh = compile_all()
    assert set(fresh) == set(CONTRACT_NAMES)
    for name in CONTRACT_NAMES:
        assert asdict(fresh[name]) == asdict(committed[name]), (
            f"{name}: run python -m mergenet.contracts"
        )


def test_compiling_twice_is_byte_identical() -> None:
    first, second = compile_all(), compile_all()
    for name in CONTRACT_NAMES:
        assert first[name].bytecode == second[name].bytecode
        # deploys code that starts with the ERC-5202 preamble 0xFE71 00
        assert "3d39f3fe7100" in first[name].blueprint_bytecode[:40]


def test_claim_has_the_cumulative_merkle_drop_signature() -> None:
    abi = load_artifacts()["MerkleDistributor"].abi
    claim = next(f for f in abi if f.get("name") == "claim")
    assert [i["type"] for i in claim["inputs"]] == ["address", "uint256", "bytes32", "bytes32[]"]


def test_changed_source_is_refused(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = json.loads(compile_mod.ARTIFACTS_PATH.read_text())
    data["RewardToken"]["source_sha256"] = "0" * 64
    stale = tmp_path / "artifacts.json"
    stale.write_text(json.dumps(data))
    monkeypatch.setattr(compile_mod, "ARTIFACTS_PATH", stale)
    compile_mod.load_artifacts.cache_clear()
    try:
        with pytest.raises(ArtifactsOutOfDate, match=r"RewardToken\.vy changed"):
            compile_mod.load_artifacts()
    finally:
        compile_mod.load_artifacts.cache_clear()

"""Compile the Vyper sources in-process and keep the compiled artifacts reproducible.

The compiled ABI and bytecode are committed (``artifacts.json``) so that anyone can check that
what is deployed comes from these sources: ``python -m mergenet.contracts`` rewrites
the file, and a test recompiles and compares byte for byte. Each source is compiled under a
fixed, machine-independent path so the embedded metadata does not depend on the checkout.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

from eth_typing import ABI

SOURCES_DIR = Path(__file__).parent / "sources"
ARTIFACTS_PATH = Path(__file__).parent / "artifacts.json"
CONTRACT_NAMES: tuple[str, ...] = (
    "RewardToken",
    "MerkleDistributor",
    "VersionRegistry",
    "EpochSeeds",
    "UploadBond",
)
VYPER_VERSION = "0.4.3"


class ArtifactsOutOfDate(RuntimeError):
    """The committed artifacts do not match the sources (or the compiler version)."""


@dataclass(frozen=True)
class Artifact:
    """One compiled contract: what deployment and clients need, plus its provenance."""

    name: str
    abi: ABI
    bytecode: str
    """Init code (0x-hex) for a normal deployment."""
    bytecode_runtime: str
    blueprint_bytecode: str
    """ERC-5202 blueprint init code: deploys code that only ``create_from_blueprint`` runs."""
    source_sha256: str
    compiler: str


def source_path(name: str) -> Path:
    if name not in CONTRACT_NAMES:
        raise KeyError(f"unknown contract {name!r}; known: {', '.join(CONTRACT_NAMES)}")
    return SOURCES_DIR / f"{name}.vy"


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def compile_contract(name: str) -> Artifact:
    """Compile one contract from its source with the pinned Vyper."""
    import vyper

    if vyper.__version__ != VYPER_VERSION:
        raise ArtifactsOutOfDate(
            f"Vyper {vyper.__version__} installed, the contracts pin {VYPER_VERSION}: "
            f"pip install vyper=={VYPER_VERSION}"
        )
    source = source_path(name).read_text()
    out = vyper.compile_code(
        source,
        contract_path=f"{name}.vy",
        output_formats=["abi", "bytecode", "bytecode_runtime", "blueprint_bytecode"],
    )
    return Artifact(
        name=name,
        abi=out["abi"],
        bytecode=out["bytecode"],
        bytecode_runtime=out["bytecode_runtime"],
        blueprint_bytecode=out["blueprint_bytecode"],
        source_sha256=_sha256(source),
        compiler=f"vyper-{vyper.__version__}",
    )


def compile_all() -> dict[str, Artifact]:
    return {name: compile_contract(name) for name in CONTRACT_NAMES}


def write_artifacts(path: Path = ARTIFACTS_PATH) -> dict[str, Artifact]:
    artifacts = compile_all()
    data = {name: asdict(a) for name, a in artifacts.items()}
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    return artifacts


@lru_cache(maxsize=1)
def load_artifacts() -> dict[str, Artifact]:
    """The committed artifacts, refusing any whose source has changed since it was compiled."""
    if not ARTIFACTS_PATH.exists():
        raise ArtifactsOutOfDate(f"{ARTIFACTS_PATH} is missing: run `python -m mergenet.contracts`")
    data = json.loads(ARTIFACTS_PATH.read_text())
    artifacts: dict[str, Artifact] = {}
    for name in CONTRACT_NAMES:
        if name not in data:
            raise ArtifactsOutOfDate(
                f"{name} missing from {ARTIFACTS_PATH}: run `python -m mergenet.contracts`"
            )
        artifact = Artifact(**data[name])
        if artifact.source_sha256 != _sha256(source_path(name).read_text()):
            raise ArtifactsOutOfDate(
                f"{name}.vy changed since {ARTIFACTS_PATH.name} was written: "
                "run `python -m mergenet.contracts` and commit the result"
            )
        artifacts[name] = artifact
    return artifacts

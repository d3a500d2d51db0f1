"""mergenet.contracts: the Vyper sources of the reward contracts and their compile step.

``load_artifacts()`` returns the committed, reproducible ABI and bytecode; ``compile_all()``
rebuilds them in-process from the sources (Vyper from PyPI, no download, well under a second).
"""

from mergenet.contracts.compile import (
    CONTRACT_NAMES,
    Artifact,
    ArtifactsOutOfDate,
    compile_all,
    compile_contract,
    load_artifacts,
)

__all__ = [
    "CONTRACT_NAMES",
    "Artifact",
    "ArtifactsOutOfDate",
    "compile_all",
    "compile_contract",
    "load_artifacts",
]

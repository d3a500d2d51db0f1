"""``python -m mergenet.contracts``: recompile the sources and rewrite ``artifacts.json``."""

from mergenet.contracts.compile import write_artifacts

written = write_artifacts()
for name, artifact in written.items():
    size = (len(artifact.bytecode_runtime) - 2) // 2
    print(f"{name}: {size} bytes runtime, source sha256 {artifact.source_sha256[:12]}")

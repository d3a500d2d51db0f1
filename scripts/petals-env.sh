#!/usr/bin/env bash
# Build the Petals side's own environment (.venv-petals) from the repository's pin files.
#
# Petals 2.2.0.post1 needs transformers 4.32-4.34 and so cannot live in the main environment
# (transformers 5). The main side talks to this environment only through processes
# (see src/mergenet/petals/side/__init__.py). Idempotent: a second run with unchanged pin
# files does nothing; `make petals-env` runs it.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${PETALS_VENV:-.venv-petals}"
REQ_DIR=src/mergenet/petals/side
REQ="$REQ_DIR/requirements-petals.txt"
NODEPS="$REQ_DIR/requirements-petals-nodeps.txt"
P2PD_FROM="hivemind==1.1.12"
STAMP="$VENV/.installed"

if [[ -f "$STAMP" && "$STAMP" -nt "$REQ" && "$STAMP" -nt "$NODEPS" && "$STAMP" -nt "$0" ]]; then
  echo "petals-env: $VENV is up to date"
  exit 0
fi

PY="$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check -q)
test -x "$PY" || python3 -m venv "$VENV"
"${PIP[@]}" install --upgrade pip
# torch first and pinned: the CPU wheel; unpinned it pulls CUDA.
"${PIP[@]}" install torch==2.13.0
"${PIP[@]}" install --no-deps -r "$NODEPS"
"${PIP[@]}" install -r "$REQ"

# hivemind 1.1.11's wheel carries a macOS arm64 p2pd by mistake (why PyPI yanked it); replace it
# with the Linux x86-64 daemon from the hivemind 1.1.12 wheel. The marker records that we did.
HIVEMIND_DIR="$("$PY" -c 'import importlib.util, pathlib; print(pathlib.Path(importlib.util.find_spec("hivemind").origin).parent)')"
P2PD="$HIVEMIND_DIR/hivemind_cli/p2pd"
MARKER="$HIVEMIND_DIR/hivemind_cli/.p2pd-from-hivemind-1.1.12"
if [[ ! -f "$MARKER" ]]; then
  TMP="$(mktemp -d)"
  trap 'rm -rf "$TMP"' EXIT
  "${PIP[@]}" download "$P2PD_FROM" --no-deps --only-binary=:all: -d "$TMP"
  "$PY" - "$TMP" "$P2PD" <<'PYEOF'
import pathlib, sys, zipfile
tmp, dest = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
(wheel,) = tmp.glob("hivemind-*.whl")
with zipfile.ZipFile(wheel) as z:
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(z.read("hivemind/hivemind_cli/p2pd"))
dest.chmod(0o755)
PYEOF
  touch "$MARKER"
fi

# Fail here, not in a test, if the environment cannot run a peer.
HF_HUB_OFFLINE=1 "$PY" -c 'import petals, transformers, hivemind; assert transformers.__version__ == "4.34.1", transformers.__version__' 2>/dev/null
# The daemon must run on this machine (a wrong-platform binary fails with exit 126 or a shell error).
head -c 4 "$P2PD" | grep -q $'\x7fELF' || { echo "petals-env: $P2PD is not an ELF binary" >&2; exit 1; }
touch "$STAMP"
echo "petals-env: $VENV ready (petals $("$PY" -c 'import petals; print(petals.__version__)' 2>/dev/null))"

"""Where the Petals environment is and how its processes get their environment.

The Petals side runs ``.venv-petals/bin/python -m mergenet.petals.side.*`` with ``PYTHONPATH``
pointing at this checkout's ``src`` folder, so the same source tree serves both sides and
nothing of mergenet is installed into the Petals environment.
"""

from __future__ import annotations

import os
from pathlib import Path

import mergenet


class PetalsEnvMissing(RuntimeError):
    """The Petals environment has not been built."""


def src_root() -> Path:
    """The folder holding the ``mergenet`` package (``src`` in a checkout)."""
    return Path(mergenet.__file__).resolve().parent.parent


def repo_root() -> Path:
    return src_root().parent


def petals_python() -> Path:
    """The Petals interpreter: ``MERGENET_PETALS_PYTHON`` or ``<repo>/.venv-petals/bin/python``."""
    override = os.environ.get("MERGENET_PETALS_PYTHON")
    path = Path(override) if override else repo_root() / ".venv-petals" / "bin" / "python"
    if not path.exists():
        raise PetalsEnvMissing(
            f"no Petals environment at {path}: run `make petals-env` (or scripts/petals-env.sh) "
            "in the repository, or set MERGENET_PETALS_PYTHON"
        )
    return path


def petals_environ(threads: int = 1) -> dict[str, str]:
    """Environment for a Petals-side process: offline, our source tree, few threads."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(
        PYTHONPATH=str(src_root()),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        OMP_NUM_THREADS=str(threads),
        MKL_NUM_THREADS=str(threads),
        PYTHONUNBUFFERED="1",
        PYTHONWARNINGS="ignore",
    )
    return env


def petals_module(module: str) -> list[str]:
    """argv prefix that runs ``mergenet.petals.side.<module>`` in the Petals environment."""
    return [str(petals_python()), "-m", f"mergenet.petals.side.{module}"]

"""Where the first core version and the scoring rows come from, checked before anything starts.

``mergenet coordinator up`` with a base folder or a row file that cannot be used must stop with
one line saying which setting to fix (the CLI prints any ``MergenetError`` that way), not a
traceback from deep inside the artifact store or the row source, and before the database gets a
base version it would keep.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from mergenet.config import Settings
from mergenet.coordinator.settings import ENV_PREFIX, CoordinatorSettings
from mergenet.ecosystem.spec import WorldSpec
from mergenet.ecosystem.world import build_world
from mergenet.errors import InvalidInput
from mergenet.protocol.jsonl import read_jsonl

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")


@dataclass(frozen=True)
class Inputs:
    """Where the first core version and the scoring rows come from."""

    base_dir: Path
    row_sets: dict[str, Path]


def resolve_inputs(settings: Settings, cs: CoordinatorSettings) -> Inputs:
    """Explicit paths if given, else the model world (built once, then cached); checked."""
    if cs.base_dir is not None and cs.dev_rows is not None:
        rows = {"dev": cs.dev_rows}
        if cs.heldout_rows is not None:
            rows["heldout"] = cs.heldout_rows
        return check_inputs(Inputs(cs.base_dir, rows))

    world = build_world(WorldSpec(seed=settings.world_seed), settings.world_root)
    return check_inputs(
        Inputs(
            cs.base_dir or world.base_dir,
            {
                "dev": cs.dev_rows or world.dharma_path("dev"),
                "heldout": cs.heldout_rows or world.dharma_path("heldout"),
            },
        )
    )


def check_inputs(inputs: Inputs) -> Inputs:
    """``inputs`` unchanged, or :class:`InvalidInput` naming the setting and what to fix."""
    base = inputs.base_dir
    setting = f"{ENV_PREFIX}BASE_DIR"
    if not base.is_dir():
        raise InvalidInput(f"{setting}: {base} is not a folder (give a Hugging Face model folder)")
    if not (base / "config.json").is_file():
        raise InvalidInput(f"{setting}: {base} has no config.json (not a model folder)")
    if not any((base / name).is_file() for name in WEIGHT_FILES):
        raise InvalidInput(
            f"{setting}: {base} has no model.safetensors or model.safetensors.index.json "
            "(only safetensors checkpoints are read, never pickle)"
        )
    for name, path in inputs.row_sets.items():  # rows: parsed by their users, here only read
        setting = f"{ENV_PREFIX}{name.upper()}_ROWS"
        try:
            rows = read_jsonl(Path(path))
        except OSError as exc:
            raise InvalidInput(f"{setting}: {path}: cannot read ({exc.strerror or exc})") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidInput(f"{setting}: {path}: not JSON Lines ({exc})") from None
        if not rows:
            raise InvalidInput(f"{setting}: {path} holds no rows (give a Dharma JSONL file)")
    return inputs

"""The one reader of JSON Lines files the project writes itself (row sets, item files, logs).

Blank lines are skipped; every other line must be one JSON value. This is for trusted files:
rows a person hands in go through ``node.data`` (line numbers and what to fix) and Dharma
sources through ``evaluator.dharma`` (schema checks); uploads never reach a JSON parser without
``deltas.safe_json``'s nesting bound.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_jsonl(path: Path | str) -> list[Any]:
    """Every non-blank line of ``path``, parsed."""
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]

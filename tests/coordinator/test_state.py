"""The read side's view of the loop state imports no numpy, torch, scheduler or pool."""

from __future__ import annotations

import subprocess
import sys

from mergenet.coordinator.status import CandidateStatus, Kind, Purpose

PROBE = """
import sys
import mergenet.coordinator.state, mergenet.coordinator.queries, mergenet.coordinator.leaderboard
heavy = ("numpy", "torch", "mergenet.coordinator.loop", "mergenet.coordinator.acceptance",
         "mergenet.workers")
print(sorted(m for m in sys.modules if m.startswith(heavy)))
"""


def test_the_read_side_imports_no_heavy_module() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]"


def test_the_enums_are_the_strings_in_the_database() -> None:
    assert CandidateStatus.CONFIRMING == "confirming" and f"{Purpose.SELECTION}" == "selection"
    assert [k.value for k in Kind] == [
        "contribution", "single", "multi", "crossover", "mutation", "feed", "attribution",
    ]  # fmt: skip

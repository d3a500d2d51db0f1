"""20 concurrent submitters (valid and invalid uploads mixed) and 40 viewers on the event
stream for 15 s against a real coordinator: no 5xx, every 201 recorded, every viewer served.
The full run is ``python benchmarks/load.py`` (100 submitters, 200 viewers, 60 s)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.world, pytest.mark.slow]


def test_load_no_5xx_nothing_lost(world: Any, tmp_path: Path) -> None:
    from load import Options, run_load, table
    from reliability_kit import WorldFiles

    opts = Options(submitters=20, viewers=40, seconds=15, max_valid=60)
    stats, elapsed = run_load(WorldFiles.from_world(world), tmp_path, opts)
    print(table(stats, elapsed))
    assert stats.server_errors() == 0, table(stats, elapsed)
    assert stats.codes["lost (201 not recorded)"]["count"] == 0
    assert stats.acked, "no valid upload was accepted"
    assert stats.codes["coordinator alive at the end"] == {"yes": 1}
    assert stats.viewers_connected == opts.viewers
    rejected = {r: c for r, c in stats.codes.items() if "bad signature" in r or "malformed" in r}
    assert rejected and all(k.startswith("4") for c in rejected.values() for k in c)

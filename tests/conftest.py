"""Fixtures shared across the suite.

The model world is built once (about ten minutes on 2 cores) and cached under
``MERGENET_CACHE_DIR`` (default ``~/.cache/mergenet``), keyed by the spec's digest, so a second
run reuses it instantly. Tests that need it take the ``world`` fixture.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def world():
    """The default world (``WorldSpec()``), built or reused."""
    from mergenet.config import Settings
    from mergenet.ecosystem.spec import WorldSpec
    from mergenet.ecosystem.world import build_world

    return build_world(WorldSpec(), Settings().world_root)

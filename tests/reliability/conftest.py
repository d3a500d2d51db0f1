"""The reliability runs live in ``benchmarks/`` (chaos.py, load.py); the tests here run them in
bounded form. Put that folder on the import path once for this package."""

from __future__ import annotations

import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

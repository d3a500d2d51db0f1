"""The one exception type for bad deltas; the coordinator maps it to an HTTP 4xx."""

from __future__ import annotations


class DeltaValidationError(ValueError):
    """A delta (or adapter) that cannot be accepted; the message says what to fix."""

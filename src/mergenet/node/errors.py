"""The one error type node commands turn into a single line and a non-zero exit."""

from __future__ import annotations

from mergenet.errors import MergenetError


class NodeError(MergenetError, RuntimeError):
    """Something the contributor can fix; the message says what to do."""

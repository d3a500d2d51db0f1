"""mergenet: a decentralized merge-contribution network."""

__version__ = "0.1.0"

"""The coordinator's own knobs (``MERGENET_COORDINATOR_<NAME>``), beside the shared Settings.

Kept here rather than in ``mergenet.config`` so the loop's tuning stays with the loop; the
shared settings still give the data dir, database URL, chain id, host and port.
"""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class CoordinatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MERGENET_COORDINATOR_", extra="ignore")

    base_dir: Path | None = None
    """HF folder of the first core version; None builds (or reuses) the model world's base."""
    dev_rows: Path | None = None
    """Dharma JSONL the loop scores on; None uses the world's dev split."""
    heldout_rows: Path | None = None
    """Dharma JSONL for reports only (never used for selection); None: the world's held-out."""
    workers: int | None = None
    """Evaluation processes; None = one per core; 0 = a thread in this process."""
    max_evaluations: int = 0
    """Stop proposing after this many loop evaluations (0 = run forever)."""
    sample_n: int = 16
    margin: float = 0.005
    accuracy_weight: float = 2.0
    """γ in the loop's gain G = ΔS + γ·ΔA (see ``mergenet.coordinator.loop``)."""
    beta: float = 20.0
    floor: float = 0.03
    seed: int = 0
    chain: bool = False
    """Accrue rewards and record versions on chain (needs ``mergenet chain up`` first)."""
    epoch_seconds: float = 0.0
    """With ``chain``: close and publish a reward epoch this often (0: only on demand, with
    ``mergenet rewards publish``)."""

"""What the world is made of: one frozen, hashable description, derived from one seed.

The spec's digest names the world's cache folder, so changing any number (or the format
version below, when the code that builds the world changes meaning) builds a new world
instead of reusing a stale one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

WORLD_FORMAT = 3


@dataclass(frozen=True)
class ContributorSpec:
    name: str
    tasks: tuple[str, ...]


DEFAULT_CONTRIBUTORS: tuple[ContributorSpec, ...] = (
    ContributorSpec("alice", ("plus_ten",)),
    ContributorSpec("bob", ("successor",)),
    ContributorSpec("carol", ("upper",)),
    ContributorSpec("dave", ("predecessor",)),
    ContributorSpec("erin", ("repeat",)),
    ContributorSpec("frank", ("double",)),
    ContributorSpec("grace", ("convert", "compare")),
    ContributorSpec("heidi", ("bits", "maxlist")),
)


@dataclass(frozen=True)
class ModelSpec:
    vocab_size: int = 2048
    hidden_size: int = 192
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    intermediate_size: int = 512
    max_position_embeddings: int = 512


@dataclass(frozen=True)
class WorldSpec:
    seed: int = 0
    model: ModelSpec = field(default_factory=ModelSpec)
    contributors: tuple[ContributorSpec, ...] = DEFAULT_CONTRIBUTORS
    train_rows_per_task: int = 4000
    """Size of each task's training pool (rows may repeat a question)."""
    eval_rows_per_task: int = 64
    """Distinct dev items per task: the rows the loop samples from (bits has 83 distinct dev
    questions, so 64 leaves every task room)."""
    heldout_rows_per_task: int = 128
    """Distinct held-out items per task, for reports only. At 64 (640 rows, one standard error
    ≈ 0.017) the best single contributor looked +0.014 above the base; on 2,048 rows it is
    +0.004, so 640 rows could not tell a merge from a lucky draw. 128 is about the most every
    task family has (plus_ten has 133 distinct held-out questions)."""
    mc_fraction: float = 0.0
    """Share of training rows given in the Dharma multiple-choice form (letter answers)."""
    seq_len: int = 256
    batch_size: int = 16
    base_steps: int = 150
    base_lr: float = 3e-3
    base_answer_only: bool = True
    """Train only answer tokens (completion-only loss), as the fine-tunes always do."""
    contributor_steps: int = 40
    contributor_lr: float = 2.5e-4
    """Format 3 at 2e-3 learned each task in 40 steps but wrecked the rest (macro 0.73 → 0.29-0.48)
    and no merge of the eight beat the base; at 2.5e-4 alice still reaches 1.00 on plus_ten with
    dev macro 0.755 against the base's 0.763: deltas that add instead of overwrite."""
    prompt_weight: float = 0.1
    """Loss weight of prompt tokens (answers weigh 1). Format 2 trained answers only, so the
    prompt was never modelled and whole-row perplexity (the score's P) was ~7e4 and swung
    wildly with any change; a tenth of the weight models the prompt and leaves the answer
    gradient as it was."""

    @property
    def tasks(self) -> tuple[str, ...]:
        seen: list[str] = []
        for c in self.contributors:
            seen.extend(t for t in c.tasks if t not in seen)
        return tuple(seen)

    @property
    def monolith_steps(self) -> int:
        """Same total compute as all contributors together."""
        return self.contributor_steps * len(self.contributors)

    def digest(self) -> str:
        payload = json.dumps({"format": WORLD_FORMAT, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]

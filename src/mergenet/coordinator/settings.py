"""The coordinator's own knobs (``MERGENET_COORDINATOR_<NAME>``), beside the shared Settings.

Kept here rather than in ``mergenet.config`` so the loop's tuning stays with the loop; the
shared settings still give the data dir, database URL, chain id, host and port.

The loop's knobs are one nested model, :class:`LoopSettings`, the only place their defaults
are written: ``mergenet coordinator up`` reads it from the environment and the loop takes it
as is. Set one from the environment as ``MERGENET_COORDINATOR_LOOP__<NAME>`` (e.g.
``MERGENET_COORDINATOR_LOOP__MARGIN=0.01``). The flat spellings of earlier releases
(``MERGENET_COORDINATOR_MARGIN``, or ``CoordinatorSettings(margin=…)``) are still read, below
the nested ones, so existing scripts keep working.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mergenet.evaluator.score import ScoreParams

ENV_PREFIX = "MERGENET_COORDINATOR_"


class ProposalSettings(BaseModel):
    """How proposals draw weights and steps (:mod:`mergenet.coordinator.proposals`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    weight_low: float = 0.1
    weight_high: float = 1.0
    """Range of a single contribution's weight (log-uniform). A contributor's own-task gain
    shows from weight ~0.5 on the world (alice's delta at 0.6: plus_ten 0.37 → 0.90, held-out
    macro +0.04 on 2,048 rows, where her own model, weight 1, is level with the base), so the
    range reaches 1 instead of stopping at 0.6 as it did (where 13% of singles drew above 0.4;
    now 40% do)."""
    multi_low: float = 0.01
    multi_high: float = 0.3
    """Range of a multi candidate's weight scale: k deltas add up, so each gets less."""
    max_weight: float = 1.5
    weight_jitter: float = 0.3
    """Per-contribution log-normal spread around a multi candidate's scale."""
    p_all: float = 0.5
    """Probability that a multi candidate uses every pool contribution."""
    crossover_eps: float = 0.05
    mutation_sigma: float = 1e-3
    """σ of θ_best + N(0, σ), in weight units (the world's weights are O(0.05))."""
    param_sigma: float = 0.1
    drop_below: float = 0.01
    """A crossover weight under this drops the contribution from the merge."""


class LoopSettings(BaseModel):
    """Every knob of the evolutionary loop (:mod:`mergenet.coordinator.loop`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    strategies: tuple[str, ...] = ()
    """Strategies H(s) ranges over; empty: every strategy with a fused kernel that accepts any
    number of deltas (:func:`mergenet.coordinator.loop.default_strategies`)."""
    beta: float = 20.0
    """H(s) ← H(s)·exp(β·G); G is typically ±0.01–0.1, so β = 20 moves H visibly."""
    floor: float = 0.03
    """Every H(s) stays at or above this share, so an unlucky strategy can recover."""
    sample_n: int = 16
    """Rows per task in each evaluation's sample (and min(n², held) answer-loss rows)."""
    rows: str = "dev"
    """Row set of contribution scoring and selection. The loop never sends it by name: each
    decision gets fresh private rows drawn from it (:mod:`mergenet.coordinator.decision_rows`)."""
    confirm_rows: str = "dev"
    """Row set of confirmation (always a fresh draw); as ``rows``, drawn fresh and private."""
    margin: float = 0.005
    """A candidate must beat the no-change model by more than this G on its selection sample
    and, by the sequential paired test, on fresh confirmation batches to be accepted."""
    confirm_alpha: float = Field(default=0.2, gt=0, lt=1)
    """Confirmation's error rate (:mod:`mergenet.coordinator.sequential`): accept at
    p < α/``confirm_max_batches``, reject early when G's 1−α upper bound is below the margin.
    0.2 (0.05 per look at K = 4): at 0.05 (0.0125 per look) the end-to-end run on the world
    (80 evaluations, ``tests/coordinator/test_end_to_end.py``) accepted no version at all; at
    0.2 it accepted one (held-out 0.730 → 0.741, above the best single contributor's 0.738).
    The bound is on a candidate whose true G sits exactly at the margin; a no-change
    candidate is never accepted (its paired differences are all 0)."""
    confirm_max_batches: int = Field(default=4, ge=1)
    """Fresh confirmation batches at most per candidate; at the cap an unshown gain is rejected.
    Measured (``benchmarks/acceptance_power.py``, README "Acceptance"): a no-change candidate
    stops after 1 batch; a merge with held-out +0.011 used 3.67 on average and was accepted in
    1 of 3 sequences (α 0.05 and 0.1 decided alike on those 3), so more batches buy power at
    one evaluation each."""
    confirm_sample_n: int = Field(default=64, ge=1)
    """Accuracy rows per task in each confirmation batch (capped by the rows drawn per task,
    ``fresh_rows_per_task``, 64). Selection keeps ``sample_n`` (a cheap filter); the paired
    test that decides acceptance scores every drawn row: one batch's standard error of G was
    0.025 at 64 against ~0.043 at 16 on the world, at about the same time per evaluation
    (the loss term already scores all 64; the prefix tree shares each question's prompt)."""
    top_k: int = 4
    p_mutation: float = 0.15
    p_crossover: float = 0.35
    p_single: float = 0.15
    pool_min_task_gain: float = 0.02
    """A contribution joins the merge pool when it lowers some task's answer loss this much."""
    accuracy_weight: float = 2.0
    """γ in the loop's gain G = ΔS + γ·ΔA (see :mod:`mergenet.coordinator.acceptance`)."""
    seed: int = 0
    """Seeds the proposals (strategy draws, weights, params), one stream per proposal."""
    max_evaluations: int = 0
    """Stop proposing after this many selection+confirmation evaluations (0 = never)."""
    attribution_margin: float = 0.005
    """Noise margin of a contribution's paid marginal improvement, max(0, marginal − this):
    G of one candidate moves ~0.002–0.005 between two samples (acceptance.py), so a copy or
    junk delta, whose true marginal is 0, earns ~nothing (:mod:`.attribution`)."""
    reserved_slots: int = 1
    """Pool slots kept for the evolution loop: while it has work of its own, contribution
    scorings in flight stay at or below capacity − this (at least 1; a capacity-1 pool reserves
    none); a slot it cannot use (no merge pool yet) still scores (:mod:`.queue`)."""
    feed_seconds: float = 30.0
    """Measure the current core on fresh rows this often for the live feed (0: never); only
    when a pool slot is free and no contribution or confirmation waits
    (:mod:`mergenet.coordinator.feed`)."""
    feed_rows: str = "fresh"
    """Where feed points take their rows: ``fresh`` draws new private rows per point under the
    label ``feed`` (:mod:`mergenet.coordinator.decision_rows`: never a row the loop selects
    on, never repeated, and they travel inside the task, so HTTP workers score them too);
    another name is a row set workers hold on disk (e.g. ``heldout``; the coordinator falls
    back to ``fresh`` when it has no such row set)."""
    score: ScoreParams = Field(default_factory=ScoreParams)
    """S's parameters (k, α, task weights); the gain's accuracy term uses the same weights."""
    proposal: ProposalSettings = Field(default_factory=ProposalSettings)


LOOP_FIELDS = frozenset(LoopSettings.model_fields)


class CoordinatorSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="ignore"
    )

    base_dir: Path | None = None
    """HF folder of the first core version; None builds (or reuses) the model world's base."""
    dev_rows: Path | None = None
    """Dharma JSONL the loop scores on; None uses the world's dev split."""
    heldout_rows: Path | None = None
    """Dharma JSONL for reports only (never used for selection); None: the world's held-out."""
    workers: int | None = None
    """Evaluation processes; None = one per core; 0 = a thread in this process."""
    chain: bool = False
    """Accrue rewards and record versions on chain (needs ``mergenet chain up`` first)."""
    epoch_seconds: float = 0.0
    """With ``chain``: close and publish a reward epoch this often (0: only on demand, with
    ``mergenet rewards publish``)."""
    rows_source: Literal["auto", "generator", "pool"] = "auto"
    """Where decision rows come from (:mod:`mergenet.coordinator.decision_rows`): ``auto``
    generates fresh world questions when every subject of ``dev_rows`` is a world task
    family, else takes them from the dev file as a private pool (never served, rows retired
    once used)."""
    fresh_rows_per_task: int = Field(default=64, ge=1)
    """Generated rows per task per decision (64: the world's dev size, so scoring costs what
    it did on the fixed file; the loop's ``sample_n`` of them score accuracy)."""
    row_epoch_seconds: float = 3600.0
    """Without ``chain``: reveal the row epoch's secret and open the next this often (0:
    never). With a chain, rows rotate when a reward epoch is published instead."""
    loop: LoopSettings = Field(default_factory=LoopSettings)

    @model_validator(mode="before")
    @classmethod
    def _flat_loop_names(cls, data: Any) -> Any:
        """Fold the flat spellings (``margin=…``, ``MERGENET_COORDINATOR_MARGIN``) into
        ``loop``; the nested spelling wins where both are given."""
        if not isinstance(data, dict):
            return data
        flat = {
            k[len(ENV_PREFIX) :].lower(): v
            for k, v in os.environ.items()
            if k.startswith(ENV_PREFIX) and k[len(ENV_PREFIX) :].lower() in LOOP_FIELDS
        }
        flat |= {k: data.pop(k) for k in list(data) if k in LOOP_FIELDS}
        if not flat:
            return data
        loop = data.get("loop", {})
        if isinstance(loop, LoopSettings):
            loop = loop.model_dump(exclude_unset=True)
        data["loop"] = flat | dict(loop)
        return data

"""A parent version held once per worker process, candidates merged into its own tensors.

Memory is the point (issue 20, item 2: ≤ 2× the model's bytes plus a constant per evaluation
worker). The worker used to hold the model, a dense copy of the parent's tensors (to restore
after each candidate), the whole merged state dict, and the memory-mapped delta: 4.2–4.65× the
model's bytes above the imports on a 104M Llama. Here it holds the model alone:

* a candidate is merged one tensor at a time (``recipe.iter_build``) and each merged tensor
  is written over the model's parameter of that name, so at most one merged tensor exists
  besides the model (the merge of a tensor reads only that tensor of the parent, so
  overwriting it as soon as it is merged never feeds a merged value into another merge);
* ‖θ_f − θ_b‖/‖θ_b‖ is summed on the way (``RelativeDistance``: the same float64 sums in the
  same order as ``relative_distance_between`` over whole state dicts, so the same float);
* the parent comes back by reading each written tensor from the version's own safetensors
  file with ``pread`` (``PreadTensors.read_into``: straight into the parameter's memory),
  and dense deltas are read the same way, so no file stays mapped;
* the restore runs in a ``finally``: a task that fails mid-merge or mid-score leaves the model
  at the parent. A restore that itself fails marks the parent ``poisoned``, and the worker
  loads it again for the next task instead of scoring on a half-merged model.

Measured with ``benchmarks/large_cycle.py`` (104M Llama, 396 MiB; AMD EPYC, 2 shared cores,
load average 4–12, world db45132220f1): worker peak RSS 1,081–1,087 MiB, (peak − imports) /
model 1.60–1.61×, against 2,128–2,147 MiB (4.25–4.29×) before, same scores, per-task time no
worse.

Reading back from the file is exact only if the file holds what the model loaded; that is
checked once per load, tensor by tensor, and a tensor the file does not reproduce (none, for
every family the tests cover) is kept as a private copy instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from mergenet.deltas.pread import PreadTensors, pread_source
from mergenet.evaluator.score import RelativeDistance
from mergenet.merge_strategies.checkpoint_names import checkpoint_tensors
from mergenet.merge_strategies.recipe import Recipe, Resolver, iter_build


class ParentPoisoned(RuntimeError):
    """The model could not be restored to its parent after a candidate; load it again."""


class ParentModel:
    """One parent version: the model, its tokenizer and the way back to its weights."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.model: Any = AutoModelForCausalLM.from_pretrained(self.folder, dtype="float32")
        self.model.eval()
        self.tokenizer: Any = AutoTokenizer.from_pretrained(self.folder)
        self.tensors = checkpoint_tensors(self.model)  # live: writing one writes the model
        self.file = PreadTensors.of_model(self.folder)
        self.kept = self._copies_the_file_cannot_restore()
        self.poisoned = False

    def _copies_the_file_cannot_restore(self) -> dict[str, torch.Tensor]:
        stored = set(self.file.names())
        kept: dict[str, torch.Tensor] = {}
        for name, live in self.tensors.items():
            if name not in stored or not torch.equal(self.file.read(name).to(live.dtype), live):
                kept[name] = live.clone()
        return kept

    @contextmanager
    def candidate(self, recipe: Recipe, resolve: Resolver | None = None) -> Iterator[float]:
        """Inside the block the model holds the recipe's merge; yields ‖θ_f − θ_b‖/‖θ_b‖.

        ``resolve`` maps a contribution's sha256 to its delta (a dense file is read with
        ``pread``). However the block ends, every tensor written is restored first."""
        if self.poisoned:
            raise ParentPoisoned(f"parent {self.folder.name[:16]}… is in an unknown state")
        written: list[str] = []
        try:
            distance = RelativeDistance()
            merged = iter_build(recipe, self.tensors, _pread(resolve), check_parent=False)
            for name, tensor in merged:
                live = self.tensors[name]
                distance.add(name, tensor, live)
                written.append(name)
                with torch.no_grad():
                    live.copy_(tensor)
                del tensor
            yield distance.value()
        finally:
            self.restore(written)

    def restore(self, names: list[str]) -> None:
        """Put the parent's values back into the tensors ``names``; marks the parent
        poisoned if that fails (the model is then in an unknown state)."""
        try:
            with torch.no_grad():
                for name in names:
                    live = self.tensors[name]
                    if name in self.kept:
                        live.copy_(self.kept[name])
                    else:
                        self.file.read_into(name, live)
        except BaseException:
            self.poisoned = True
            raise

    def close(self) -> None:
        self.file.close()


def _pread(resolve: Resolver | None) -> Resolver | None:
    """A resolver whose paths open as ``pread`` sources (not memory-mapped)."""
    if resolve is None:
        return None

    def open_source(sha256: str) -> Any:
        where = resolve(sha256)
        return pread_source(where) if isinstance(where, str | Path) else where

    return open_source

"""A live transformers model's tensors under the names its checkpoint file uses, and back.

Deltas, recipes and versions name tensors as the parent's ``model.safetensors`` does (the
names ``save_pretrained`` writes). A loaded model's ``state_dict()`` can differ from them in
two ways, and merging in the model's own names breaks both:

* **renamed tensors**: transformers 5 loads some families under new names (GPT-NeoX's
  ``embed_out.weight`` is ``lm_head.weight`` in memory), so a delta's names are not the model's
  and the merge refuses them;
* **tied embeddings** (Gemma-2, small Qwen2/Llama-3.2 models): ``state_dict()`` holds the
  shared tensor under both names, the file under one; ``load_state_dict`` of a merge copies the
  merged embedding and then the unchanged ``lm_head`` alias into the same storage, and the
  embedding's delta is silently lost.

:func:`checkpoint_state` gives the file's names (tied aliases dropped, renamings reverted, by
transformers' own ``save_pretrained`` helpers) and :func:`load_checkpoint_state` loads such a
state back. A family whose checkpoint tensors are converted (fused or split) rather than renamed
is refused with an ``InvalidInput``: its file names have no one-to-one model tensor to merge.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from transformers import PreTrainedModel
from transformers.core_model_loading import revert_weight_conversion
from transformers.modeling_utils import remove_tied_weights_from_state_dict

from mergenet.errors import InvalidInput


def checkpoint_names(model: PreTrainedModel) -> dict[str, str]:
    """model state-dict name → checkpoint name, for every tensor ``save_pretrained`` writes."""
    kept = list(remove_tied_weights_from_state_dict(dict(model.state_dict()), model))
    probe = {n: torch.tensor([float(i)]) for i, n in enumerate(kept)}
    reverted = revert_weight_conversion(model, probe)
    if len(reverted) != len(kept) or any(t.numel() != 1 for t in reverted.values()):
        raise InvalidInput(
            f"{type(model).__name__} converts (fuses or splits) its checkpoint tensors on load; "
            "mergenet merges only families whose checkpoint names map one to one"
        )
    return {kept[int(t.item())]: name for name, t in reverted.items()}


def checkpoint_state(model: PreTrainedModel) -> dict[str, torch.Tensor]:
    """A detached copy of the model's tensors under its checkpoint names."""
    state = model.state_dict()
    return {file: state[own].detach().clone() for own, file in checkpoint_names(model).items()}


def checkpoint_tensors(model: PreTrainedModel) -> dict[str, torch.Tensor]:
    """The model's own tensors (detached views: writing one writes the model) under its
    checkpoint names, tied aliases once; in :func:`checkpoint_state`'s order."""
    state = model.state_dict(keep_vars=True)
    return {file: state[own].detach() for own, file in checkpoint_names(model).items()}


def load_checkpoint_state(model: PreTrainedModel, state: Mapping[str, torch.Tensor]) -> None:
    """Load a state named as the checkpoint (all of its tensors) into ``model``; tied aliases
    follow the tensor they share storage with."""
    names = checkpoint_names(model)
    missing = sorted(set(names.values()) - set(state))
    extra = sorted(set(state) - set(names.values()))
    if missing or extra:
        raise InvalidInput(
            f"state does not match the model's checkpoint names: missing {missing[:5]}, "
            f"unexpected {extra[:5]}"
        )
    own = {file: name for name, file in names.items()}
    with torch.no_grad():
        params = dict(model.state_dict(keep_vars=True))
        for file, tensor in state.items():
            params[own[file]].copy_(tensor)

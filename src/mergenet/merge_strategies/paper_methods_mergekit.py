"""mergekit methods for the paper merges (TSV-Merge, Iso-C, Iso-CTS, TALL consensus, PCB).

Each is registered with mergekit (through ``mergekit_plugin.ensure_registered``) under the
strategy's ``mergekit_method`` name, with the strategy's parameter names and defaults, so a
recipe that uses one exports as mergekit YAML that ``mergenet merge --mergekit-yaml`` runs.
Unlike ``mergekit_plugin``'s consensus and ExPO, there is no second, independent reference
implementation here: the mergekit method calls the same in-memory method on ``model − base`` (so the
two paths agree by construction; the property tests in
``tests/merge_strategies/test_new_methods.py`` are what hold the kernels to the papers).
LiNeS and layer-wise task arithmetic need a tensor's depth, which a mergekit method is not
given in scalar form, and are not registered (see ``lines``).
"""

from __future__ import annotations

from typing import Any

import torch
from mergekit.merge_methods import BasePolicy, InputContract, TensorGroup
from mergekit.merge_methods.base import (
    FunctionalGroupMergeMethod,
    MergeMethodSpec,
    ParameterScope,
    ParameterSpec,
)

from mergenet.merge_strategies import iso, pcb, tall, tsv
from mergenet.merge_strategies._direct import DirectStrategy

_PY = {"float": float, "int": int, "bool": bool}


def _method(strategy: DirectStrategy) -> FunctionalGroupMergeMethod:
    kernel = strategy.method
    assert kernel is not None

    def run(group: TensorGroup, *, weight: Any, **params: Any) -> torch.Tensor:
        base = group.base.tensor
        entries = group.non_base
        if not entries:
            return base
        work = base.float()
        deltas = [e.tensor.float() - work for e in entries]
        ws = [float(weight[e.id]) for e in entries]
        out = kernel(work, deltas, ws, strategy.space.contain(params), None)
        return out.to(base.dtype)

    specs = [ParameterSpec("weight", float, ParameterScope.NON_BASE, default=1.0)]
    specs += [
        ParameterSpec(p.name, _PY[p.kind], ParameterScope.SHARED, default=p.default)
        for p in strategy.space.params
    ]
    spec = MergeMethodSpec(
        name=strategy.mergekit_method,
        pretty_name=f"{strategy.description} (mergenet)",
        parameters=tuple(specs),
        contract=InputContract(base=BasePolicy.REQUIRED),
    )
    return FunctionalGroupMergeMethod(spec, run)


METHODS = tuple(
    _method(s) for s in (tsv.STRATEGY, iso.ISO_C, iso.ISO_CTS, tall.STRATEGY, pcb.STRATEGY)
)

"""The merge engine: strategies over a base and k deltas, parameter spaces, recipes.

Public entry points (imported from the submodules, so ``import mergenet`` stays light):

* ``registry.get(name) -> Strategy``, ``registry.names()``, ``registry.fast_strategies()`` —
  mergenet's curated strategies (linear, task_arithmetic, ties, dare_ties, dare_linear,
  breadcrumbs[_ties], della[_linear], slerp, multislerp, model_stock, expo, consensus) plus
  every other mergekit method; ``Strategy.space`` is the searchable ``ParamSpace``.
* ``engine.merge_state_dict(strategy, base, deltas, weights, params, seed=, noise=)`` — the
  in-memory hot path; ``engine.merge_to_dir(...)`` streams safetensors tensor by tensor.
* ``recipe.Recipe`` / ``recipe.build`` / ``recipe.build_to_dir`` — reproducible versions.
* ``export.export_recipe`` / ``export.mergekit_config`` / ``export.run_mergekit`` — mergekit
  YAML round trip; ``mergekit_plugin.ensure_registered()`` registers our methods with mergekit.
"""

"""Wire types shared by the coordinator, the workers and the node: what crosses a process or
machine boundary, and nothing that runs on either side.

* ``hashes`` — content hashes of files and the one sha256-hex validator.
* ``signing`` — the EIP-712 submission message (and its domain) a node signs and the coordinator
  checks.
* ``results`` — ``EvalResult``/``TaskResult``: what an evaluation measured (torch-free).
* ``evaluation`` — ``EvalTask``/``EvalOutcome``/``WorkerEnv`` and their JSON form, and the
  ``EvaluationPool`` interface the loop schedules through.
* ``artifacts`` — the artifact folder layout, written once, and the ``ArtifactSource``
  interface (the coordinator's store and a worker's HTTP cache both implement it).

Invariant (import-linter keeps it): this package imports no other mergenet package except
``mergenet.errors``, so every side can import it without pulling the others in.
"""

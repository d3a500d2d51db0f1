"""Evaluation workers: the code that scores a task, and the pools that run it.

* ``evaluate`` — one task: resolve artifacts, build the candidate, score it and its parent.
* ``local_pool`` — ``ProcessEvaluationPool``, worker processes on the coordinator's machine.
* ``fetch`` — a remote worker's cache of the coordinator's artifacts, fetched by content hash.
* ``celery_app`` / ``celery_pool`` — the Celery worker application and the coordinator-side
  ``CeleryEvaluationPool``.
* ``run`` / ``cli`` — ``mergenet worker``: check Redis and the coordinator, then serve.

Invariant (import-linter keeps it): nothing here imports the coordinator; the coordinator
schedules tasks into a pool and reads outcomes, both typed in :mod:`mergenet.protocol`.
"""

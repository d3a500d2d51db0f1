"""Scaling out on existing engines: a Petals swarm for model-parallel scoring (and, later,
Celery workers for the evaluation pool).

The main environment imports nothing of Petals: everything Petals runs in ``.venv-petals``
(``make petals-env``), started as processes from here. Modules:

* ``petals_env`` — where the Petals interpreter is and how its processes are started.
* ``procs`` — process groups: start, wait for a log line, stop the whole group.
* ``petals_model`` — model folders the Petals side can read (config translated for
  transformers 4.34, weights linked or a subset written).
* ``swarm`` — a private loopback swarm: DHT bootstrap peer + servers; state in the data dir.
* ``backend`` — ``PetalsWorker`` (the ``mergenet-petals/1`` process boundary) and
  ``PetalsRemoteLM``, a torch module the evaluator's ``evaluate_items`` scores through.
* ``candidates`` — per-peer materialisation of one block range of a merge candidate.
* ``petals_cli`` — ``mergenet petals up|down|status``.
"""

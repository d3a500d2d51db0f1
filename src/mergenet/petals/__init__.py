"""Model-parallel scoring on a Petals swarm (the main side) and the code that runs inside it.

The main environment imports nothing of Petals: everything Petals runs in ``.venv-petals``
(``make petals-env``), started as processes from here. This file and ``mergenet/__init__.py``
stay import-free, because the Petals side is run as ``python -m mergenet.petals.side.<module>``
and Python runs both package roots first. Modules:

* ``env`` — where the Petals interpreter is and how its processes are started.
* ``procs`` — process groups: start, wait for a log line, stop the whole group.
* ``views`` — model folders the Petals side can read (config translated for
  transformers 4.34, weights linked or a subset written).
* ``swarm`` — a private loopback swarm: DHT bootstrap peer + servers; state in the data dir.
* ``client`` — ``PetalsScorer`` (the ``mergenet-petals/1`` process boundary) and
  ``PetalsRemoteLM``, a torch module the evaluator's ``evaluate_items`` scores through.
* ``candidates`` — per-peer materialisation of one block range of a merge candidate.
* ``pool`` — ``PetalsEvaluationPool``, the coordinator's evaluation pool over a swarm
  (``mergenet coordinator up --pool petals``).
* ``cli`` — ``mergenet petals up|down|status``.
* ``side/`` — the code that runs in the Petals environment (server, DHT peer, scorer).
"""

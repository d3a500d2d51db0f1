"""Code that runs INSIDE the Petals environment (``.venv-petals``), never in the main one.

Petals 2.2.0.post1 needs transformers 4.32-4.34; the main environment has transformers 5.
So the two sides meet only at process boundaries, and nothing here imports the rest of
``mergenet`` (whose modules need transformers 5). The main side starts these modules with
``.venv-petals/bin/python -m mergenet.petals.side.<module>`` and ``PYTHONPATH`` set to the
``src`` folder; ``mergenet/__init__.py`` is import-free, so that is all they load of mergenet.

Modules:

* ``server`` — a Petals server (``petals.cli.run_server``) with two runtime replacements that
  make it work offline from local folders: Petals' PyPI version check becomes a no-op, and
  ``petals.utils.peft.check_peft_repository`` (a hub-only check) accepts local adapter
  folders. No Petals file is changed.
* ``dht`` — the swarm's bootstrap DHT peer; writes its multiaddrs to a file for joiners.
* ``compat`` — the transformers-5 → 4.34 config translation (pure Python; the main side
  imports it too, which loads nothing of Petals).
* ``scorer`` — the scorer: a Petals client that reads requests on stdin and writes
  replies on stdout (protocol below).
* ``config_probe`` — prints how transformers 4.34 reads a model folder's config (a test
  checks it against transformers 5).

Worker protocol ``mergenet-petals/1`` (one request at a time, in order):

1. On start the scorer connects to the swarm and loads the client-side weights (embeddings,
   final norm, LM head) from ``--model``; then it writes one JSON line
   ``{"ready": true, "protocol": "mergenet-petals/1", "vocab_size": V, "num_blocks": N, ...}``.
   If it cannot start it writes ``{"ready": false, "error": "..."}`` and exits non-zero.
2. Request, one JSON line: ``{"op": "forward", "sequences": [[id, ...], ...]}``. Reply: one JSON
   line ``{"ok": true, "lengths": [n_1, ...], "vocab_size": V, "nbytes": B, "seconds": t}``
   followed by exactly ``B`` raw bytes: the float32 (little-endian) logits of each sequence,
   ``n_i × V`` values each, concatenated in request order. Every sequence is scored on its
   own (causal attention, positions from 0), exactly as an unpacked local forward.
3. ``{"op": "ping"}`` → ``{"ok": true}``; ``{"op": "close"}`` or end of input → exit 0.
4. A failed request gets ``{"ok": false, "error": "..."}`` and the scorer keeps serving.

Nothing but protocol lines and logit bytes is written to stdout: the scorer moves the
original stdout to a private descriptor and points fd 1 at stderr before importing Petals.
"""

PROTOCOL = "mergenet-petals/1"

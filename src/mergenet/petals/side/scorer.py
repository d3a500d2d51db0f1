"""The scorer: a Petals client behind the ``mergenet-petals/1`` stdin/stdout protocol.

The main environment cannot import Petals (transformers 4.34 vs 5), so it sends token ids
here and gets logits back; the protocol is documented in ``mergenet.petals.side``. Sequences
of a request are sorted by length and run in right-padded batches of at most
``--max-tokens`` padded tokens: with causal attention a token never sees the padding after
it, so every real position gets exactly the logits of an unpadded forward, while the swarm
sees a few large requests instead of many small ones.

Usage: ``python -m mergenet.petals.side.scorer --model DIR --initial-peers MADDR
--dht-prefix NAME [--max-tokens 4096]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import IO, Any

PROTOCOL = "mergenet-petals/1"


def _private_stdout() -> IO[bytes]:
    """Keep the real stdout for protocol bytes; anything else printing goes to stderr."""
    fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(fd, "wb", buffering=0)


def _reply(out: IO[bytes], header: dict[str, Any], payload: bytes = b"") -> None:
    out.write(json.dumps(header).encode() + b"\n" + payload)
    out.flush()


def batches(lengths: list[int], max_tokens: int) -> list[list[int]]:
    """Indices grouped by similar length so that ``len(group) * longest <= max_tokens``."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    groups: list[list[int]] = []
    for i in order:
        if groups and (len(groups[-1]) + 1) * lengths[i] <= max_tokens:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def forward(model: Any, sequences: list[list[int]], max_tokens: int) -> list[Any]:
    """Logits ``[n_i, V]`` (float32) of each sequence, as an unpadded forward would give."""
    import torch

    out: list[Any] = [None] * len(sequences)
    for group in batches([len(s) for s in sequences], max_tokens):
        width = max(len(sequences[i]) for i in group)
        ids = torch.zeros(len(group), width, dtype=torch.long)
        for row, i in enumerate(group):
            ids[row, : len(sequences[i])] = torch.tensor(sequences[i], dtype=torch.long)
        with torch.no_grad():
            logits = model(ids).logits.float()
        for row, i in enumerate(group):
            out[i] = logits[row, : len(sequences[i])].contiguous()
    return out


def _load(args: argparse.Namespace) -> Any:
    import torch

    from petals import AutoDistributedModelForCausalLM

    return AutoDistributedModelForCausalLM.from_pretrained(
        args.model,
        initial_peers=args.initial_peers,
        dht_prefix=args.dht_prefix,
        torch_dtype=torch.float32,
    )


def _sequences(req: dict[str, Any], vocab: int) -> list[list[int]]:
    """The request's token-id sequences, each non-empty and inside the vocabulary."""
    seqs = [[int(t) for t in s] for s in req["sequences"]]
    if any(not s for s in seqs):
        raise ValueError("empty sequence")
    bad = [t for s in seqs for t in s if not 0 <= t < vocab]
    if bad:
        raise ValueError(f"token id {bad[0]} outside the vocabulary (size {vocab})")
    return seqs


def serve(args: argparse.Namespace, out: IO[bytes]) -> int:
    import numpy as np
    import torch
    import transformers

    import petals

    torch.set_num_threads(max(1, args.threads))
    try:
        model = _load(args)
        model.eval()
    except Exception as e:  # the caller gets a reason instead of a silent exit
        _reply(out, {"ready": False, "error": f"{type(e).__name__}: {e}"})
        return 1
    vocab = int(model.config.vocab_size)
    _reply(
        out,
        {
            "ready": True,
            "protocol": PROTOCOL,
            "vocab_size": vocab,
            "num_blocks": int(model.config.num_hidden_layers),
            "dht_prefix": args.dht_prefix,
            "petals": petals.__version__,
            "transformers": transformers.__version__,
        },
    )
    for line in sys.stdin.buffer:
        if not line.strip():
            continue
        try:
            req = json.loads(line)
            op = req.get("op")
            if op == "close":
                break
            if op == "ping":
                _reply(out, {"ok": True})
                continue
            if op != "forward":
                raise ValueError(f"unknown op {op!r}")
            seqs = _sequences(req, vocab)
            started = time.perf_counter()
            logits = forward(model, seqs, args.max_tokens)
            seconds = time.perf_counter() - started
            payload = b"".join(np.asarray(x.numpy(), dtype="<f4").tobytes() for x in logits)
            header = {
                "ok": True,
                "lengths": [len(s) for s in seqs],
                "vocab_size": vocab,
                "nbytes": len(payload),
                "seconds": seconds,
            }
            _reply(out, header, payload)
        except Exception as e:
            _reply(out, {"ok": False, "error": f"{type(e).__name__}: {e}"})
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="folder with config.json and client weights")
    parser.add_argument("--initial-peers", nargs="+", required=True)
    parser.add_argument("--dht-prefix", required=True)
    parser.add_argument("--max-tokens", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    out = _private_stdout()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return serve(args, out)


if __name__ == "__main__":
    sys.exit(main())

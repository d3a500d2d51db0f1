"""The Petals evaluation backend: score through a swarm with the evaluator's own code.

``PetalsScorer`` runs ``mergenet.petals.side.scorer`` in the Petals environment and speaks
``mergenet-petals/1`` with it (token ids in, float32 logits out; see ``mergenet.petals.side``).
``PetalsRemoteLM`` is a ``torch.nn.Module`` whose forward takes the evaluator's packed inputs
(rows back to back, positions restarting at each row, block-causal mask), sends each row to
the scorer as its own sequence and puts the logits back in place. So
``evaluate_items(PetalsRemoteLM(scorer), tokenizer, items)`` and ``score_sequences`` run
unchanged and return the same ``EvalResult``/``RowScore`` types as a local model — the
coordinator swaps a model object, not a code path.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from mergenet.petals import procs
from mergenet.petals.env import petals_environ, petals_module

PROTOCOL = "mergenet-petals/1"


class ScorerError(RuntimeError):
    """The scorer could not start, answered an error, or died."""


@dataclass
class ForwardStats:
    """Timings of the scorer's forwards (seconds measured inside the scorer)."""

    calls: int = 0
    sequences: int = 0
    tokens: int = 0
    seconds: list[float] = field(default_factory=list)


class PetalsScorer:
    """A Petals client process; one request at a time.

    ``model_dir`` is a Petals view (config + client weights), ``initial_peers`` the swarm's
    bootstrap multiaddrs and ``prefix`` the DHT prefix the servers announce blocks under.
    """

    def __init__(
        self,
        model_dir: Path,
        initial_peers: list[str],
        prefix: str,
        log: Path,
        *,
        max_tokens: int = 1024,
        threads: int = 1,
        timeout: float = 120.0,
        max_retries: int | None = None,
    ):
        """``max_retries``: Petals' client retries a failed route forever by default; with a
        bound, a dead server peer becomes a ``ScorerError`` after a few backoffs, not a hang
        until ``timeout`` (the Petals pool retries the whole task)."""
        argv = [
            *petals_module("scorer"),
            "--model",
            str(model_dir),
            "--initial-peers",
            *initial_peers,
            "--dht-prefix",
            prefix,
            "--max-tokens",
            str(max_tokens),
            "--threads",
            str(threads),
        ]
        self.log = Path(log)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.timeout = timeout
        self.stats = ForwardStats()
        environ = petals_environ(threads)
        if max_retries is not None:
            environ["PETALS_MAX_RETRIES"] = str(max_retries)
        with open(self.log, "ab") as err:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                env=environ,
                start_new_session=True,
            )
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._stdout, selectors.EVENT_READ)
        try:
            self.info = self._read_header(timeout)
        except BaseException:
            self.close()
            raise
        if not self.info.get("ready"):
            self.close()
            raise ScorerError(f"scorer failed to start: {self.info.get('error')}")
        if self.info.get("protocol") != PROTOCOL:
            self.close()
            raise ScorerError(f"scorer speaks {self.info.get('protocol')!r}, not {PROTOCOL}")
        self.vocab_size: int = int(self.info["vocab_size"])

    def _wait_readable(self, deadline: float) -> None:
        while not self._sel.select(timeout=max(0.0, min(1.0, deadline - time.monotonic()))):
            if self.proc.poll() is not None:
                raise ScorerError(
                    f"scorer exited with {self.proc.returncode}; log {self.log}:\n"
                    f"{procs.log_tail(self.log)}"
                )
            if time.monotonic() > deadline:
                raise ScorerError(f"no reply from the scorer; log {self.log}")

    def _read_exact(self, n: int, deadline: float) -> bytes:
        chunks, got = [], 0
        fd = self._stdout.fileno()
        while got < n:
            self._wait_readable(deadline)
            chunk = os.read(fd, min(n - got, 1 << 20))
            if not chunk:
                raise ScorerError(f"scorer closed its output; log {self.log}")
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def _read_header(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        line = bytearray()
        while not line.endswith(b"\n"):
            line += self._read_exact(1, deadline)
        return json.loads(line)

    @property
    def _stdin(self) -> IO[bytes]:
        assert self.proc.stdin is not None  # started with stdin=PIPE
        return self.proc.stdin

    @property
    def _stdout(self) -> IO[bytes]:
        assert self.proc.stdout is not None  # started with stdout=PIPE
        return self.proc.stdout

    def _request(self, req: dict[str, Any]) -> dict[str, Any]:
        if self.proc.poll() is not None:
            raise ScorerError(f"scorer is not running; log {self.log}")
        self._stdin.write(json.dumps(req).encode() + b"\n")
        self._stdin.flush()
        header = self._read_header(self.timeout)
        if not header.get("ok"):
            raise ScorerError(header.get("error", "unknown scorer error"))
        return header

    def ping(self) -> bool:
        return bool(self._request({"op": "ping"})["ok"])

    def forward(self, sequences: list[list[int]]) -> list[torch.Tensor]:
        """Float32 logits ``[len(seq), vocab]`` of each sequence, each scored on its own."""
        rows = [[int(t) for t in s] for s in sequences]
        header = self._request({"op": "forward", "sequences": rows})
        payload = self._read_exact(int(header["nbytes"]), time.monotonic() + self.timeout)
        flat = torch.from_numpy(np.frombuffer(payload, dtype="<f4").copy())
        vocab = int(header["vocab_size"])
        out, offset = [], 0
        for n in header["lengths"]:
            out.append(flat[offset : offset + n * vocab].view(n, vocab))
            offset += n * vocab
        self.stats.calls += 1
        self.stats.sequences += len(sequences)
        self.stats.tokens += sum(header["lengths"])
        self.stats.seconds.append(float(header["seconds"]))
        return out

    def close(self) -> None:
        """Ask the scorer to exit, then stop its process group (its DHT client and p2pd)."""
        if self.proc.poll() is None:
            try:
                self._stdin.write(b'{"op": "close"}\n')
                self._stdin.flush()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                pass
        procs.stop_group(self.proc.pid)
        self.proc.wait()
        self._sel.close()
        for f in (self.proc.stdin, self.proc.stdout):
            if f:
                f.close()

    def __enter__(self) -> PetalsScorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class RemoteOutput:
    logits: torch.Tensor


def segments(position_ids: torch.Tensor | None, length: int) -> list[tuple[int, int]]:
    """Row spans of one packed sequence: a row starts wherever the position is 0."""
    if position_ids is None:
        return [(0, length)]
    starts = [i for i, p in enumerate(position_ids.tolist()) if p == 0]
    if not starts or starts[0] != 0:
        raise ValueError("packed positions must start at 0")
    return list(zip(starts, [*starts[1:], length], strict=True))


def _check_mask(mask: torch.Tensor | None, spans: list[tuple[int, int]], length: int) -> None:
    """The only masks we can honour: none, all-ones, or block-causal over ``spans``."""
    if mask is None:
        return
    if mask.dim() == 1:
        if not bool(mask.bool().all()):
            raise ValueError("padding masks are not supported: send rows without padding")
        return
    expected = torch.zeros(length, length, dtype=torch.bool)
    for s, e in spans:
        expected[s:e, s:e] = torch.tril(torch.ones(e - s, e - s, dtype=torch.bool))
    if not torch.equal(mask.bool().reshape(length, length), expected):
        raise ValueError("attention mask is not block-causal over the rows given by position_ids")


class PetalsRemoteLM(torch.nn.Module):
    """A causal LM whose blocks run on a Petals swarm, behind a ``PetalsScorer``."""

    def __init__(self, scorer: PetalsScorer):
        super().__init__()
        self.scorer = scorer

    @torch.no_grad()
    def forward(
        self,
        input_ids: torch.Tensor,
        position_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        **_: Any,
    ) -> RemoteOutput:
        batch, length = input_ids.shape
        jobs: list[tuple[int, int, int]] = []
        for b in range(batch):
            spans = segments(None if position_ids is None else position_ids[b], length)
            _check_mask(None if attention_mask is None else attention_mask[b], spans, length)
            jobs += [(b, s, e) for s, e in spans]
        rows = [input_ids[b, s:e].tolist() for b, s, e in jobs]
        logits = torch.empty(batch, length, self.scorer.vocab_size)
        for (b, s, e), row_logits in zip(jobs, self.scorer.forward(rows), strict=True):
            logits[b, s:e] = row_logits
        return RemoteOutput(logits)

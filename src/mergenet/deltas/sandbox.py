"""Validate an upload in a child process with CPU, memory and wall-clock limits.

Why: an upload is hostile until validated; parsing and expanding it in the coordinator's
process let one file crash (nested JSON) or freeze (a pathological regex) the whole service.
:func:`validate_upload` hands the work to a helper process
(:mod:`mergenet.deltas.sandbox_server`, started once, torch already imported) that forks one
child per upload; the child lowers its own limits (``resource.setrlimit``: CPU seconds, heap,
no core file; ``alarm`` for wall-clock time) before touching the file. The caller also stops
waiting after ``wall_seconds`` + a grace period and then kills the helper's process group.
Whatever the file does, the caller gets a :class:`DeltaReport` or one of the
:mod:`mergenet.errors` kinds: ``DeltaValidationError`` (422) for a bad file, a CPU or
wall-clock overrun, or a crash; ``DeltaTooLarge`` (413) for a size cap or the memory limit.

Validations are serialised (one helper, one request at a time; the submission lock did the
same before). The helper's start (1.3–2.6 s measured: it imports torch) is paid by
:func:`start` at start-up or by the first upload. Measured on the world's 2.56M-parameter
delta (39 tensors, 10.2 MB; two CPU cores at load ~5): in-process validation (one torch
thread) median 30 ms, sandboxed median 65 ms — ~35 ms of overhead per upload (fork, limits,
two pipes). The helper writes nothing to disk.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mergenet.deltas.errors import DeltaTooLarge, DeltaValidationError
from mergenet.deltas.validate import DeltaReport, ValidationLimits

_GRACE_SECONDS = 5.0
_START_SECONDS = 120.0


@dataclass(frozen=True)
class SandboxLimits:
    """What one validation may cost (the child is killed past any of them)."""

    cpu_seconds: int = 60
    wall_seconds: float = 120.0
    memory_bytes: int = 2 * 1024**3
    """Heap the child may allocate beyond what it starts with (``RLIMIT_DATA``)."""


class _Helper:
    """The helper process and the lock that serialises requests to it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.proc: subprocess.Popen[bytes] | None = None
        self._buf = b""

    def ensure(self) -> subprocess.Popen[bytes]:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "mergenet.deltas.sandbox_server"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                bufsize=0,
                start_new_session=True,
            )
            self._buf = b""
            if self.readline(_START_SECONDS) is None:
                self.kill()
                raise RuntimeError("the delta validation helper did not start")
        return self.proc

    def readline(self, timeout: float) -> dict[str, Any] | None:
        assert self.proc is not None and self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            block = os.read(fd, 1 << 16)
            if not block:
                return None
            self._buf += block
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None


_HELPER = _Helper()


def start() -> None:
    """Start the helper now (it imports torch once), so the first upload is not slow."""
    with _HELPER.lock:
        _HELPER.ensure()


def validate_upload(
    path: str | Path,
    parent_dir: str | Path,
    limits: ValidationLimits,
    sandbox: SandboxLimits = SandboxLimits(),
) -> DeltaReport:
    """Validate a dense delta file or a LoRA adapter folder against ``parent_dir``, sandboxed.

    Raises ``DeltaValidationError`` or ``DeltaTooLarge`` (see module docstring).
    """
    request = {
        "path": str(Path(path).absolute()),
        "parent_dir": str(Path(parent_dir).absolute()),
        "limits": asdict(limits),
        "sandbox": asdict(sandbox),
    }
    with _HELPER.lock:
        proc = _HELPER.ensure()
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(request).encode() + b"\n")
        answer = _HELPER.readline(sandbox.wall_seconds + _GRACE_SECONDS)
        if answer is None:
            _HELPER.kill()
    if answer is None:
        raise DeltaValidationError(_overrun(sandbox))
    return _result(answer, sandbox)


def _overrun(sb: SandboxLimits, cpu: bool = False) -> str:
    limit = f"{sb.cpu_seconds} s of CPU" if cpu else f"{sb.wall_seconds:g} s"
    return f"validating this file took more than {limit}; it is not a delta this network accepts"


def _size(n: int) -> str:
    return f"{n / 1024**3:.3g} GiB" if n >= 1024**3 else f"{n / 1024**2:.3g} MiB"


def _result(answer: dict[str, Any], sb: SandboxLimits) -> DeltaReport:
    if "ok" in answer:
        return DeltaReport(**answer["ok"])
    if "error" in answer:
        kind = DeltaTooLarge if answer["error"] == "TooLarge" else DeltaValidationError
        raise kind(str(answer["message"]))
    code = int(answer.get("exit", -1))
    if code in (-signal.SIGXCPU, -signal.SIGKILL, -signal.SIGALRM):
        raise DeltaValidationError(_overrun(sb, cpu=code != -signal.SIGALRM))
    if code in (-signal.SIGSEGV, -signal.SIGABRT, -signal.SIGBUS):
        raise DeltaTooLarge(
            f"validating this file crashed the validator (signal {-code}), most likely at its "
            f"{_size(sb.memory_bytes)} memory limit; upload a smaller delta"
        )
    raise DeltaValidationError(
        f"validation of this file failed (the validator exited with {code}); "
        "upload a safetensors delta made for the parent model"
    )

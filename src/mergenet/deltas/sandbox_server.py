"""The validation helper process: ``python -m mergenet.deltas.sandbox_server``.

It imports torch, safetensors and pydantic once, then serves one request per line of stdin
(JSON: ``path``, ``parent_dir``, ``limits``, ``sandbox``) by forking a child that lowers its
own limits with ``resource.setrlimit`` — ``RLIMIT_CPU``, ``RLIMIT_DATA`` (heap it may add; the
memory-mapped file does not count), ``RLIMIT_CORE`` 0 — arms ``alarm(wall_seconds)``, runs
the checks with one torch thread, and writes one JSON result to a pipe. The helper answers
one JSON line on stdout: ``{"ok": report}``, ``{"error": kind, "message": …}`` or
``{"exit": status}`` (the child died: a limit's signal, or a crash). The helper is
single-threaded and never runs torch itself, so forking it is safe and cheap (the caller's
threaded process is never forked). stdin closing ends it.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any

import safetensors.torch  # noqa: F401  (imported once here, shared by every forked child)
import torch

from mergenet.deltas.lora import LoraDelta
from mergenet.deltas.models import ModelSource
from mergenet.deltas.validate import (
    DeltaReport,
    ValidationLimits,
    validate_delta_file,
    validate_lora_adapter,
)
from mergenet.errors import MergenetError, TooLarge


def _vm_data_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmData:"):
            return int(line.split()[1]) * 1024
    return 0


def _apply_limits(sb: dict[str, Any]) -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    cpu = int(sb["cpu_seconds"])
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    data = _vm_data_bytes() + int(sb["memory_bytes"])
    resource.setrlimit(resource.RLIMIT_DATA, (data, data))
    signal.alarm(max(1, int(float(sb["wall_seconds"]) + 0.999)))
    torch.set_num_threads(1)


def _validate(path: Path, parent_dir: Path, limits: ValidationLimits) -> DeltaReport:
    parent = ModelSource(parent_dir)
    if path.is_dir():
        LoraDelta(path)  # merges read adapters without the base: no full modules
        return validate_lora_adapter(path, parent, limits)
    return validate_delta_file(path, parent, limits)


def _memory(sb: dict[str, Any]) -> dict[str, Any]:
    n = int(sb["memory_bytes"])
    size = f"{n / 1024**3:.3g} GiB" if n >= 1024**3 else f"{n / 1024**2:.3g} MiB"
    return {"error": "TooLarge", "message": f"validating this file needs more than {size}"}


def run_child(request: dict[str, Any]) -> dict[str, Any]:
    """The checks for one request, inside the forked child (limits applied first)."""
    sb = request["sandbox"]
    try:
        _apply_limits(sb)
        limits = ValidationLimits(**request["limits"])
        report = _validate(Path(request["path"]), Path(request["parent_dir"]), limits)
        return {"ok": asdict(report)}
    except TooLarge as exc:
        return {"error": "TooLarge", "message": str(exc)}
    except MergenetError as exc:
        return {"error": "InvalidInput", "message": str(exc)}
    except MemoryError:
        return _memory(sb)
    except Exception as exc:  # a file no check foresaw: still the file's 4xx, logged here
        if isinstance(exc, RuntimeError) and "alloc" in str(exc):
            return _memory(sb)
        traceback.print_exc()
        what = f"{type(exc).__name__}: {str(exc)[:200]}"
        return {"error": "InvalidInput", "message": f"this file could not be validated ({what})"}


def _serve_one(request: dict[str, Any]) -> dict[str, Any]:
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(rfd)
        os.dup2(2, 1)  # nothing a library prints may reach the protocol on stdout
        code = 0
        try:
            out = json.dumps(run_child(request)).encode()
            with os.fdopen(wfd, "wb") as fh:
                fh.write(out)
        except BaseException:
            code = 1
        os._exit(code)
    os.close(wfd)
    chunks = []
    with os.fdopen(rfd, "rb") as fh:
        while block := fh.read(1 << 16):
            chunks.append(block)
    _, status = os.waitpid(pid, 0)
    if chunks and os.waitstatus_to_exitcode(status) == 0:
        return json.loads(b"".join(chunks))
    return {"exit": os.waitstatus_to_exitcode(status)}


def main() -> None:
    """Serve requests from stdin until it closes (see module docstring)."""
    out = sys.stdout
    out.write('{"ready": true}\n')
    out.flush()
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            answer = _serve_one(json.loads(line))
        except Exception as exc:  # a broken request from our own caller: say so, keep serving
            answer = {"error": "InvalidInput", "message": f"validator request failed: {exc}"}
        out.write(json.dumps(answer) + "\n")
        out.flush()


if __name__ == "__main__":
    main()

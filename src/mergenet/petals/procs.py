"""Peers as process groups: a Petals peer forks DHT and handler processes and ``p2pd``
daemons; killing only its PID orphans them. Every peer starts in its own session
(``start_new_session=True``, so its PID is its process-group id) and is stopped as a group.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


class PeerStartError(RuntimeError):
    """A peer exited or did not report ready in time; the message ends with its log tail."""


def spawn(argv: Sequence[str], log: Path, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a new session with stdout+stderr appended to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as f:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=f,
            stderr=subprocess.STDOUT,
            env=dict(env),
            start_new_session=True,
        )


def log_tail(log: Path, n: int = 15) -> str:
    try:
        lines = log.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(lines[-n:])


def wait_for_log(proc: subprocess.Popen, log: Path, pattern: str, timeout: float) -> re.Match[str]:
    """Wait until ``pattern`` appears in ``log``; fail early if the process exits."""
    regex = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while True:
        text = log.read_text(errors="replace") if log.exists() else ""
        m = regex.search(text)
        if m:
            return m
        if proc.poll() is not None:
            args = list(proc.args) if isinstance(proc.args, list | tuple) else [proc.args]
            what = str(args[2]) if len(args) > 2 else str(args)
            raise PeerStartError(
                f"{what} exited with {proc.returncode}; log {log}:\n{log_tail(log)}"
            )
        if time.monotonic() > deadline:
            raise PeerStartError(f"not ready after {timeout:.0f}s; log {log}:\n{log_tail(log)}")
        time.sleep(0.2)


def group_alive(pgid: int) -> bool:
    """Whether any process of the group is still there (zombies of ours count as gone)."""
    return bool(group_members(pgid))


def group_members(pgid: int) -> list[int]:
    """PIDs whose process group is ``pgid`` and that are not zombies (from /proc)."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # fields after the ")" that closes the command name: state ppid pgrp ...
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry))
    return members


def stop_group(pgid: int, timeout: float = 15.0) -> None:
    """SIGTERM the whole group, wait, then SIGKILL whatever is left."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            _reap(pgid)
            if not group_alive(pgid):
                return
            time.sleep(0.1)
    _reap(pgid)


def _reap(pid: int) -> None:
    """Collect the exit status if the group leader is our child (else it stays a zombie)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def p2pd_processes() -> list[tuple[int, int]]:
    """``(pid, pgid)`` of every running ``p2pd`` daemon (tests check none is left behind)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            exe = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")[0]
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if exe.endswith(b"/p2pd") and fields[0] != "Z":
            found.append((int(entry), int(fields[2])))
    return found

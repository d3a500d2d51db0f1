"""One contribution-scoring cycle of the coordinator on a ≥100M-parameter Llama.

The base is a random-initialised Llama (``cycle_speed.LARGE``: hidden 1024, 8 layers, ~104M
parameters with the world's 8k-token tokenizer): nothing can be downloaded here, and training
a 104M model on 2 shared cores would take hours, so its scores are chance-level; the cycle's
time and memory do not depend on what the weights say. The folder becomes the coordinator's
genesis version (``CoordinatorSettings.base_dir``, as tests/architectures/
test_coordinator_families.py opens one); a contributor's delta (base-shaped, N(0, 0.002²)) is
signed and uploaded through the API (``POST /api/contributions``); the loop runs with one
evaluation worker *process* (``workers=1``: the spawn pool ``mergenet coordinator up`` uses)
until the contribution is scored (merge + score of candidate and parent on the dev sample).

Measured: seconds from upload to ``scored``; the worker's peak RSS (``VmHWM`` of its
/proc/<pid>/status, read while it is alive) against the model's float32 bytes, the goal being
≤ 2× model bytes + a constant; the constant is the peak RSS of a fresh process that imports
the worker's module and nothing more (torch + transformers + mergenet, no model).

Measured 2026-11-27 on the shared 2-core AMD EPYC (load average 5.4–7.4), 103.7M parameters
(396 MiB), 4 dev rows per task, with the worker that kept a dense parent copy and the whole
merged state dict: worker peak RSS 2,320 and 2,138 MiB, (peak − constant) / model 4.2–4.65×,
**missed**. Re-measured 2026-11-28 (same machine, world db45132220f1, load average 4.1–12.4,
clean exports of the two commits alternated): before 2,147 / 2,128 MiB (4.29× / 4.25×), after
(candidates merged into the model's own tensors, parent read back with ``pread``:
``workers/parent_model.py``) 1,087 / 1,081 MiB against a goal of 2 × 396 + 450 = 1,242 MiB:
**met**, 1.61× / 1.60×; upload → scored 162.0 / 174.2 s before, 164.3 / 177.9 s after.

Usage::

    python benchmarks/large_cycle.py                 # ~3.5 min on 2 shared cores
    python benchmarks/large_cycle.py --sample-n 2    # quick look (2 rows per task)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cycle_speed import LARGE  # type: ignore[import-not-found]
from scoring_speed import cpu_name  # type: ignore[import-not-found]

MIB = 2**20
BASELINE = (
    "import mergenet.workers.evaluate, mergenet.workers.local_pool\n"
    "print([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])"
)


def status_kib(pid: int, field: str) -> int:
    """A ``Vm*`` field of /proc/<pid>/status in KiB (0 once the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def worker_pids() -> list[int]:
    """This process's spawn-pool children (not multiprocessing's resource tracker)."""
    me, out = str(os.getpid()), []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            ppid = next(
                ln.split()[1]
                for ln in (d / "status").read_text().splitlines()
                if ln.startswith("PPid:")
            )
            cmd = (d / "cmdline").read_bytes()
        except (OSError, StopIteration):
            continue
        if ppid == me and b"spawn_main" in cmd:
            out.append(int(d.name))
    return out


class PeakWatch:
    """Polls the worker processes' VmHWM (peak RSS) every 0.2 s until stopped, and the
    largest sampled RssAnon (heap: tensors) and RssFile (memory-mapped files, page cache)."""

    def __init__(self) -> None:
        self.peak: dict[int, int] = {}
        self.anon: dict[int, int] = {}
        self.file: dict[int, int] = {}
        self.first_rss: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            for pid in worker_pids():
                self.first_rss.setdefault(pid, status_kib(pid, "VmRSS"))
                self.peak[pid] = max(self.peak.get(pid, 0), status_kib(pid, "VmHWM"))
                self.anon[pid] = max(self.anon.get(pid, 0), status_kib(pid, "RssAnon"))
                self.file[pid] = max(self.file.get(pid, 0), status_kib(pid, "RssFile"))

    def __enter__(self) -> PeakWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def write_base(world: Any, folder: Path, seed: int) -> tuple[int, Path]:
    """A random Llama (``LARGE``) with the world's tokenizer, and one small delta beside it."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from mergenet.deltas.io import save_tensors
    from mergenet.merge_strategies.checkpoint_names import checkpoint_state

    torch.manual_seed(seed)
    tok = AutoTokenizer.from_pretrained(world.tokenizer_dir)
    heads = LARGE["hidden"] // 64
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=LARGE["hidden"],
        intermediate_size=LARGE["inter"],
        num_hidden_layers=LARGE["layers"],
        num_attention_heads=heads,
        num_key_value_heads=heads,
        tie_word_embeddings=False,
        max_position_embeddings=1024,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    model = LlamaForCausalLM(cfg).eval()
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    state = checkpoint_state(model)
    nparams = sum(t.numel() for t in state.values())
    g = torch.Generator().manual_seed(seed + 1)
    delta = {n: torch.randn(t.shape, generator=g) * 0.002 for n, t in state.items()}
    path = folder.parent / "delta.safetensors"
    save_tensors(delta, path, {"format": "pt"})
    return nparams, path


def upload(client: Any, path: Path, parent: str) -> str:
    """Sign and post ``path`` as ``node submit`` does (a test key, never a real one)."""
    from eth_account import Account

    from mergenet.protocol.hashes import sha256_file
    from mergenet.protocol.signing import SigningDomain, sign_submission

    acct = Account.from_key((7).to_bytes(32, "big"))
    domain = SigningDomain.from_json(client.get("/api/info").json()["signing_domain"])
    form = {
        "address": acct.address,
        "parent_hash": parent,
        "nonce": "1",
        "signature": sign_submission(acct, sha256_file(path), parent, 1, domain),
    }
    with path.open("rb") as fh:
        r = client.post("/api/contributions", data=form, files={"file": (path.name, fh)})
    if r.status_code != 201:
        raise SystemExit(f"upload refused: {r.status_code} {r.text}")
    return str(r.json()["sha256"])


def run_cycle(
    world: Any, tmp: Path, base: Path, delta: Path, sample_n: int, timeout: float
) -> tuple[float, dict[str, Any], PeakWatch]:
    """Open a coordinator on ``base``, upload ``delta``, step the loop until it is scored."""
    from fastapi.testclient import TestClient

    from mergenet.config import Settings
    from mergenet.coordinator.app import create_app
    from mergenet.coordinator.runtime import Coordinator
    from mergenet.coordinator.settings import CoordinatorSettings, LoopSettings

    settings = CoordinatorSettings(
        base_dir=base,
        dev_rows=world.dharma_path("dev"),
        heldout_rows=world.dharma_path("heldout"),
        workers=1,
        loop=LoopSettings(sample_n=sample_n),
    )
    coord = Coordinator(Settings(data_dir=tmp / "data"), settings).open()
    try:
        with PeakWatch() as watch:
            client = TestClient(create_app(coord))
            parent = client.get("/api/versions/current").json()["hash"]
            t0 = time.perf_counter()
            sha = upload(client, delta, parent)
            deadline = time.monotonic() + timeout
            got: dict[str, Any] = {}
            while time.monotonic() < deadline:
                coord.loop.step(0.2)
                got = client.get(f"/api/contributions/{sha}").json()
                if got["status"] not in ("received", "queued", "scoring"):
                    break
            secs = time.perf_counter() - t0
            time.sleep(0.5)  # one more poll of the worker's VmHWM
    finally:
        coord.close()
    return secs, got, watch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sample-n", type=int, default=4, help="dev rows per task (10 tasks)")
    parser.add_argument("--timeout", type=float, default=420.0, help="seconds for the cycle")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from mergenet.config import get_settings
    from mergenet.ecosystem.spec import WorldSpec
    from mergenet.ecosystem.world import build_world

    settings = get_settings()
    world = build_world(WorldSpec(seed=settings.world_seed), settings.world_root)
    load0 = os.getloadavg()
    base_kib = int(
        subprocess.run(
            [sys.executable, "-c", BASELINE], capture_output=True, text=True, check=True
        ).stdout.split()[-1]
    )
    with tempfile.TemporaryDirectory(prefix="mergenet-large-") as name:
        tmp = Path(name)
        nparams, delta = write_base(world, tmp / "base", args.seed)
        print(f"model {nparams / 1e6:.1f}M parameters; cycle starting", flush=True)
        secs, got, watch = run_cycle(world, tmp, tmp / "base", delta, args.sample_n, args.timeout)
    load1 = os.getloadavg()
    if got.get("status") != "scored":
        raise SystemExit(f"the contribution was not scored in time: {got}")
    model_mib = nparams * 4 / MIB
    peak_mib = max(watch.peak.values(), default=0) / 1024
    const_mib = base_kib / 1024
    goal = 2 * model_mib + const_mib
    print(f"\nmachine: {cpu_name()}; load averages {load0} before, {load1} after")
    print(f"contribution {got['sha256'][:12]}: status {got['status']}, score {got['score']}")
    print("\n| quantity | value |")
    print("|---|---:|")
    print(f"| parameters | {nparams / 1e6:.1f} M |")
    print(f"| model float32 bytes | {model_mib:.0f} MiB |")
    print(f"| dev rows scored (candidate and parent) | {args.sample_n} per task × 10 tasks |")
    print(f"| cycle: upload → scored | {secs:.1f} s |")
    print(f"| worker peak RSS (VmHWM) | {peak_mib:.0f} MiB |")
    anon = max(watch.anon.values(), default=0) / 1024
    print(f"| of which anonymous (largest 0.2 s sample of RssAnon) | {anon:.0f} MiB |")
    file = max(watch.file.values(), default=0) / 1024
    print(f"| of which file-backed (largest sample of RssFile: mmaps) | {file:.0f} MiB |")
    print(f"| constant: worker imports, no model (VmHWM) | {const_mib:.0f} MiB |")
    print(f"| goal: 2 × model + constant | {goal:.0f} MiB |")
    verdict = "met" if peak_mib <= goal else "missed"
    print(f"| (peak − constant) / model bytes | {(peak_mib - const_mib) / model_mib:.2f}× |")
    print(f"\ngoal ≤ 2× model bytes + constant: {verdict}")


if __name__ == "__main__":
    main()

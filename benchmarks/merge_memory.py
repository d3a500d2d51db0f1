"""Peak memory of merging a ≥100M-parameter model with 8 deltas: mergenet against mergekit.

``merge_speed.build_models``' random Llama (default: hidden 768, 8 layers, vocab 32,000:
~106M parameters, 425 MB float32) is written once as a base folder, eight fine-tuned folders
(base + N(0, 0.002²), for mergekit) and the eight deltas (safetensors, for mergenet). Each
merge then runs in a fresh subprocess that reports its own ``VmHWM`` (peak resident set,
/proc/self/status) after the merge, and its ``VmHWM`` after the imports and before the merge
(the constant). The rows:

* ``mergenet merge_to_dir``: the streaming merge to disk (``engine.merge_to_dir``), the base
  and deltas memory-mapped, one tensor × (k + 2) resident at a time;
* ``mergenet merge_state_dict``: the in-memory merge from the memory-mapped files (the base as
  a ``ModelSource``); it holds its output, one model;
* ``mergekit run_merge --lazy-unpickle``: ``run_merge`` to disk with ``lazy_unpickle=True``
  (mergekit's low-memory options; its default ``low_cpu_memory`` is already off);
* ``mergekit in-memory``: ``merge_state_dicts`` on the base and eight fine-tuned state dicts
  loaded with ``safetensors.torch.load_file``, as a Python user would call it.

VmHWM counts file-backed pages of memory-mapped files while they are mapped (they are page
cache, reclaimable, but they show as resident): the table reports what the kernel reports,
and the largest RssAnon / RssFile seen by a 20 ms sampler beside it.

Measured 2026-11-27 on the shared 2-core AMD EPYC (load average 4.4–7.7), 105.8M parameters
(404 MiB), ties density 0.5, constant (imports) ~491 MiB: peak RSS mergenet ``merge_to_dir``
4,544 MiB (3.0 s), ``merge_state_dict`` 4,857 MiB (3.4 s), mergekit ``run_merge``
lazy_unpickle 4,727 MiB (284 s), mergekit in memory 6,610 MiB (319 s). Every streaming path
maps all nine input files, so ~3.6 GiB of each peak is page cache counted as resident.
A second run of mergenet's rows with the sampler: largest RssAnon 729 MiB streaming and
1,030 MiB in memory (RssFile ~3.8 GiB); mergekit in memory: RssAnon 3,303 MiB.
Usage::

    python benchmarks/merge_memory.py             # ~5 min on 2 cores, 8 GB of /tmp
    python benchmarks/merge_memory.py --layers 2  # quick look
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from merge_speed import build_models  # type: ignore[import-not-found]
from scoring_speed import cpu_name  # type: ignore[import-not-found]

K = 8
WEIGHTS = [1.0 / K] * K
METHOD, PARAMS = "ties", {"density": 0.5}
MODES = ["mergenet-stream", "mergenet-memory", "mergekit-lazy", "mergekit-memory"]
LABELS = {
    "mergenet-stream": "mergenet merge_to_dir (streaming, to disk)",
    "mergenet-memory": "mergenet merge_state_dict (mmap inputs, output in memory)",
    "mergekit-lazy": "mergekit run_merge, lazy_unpickle (to disk)",
    "mergekit-memory": "mergekit merge_state_dicts (inputs loaded)",
}


def vm_kib(field: str = "VmHWM") -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class RssSampler:
    """The largest RssAnon (heap: tensors) and RssFile (mapped files) seen every 20 ms: the
    kernel keeps no peak of either, only of their sum (VmHWM)."""

    def __init__(self) -> None:
        self.peak = {"RssAnon": 0, "RssFile": 0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            for f in self.peak:
                self.peak[f] = max(self.peak[f], vm_kib(f))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def write_inputs(tmp: Path, layers: int, hidden: int, inter: int, vocab: int) -> int:
    """base/, ft{j}/ folders and delta{j}.safetensors, one model in memory at a time."""
    from mergenet.deltas.io import save_tensors

    cfg, base, _, _ = build_models(layers, hidden, inter, vocab, k=0)
    for name, sd in [("base", base)]:
        (tmp / name).mkdir()
        cfg.save_pretrained(tmp / name)
        save_tensors(sd, tmp / name / "model.safetensors", {"format": "pt"})
    g = torch.Generator().manual_seed(1)
    for j in range(K):
        delta = {n: torch.randn(t.shape, generator=g) * 0.002 for n, t in base.items()}
        save_tensors(delta, tmp / f"delta{j}.safetensors", {"format": "pt"})
        ft = {n: base[n] + delta[n] for n in base}
        del delta
        (tmp / f"ft{j}").mkdir()
        cfg.save_pretrained(tmp / f"ft{j}")
        save_tensors(ft, tmp / f"ft{j}" / "model.safetensors", {"format": "pt"})
        del ft
    return sum(t.numel() for t in base.values())


def child(mode: str, tmp: Path) -> None:
    """Run one merge in this (fresh) process and print its memory as JSON."""
    from mergekit.config import MergeConfiguration
    from mergekit.merge import run_merge
    from mergekit.merge_methods import merge_state_dicts
    from mergekit.options import MergeOptions
    from safetensors.torch import load_file

    from mergenet.deltas.models import ModelSource
    from mergenet.merge_strategies import engine, registry
    from mergenet.merge_strategies.mergekit_plugin import ensure_registered

    ensure_registered()
    strategy = registry.get(METHOD)
    mk = strategy.mergekit_parameters(strategy.space.contain(PARAMS), K, WEIGHTS)
    deltas = [tmp / f"delta{j}.safetensors" for j in range(K)]
    const = vm_kib()
    t0 = time.perf_counter()
    with torch.no_grad(), RssSampler() as sampler:
        if mode == "mergenet-stream":
            engine.merge_to_dir(METHOD, tmp / "base", deltas, tmp / "out", WEIGHTS, PARAMS)
        elif mode == "mergenet-memory":
            out = engine.merge_state_dict(
                METHOD, ModelSource(tmp / "base"), deltas, WEIGHTS, PARAMS
            )
            del out
        elif mode == "mergekit-lazy":
            config = {
                "merge_method": strategy.mergekit_method,
                "base_model": str(tmp / "base"),
                "models": [
                    {"model": str(tmp / f"ft{j}"), "parameters": {"weight": WEIGHTS[j]}}
                    for j in range(K)
                ],
                "parameters": {k: v for k, v in mk.items() if k != "weight"},
                "dtype": "float32",
            }
            options = MergeOptions(
                copy_tokenizer=False, write_model_card=False, quiet=True, lazy_unpickle=True
            )
            run_merge(MergeConfiguration.model_validate(config), str(tmp / "out"), options)
        else:
            models = {"base": load_file(tmp / "base" / "model.safetensors")}
            models |= {f"m{j}": load_file(tmp / f"ft{j}" / "model.safetensors") for j in range(K)}
            out = merge_state_dicts(models, strategy.mergekit_method, parameters=mk, base="base")
            del out, models
    secs = time.perf_counter() - t0
    peaks = {"anon_kib": sampler.peak["RssAnon"], "file_kib": sampler.peak["RssFile"]}
    print(json.dumps({"const_kib": const, "peak_kib": vm_kib(), "secs": secs, **peaks}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--hidden", type=int, default=768)
    ap.add_argument("--intermediate", type=int, default=2048)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--modes", nargs="+", default=MODES, choices=MODES)
    ap.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    ap.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.dir)
        return
    tmp = Path(tempfile.mkdtemp(prefix="mergenet-mem-"))
    try:
        nparams = write_inputs(tmp, args.layers, args.hidden, args.intermediate, args.vocab)
        model_mib = nparams * 4 / 2**20
        print(
            f"{cpu_name()}; {nparams / 1e6:.1f}M params ({model_mib:.0f} MiB), k={K}, {METHOD}",
            flush=True,
        )
        rows = []
        for mode in args.modes:
            load = os.getloadavg()
            r = subprocess.run(
                [sys.executable, __file__, "--child", mode, "--dir", str(tmp)],
                capture_output=True,
                text=True,
            )
            shutil.rmtree(tmp / "out", ignore_errors=True)
            if r.returncode != 0:
                print(f"{mode} failed: {r.stderr[-2000:]}", flush=True)
                continue
            got = json.loads(r.stdout.strip().splitlines()[-1])
            rows.append((mode, got, load))
            print(mode, got, f"load {load}", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        "\n| merge (fresh process) | peak RSS MiB | constant MiB | (peak − constant) / model "
        "| max RssAnon MiB | max RssFile MiB | seconds | load avg (1, 5, 15 min) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for mode, got, load in rows:
        peak, const = got["peak_kib"] / 1024, got["const_kib"] / 1024
        print(
            f"| {LABELS[mode]} | {peak:.0f} | {const:.0f} | {(peak - const) / model_mib:.2f}× "
            f"| {got.get('anon_kib', 0) / 1024:.0f} | {got.get('file_kib', 0) / 1024:.0f} "
            f"| {got['secs']:.1f} | {', '.join(f'{x:.1f}' for x in load)} |"
        )
    print(
        f"\n{nparams / 1e6:.1f}M params = {model_mib:.0f} MiB float32; {K} deltas, {METHOD} "
        f"{PARAMS}; {cpu_name()}, {torch.get_num_threads()} torch threads."
    )


if __name__ == "__main__":
    main()

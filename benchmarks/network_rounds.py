"""Rounds of contributions on the model world: the core's held-out accuracy round by round.

A coordinator without a chain (:func:`mergenet.demo.bare.bare_coordinator`) serves on 127.0.0.1;
the world's contributors (the first ``--contributors`` of them) play ``--rounds`` rounds through
the node client (:class:`mergenet.demo.rounds.RoundPlayer`): round 1 submits the world's own
deltas of the base; every later round each participant pulls the current core, fine-tunes it on
fresh train-split rows of its own tasks (40 steps, lr 2.5e-4, as the world's contributors),
signs and submits; the loop spends ``--budget`` selection + confirmation evaluations per round.
After each round the core is scored on the world's 1,280 held-out rows (never used by the loop).

Printed per round: contributors (who sat out), versions accepted in the round and so far, loop
evaluations so far, held-out macro accuracy of the core beside the base, the best single
contributor, the monolith and the specialist oracle (every task at its specialist's accuracy),
and the training compute behind the core (fine-tuning steps and tokens so far; the monolith
trained 320 steps = 1.31M tokens).

Usage::

    python benchmarks/network_rounds.py --rounds 4 --budget 40 --contributors 8 --workers 2 \\
        --json /tmp/rounds.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any


def _row(cells: list[str], widths: list[int]) -> str:
    return "  ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--budget", type=int, default=40, help="loop evaluations per round")
    ap.add_argument("--contributors", type=int, default=8, help="the first N world contributors")
    ap.add_argument("--sit-out", type=int, default=1, help="absent per round from round 2 on")
    ap.add_argument("--steps", type=int, default=None, help="fine-tuning steps (world's: 40)")
    ap.add_argument("--workers", type=int, default=None, help="evaluation processes")
    ap.add_argument("--seed", type=int, default=0, help="the loop's proposal seed")
    ap.add_argument("--json", type=Path, default=None, help="write the records here")
    args = ap.parse_args()

    from mergenet.config import Settings
    from mergenet.demo.bare import bare_coordinator
    from mergenet.demo.heldout import CoreScores, references
    from mergenet.demo.rounds import (
        RoundPlayer,
        RoundsConfig,
        monolith_tokens,
        throwaway_contributors,
        training_compute,
    )
    from mergenet.ecosystem.spec import WorldSpec
    from mergenet.ecosystem.world import build_world

    world = build_world(WorldSpec(), Settings().world_root)
    started = time.monotonic()
    refs = references(world)
    print(
        f"world {world.root.name}: base {refs.base:.4f}, best single "
        f"{refs.best_single:.4f} ({refs.best_single_name}), monolith {refs.monolith:.4f}, "
        f"specialist oracle {refs.oracle:.4f} (references {time.monotonic() - started:.0f} s)"
    )
    cfg = RoundsConfig(
        rounds=args.rounds, budget=args.budget, steps=args.steps, sit_out=args.sit_out
    )
    out: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}, "rounds": []}
    out["references"] = {
        "base": refs.base,
        "best_single": refs.best_single,
        "best_single_name": refs.best_single_name,
        "monolith": refs.monolith,
        "oracle": refs.oracle,
        "monolith_tokens": monolith_tokens(world),
    }
    widths = [5, 13, 8, 8, 11, 7, 6, 6, 8, 6, 6, 8]
    head = ["round", "contributors", "accepted", "versions", "evaluations", "core"]
    head += ["base", "single", "monolith", "oracle", "steps", "tokens"]
    with tempfile.TemporaryDirectory(prefix="network-rounds-") as tmp:
        run_dir = Path(tmp)
        with bare_coordinator(
            world, run_dir / "coordinator", budget=args.budget, workers=args.workers, seed=args.seed
        ) as services:
            contributors = throwaway_contributors(world, run_dir)[: args.contributors]
            player = RoundPlayer(
                world, services.coordinator, services.url, contributors, cfg, say=print
            )
            scores = CoreScores(world, services.coordinator.store.version_dir)
            steps = 0
            for r in range(1, args.rounds + 1):
                rec = player.play_round(r)
                steps += rec.train_steps
                t0 = time.monotonic()
                core = scores.result(rec.end_version)
                tokens = training_compute(world, player.records)[-1]
                entry = rec.to_dict() | {
                    "core": core.macro("acc_choice"),
                    "core_tasks": {t: v.acc_choice for t, v in core.tasks.items()},
                    "cumulative_steps": steps,
                    "cumulative_tokens": tokens,
                    "heldout_seconds": time.monotonic() - t0,
                }
                out["rounds"].append(entry)
                if args.json:
                    args.json.write_text(json.dumps(out, indent=2))
                who = f"{len(rec.participants)}" + (
                    f" (-{','.join(rec.absent)})" if rec.absent else ""
                )
                print(
                    f"\nround {r}: contribute {rec.contribute_seconds:.0f} s, merge "
                    f"{rec.merge_seconds:.0f} s, held-out {entry['heldout_seconds']:.0f} s"
                )
                print(_row(head, widths))
                for e in out["rounds"]:
                    print(
                        _row(
                            [
                                str(e["round"]),
                                who if e is entry else str(len(e["participants"])),
                                str(e["accepted"]),
                                str(e["versions"]),
                                str(e["evaluations"]),
                                f"{e['core']:.4f}",
                                f"{refs.base:.4f}",
                                f"{refs.best_single:.4f}",
                                f"{refs.monolith:.4f}",
                                f"{refs.oracle:.4f}",
                                str(e["cumulative_steps"]),
                                f"{e['cumulative_tokens'] / 1e6:.2f}M",
                            ],
                            widths,
                        )
                    )
    print(f"\ntotal {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()

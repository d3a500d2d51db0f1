"""The main job: the world's contributors use the node client against a live network.

Steps, each visible on the console: build (or reuse) the world; start a local chain and
deploy the reward contracts; start the coordinator (API, loop, evaluation processes) on
127.0.0.1; every contributor creates a key; then ``--rounds`` rounds (:mod:`.rounds`): in round 1
every contributor pulls the current version (verified by hash), signs and submits the delta the
world trained, in later rounds it pulls the new core and fine-tunes it on fresh rows of its own
tasks first; the loop merges until the round's budget is spent. The coordinator publishes a
reward epoch; every contributor with something to claim claims it with its own key. Then a
summary (held-out: base, best single, monolith, specialist oracle, the core after each round),
and the live page keeps serving until Ctrl-C (or ``--exit``).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

from mergenet.config import Settings, get_settings
from mergenet.coordinator.settings import CoordinatorSettings, LoopSettings
from mergenet.demo.rounds import Contributor, RoundRecord
from mergenet.demo.services import DemoServices
from mergenet.demo.summary import render_summary
from mergenet.ecosystem.cli import build_with_progress
from mergenet.node.errors import NodeError
from mergenet.node.home import NodeHome
from mergenet.node.keys import new_key, unlock
from mergenet.rewards.chain import fund_local

NODE_SCRYPT_N = 2**14
"""The demo's throwaway contributor keys use a lighter scrypt than real ones (2**18)."""


@dataclass
class DemoNode(Contributor):
    """One contributor: its key, its node folders, and what happened to it."""

    contributions: list[dict[str, Any]] = field(default_factory=list)
    rewards: Any = None
    claim: Any = None
    claim_error: str | None = None


@dataclass(frozen=True)
class DemoConfig:
    budget: int = 80
    """Loop evaluations (selection + confirmation) per round."""
    rounds: int = 1
    """Rounds of contributions (1: the world's deltas only, as before rounds existed)."""
    workers: int | None = None
    port: int = 8000
    timeout: float = 900.0
    pool: str = "process"
    """``process``: evaluation processes here; ``petals``: every evaluation merged slice by
    slice and scored through a Petals swarm on loopback (:mod:`mergenet.petals.pool`)."""
    peers: int = 2
    """With ``petals``: server peers each model's blocks are split over."""


PETALS_BUDGET = 4
"""``--pool petals``'s default budget (``--budget`` sets it). Measured (AMD EPYC, 2 cores at
load 7–8, world db45132220f1): ``mergenet demo --pool petals --exit --budget 4`` reached its
summary in 17 min 8 s: the 8 contribution scorings ~9.5 min (~70 s per swarm evaluation, most
of it starting the candidate's server peers and scorer), the 4 loop evaluations and one feed
point 5.5 min, the held-out table ~1 min. Each further evaluation adds ~70 s."""
PETALS_TIMEOUT = 3600.0
"""How long the demo waits for the loop through the swarm (a swarm evaluation is ~1 min)."""
PETALS_CAPACITY = 1
"""Swarm evaluations in flight: each starts its own server peers and scorer, so on 2 cores one
at a time (a capacity of 2 was not measured)."""
PETALS_ROWS = 16
"""Fresh rows per task per decision with the swarm (accuracy on 8 in selection, on all 16 in
confirmation), as tests/petals/test_loop_e2e.py."""
PETALS_FEED_SECONDS = 300.0
"""Live-feed cadence with the swarm."""


def _pool_factory(cfg: DemoConfig) -> Any:
    """None (the coordinator's in-process pool) or the Petals swarm pool's factory, the one
    ``mergenet coordinator up --pool petals`` uses."""
    if cfg.pool != "petals":
        return None
    from mergenet.coordinator.petals_pool import petals_pool_factory

    return petals_pool_factory(cfg.peers, None, PETALS_CAPACITY)


def _loop_overrides(cfg: DemoConfig) -> dict[str, Any]:
    """Loop settings that differ with the swarm: fewer rows per evaluation (every row's
    forwards go through the peers), a live-feed point every PETALS_FEED_SECONDS instead of
    30 s (a point is one swarm evaluation and is scheduled before proposals)."""
    if cfg.pool != "petals":
        return {}
    return {"sample_n": 8, "confirm_sample_n": PETALS_ROWS, "feed_seconds": PETALS_FEED_SECONDS}


def _row_overrides(cfg: DemoConfig) -> dict[str, Any]:
    """With the swarm: PETALS_ROWS fresh rows per task per decision instead of 64."""
    return {"fresh_rows_per_task": PETALS_ROWS} if cfg.pool == "petals" else {}


def run_demo(cfg: DemoConfig, *, exit_after: bool, console: Console | None = None) -> dict:
    """Run the whole flow; returns the summary data (tests read it)."""

    console = console or Console()
    base = get_settings()
    run_dir = base.data_dir / "demo" / time.strftime("%Y%m%d-%H%M%S")
    settings = base.model_copy(
        update={
            "data_dir": run_dir / "coordinator",
            "keystore_password": base.keystore_password or SecretStr(secrets.token_urlsafe(24)),
            "chain_url": None,
        }
    )
    console.rule("[bold]mergenet demo")
    console.print(f"run folder {run_dir}")
    world = build_with_progress(console=console)
    cs = CoordinatorSettings(
        base_dir=world.base_dir,
        dev_rows=world.dharma_path("dev"),
        heldout_rows=world.dharma_path("heldout"),
        workers=cfg.workers,
        loop=LoopSettings(max_evaluations=cfg.budget, **_loop_overrides(cfg)),
        chain=True,
        **_row_overrides(cfg),
    )
    services = DemoServices(settings, cs, port=cfg.port, pool_factory=_pool_factory(cfg))
    try:
        with console.status("starting the local chain and deploying the reward contracts"):
            deployment = services.start_chain()
        console.print(f"chain {deployment.rpc_url}: distributor {deployment.distributor}")
        with console.status("starting the coordinator (database, artifact store, loop)"):
            services.start_coordinator()
        console.print(f"coordinator {services.url}  (live page {services.url}/)")
        nodes = _contribute(world, settings, run_dir)
        records = _play_rounds(world, services, nodes, cfg, console)
        with console.status("publishing the reward epoch on chain"):
            published = services.coordinator.epochs.publish_now()
        console.print(f"{len(published)} epoch(s) confirmed on chain")
        _claim(nodes, settings, services, console)
        data = _summary_data(world, nodes, services, records, console)
        render_summary(console, data)
        console.print(f"\nlive page: [bold]{services.url}/[/]  API docs: {services.url}/docs")
        if not exit_after:
            console.print("serving; press Ctrl-C to stop everything")
            _serve_forever()
        return data
    finally:
        with console.status("stopping the coordinator and the chain"):
            services.stop()


def _serve_forever() -> None:
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass


def _contribute(world: Any, settings: Settings, run_dir: Path) -> list[DemoNode]:
    """Each contributor: a new key and test ether for gas (bonds and claims)."""
    secret = secrets.token_urlsafe(16)
    nodes = []
    for i, c in enumerate(world.spec.contributors):
        node_dir = run_dir / "nodes" / c.name
        home = NodeHome(node_dir / "data", node_dir / "cache")
        new_key(home.keystore, secret, iterations=NODE_SCRYPT_N)
        node = DemoNode(c.name, c.tasks, i, home, unlock(home.keystore, secret))
        fund_local(settings, node.account.address, 10**18)
        nodes.append(node)
    return nodes


def _play_rounds(
    world: Any, services: DemoServices, nodes: list[DemoNode], cfg: DemoConfig, console: Console
) -> list[RoundRecord]:
    """Round 1: the world's deltas; later rounds: pull, fine-tune on fresh rows, submit."""
    from mergenet.demo.rounds import RoundPlayer, RoundsConfig

    player = RoundPlayer(
        world,
        services.coordinator,
        services.url,
        nodes,
        RoundsConfig(rounds=cfg.rounds, budget=cfg.budget, round_timeout=cfg.timeout),
        say=console.print,
        wait=lambda target: _run_loop(services, cfg, console, target),
    )
    for r in range(1, cfg.rounds + 1):
        if cfg.rounds > 1:
            console.rule(f"round {r} of {cfg.rounds}")
        rec = player.play_round(r)
        if cfg.rounds > 1:
            console.print(
                f"round {r}: {len(rec.participants)} contributed"
                + (f" ({', '.join(rec.absent)} sat out)" if rec.absent else "")
                + f", {rec.accepted} version(s) accepted, {rec.evaluations} loop evaluations "
                f"so far, {rec.contribute_seconds + rec.merge_seconds:.0f} s"
            )
    return player.records


def _run_loop(services: DemoServices, cfg: DemoConfig, console: Console, target: int) -> None:
    """Watch the loop through the API until it has spent evaluations up to ``target``."""
    from mergenet.demo.rounds import loop_busy
    from mergenet.node.client import CoordinatorClient

    deadline = time.monotonic() + (PETALS_TIMEOUT if cfg.pool == "petals" else cfg.timeout)
    with (
        CoordinatorClient(services.url) as client,
        Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            "{task.fields[status]}",
            TimeElapsedColumn(),
            console=console,
        ) as bar,
    ):
        task = bar.add_task("merge loop", total=target, status="")
        while True:
            history = client.get("/api/history", "reading the history")
            done = sum(
                e["purpose"] in ("selection", "confirmation") for e in history["evaluations"]
            )
            versions = len(client.get("/api/versions", "listing versions"))
            in_flight = services.coordinator.pool.in_flight()
            bar.update(
                task,
                completed=min(done, target),
                status=f"{versions - 1} accepted, {in_flight} in flight",
            )
            if done >= target and in_flight == 0 and not loop_busy(services.coordinator):
                return  # contributors are paid once their versions' attribution is done
            if time.monotonic() > deadline:
                console.print(f"[yellow]loop budget not reached in {cfg.timeout:.0f} s; going on")
                return
            time.sleep(1.0)


def _claim(
    nodes: list[DemoNode], settings: Settings, services: DemoServices, console: Console
) -> None:
    from mergenet.node.claim import claim, reward_status
    from mergenet.node.client import CoordinatorClient

    with CoordinatorClient(services.url) as client:
        for node in nodes:
            node.contributions = [client.contribution(sha) for sha in node.shas]
            node.rewards = reward_status(client, node.account.address)
            if not node.rewards.claimable:
                continue
            try:
                node.claim = claim(client, node.account, settings.chain_url)
                console.print(f"  {node.name:<6} claimed: {node.claim.describe()}")
            except NodeError as exc:
                node.claim_error = str(exc)
                console.print(f"  [red]{node.name} could not claim: {exc}")


def _summary_data(
    world: Any,
    nodes: list[DemoNode],
    services: DemoServices,
    records: list[RoundRecord],
    console: Console,
) -> dict:
    from mergenet.demo.rounds import monolith_tokens, training_compute
    from mergenet.node.client import CoordinatorClient

    with CoordinatorClient(services.url) as client:
        versions = client.get("/api/versions", "listing versions")
        strategies = client.get("/api/strategies", "reading H(s)")["current"]
        history = client.get("/api/history", "reading the history")
        for v in versions[1:]:
            v["strategy"] = client.get(f"/api/versions/{v['hash']}/recipe", "reading a recipe").get(
                "strategy"
            )
    reference, cores = _held_out(world, services, versions, records, console)
    compute = training_compute(world, records)
    return {
        "url": services.url,
        "versions": versions,
        "reference": reference,
        "rounds": [
            _round_row(r, tokens, cores) for r, tokens in zip(records, compute, strict=True)
        ],
        "monolith_tokens": monolith_tokens(world),
        "strategies": strategies,
        "evaluations": sum(
            e["purpose"] in ("selection", "confirmation") for e in history["evaluations"]
        ),
        "nodes": [_node_row(n) for n in nodes],
    }


def _round_row(r: RoundRecord, tokens: Any, cores: dict[str, float]) -> dict[str, Any]:
    """One round of the summary: who took part, what the loop accepted, the core after it."""
    return {
        "round": r.round,
        "contributors": len(r.participants),
        "absent": r.absent,
        "accepted": r.accepted,
        "versions": r.versions,
        "evaluations": r.evaluations,
        "tokens": tokens,
        "core": cores[r.end_version],
        "seconds": r.contribute_seconds + r.merge_seconds,
    }


def _node_row(n: DemoNode) -> dict[str, Any]:
    """One contributor of the summary: its last submission, merges and rewards."""
    return {
        "name": n.name,
        "tasks": list(n.tasks),
        "address": n.account.address,
        "sha256": n.shas[-1] if n.shas else None,
        "score": n.contributions[-1].get("score") if n.contributions else None,
        "gain": n.contributions[-1].get("gain") if n.contributions else None,
        "submitted": len(n.shas),
        "in_versions": sorted({v for c in n.contributions for v in c.get("in_versions", [])}),
        "accrued": n.rewards.accrued if n.rewards else 0,
        "claimed": n.claim.paid if n.claim else 0,
        "balance": n.claim.balance if n.claim else 0,
        "claim_error": n.claim_error,
    }


def _held_out(
    world: Any,
    services: DemoServices,
    versions: list[dict],
    records: list[RoundRecord],
    console: Console,
) -> tuple[dict[str, float], dict[str, float]]:
    """Held-out macro choice accuracy of the references (:mod:`.heldout`: base, best single,
    monolith, specialist oracle; computed once per world) and of the core after each round.
    Held-out rows are never used to select anything: the loop sees only fresh dev rows."""
    from mergenet.demo.heldout import CoreScores, references

    with console.status("held-out rows: the world's reference models (once per world)"):
        refs = references(world)
    scores = CoreScores(world, services.coordinator.store.version_dir)
    number = {v["hash"]: i for i, v in enumerate(versions)}
    out = {
        "base (version 0)": refs.base,
        f"best single contributor ({refs.best_single_name})": refs.best_single,
        "monolith (all data, round 1's compute)": refs.monolith,
        "specialist oracle (each task at its specialist)": refs.oracle,
    }
    cores: dict[str, float] = {}
    for r in records:
        v = r.end_version
        if v not in cores:
            with console.status(f"held-out rows: the core after round {r.round}"):
                cores[v] = refs.base if number.get(v) == 0 else scores.macro(v)
        label = "core" if len(records) == 1 else f"core after round {r.round}"
        out[f"{label} (version {number.get(v, '?')}, {v[:12]})"] = cores[v]
    return out, cores

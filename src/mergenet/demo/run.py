"""The main job: the world's contributors use the node client against a live network.

Steps, each visible on the console: build (or reuse) the world; start a local chain and
deploy the reward contracts; start the coordinator (API, loop, evaluation processes) on
127.0.0.1; every contributor creates a key, pulls the current version (verified by hash),
signs and submits its delta; the loop merges until its budget is spent; the coordinator
publishes a reward epoch; every contributor with something to claim claims it with its own
key. Then a summary, and the live page keeps serving until Ctrl-C (or ``--exit``).
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
class DemoNode:
    """One contributor: its key, its node folders, and what happened to it."""

    name: str
    tasks: tuple[str, ...]
    home: Any
    account: Any = None
    sha256: str | None = None
    contribution: dict[str, Any] = field(default_factory=dict)
    rewards: Any = None
    claim: Any = None
    claim_error: str | None = None


@dataclass(frozen=True)
class DemoConfig:
    budget: int = 80
    """Loop evaluations (selection + confirmation) before the summary."""
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
        nodes = _contribute(world, settings, services, run_dir, console)
        _run_loop(services, cfg, console)
        with console.status("publishing the reward epoch on chain"):
            published = services.coordinator.epochs.publish_now()
        console.print(f"{len(published)} epoch(s) confirmed on chain")
        _claim(nodes, settings, services, console)
        data = _summary_data(world, nodes, services)
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


def _contribute(
    world: Any, settings: Settings, services: DemoServices, run_dir: Path, console: Console
) -> list[DemoNode]:
    """Each contributor: new key, test ether for gas, pull, sign and submit its delta."""
    from mergenet.node.client import CoordinatorClient
    from mergenet.node.pull import pull_current
    from mergenet.node.submit import fetch_domain, resolve_artifact, submit_artifact

    secret = secrets.token_urlsafe(16)
    nodes = []
    with CoordinatorClient(services.url) as client:
        domain = fetch_domain(client)  # the EIP-712 domain every node signs under
        for c in world.spec.contributors:
            node_dir = run_dir / "nodes" / c.name
            node = DemoNode(c.name, c.tasks, NodeHome(node_dir / "data", node_dir / "cache"))
            new_key(node.home.keystore, secret, iterations=NODE_SCRYPT_N)
            node.account = unlock(node.home.keystore, secret)
            fund_local(settings, node.account.address, 10**18)
            pulled = pull_current(client, node.home, lambda *_: None)
            artifact = resolve_artifact(world.delta_path(c.name), pulled.version_hash)
            info = submit_artifact(  # posts the upload bond first (0.01 ether of the 1 above)
                client, node.account, artifact, domain, say=lambda m: console.print(f"  {m}")
            )
            node.sha256 = info["sha256"]
            console.print(
                f"  {c.name:<6} {node.account.address} pulled {pulled.version_hash[:10]}, "
                f"submitted {node.sha256[:12]} ({', '.join(c.tasks)})"
            )
            nodes.append(node)
    return nodes


def _run_loop(services: DemoServices, cfg: DemoConfig, console: Console) -> None:
    """Watch the loop through the API until its evaluation budget is spent."""
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
        task = bar.add_task("merge loop", total=cfg.budget, status="")
        while True:
            history = client.get("/api/history", "reading the history")
            done = sum(
                e["purpose"] in ("selection", "confirmation") for e in history["evaluations"]
            )
            versions = len(client.get("/api/versions", "listing versions"))
            in_flight = services.coordinator.pool.in_flight()
            bar.update(
                task,
                completed=min(done, cfg.budget),
                status=f"{versions - 1} accepted, {in_flight} in flight",
            )
            if done >= cfg.budget and in_flight == 0 and not _attributing(services):
                return  # contributors are paid once their versions' attribution is done
            if time.monotonic() > deadline:
                console.print(f"[yellow]loop budget not reached in {cfg.timeout:.0f} s; going on")
                return
            time.sleep(1.0)


def _attributing(services: DemoServices) -> bool:
    """Whether an accepted version's leave-one-out evaluations are still queued."""
    from sqlalchemy import func, select

    from mergenet.coordinator import models as m
    from mergenet.coordinator.status import CandidateStatus, Kind

    with services.coordinator.factory() as s:
        queued = s.scalar(
            select(func.count())
            .select_from(m.Candidate)
            .where(
                m.Candidate.kind == Kind.ATTRIBUTION, m.Candidate.status == CandidateStatus.QUEUED
            )
        )
    return bool(queued)


def _claim(
    nodes: list[DemoNode], settings: Settings, services: DemoServices, console: Console
) -> None:
    from mergenet.node.claim import claim, reward_status
    from mergenet.node.client import CoordinatorClient

    with CoordinatorClient(services.url) as client:
        for node in nodes:
            assert node.sha256 is not None, "every node submitted before the claim step"
            node.contribution = client.contribution(node.sha256)
            node.rewards = reward_status(client, node.account.address)
            if not node.rewards.claimable:
                continue
            try:
                node.claim = claim(client, node.account, settings.chain_url)
                console.print(f"  {node.name:<6} claimed: {node.claim.describe()}")
            except NodeError as exc:
                node.claim_error = str(exc)
                console.print(f"  [red]{node.name} could not claim: {exc}")


def _summary_data(world: Any, nodes: list[DemoNode], services: DemoServices) -> dict:
    from mergenet.node.client import CoordinatorClient

    with CoordinatorClient(services.url) as client:
        versions = client.get("/api/versions", "listing versions")
        strategies = client.get("/api/strategies", "reading H(s)")["current"]
        history = client.get("/api/history", "reading the history")
    for v in versions[1:]:
        recipe = client_recipe(services.url, v["hash"])
        v["strategy"] = recipe.get("strategy")
    reference = _reference_scores(world, services, versions)
    return {
        "url": services.url,
        "versions": versions,
        "reference": reference,
        "strategies": strategies,
        "evaluations": sum(
            e["purpose"] in ("selection", "confirmation") for e in history["evaluations"]
        ),
        "nodes": [
            {
                "name": n.name,
                "tasks": list(n.tasks),
                "address": n.account.address,
                "sha256": n.sha256,
                "score": n.contribution.get("score"),
                "gain": n.contribution.get("gain"),
                "in_versions": n.contribution.get("in_versions", []),
                "accrued": n.rewards.accrued if n.rewards else 0,
                "claimed": n.claim.paid if n.claim else 0,
                "balance": n.claim.balance if n.claim else 0,
                "claim_error": n.claim_error,
            }
            for n in nodes
        ],
    }


def client_recipe(url: str, version_hash: str) -> dict[str, Any]:
    from mergenet.node.client import CoordinatorClient

    with CoordinatorClient(url) as client:
        return client.get(f"/api/versions/{version_hash}/recipe", "reading a recipe")


def _reference_scores(world: Any, services: DemoServices, versions: list[dict]) -> dict[str, float]:
    """Held-out macro choice accuracy of the base and the newest core version, and of the
    world's reference models when their report is cached (``mergenet world table``): held-out
    rows are never used to select anything, the loop sees only the dev split."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from mergenet.evaluator.scoring import evaluate_items

    items = world.items("heldout")
    tokenizer = AutoTokenizer.from_pretrained(world.tokenizer_dir)

    def accuracy(folder: Path) -> float:
        model = AutoModelForCausalLM.from_pretrained(folder, dtype="float32").eval()
        return evaluate_items(model, tokenizer, items).macro("acc_choice")

    out = {"base (version 0)": accuracy(world.base_dir)}
    cached = world.root / "report-heldout.json"
    if cached.exists():
        from mergenet.ecosystem.report import evaluate_world

        reference = evaluate_world(world, split="heldout")
        singles = {n: reference[n].macro("acc_choice") for n in world.contributor_names}
        best = max(singles, key=singles.__getitem__)
        out[f"best single contributor ({best})"] = singles[best]
        out["monolith (all data, same compute)"] = reference["monolith"].macro("acc_choice")
    newest = versions[-1]["hash"]
    if len(versions) > 1:
        folder = services.coordinator.store.version_dir(newest)
        out[f"core version {len(versions) - 1} ({newest[:12]}, merged)"] = accuracy(folder)
    return out

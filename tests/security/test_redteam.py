"""The red-team suite (issue 16, item 6): each attack run as an attacker would, against a live
``mergenet coordinator up --chain`` on loopback (the model world, one evaluation worker, rewards
accrued in the ledger and published on a private anvil).

Each test asserts the two things the issue asks: the attacker earns nothing it did not add
(``GET /api/rewards/{address}``, the ledger a claim is paid from), and honest contributors'
records, rewards and queue positions are what they would be without the attack.

One coordinator (``net``) serves the whole module: alice's and bob's honest deltas are stored
first (the originals the copy attacks start from); the queue flood runs last, so the
contributions the earlier attacks got accepted (where a defence is missing) cannot reorder
its queue. The Sybil split compares two fresh networks of its own (the whole delta honestly,
and its halves under two keys) on the same loop seed and budget.

An attack whose defence has not landed (or regresses) is kept, asserting the secure
behaviour, as ``xfail(strict=True)`` with the missing defence named: CI stays green, the gap
stays visible, and the day the defence lands the test XPASSes and fails until the marker is
removed. Since 7e3baac (copies in task-vector space) every defence has landed and no test here
is marked: before it, the noise, lm_head-zeroed, average and noise-Sybil tests were xfail.
The lying worker is attacked end to end in ``test_lying_worker.py``; the test here adds the
assertions that file leaves out (the reward it would be paid, the exact versions).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from . import redteam_kit as kit
from .test_lying_worker import (  # noqa: F401  (redis_url is a fixture)
    MASTER,
    NOOP,
    Attacker,
    HonestLocalPool,
    celery_pool,
    honest,
    lie,
    make_factory,
    redis_url,
    run_loop,
    signed_by,
)

pytestmark = [pytest.mark.world, pytest.mark.slow, pytest.mark.timeout(900)]

ALICE, BOB, CAROL = 0, 1, 2
"""Honest keys (the world's first three contributors); attackers use keys from 100 up."""
BUDGET = 4
"""Loop evaluations per network: enough to accept a version, few enough to stay bounded."""
SCORE_TIMEOUT = 300.0
NO_FEED = {"MERGENET_COORDINATOR_LOOP__FEED_SECONDS": "0"}
"""The Sybil runs compare payments only: no live-feed measurements competing for the worker."""


@pytest.fixture(scope="module")
def net(cworld: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[kit.LiveNetwork]:
    """The shared live network, with alice's and bob's deltas stored and scored."""
    network = kit.LiveNetwork(cworld, tmp_path_factory.mktemp("redteam"), max_evaluations=BUDGET)
    try:
        network.start()
        for key, name in ((ALICE, "alice"), (BOB, "bob")):
            r = network.submit(key, cworld.delta_path(name))
            assert r.status_code == 201, r.text
            network.originals[name] = r.json()["sha256"]
        network.wait_scored(network.originals.values(), SCORE_TIMEOUT)
        yield network
    finally:
        network.stop()


# -- 1. a lying worker -----------------------------------------------------------------------
@pytest.mark.timeout(180)
def test_lying_worker_is_paid_nothing_and_leaves_the_versions_as_honest_work_does(
    redis_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    """``test_lying_worker.py`` runs the liar against the real loop and pools; this adds what
    it leaves out: the no-op's reward under the coordinator's own policy is 0 tokens, and the
    chain of versions is exactly (hash for hash) the one honest workers produce."""
    from datetime import UTC, datetime

    from mergenet.coordinator.settings import LoopSettings
    from mergenet.coordinator.trust import TrustedPool
    from mergenet.protocol.worker_auth import Keyring
    from mergenet.rewards.policy import RewardPolicy, quote_reward

    runs = {}
    for name, answer in (("honest", honest), ("liar", lie)):
        celery = celery_pool(redis_url)
        pool = TrustedPool(celery, HonestLocalPool(), Keyring(MASTER))
        factory = make_factory(tmp_path / f"{name}.db")
        runs[name] = run_loop(factory, pool, Attacker(celery, signed_by(name, answer)))
        with factory() as s:
            from mergenet.coordinator import models as m

            noop = s.query(m.Contribution).filter_by(sha256=NOOP).one()
            baseline = float((noop.metrics or {}).get("baseline", 1.0))
            now = datetime.now(UTC)
            margin = LoopSettings().margin
            policy = RewardPolicy(threshold=min(1.0, baseline + margin))
            runs[name]["noop_tokens"] = quote_reward(
                float(noop.score or 0.0), submitted_at=now, parent_published_at=now, policy=policy
            ).tokens
    assert runs["liar"]["noop_tokens"] == runs["honest"]["noop_tokens"] == 0
    assert runs["liar"]["versions"] == runs["honest"]["versions"]
    assert not runs["liar"]["noop_in_versions"]


# -- 2. training on previously served rows ---------------------------------------------------
def _scored_rows(net: kit.LiveNetwork) -> list[dict[str, Any]]:
    """The rows the loop scored on and still uses: each recorded evaluation of an open row
    epoch, its rows regenerated from the epoch's secret (the judge reads it from the
    database; a revealed epoch's rows are public by design and never used again), and the
    dev set, which evaluations recorded without a generator label were sampled from and which
    shares questions with fresh rows of the small task families."""
    rows = kit.read_rows(net.world.dharma_path("dev"))
    with sqlite3.connect(net.db) as conn:
        columns = {c[1] for c in conn.execute("pragma table_info(evaluations)")}
        if "rows_label" not in columns:
            return rows
        recorded = conn.execute(
            "select e.sample_seed, e.rows_label, r.secret from evaluations e "
            "join row_epochs r on r.number = e.row_epoch "
            "where e.rows_label like 'gen:%' and r.revealed_at is null"
        ).fetchall()
    from mergenet.ecosystem.fresh_rows import regenerate

    for seed, label, secret in recorded:
        rows += regenerate(bytes.fromhex(secret), label, seed)
    return rows


def test_no_route_serves_a_scoring_or_held_out_row(net: kit.LiveNetwork) -> None:
    net.wait_idle(SCORE_TIMEOUT)
    world = net.world
    dev, heldout = world.dharma_path("dev"), world.dharma_path("heldout")
    needles = kit.row_needles(_scored_rows(net) + kit.read_rows(heldout))
    file_shas = [hashlib.sha256(p.read_bytes()).hexdigest() for p in (dev, heldout)]
    values = {
        "sha256": list(net.originals.values()) + file_shas,
        "version_hash": [v["hash"] for v in net.get("/api/versions").json()] + ["current"],
        "address": [kit.account(k).address for k in (ALICE, BOB)],
        "name": kit.page_files(),
        "number": ["1", "2"],
    }
    leaks = []
    fetched = 0
    for route in kit.get_routes():
        for path in kit.fill(route, values):
            texts = kit.fetch_texts(net, path)
            fetched += 1
            if kit.leaked(texts, needles):
                leaks.append(path)
    assert fetched > 20
    for sha in file_shas:  # the old route is gone, whatever it is asked for
        assert net.get(f"/api/rows/{sha}").status_code == 404
    print(f"route walk: {fetched} GETs, {len(needles) // 2} rows looked for, leaks {leaks}")
    assert not leaks, f"routes serving scoring or held-out rows: {leaks}"


# -- 3-6. copies of stored deltas under fresh keys -------------------------------------------
def _copy(kind: str, world: Any) -> tuple[kit.Delta, list[str]]:
    """The attack's file and the originals it copies."""
    a, b = kit.load(world.delta_path("alice")), kit.load(world.delta_path("bob"))
    if kind == "scaled":
        return kit.scaled(a, 0.6), ["alice"]
    if kind == "noise_0.95":
        return kit.noisy(a, 0.95, seed=1), ["alice"]
    if kind == "lm_head_zeroed":
        return kit.zeroed(a, "lm_head"), ["alice"]
    return kit.average(a, b), ["alice", "bob"]


@pytest.mark.parametrize(
    ("kind", "key"),
    [
        ("scaled", 101),
        ("noise_0.95", 102),
        ("lm_head_zeroed", 103),
        ("average_of_two", 104),
    ],
)
def test_a_copy_under_a_fresh_key_is_refused_naming_the_original_and_earns_nothing(
    net: kit.LiveNetwork, tmp_path: Path, kind: str, key: int
) -> None:
    delta, copied = _copy(kind, net.world)
    before = {n: net.contribution(sha) for n, sha in net.originals.items()}
    earned_before = {k: net.earned(k) for k in (ALICE, BOB)}
    r = net.submit(key, kit.save(delta, tmp_path / f"{kind}.safetensors"))
    assert r.status_code == 409, f"{kind} accepted: {r.status_code} {r.text}"
    detail = r.json()["detail"]
    print(f"{kind}: {r.status_code} {detail}")
    assert any(net.originals[n][:16] in detail for n in copied), detail
    assert net.earned(key) == 0
    for n, sha in net.originals.items():  # the originals' records and rewards are untouched
        after = net.contribution(sha)
        assert {k: after[k] for k in ("status", "score", "in_pool")} == {
            k: before[n][k] for k in ("status", "score", "in_pool")
        }
    assert all(net.earned(k) >= earned_before[k] for k in (ALICE, BOB))


# -- 8. noise-variant Sybils -----------------------------------------------------------------
def test_noise_variant_sybils_are_all_refused_and_earn_nothing(
    net: kit.LiveNetwork, tmp_path: Path
) -> None:
    bob = kit.load(net.world.delta_path("bob"))
    codes = {}
    for i, cos in enumerate((0.97, 0.96, 0.95)):
        variant = kit.save(kit.noisy(bob, cos, seed=10 + i), tmp_path / f"v{i}.safetensors")
        codes[140 + i] = net.submit(140 + i, variant).status_code
    print(f"noise-variant Sybils (cosine 0.97, 0.96, 0.95 with bob's delta): {codes}")
    assert codes == {140: 409, 141: 409, 142: 409}
    assert [net.earned(k) for k in codes] == [0, 0, 0]


# -- 7. a Sybil split of one delta over two keys ---------------------------------------------
def _earned_after_budget(world: Any, root: Path, uploads: list[tuple[int, Path]]) -> list[int]:
    """A fresh network; ``uploads`` submitted in order; every key's accrual once the loop has
    spent its budget (both runs: same seed, same budget, same single worker)."""
    network = kit.LiveNetwork(world, root, max_evaluations=BUDGET, env=NO_FEED)
    try:
        network.start()
        shas = []
        for key, path in uploads:
            r = network.submit(key, path)
            assert r.status_code == 201, r.text
            shas.append(r.json()["sha256"])
        network.wait_scored(shas, SCORE_TIMEOUT)
        network.wait_idle(SCORE_TIMEOUT)
        return [network.earned(key) for key, _ in uploads]
    finally:
        network.stop()


def test_a_sybil_split_earns_no_more_than_the_whole_delta(cworld: Any, tmp_path: Path) -> None:
    """Halves by tensor are orthogonal, so the copy index lets both in: what stops the split
    paying is leave-one-out attribution (no fee per upload). Measured (2-core AMD EPYC at
    load ~15): halves 0 + 0 tokens, the whole 0 tokens; within 4 evaluations neither network
    paid a version, so this shows no fee per upload; the split accounting of a paid version
    is ``tests/coordinator/test_attribution.py``'s."""
    whole = cworld.delta_path("alice")
    one, two = kit.split_tensors(kit.load(whole))
    halves = [
        kit.save(one, tmp_path / "h1.safetensors"),
        kit.save(two, tmp_path / "h2.safetensors"),
    ]
    (honest_whole,) = _earned_after_budget(cworld, tmp_path / "whole", [(ALICE, whole)])
    attackers = list(zip((120, 121), halves, strict=True))
    split = _earned_after_budget(cworld, tmp_path / "split", attackers)
    print(
        f"Sybil split: halves earned {[x / 1e18 for x in split]} tokens, the whole "
        f"{honest_whole / 1e18} tokens"
    )
    tolerance = 10**17 + honest_whole // 10  # 0.1 token + 10%: runs differ in sampled rows
    assert sum(split) <= honest_whole + tolerance, (split, honest_whole)


# -- 9. queue flood --------------------------------------------------------------------------
def _dispatch_order(db: Path, shas: list[str]) -> list[str]:
    """The order the loop dispatched these contributions' scoring (candidate ids)."""
    marks = ",".join("?" * len(shas))
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            f"select contribution_sha from candidates where contribution_sha in ({marks}) "
            "order by id",
            shas,
        ).fetchall()
    return [r[0] for r in rows]


def test_a_queue_flood_does_not_delay_honest_work_and_earns_nothing(
    net: kit.LiveNetwork, tmp_path: Path
) -> None:
    """Eight fresh keys flood the queue around carol's honest upload: the first fills its
    per-address quota before carol uploads (and is refused with 429 past it), seven more
    upload one junk delta each after her. Round-robin scoring puts carol before the first
    key's later junk and before every later key; first come, first served would put her
    behind all of the first key's uploads. The junk adds nothing and earns nothing.
    Measured: the first key's 4th upload 429; carol dispatched 3rd of 11; flooders 0 tokens."""
    net.wait_queue_empty(SCORE_TIMEOUT)  # earlier attacks' accepted uploads are scored first
    base = kit.load(net.world.delta_path("alice"))
    flooders = list(range(130, 138))
    first: list[str] = []
    codes = []
    for i in range(6):  # past any quota of a few pending uploads per address
        path = kit.save(kit.junk(base, seed=1000 + i), tmp_path / f"first{i}.safetensors")
        r = net.submit(flooders[0], path)
        codes.append(r.status_code)
        if r.status_code != 201:
            break
        first.append(r.json()["sha256"])
    assert codes[-1] == 429 and len(first) >= 1, f"the first flooder's uploads: {codes}"
    r = net.submit(CAROL, net.world.delta_path("carol"))
    assert r.status_code == 201, r.text
    honest_sha = r.json()["sha256"]
    later = []
    for key in flooders[1:]:
        path = kit.save(kit.junk(base, seed=key), tmp_path / f"junk{key}.safetensors")
        r = net.submit(key, path)
        assert r.status_code == 201, r.text
        later.append(r.json()["sha256"])
    everything = [*first, honest_sha, *later]
    net.wait_scored(everything, 2 * SCORE_TIMEOUT)
    order = _dispatch_order(net.db, everything)
    ahead = order[: order.index(honest_sha)]
    print(
        f"flood: first flooder {codes}; carol dispatched {len(ahead) + 1} of {len(order)}; "
        f"flooders earned {sum(net.earned(k) for k in flooders) / 1e18} tokens, carol "
        f"{net.earned(CAROL) / 1e18}"
    )
    assert not set(ahead) & set(later), "a later flooder was scored before carol"
    if len(first) > 2:
        assert first[-1] not in ahead, f"carol waited for all {len(first)} of a flooder's uploads"
    assert net.contribution(honest_sha)["status"] == "scored"
    assert [net.earned(k) for k in flooders] == [0] * len(flooders)


def test_the_kit_walks_every_get_route() -> None:
    """The route walk sees the routes that matter (so a new one cannot hide from test 2)."""
    routes = kit.get_routes()
    for path in ("/api/deltas/{sha256}", "/api/history", "/api/live", "/api/events"):
        assert path in routes
    assert kit.fill("/a/{x}/b/{y}", {"x": ["1", "2"], "y": ["3"]}) == ["/a/1/b/3", "/a/2/b/3"]
    row = "What is 1+1?\nA. 2\nB. 3\nAnswer:"
    needles = kit.row_needles([{"input": row}])
    assert kit.leaked([json.dumps({"rows": [{"input": row}]})], needles)
    assert kit.leaked([f"{{'input': {row}}}"], needles)
    assert not kit.leaked(["What is 1+2?\nA. 2\nB. 3\nAnswer:", "Answer:"], needles)

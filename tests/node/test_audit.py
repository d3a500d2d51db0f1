"""``mergenet audit EPOCH`` and the ``/api/row-epochs`` routes it reads.

Three layers, cheapest first:

* the comparison rules (:mod:`mergenet.node.audit`): exact re-runs match, a number beyond
  1e-6 relative, a missing field or a changed task name do not;
* the routes on a coordinator over a two-tensor checkpoint (no model, no world): an open
  epoch's secret is never served and its evaluations are refused with 409; a revealed one's
  secret hashes to its commitment; pages walk every evaluation once;
* the whole audit against a live coordinator on loopback with the world's base and two
  contributions (``test_audit_reproduces_a_live_epoch``): every evaluation of the revealed
  epoch is re-run exactly (exit 0), a result tampered in the database is named (exit 1), the
  open epoch is refused (exit 2).
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import pytest

from mergenet.node import audit

from ..coordinator.api.conftest import client, coordinator, server  # noqa: F401
from ..coordinator.conftest import cworld  # noqa: F401
from ..rewards.conftest import anvil, deployed, w3  # noqa: F401

RESULT = {
    "tasks": {
        "add": {
            "task": "add",
            "n_rows": 16,
            "ppl": 3.25,
            "answer_loss": 1.5,
            "acc_letter": 0.25,
            "acc_choice": 0.5,
            "n_loss_rows": 64,
        }
    },
    "macro": {"ppl": 3.25, "answer_loss": 1.5, "acc_letter": 0.25, "acc_choice": 0.5},
}


def _with(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    import copy

    out = copy.deepcopy(RESULT)
    node: Any = out
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    return out


# ------------------------------------------------------------------ the comparison rules


def test_an_identical_record_matches_with_zero_difference() -> None:
    assert audit.compare({"result": RESULT}, {"result": RESULT}) == (0.0, None)


def test_float32_rounding_matches_and_a_real_change_does_not() -> None:
    noisy = _with(("tasks", "add", "ppl"), 3.25 * (1 + 1e-8))
    worst, why = audit.compare({"r": RESULT}, {"r": noisy})
    assert why is None and 0 < worst < 1e-7
    changed = _with(("tasks", "add", "ppl"), 3.25 * (1 + 1e-5))
    worst, why = audit.compare({"r": RESULT}, {"r": changed})
    assert why is not None and why.startswith("r.tasks.add.ppl: recorded 3.25")
    assert worst == pytest.approx(3.25e-5)


def test_counts_accuracies_names_and_missing_fields_must_match() -> None:
    for path, value in (
        (("tasks", "add", "acc_choice"), 0.5625),
        (("tasks", "add", "n_rows"), 15),
        (("tasks", "add", "task"), "sub"),
    ):
        assert audit.compare({"r": RESULT}, {"r": _with(path, value)})[1] is not None, path
    fewer = _with(("macro",), {"ppl": 3.25})
    assert "only in the re-run" in str(audit.compare({"r": fewer}, {"r": RESULT})[1])
    assert audit.compare({"d": 0.0}, {"d": 0.0}) == (0.0, None)
    assert audit.compare({"d": math.nan}, {"d": math.nan})[1] is None


def test_a_failed_rerun_is_a_mismatch() -> None:
    from mergenet.protocol.evaluation import EvalOutcome

    ev = {"id": 3, "candidate_id": 2, "purpose": "selection", "result": RESULT}
    check = audit.check_outcome(ev, EvalOutcome(key="2:selection:1", error="boom"))
    assert not check.ok and "boom" in str(check.mismatch)


def test_the_secret_must_hash_to_the_commitment() -> None:
    secret = bytes(range(32))
    good = {"secret": secret.hex(), "commitment": hashlib.sha256(secret).hexdigest()}
    audit.check_commitment(good)
    with pytest.raises(audit.AuditMismatch, match="is not the epoch's commitment"):
        audit.check_commitment(good | {"secret": bytes(32).hex()})
    with pytest.raises(audit.AuditMismatch, match="not hex"):
        audit.check_commitment(good | {"secret": "zz"})


def test_choose_by_id_and_by_a_random_limit() -> None:
    from mergenet.node.errors import NodeError

    evs = [{"id": i} for i in range(1, 11)]
    assert [e["id"] for e in audit.choose(evs, [7, 3, 7], None)] == [3, 7]
    picked = audit.choose(evs, [], 4)
    assert len(picked) == 4 and picked == sorted(picked, key=lambda e: e["id"])
    with pytest.raises(NodeError, match=r"no evaluation \[42\]"):
        audit.choose(evs, [42], None)


# ------------------------------------------------------------------ the routes


def _evaluations(coord: Any, count: int, epoch: int) -> list[int]:
    """``count`` recorded evaluations under ``epoch`` on a candidate of the base version."""
    from mergenet.coordinator import models as m
    from mergenet.coordinator.state import current_version
    from mergenet.db import transaction

    with transaction(coord.factory) as s:
        base = current_version(s)
        assert base is not None
        cand = m.Candidate(
            parent_hash=base.hash,
            strategy="linear",
            kind="single",
            recipe={"parent": base.hash, "strategy": "linear"},
            recipe_hash="0" * 64,
            status="done",
            sample_seed=5,
        )
        s.add(cand)
        s.flush()
        evs = [
            m.Evaluation(
                candidate_id=cand.id,
                purpose="selection",
                sample_seed=5 + i,
                result=RESULT,
                parent_result=RESULT,
                relative_distance=0.01,
                score=0.5,
                baseline=0.5,
                gain=0.0,
                breakdown={},
                seconds=1.0,
                row_epoch=epoch,
                rows_label="gen:selection:16:add",
            )
            for i in range(count)
        ]
        s.add_all(evs)
        s.flush()
        return [e.id for e in evs]


def _rotate(coord: Any) -> tuple[int, int]:
    from mergenet.coordinator.row_epochs import rotate
    from mergenet.db import transaction

    with transaction(coord.factory) as s:
        closed, opened = rotate(s)
        return closed.number, opened.number


def _open_epoch(coord: Any) -> tuple[int, str]:
    from mergenet.coordinator.row_epochs import current_row_epoch
    from mergenet.db import transaction

    with transaction(coord.factory) as s:
        e = current_row_epoch(s)
        return e.number, e.secret


def test_an_open_epochs_secret_and_evaluations_stay_private(
    coordinator: Any,  # noqa: F811
    client: Any,  # noqa: F811
) -> None:
    number, secret = _open_epoch(coordinator)
    _evaluations(coordinator, 2, number)
    listed = client.get("/api/row-epochs")
    assert listed.status_code == 200
    one = client.get(f"/api/row-epochs/{number}")
    assert one.status_code == 200 and one.json()["secret"] is None
    assert one.json()["revealed_at"] is None
    refused = client.get(f"/api/row-epochs/{number}/evaluations")
    assert refused.status_code == 409 and "still open" in refused.json()["detail"]
    for r in (listed, one, refused):
        assert secret not in r.text
    assert client.get("/api/row-epochs/999").status_code == 404
    assert client.get("/api/row-epochs/0").status_code == 422


def test_a_revealed_epoch_serves_its_secret_and_every_evaluation_once(
    coordinator: Any,  # noqa: F811
    client: Any,  # noqa: F811
) -> None:
    number, secret = _open_epoch(coordinator)
    ids = _evaluations(coordinator, 5, number)
    closed, opened = _rotate(coordinator)
    assert closed == number and opened == number + 1
    _evaluations(coordinator, 1, opened)  # the next epoch's: never listed under this one
    epoch = client.get(f"/api/row-epochs/{number}").json()
    assert epoch["secret"] == secret and epoch["revealed_at"] is not None
    assert hashlib.sha256(bytes.fromhex(secret)).hexdigest() == epoch["commitment"]
    seen, after = [], 0
    while True:
        page = client.get(f"/api/row-epochs/{number}/evaluations?after={after}&limit=2").json()
        assert len(page["evaluations"]) <= 2
        seen += page["evaluations"]
        if page["next_after"] is None:
            break
        after = page["next_after"]
    assert [e["id"] for e in seen] == ids
    first = seen[0]
    assert first["sample"]["rows_label"] == "gen:selection:16:add"
    assert first["sample"]["row_epoch"] == number and first["sample"]["seed"] == 5
    assert first["result"] == RESULT and first["relative_distance"] == 0.01
    assert first["recipe"]["strategy"] == "linear"
    assert client.get(f"/api/row-epochs/{opened}").json()["secret"] is None


def test_audit_of_an_open_or_unknown_epoch_exits_2(
    coordinator: Any,  # noqa: F811
    server: str,  # noqa: F811
) -> None:
    from typer.testing import CliRunner

    from mergenet.cli import app

    number, secret = _open_epoch(coordinator)
    runner = CliRunner()
    result = runner.invoke(app, ["audit", str(number), "--coordinator", server])
    assert result.exit_code == 2, result.output
    assert "still open" in result.output and secret not in result.output
    result = runner.invoke(app, ["audit", "77", "--coordinator", server])
    assert result.exit_code == 2 and "no row epoch 77" in result.output


def _record(coord: Any, spec: Any, epoch: int) -> int:
    """An evaluation recorded as the loop records one dispatched with ``spec``."""
    from mergenet.coordinator import models as m
    from mergenet.db import transaction

    ev_id = _evaluations(coord, 1, epoch)[0]
    with transaction(coord.factory) as s:
        ev = s.get(m.Evaluation, ev_id)
        assert ev is not None
        ev.rows_label, ev.sample_seed = spec.rows, spec.seed
    return ev_id


def _served(client: Any, number: int, ev_id: int) -> dict[str, Any]:  # noqa: F811
    page = client.get(f"/api/row-epochs/{number}/evaluations").json()
    (ev,) = [e for e in page["evaluations"] if e["id"] == ev_id]
    return dict(ev)


def test_the_audit_rebuilds_exactly_the_rows_the_loop_dispatched(
    coordinator: Any,  # noqa: F811
    client: Any,  # noqa: F811
) -> None:
    from mergenet.db import transaction

    number, secret = _open_epoch(coordinator)
    assert coordinator.decision_rows.source == "generator"  # the tiny dev file's subject: add
    with transaction(coordinator.factory) as s:
        spec = coordinator.decision_rows.sample(s, "selection", 1234, 16)
    assert spec.data and spec.rows.startswith("gen:")
    ev_id = _record(coordinator, spec, number)
    _rotate(coordinator)
    served = _served(client, number, ev_id)
    assert served["sample"]["rows"] is None  # generated rows come from the secret only
    task = audit.rebuild_task(served, bytes.fromhex(secret))
    assert task.sample.key() == spec.key() and task.sample.data == spec.data
    assert audit.rebuild_task(served, bytes(32)).sample.digest != spec.digest  # other secret


def test_a_private_pools_rows_are_served_once_revealed_and_reused_as_served(
    coordinator: Any,  # noqa: F811
    client: Any,  # noqa: F811
) -> None:
    from mergenet.coordinator.decision_rows import DecisionRows
    from mergenet.db import transaction

    rows = [
        {"input": f"q{i}\nA. x\nB. y\nAnswer:", "output": "A", "subject": f"s{i % 2}"}
        for i in range(8)
    ]
    coordinator.decision_rows = DecisionRows("pool", pool=rows, per_task=2)
    number, secret = _open_epoch(coordinator)
    with transaction(coordinator.factory) as s:
        spec = coordinator.decision_rows.sample(s, "contribution", 99, 16)
    ev_id = _record(coordinator, spec, number)
    assert client.get(f"/api/row-epochs/{number}/evaluations").status_code == 409
    _rotate(coordinator)
    served = _served(client, number, ev_id)
    assert served["sample"]["rows"] == [dict(r) for r in spec.data]
    assert audit.rebuild_task(served, bytes.fromhex(secret)).sample.key() == spec.key()


@pytest.mark.chain
def test_the_commitment_on_chain_must_be_the_served_one(deployed: Any) -> None:  # noqa: F811
    from mergenet.node import audit_run
    from mergenet.rewards.seeds import commit_seed

    secret = bytes(range(32))
    commitment = hashlib.sha256(secret).hexdigest()
    commit_seed(deployed.contracts, deployed.owner, 3, commitment)
    info = deployed.deployment.public_json()
    epoch = {"number": 3, "commitment": commitment, "secret": secret.hex()}
    assert "holds the same" in audit_run.verify_on_chain(epoch, info, None)
    later = audit_run.verify_on_chain(epoch, info, None, "2999-01-01T00:00:00+00:00")
    assert "before its first evaluation" in later and "warning" not in later
    earlier = audit_run.verify_on_chain(epoch, info, None, "2000-01-01T00:00:00")
    assert "warning: the commitment reached the chain at" in earlier
    with pytest.raises(audit.AuditMismatch, match="holds 0000"):  # never committed
        audit_run.verify_on_chain(epoch | {"number": 4}, info, None)
    forged = hashlib.sha256(bytes(32)).hexdigest()
    with pytest.raises(audit.AuditMismatch, match=f"serves {forged}"):
        audit_run.verify_on_chain(epoch | {"commitment": forged}, info, None)
    assert "skipped" in audit_run.verify_on_chain(epoch, None, None)
    assert "skipped" in audit_run.verify_on_chain(epoch, {"rpc_url": "x", "seeds": ""}, None)


# ------------------------------------------------------------------ a live epoch, end to end

LIVE_BUDGET = 2
"""Loop evaluations after the two contributions' scorings: 4+ evaluations in all. Measured:
163-240 s for the whole test (the audit of 4 evaluations 56 s) on 2 shared AMD EPYC cores
under load from other jobs; every re-run matched with max |Δ| 0 (bit for bit)."""


def _submit(http: Any, world: Any, count: int) -> None:
    from mergenet.protocol.signing import SigningDomain

    from ..coordinator.conftest import account, signed_form

    parent = http.get("/api/versions/current").json()["hash"]
    domain = SigningDomain.from_json(http.get("/api/info").json()["signing_domain"])
    for i, name in enumerate(world.contributor_names[:count]):
        path = world.delta_path(name)
        with path.open("rb") as fh:
            r = http.post(
                "/api/contributions",
                data=signed_form(account(i), path, parent, 1, domain),
                files={"file": ("delta.safetensors", fh)},
            )
        assert r.status_code == 201, r.text


def _settled(http: Any) -> bool:
    """Both contributions scored, the budget spent and nothing in flight."""
    import re

    history = http.get("/api/history").json()
    scored = all(c["status"] not in ("received", "scoring") for c in history["contributions"])
    loop = sum(e["purpose"] in ("selection", "confirmation") for e in history["evaluations"])
    busy = re.search(r"^mergenet_evaluations_in_flight (\S+)$", http.get("/metrics").text, re.M)
    return scored and loop >= LIVE_BUDGET and busy is not None and float(busy.group(1)) == 0


def _tamper(data_dir: Path, evaluation_id: int) -> None:
    """Change one recorded number as a dishonest coordinator would (ppl of one task)."""
    import sqlalchemy as sa

    engine = sa.create_engine(f"sqlite:///{data_dir / 'mergenet.db'}")
    with engine.begin() as conn:
        row = conn.execute(
            sa.text("SELECT result FROM evaluations WHERE id = :i"), {"i": evaluation_id}
        ).one()
        result = json.loads(row[0]) if isinstance(row[0], str) else row[0]
        task = sorted(result["tasks"])[0]
        result["tasks"][task]["ppl"] *= 0.99
        conn.execute(
            sa.text("UPDATE evaluations SET result = :r WHERE id = :i"),
            {"r": json.dumps(result), "i": evaluation_id},
        )
    engine.dispose()


def _rotate_db(data_dir: Path) -> tuple[int, int]:
    from mergenet.coordinator.row_epochs import rotate
    from mergenet.db import make_engine, make_session_factory, transaction

    engine = make_engine(f"sqlite:///{data_dir / 'mergenet.db'}")
    try:
        with transaction(make_session_factory(engine)) as s:
            closed, opened = rotate(s)
            return closed.number, opened.number
    finally:
        engine.dispose()


@pytest.mark.world
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_audit_reproduces_a_live_epoch(
    cworld: Any,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import time

    from typer.testing import CliRunner

    from mergenet.cli import app

    from ..coordinator.server import CoordinatorProcess

    env = {
        "MERGENET_COORDINATOR_FEED_SECONDS": "0",
        "MERGENET_COORDINATOR_ROW_EPOCH_SECONDS": "0",
    }
    live = CoordinatorProcess(
        cworld, tmp_path / "data", workers=1, max_evaluations=LIVE_BUDGET, extra_env=env
    )
    # the audit's own artifact cache (fetched over HTTP), set after the coordinator's env
    monkeypatch.setenv("MERGENET_CACHE_DIR", str(tmp_path / "audit-cache"))
    live.start()
    try:
        with live.client() as http:
            _submit(http, cworld, 2)
            deadline = time.monotonic() + 600
            settled = 0
            while settled < 2:  # twice, 2 s apart: not a gap between two tasks
                assert time.monotonic() < deadline, "the loop did not settle"
                time.sleep(2)
                settled = settled + 1 if _settled(http) else 0
            closed, opened = _rotate_db(live.data_dir)
            page = http.get(f"/api/row-epochs/{closed}/evaluations").json()
            ids = [e["id"] for e in page["evaluations"]]
            assert len(ids) >= 2 + LIVE_BUDGET, page
            assert http.get(f"/api/row-epochs/{opened}").json()["secret"] is None
            assert http.get(f"/api/row-epochs/{opened}/evaluations").status_code == 409

        runner = CliRunner()
        ok = runner.invoke(app, ["audit", str(closed), "--coordinator", live.url])
        print(ok.output)
        assert ok.exit_code == 0, ok.output
        assert f"{len(ids)} of {len(ids)} evaluations match" in ok.output
        assert "largest |Δ| 0" in ok.output  # same machine, one thread: bit for bit

        _tamper(live.data_dir, ids[1])
        bad = runner.invoke(
            app, ["audit", str(closed), "--coordinator", live.url, "--evaluation", str(ids[1])]
        )
        assert bad.exit_code == 1, bad.output
        assert f"evaluation {ids[1]} does not match" in bad.output and "ppl" in bad.output

        still_open = runner.invoke(app, ["audit", str(opened), "--coordinator", live.url])
        assert still_open.exit_code == 2 and "still open" in still_open.output
    finally:
        live.stop()

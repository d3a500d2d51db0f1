"""Tasks carry their rows: a JSON round trip (what Celery carries) keeps them, and caches key
on (name, n, seed, digest of the rows), so one seed on other rows is another sample."""

from __future__ import annotations

import json

from mergenet.protocol.evaluation import EvalTask, SampleSpec, WorkerEnv

ROWS = (
    {"input": "What is 1+1?\nA. 2\nB. 3\nC. 4\nD. 5\nAnswer:", "output": "A", "subject": "add"},
    {"input": "What is 2+2?\nA. 3\nB. 4\nC. 5\nD. 6\nAnswer:", "output": "B", "subject": "add"},
)


def test_rows_survive_the_json_round_trip() -> None:
    task = EvalTask("3:selection:9", {"parent": "a" * 64}, SampleSpec("gen:x", 2, 9, ROWS))
    back = EvalTask.from_json(json.loads(json.dumps(task.to_json())))
    assert back == task
    assert isinstance(back.sample.data, tuple)
    assert back.sample.key() == task.sample.key()


def test_the_key_tells_rows_apart() -> None:
    a = SampleSpec("gen:x", 2, 9, ROWS)
    b = SampleSpec("gen:x", 2, 9, ROWS[:1])
    assert a.key() != b.key() and len(a.digest) == 64
    hash(a.key())
    assert SampleSpec("dev", 2, 9).digest == ""


def test_worker_env_has_no_row_hashes_and_reads_old_payloads() -> None:
    env = WorkerEnv.from_json({"coordinator_url": "http://127.0.0.1:1", "row_set_sha256": {}})
    assert env.over_http and "row_set_sha256" not in env.to_json()

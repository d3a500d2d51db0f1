"""The schema has one path, Alembic: ``mergenet rewards accrue`` on a fresh data dir, then the
coordinator's start (which migrates) both succeed, and the accrual is still there.

Before the fix the CLI created the ledger tables directly, and the next ``coordinator up``
failed its migration with "table reward_epochs already exists".
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

ACCOUNT = "0x" + "ab" * 20


def _tiny_base(folder: Path) -> Path:
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True)
    save_file({"embed.weight": torch.ones(4, 2)}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text("{}")
    return folder


def test_rewards_accrue_then_coordinator_start_on_a_fresh_data_dir(tmp_path: Path) -> None:
    from mergenet.config import Settings
    from mergenet.coordinator.runtime import Coordinator
    from mergenet.coordinator.settings import CoordinatorSettings

    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MERGENET_")}
    env["MERGENET_DATA_DIR"] = str(data)
    cli = [sys.executable, "-c", "from mergenet.cli import app; app()"]
    args = ["rewards", "accrue", "--contribution", "c1", "--account", ACCOUNT, "--amount", "2"]
    done = subprocess.run(cli + args, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr

    rows = tmp_path / "dev.jsonl"
    rows.write_text('{"input": "1+1=\\nAnswer:", "output": "2", "subject": "add"}\n')
    coord = Coordinator(
        Settings(data_dir=data, database_url=None),
        CoordinatorSettings(base_dir=_tiny_base(tmp_path / "base"), dev_rows=rows, workers=0),
    ).open()
    coord.close()
    with sqlite3.connect(data / "mergenet.db") as conn:
        accruals = conn.execute("select contribution_id, amount from reward_accruals").fetchall()
        (revision,) = conn.execute("select version_num from alembic_version").fetchone()
    assert accruals == [("c1", str(2 * 10**18))]
    assert revision  # the ledger's tables came from the migrations, which Alembic recorded

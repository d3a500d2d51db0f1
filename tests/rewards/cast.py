"""Reading the chain with foundry's ``cast``: an independent client to check balances against."""

from __future__ import annotations

import subprocess

from mergenet.rewards.anvil import foundry_binary


def cast_balance(rpc_url: str, token: str, account: str) -> int:
    out = subprocess.run(
        [
            str(foundry_binary("cast")),
            "call",
            token,
            "balanceOf(address)(uint256)",
            account,
            "--rpc-url",
            rpc_url,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    return int(out.split()[0])

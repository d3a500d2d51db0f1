"""The demo's closing tables: versions, held-out scores, rounds, contributors and rewards, H(s)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from mergenet.rewards.units import UNIT


def render_summary(console: Console, data: dict[str, Any]) -> None:
    console.rule("[bold]summary")
    console.print(_versions(data))
    console.print(_scores(data))
    if len(data.get("rounds", [])) > 1:
        console.print(_rounds(data))
    console.print(_contributors(data))
    console.print(_strategies(data))


def _versions(data: dict[str, Any]) -> Table:
    t = Table(title=f"core versions ({data['evaluations']} loop evaluations)")
    for col in ("#", "version", "parent", "strategy", "gain confirmed", "at evaluation"):
        t.add_column(
            col, justify="right" if col in ("#", "gain confirmed", "at evaluation") else "left"
        )
    for i, v in enumerate(data["versions"]):
        t.add_row(
            str(i),
            v["hash"][:12],
            (v["parent_hash"] or "")[:12] or "—",
            v.get("strategy") or "base",
            "—" if v["gain"] is None else f"{v['gain']:+.4f}",
            "—" if v["evaluations_at_accept"] is None else str(v["evaluations_at_accept"]),
        )
    return t


def _scores(data: dict[str, Any]) -> Table:
    t = Table(title="held-out macro accuracy (choice log-likelihood; never used for selection)")
    t.add_column("model")
    t.add_column("acc", justify="right")
    for name, value in data["reference"].items():
        t.add_row(name, f"{value:.3f}")
    return t


def _rounds(data: dict[str, Any]) -> Table:
    """Per round: who took part, what the loop accepted, the compute behind the core so far
    (steps × tokens; the monolith's in the title) and the core's held-out accuracy."""
    t = Table(
        title="rounds (training compute: fine-tuning tokens so far; the monolith's "
        f"{data['monolith_tokens'] / 1e6:.2f}M)"
    )
    for col in ("round", "contributors", "accepted", "versions", "evaluations", "tokens", "core"):
        t.add_column(col, justify="left" if col == "contributors" else "right")
    for r in data["rounds"]:
        who = str(r["contributors"]) + (f" ({', '.join(r['absent'])} out)" if r["absent"] else "")
        t.add_row(
            str(r["round"]),
            who,
            str(r["accepted"]),
            str(r["versions"]),
            str(r["evaluations"]),
            f"{r['tokens'] / 1e6:.2f}M",
            f"{r['core']:.3f}",
        )
    return t


def _contributors(data: dict[str, Any]) -> Table:
    t = Table(title="contributors")
    cols = ("node", "tasks", "address", "sent", "S", "merged into", "accrued", "claimed", "balance")
    for col in cols:
        t.add_column(
            col,
            justify="right" if col in ("sent", "S", "accrued", "claimed", "balance") else "left",
        )
    for n in data["nodes"]:
        t.add_row(
            n["name"],
            ", ".join(n["tasks"]),
            n["address"][:10] + "…",
            str(n.get("submitted", 1)),
            "—" if n["score"] is None else f"{n['score']:.4f}",
            f"{len(n['in_versions'])} version(s)" if n["in_versions"] else "—",
            _tokens(n["accrued"]),
            _tokens(n["claimed"]),
            _tokens(n["balance"]) if n["balance"] else "—",
        )
    return t


def _tokens(base_units: int) -> str:
    """Four decimals for the table; the ledger and the chain keep exact base units."""
    return f"{base_units / UNIT:.4f}"


def _strategies(data: dict[str, Any]) -> Table:
    t = Table(title="strategy distribution H(s), top 6")
    t.add_column("strategy")
    t.add_column("H", justify="right")
    top = sorted(data["strategies"].items(), key=lambda kv: -kv[1])[:6]
    for name, h in top:
        t.add_row(name, f"{h:.3f}")
    return t

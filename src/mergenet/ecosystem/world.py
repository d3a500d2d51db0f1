"""Build the self-contained model world: data, tokenizer, base, specialists, monolith.

Everything is derived from ``WorldSpec`` (one seed) and cached under a folder named by the
spec's digest. Each stage writes into a temporary folder and renames it into place when it
is complete, so an interrupted build resumes at the first unfinished stage and a finished
world is reused instantly.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

from mergenet.ecosystem.rows import draw_items
from mergenet.ecosystem.spec import ContributorSpec, WorldSpec
from mergenet.ecosystem.tasks import TASKS
from mergenet.evaluator.encoding import encode_completions, encode_texts, letter_prompt
from mergenet.evaluator.items import Item, row_text
from mergenet.protocol.jsonl import read_jsonl

StageProgress = Callable[[str, int, int, str], None]
"""(stage, done, total, note) — the CLI draws rich progress bars from it."""


@dataclass(frozen=True)
class World:
    """Paths into a built world."""

    root: Path
    spec: WorldSpec

    @property
    def tokenizer_dir(self) -> Path:
        return self.root / "tokenizer"

    @property
    def base_dir(self) -> Path:
        return self.root / "base"

    @property
    def monolith_dir(self) -> Path:
        return self.root / "monolith"

    def contributor_dir(self, name: str) -> Path:
        return self.root / "contributors" / name / "model"

    def delta_path(self, name: str) -> Path:
        return self.root / "contributors" / name / "delta.safetensors"

    def contributor_data(self, name: str) -> Path:
        return self.root / "contributors" / name / "train.jsonl"

    def dharma_path(self, split: str) -> Path:
        return self.root / "dharma" / f"{split}.jsonl"

    @property
    def contributor_names(self) -> list[str]:
        return [c.name for c in self.spec.contributors]

    def items(self, split: str) -> list[Item]:
        """The world's Dharma items of ``split`` ("dev" or "heldout")."""
        return [
            Item(r["subject"], r["question"], tuple(r["choices"]), r["answer_index"])
            for r in read_jsonl(self.root / "dharma" / f"{split}.items.jsonl")
        ]


def world_dir(spec: WorldSpec, root: Path) -> Path:
    return root / f"world-{spec.digest()}"


def _stage(path: Path, build: Callable[[Path], object]) -> None:
    """Run ``build`` into a temporary sibling of ``path`` and rename it into place."""
    if path.exists():
        return
    tmp = path.with_name(f".{path.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()
    tmp.parent.mkdir(parents=True, exist_ok=True)
    build(tmp)
    tmp.rename(path)


def _write_jsonl(path: Path, rows: Sequence[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def _train_items(spec: WorldSpec, task: str) -> list[Item]:
    return draw_items(
        TASKS[task], n=spec.train_rows_per_task, seed=spec.seed, split="train", distinct=False
    )


def _build_data(spec: WorldSpec, out: Path) -> None:
    sizes = {"dev": spec.eval_rows_per_task, "heldout": spec.heldout_rows_per_task}
    for split, n in sizes.items():
        items = [
            it
            for task in spec.tasks
            for it in draw_items(TASKS[task], n=n, seed=spec.seed, split=split)
        ]
        _write_jsonl(out / f"{split}.jsonl", [it.dharma_row() for it in items])
        _write_jsonl(
            out / f"{split}.items.jsonl",
            [
                {
                    "subject": it.subject,
                    "question": it.question,
                    "choices": list(it.choices),
                    "answer_index": it.answer_index,
                }
                for it in items
            ],
        )


def _tokenizer_texts(spec: WorldSpec) -> list[str]:
    texts = []
    for task in spec.tasks:
        for it in _train_items(spec, task)[:1000]:
            dharma = it.dharma_row()
            texts += [row_text(it.completion_row()), row_text(dharma)]
            texts.append(dharma["input"] + " " + dharma["output"])  # plain "Answer: C" form
    return texts


def _encode_pool(
    spec: WorldSpec, tokenizer: Any, tasks: Sequence[str], *, answer_only: bool
) -> list[tuple[list[int], int]]:
    """Training rows for ``tasks``: completion rows, with ``mc_fraction`` in Dharma form.

    ``answer_only`` trains only the answer tokens (completion-only loss): the question's
    random digits and letters are unpredictable, and on whole rows they drown the signal.
    """

    pool: list[tuple[list[int], int]] = []
    for task in tasks:
        items = _train_items(spec, task)
        n_mc = int(len(items) * spec.mc_fraction)
        mc_rows = encode_texts(tokenizer, [row_text(it.dharma_row()) for it in items[:n_mc]])
        mc_prompts = encode_texts(tokenizer, [letter_prompt(it) for it in items[:n_mc]])
        pool += [
            (ids, len(p) if answer_only else 0) for ids, p in zip(mc_rows, mc_prompts, strict=True)
        ]
        pool += [
            (ids, start if answer_only else 0)
            for ids, start in encode_completions(tokenizer, items[n_mc:])
        ]
    return pool


def _new_model(spec: WorldSpec, tokenizer: Any) -> Any:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    m = spec.model
    config = LlamaConfig(
        vocab_size=m.vocab_size,
        hidden_size=m.hidden_size,
        num_hidden_layers=m.num_hidden_layers,
        num_attention_heads=m.num_attention_heads,
        num_key_value_heads=m.num_attention_heads,
        intermediate_size=m.intermediate_size,
        max_position_embeddings=m.max_position_embeddings,
        tie_word_embeddings=False,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(spec.seed)
    return LlamaForCausalLM(config)


def _train_and_save(
    spec: WorldSpec,
    model: Any,
    tokenizer: Any,
    pool: list[tuple[list[int], int]],
    *,
    steps: int,
    lr: float,
    seed: int,
    out: Path,
    stage: str,
    progress: StageProgress,
) -> dict[str, Any]:
    from mergenet.ecosystem.training import TrainConfig, sample_rows, train_lm

    cfg = TrainConfig(
        steps=steps,
        batch_size=spec.batch_size,
        seq_len=spec.seq_len,
        lr=lr,
        seed=seed,
        warmup=min(20, steps // 5),
        prompt_weight=spec.prompt_weight,
    )
    started = time.time()
    losses = train_lm(
        model,
        sample_rows(pool, seed),
        cfg,
        on_step=lambda s, loss: progress(stage, s, steps, f"loss {loss:.3f}"),
    )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    log = {
        "steps": steps,
        "lr": lr,
        "seconds": time.time() - started,
        "first_loss": losses[0],
        "last_loss": sum(losses[-5:]) / len(losses[-5:]),
    }
    (out / "training.json").write_text(json.dumps(log, indent=2))
    return log


def _save_delta(base_dir: Path, tuned_dir: Path, out: Path) -> None:
    from safetensors.torch import load_file, save_file

    base = load_file(base_dir / "model.safetensors")
    tuned = load_file(tuned_dir / "model.safetensors")
    save_file({k: (tuned[k] - base[k]).contiguous() for k in base}, str(out))


@contextmanager
def _build_lock(path: Path) -> Iterator[None]:
    """One builder per world at a time; a second one waits, then finds the world built."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build_world(spec: WorldSpec, root: Path, *, progress: StageProgress | None = None) -> World:
    """Build (or reuse) the world described by ``spec`` under ``root``."""
    world = World(world_dir(spec, root), spec)
    if (world.root / "manifest.json").exists():
        return world
    with _build_lock(root / f".{world.root.name}.lock"):
        if not (world.root / "manifest.json").exists():
            _build_stages(world, progress or (lambda *_: None))
    return world


def _build_stages(world: World, progress: StageProgress) -> None:
    """Data, tokenizer, base, contributors, monolith: each stage skipped if already built."""
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    from mergenet.ecosystem.tokenizer import save_tokenizer, train_tokenizer

    hf_logging.disable_progress_bar()  # the stage bars say it all
    spec = world.spec
    world.root.mkdir(parents=True, exist_ok=True)

    _stage(world.root / "dharma", lambda out: _build_data(spec, out))
    progress("data", 1, 1, "")
    _stage(
        world.tokenizer_dir,
        lambda out: save_tokenizer(
            train_tokenizer(_tokenizer_texts(spec), vocab_size=spec.model.vocab_size), out
        ),
    )
    progress("tokenizer", 1, 1, "")
    tokenizer = AutoTokenizer.from_pretrained(world.tokenizer_dir)
    _stage(world.base_dir, partial(_build_base, world, tokenizer, progress))
    for i, c in enumerate(spec.contributors):
        _stage(
            world.root / "contributors" / c.name,
            partial(_build_contributor, world, tokenizer, progress, c, i),
        )
    _stage(world.monolith_dir, partial(_build_monolith, world, tokenizer, progress))
    manifest = {"digest": spec.digest(), "spec": asdict(spec), "built_at": time.time()}
    tmp = world.root / ".manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2))
    tmp.rename(world.root / "manifest.json")


def _build_base(world: World, tokenizer: Any, progress: StageProgress, out: Path) -> None:
    spec = world.spec
    model = _new_model(spec, tokenizer)
    pool = _encode_pool(spec, tokenizer, spec.tasks, answer_only=spec.base_answer_only)
    _train_and_save(
        spec,
        model,
        tokenizer,
        pool,
        steps=spec.base_steps,
        lr=spec.base_lr,
        seed=spec.seed,
        out=out,
        stage="base",
        progress=progress,
    )


def _build_contributor(
    world: World,
    tokenizer: Any,
    progress: StageProgress,
    c: ContributorSpec,
    index: int,
    out: Path,
) -> None:
    from transformers import LlamaForCausalLM

    spec = world.spec
    model = LlamaForCausalLM.from_pretrained(world.base_dir)
    pool = _encode_pool(spec, tokenizer, c.tasks, answer_only=True)
    model_dir = out / "model"
    _train_and_save(
        spec,
        model,
        tokenizer,
        pool,
        steps=spec.contributor_steps,
        lr=spec.contributor_lr,
        seed=spec.seed * 1000 + index + 1,
        out=model_dir,
        stage=f"contributor {c.name}",
        progress=progress,
    )
    _save_delta(world.base_dir, model_dir, out / "delta.safetensors")
    rows = [it.completion_row() for t in c.tasks for it in _train_items(spec, t)]
    _write_jsonl(out / "train.jsonl", rows)


def _build_monolith(world: World, tokenizer: Any, progress: StageProgress, out: Path) -> None:
    from transformers import LlamaForCausalLM

    spec = world.spec
    model = LlamaForCausalLM.from_pretrained(world.base_dir)
    tasks = [t for c in spec.contributors for t in c.tasks]
    pool = _encode_pool(spec, tokenizer, tasks, answer_only=True)
    _train_and_save(
        spec,
        model,
        tokenizer,
        pool,
        steps=spec.monolith_steps,
        lr=spec.contributor_lr,
        seed=spec.seed * 1000,
        out=out,
        stage="monolith",
        progress=progress,
    )

"""Print, as JSON, how this environment's transformers reads a model folder's config.

The world's config is written by transformers 5 and read by the Petals side's 4.34; a test
runs this module in ``.venv-petals`` and compares the fields that shape the computation with
what transformers 5 reads, so a silently dropped or renamed field (e.g. ``rope_theta`` moving
into ``rope_parameters``) fails a test instead of skewing scores.

Usage: ``python -m mergenet.petals.side.config_probe MODEL_DIR``.
"""

from __future__ import annotations

import json
import sys

FIELDS = (
    "model_type",
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "max_position_embeddings",
    "rms_norm_eps",
    "rope_theta",
    "rope_scaling",
    "hidden_act",
    "tie_word_embeddings",
    "attention_bias",
)


def main() -> None:
    import transformers
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(sys.argv[1])
    out = {f: getattr(config, f, None) for f in FIELDS}
    out["config_class"] = type(config).__name__
    out["transformers"] = transformers.__version__
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()

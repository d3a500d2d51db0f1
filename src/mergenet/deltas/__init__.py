"""Delta format: safetensors I/O, hashing, extraction, PEFT LoRA expansion and validation.

A delta is ``fine-tuned − parent`` for every tensor of the parent model, stored as
safetensors in the parent's dtype (or kept as a PEFT LoRA adapter and expanded per tensor).
Submodules: ``io`` (header-first reading, streaming writer), ``hashing``, ``models`` (lazy
model folders), ``sources`` (delta sources), ``extract``, ``lora``, ``validate``, ``errors``.
"""

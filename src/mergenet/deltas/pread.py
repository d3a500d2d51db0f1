"""Read safetensors tensors with ``pread`` instead of a memory map.

``safe_open`` (and so :class:`~mergenet.deltas.io.TensorFile`) maps the whole file: every page a
merge touches stays resident in the reading process (``RssFile``) until the file is closed, so
a worker that merges one 396 MiB delta holds 396 MiB more than the merge needs. Here each tensor
is read with ``os.preadv`` into memory the caller owns — a fresh tensor, or an existing one
(``read_into``: the bytes land in the model's own parameter, no temporary) — through the page
cache, which the kernel does not charge to the process. The header is parsed and checked by
:func:`~mergenet.deltas.io.read_header` (size caps, spans that tile the file) before a byte of
tensor data is read.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch

from mergenet.deltas.io import DTYPES, TensorSpec, read_header
from mergenet.deltas.models import ModelSource
from mergenet.deltas.sources import DeltaSource, as_source


class PreadTensors:
    """The tensors of one or more safetensors files (a sharded model: several), by name."""

    def __init__(self, paths: Sequence[str | Path]):
        self._fds: list[int] = []
        self._where: dict[str, tuple[int, int, int]] = {}  # name → (fd index, offset, nbytes)
        self._specs: dict[str, TensorSpec] = {}
        try:
            for path in paths:
                header = read_header(path)
                self._fds.append(os.open(path, os.O_RDONLY | os.O_CLOEXEC))
                for name, spec in header.specs.items():
                    if name in self._specs:
                        raise ValueError(f"tensor {name!r} is in more than one file")
                    start, end = header.offsets[name]
                    self._where[name] = (len(self._fds) - 1, header.data_start + start, end - start)
                    self._specs[name] = spec
        except BaseException:
            self.close()
            raise

    @classmethod
    def of_model(cls, folder: str | Path) -> PreadTensors:
        """A model folder's weights (single or sharded ``model.safetensors``) or a bare file."""
        return cls(ModelSource(folder).files())

    def names(self) -> list[str]:
        return list(self._specs)

    def spec(self, name: str) -> TensorSpec:
        return self._specs[name]

    def read(self, name: str) -> torch.Tensor:
        """A fresh tensor holding ``name`` as stored (its own memory, nothing mapped)."""
        spec = self._specs[name]
        out = torch.empty(spec.shape, dtype=DTYPES[spec.dtype])
        self._read_bytes(name, out)
        return out

    def read_into(self, name: str, out: torch.Tensor) -> None:
        """Overwrite ``out`` with ``name``: straight into its memory when dtype, shape and
        layout match (a float32 parameter read from a float32 file), else through a fresh
        tensor and ``copy_`` (which casts, e.g. a bfloat16 file into a float32 model)."""
        spec = self._specs[name]
        same = DTYPES[spec.dtype] == out.dtype and tuple(out.shape) == spec.shape
        if same and out.is_contiguous() and out.device.type == "cpu":
            self._read_bytes(name, out)
        else:
            with torch.no_grad():
                out.copy_(self.read(name))

    def _read_bytes(self, name: str, out: torch.Tensor) -> None:
        idx, offset, nbytes = self._where[name]
        buf = out.detach().reshape(-1).view(torch.uint8).numpy().data.cast("B")
        if buf.nbytes != nbytes:
            raise ValueError(f"{name}: {nbytes} bytes stored, {buf.nbytes} bytes to fill")
        done = 0
        while done < nbytes:
            got = os.preadv(self._fds[idx], [buf[done:]], offset + done)
            if got <= 0:
                raise OSError(f"{name}: the file ended {nbytes - done} bytes early")
            done += got

    def close(self) -> None:
        fds, self._fds = self._fds, []
        for fd in fds:
            os.close(fd)

    def __enter__(self) -> PreadTensors:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


class PreadDelta:
    """A dense delta file as a :class:`~mergenet.deltas.sources.DeltaSource`, read with
    ``pread`` (same tensors as ``DenseDelta``, none of the file left mapped)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._tensors = PreadTensors([self.path])
        self._names = set(self._tensors.names())

    def names(self) -> list[str]:
        return sorted(self._names)

    def get(self, name: str) -> torch.Tensor | None:
        return self._tensors.read(name) if name in self._names else None


def pread_source(path: str | Path) -> DeltaSource:
    """A stored delta: a dense file read with ``pread``; an adapter folder as ``as_source``
    reads it (LoRA factors are small; the products are computed per tensor)."""
    p = Path(path)
    return as_source(p) if p.is_dir() else PreadDelta(p)

"""An on-disk cache of sentence embeddings for frozen encoders, keyed by (model hash, text).

A frozen encoder maps the same text to the same vector, so an embedding computed once serves every
later episode, draw and process. Each entry is one file ``ROOT/<key[:2]>/<key>.f32`` holding the
vector's float32 bytes, where ``key = sha256(model_hash + "\\0" + text)``: the model hash covers every
file that changes the output (see :func:`metadl.models.text.sentence.hash_files`), so a changed
weight, tokenizer or pooling file gives new keys and the old entries are simply never read again.

- **Atomic**: entries are written to a temporary file and renamed into place
  (:func:`metadl.fileio.atomic_write_bytes`), so a killed process leaves whole entries or none; a
  file of the wrong size is treated as a miss and removed.
- **Bounded**: after writes adding up to an eighth of ``max_bytes``, the folder is scanned and the
  least recently used entries (a hit touches its file) are deleted until it holds 80% of
  ``max_bytes``; stale temporary files are removed by the same scan.

Example:
    >>> import tempfile
    >>> cache = EmbeddingCache(tempfile.mkdtemp())
    >>> cache.get("model-a", ["hi"], dim=2)
    [None]
    >>> cache.put("model-a", ["hi"], torch.tensor([[0.5, 1.0]]))
    >>> cache.get("model-a", ["hi"], dim=2)[0].tolist(), cache.get("model-b", ["hi"], dim=2)
    ([0.5, 1.0], [None])
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from metadl.fileio import atomic_write_bytes

DEFAULT_MAX_BYTES = 2 * 2**30
_STALE_TMP_SECONDS = 3600


def default_cache_dir() -> Path:
    """``$METADL_CACHE`` or ``~/.cache/metadl``."""
    return Path(os.environ.get("METADL_CACHE", Path.home() / ".cache" / "metadl"))


class EmbeddingCache:
    """Embeddings on disk under ``root`` (see the module docstring), at most about ``max_bytes``."""

    def __init__(self, root: str | os.PathLike[str], *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes < 1:
            raise ValueError(f"max_bytes={max_bytes} must be >= 1")
        self.root, self.max_bytes = Path(root), max_bytes
        self._written = 0
        self.hits = self.misses = 0

    @staticmethod
    def key(model_hash: str, text: str) -> str:
        return hashlib.sha256(f"{model_hash}\0{text}".encode()).hexdigest()

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.f32"

    def get(self, model_hash: str, texts: Sequence[str], *, dim: int) -> list[Tensor | None]:
        """The cached ``(dim,)`` float32 vector of each text, or None where it is not cached."""
        out: list[Tensor | None] = []
        for text in texts:
            path = self._path(self.key(model_hash, text))
            try:
                data = path.read_bytes()
            except OSError:
                out.append(None)
                continue
            if len(data) != 4 * dim:  # not ours or damaged: a miss, and make room for a good one
                with contextlib.suppress(OSError):
                    path.unlink()
                out.append(None)
                continue
            with contextlib.suppress(OSError):
                os.utime(path)  # least recently *used* is what eviction removes
            out.append(torch.frombuffer(bytearray(data), dtype=torch.float32))
        self.hits += sum(v is not None for v in out)
        self.misses += sum(v is None for v in out)
        return out

    def put(self, model_hash: str, texts: Sequence[str], vectors: Tensor) -> None:
        """Store ``vectors`` ``(N, dim)`` (any float dtype; stored as float32) for ``texts``."""
        if vectors.dim() != 2 or vectors.shape[0] != len(texts):
            raise ValueError(f"expected ({len(texts)}, dim) vectors, got shape {tuple(vectors.shape)}")
        rows = vectors.detach().to("cpu", torch.float32).contiguous()
        for text, row in zip(texts, rows, strict=True):
            path = self._path(self.key(model_hash, text))
            path.parent.mkdir(parents=True, exist_ok=True)
            data = row.numpy().tobytes()
            atomic_write_bytes(path, data, durable=False)
            self._written += len(data)
        if self._written > self.max_bytes // 8:
            self.evict()

    def evict(self) -> int:
        """Delete least recently used entries until the cache holds at most 80% of ``max_bytes``; returns
        the number deleted. Temporary files older than an hour (from killed writers) go too."""
        self._written = 0
        entries: list[tuple[float, int, Path]] = []
        now = time.time()
        for folder in self.root.glob("??"):
            for path in folder.iterdir():
                try:
                    st = path.stat()
                except OSError:
                    continue
                if path.name.startswith(".tmp-"):
                    if now - st.st_mtime > _STALE_TMP_SECONDS:
                        with contextlib.suppress(OSError):
                            path.unlink()
                    continue
                entries.append((st.st_mtime, st.st_size, path))
        total = sum(size for _, size, _ in entries)
        if total <= self.max_bytes:
            return 0
        deleted = 0
        for _, size, path in sorted(entries, key=lambda e: e[0]):
            if total <= 0.8 * self.max_bytes:
                break
            with contextlib.suppress(OSError):
                path.unlink()
                deleted += 1
            total -= size
        return deleted

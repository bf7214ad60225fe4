"""Checkpoints that survive ``kill -9`` and are checked before they are trusted.

A checkpoint file is a short text header followed by a ``torch.save`` payload::

    METADL-CHECKPOINT
    v1 bytes=<payload length> sha256=<hex digest of the payload>
    <payload>

Writing is atomic: the bytes go to a temporary file in the same folder, which is flushed, fsynced and
renamed over the target, and the folder is fsynced so the rename itself is durable. A crash at any
moment leaves either the old file or the new one, never a mix. Reading checks the header, the length
and the sha256 before unpickling anything, and unpickles with ``torch.load(weights_only=True)``: only
tensors, numbers, strings, ``None`` and lists / tuples / dicts of them, so loading never runs code from
the file. A truncated or corrupt file raises :class:`CorruptCheckpointError` naming it.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import re
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from metadl.fileio import atomic_write_bytes

MAGIC = b"METADL-CHECKPOINT\n"
_HEADER = re.compile(rb"v1 bytes=(\d+) sha256=([0-9a-f]{64})\n")


class CorruptCheckpointError(ValueError):
    """A checkpoint file is truncated, corrupt or not a checkpoint; the message names the file."""


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> None:
    """Write ``state`` (tensors, numbers, strings, None, and lists / dicts of them) to ``path`` atomically.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "last.ckpt"
        >>> save_checkpoint(p, {"iteration": 3, "w": torch.ones(2)})
        >>> load_checkpoint(p)["iteration"]
        3
    """
    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getvalue()
    header = b"v1 bytes=%d sha256=%s\n" % (len(payload), hashlib.sha256(payload).hexdigest().encode())
    atomic_write_bytes(path, MAGIC + header + payload)


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`, after checking its length and sha256."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"checkpoint {path} does not exist") from None
    if not data.startswith(MAGIC):
        raise CorruptCheckpointError(
            f"{path} is not a metadl checkpoint (it does not start with {MAGIC[:-1]!r})"
        )
    end = data.find(b"\n", len(MAGIC))
    match = _HEADER.fullmatch(data[len(MAGIC) : end + 1]) if end >= 0 else None
    if match is None:
        raise CorruptCheckpointError(f"{path}: the checkpoint header is damaged or truncated")
    payload = data[end + 1 :]
    expected = int(match.group(1))
    if len(payload) != expected:
        raise CorruptCheckpointError(
            f"{path} is truncated or was appended to: {len(payload)} payload bytes, the header says {expected}; "
            "resume from another checkpoint or start the run again"
        )
    if hashlib.sha256(payload).hexdigest().encode() != match.group(2):
        raise CorruptCheckpointError(
            f"{path} is corrupt: the sha256 of its payload does not match its header"
        )
    try:
        return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as err:  # an intact payload that unpickles to something disallowed
        raise CorruptCheckpointError(f"{path}: the payload cannot be loaded safely ({err})") from None


def rng_state() -> dict[str, Any]:
    """Every global random state the engine may draw from, in checkpointable form (no numpy objects)."""
    np_state = cast(tuple[str, np.ndarray, int, int, float], np.random.get_state(legacy=True))
    py_state = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *map(float, np_state[2:])],
        "python": [py_state[0], list(py_state[1]), py_state[2]],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), int(pos), int(has_gauss), float(gauss)))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])

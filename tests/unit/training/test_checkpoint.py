"""Checkpoint files: round trip, atomic replacement, and clear refusals of damaged or unsafe files."""

from __future__ import annotations

import hashlib
import io
import os
import random

import numpy as np
import pytest
import torch

import metadl.training.checkpoint as ckpt
from metadl.cli import main
from metadl.training.checkpoint import (
    CorruptCheckpointError,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)


def sample_state() -> dict:
    return {
        "iteration": 7,
        "model": {"w": torch.arange(6.0).view(2, 3)},
        "best": None,
        "names": ["a", "b"],
        "lr": 0.25,
        "rng": rng_state(),
    }


def test_round_trip_keeps_tensors_numbers_strings_and_none(tmp_path):
    save_checkpoint(tmp_path / "c.ckpt", sample_state())
    back = load_checkpoint(tmp_path / "c.ckpt")
    assert (
        back["iteration"] == 7 and back["best"] is None and back["names"] == ["a", "b"] and back["lr"] == 0.25
    )
    assert torch.equal(back["model"]["w"], torch.arange(6.0).view(2, 3))
    assert not list(tmp_path.glob(".*.tmp"))
    assert (tmp_path / "c.ckpt").stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_rng_state_round_trip_restores_every_generator():
    state = rng_state()
    first = (torch.rand(3), np.random.rand(3), random.random())
    set_rng_state(state)
    again = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(first[0], again[0]) and np.array_equal(first[1], again[1]) and first[2] == again[2]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (
            lambda b: b[: len(b) - 100],
            r"is truncated or was appended to: \d+ payload bytes, the header says \d+",
        ),
        (
            lambda b: b[:-50] + bytes([b[-50] ^ 1]) + b[-49:],
            r"is corrupt: the sha256 of its payload does not match",
        ),
        (lambda b: b[:30], r"the checkpoint header is damaged or truncated"),
        (lambda b: b"PK\x03\x04" + b[4:], r"is not a metadl checkpoint"),
        (lambda b: b"", r"is not a metadl checkpoint"),
    ],
    ids=["truncated", "bit-flip", "cut-in-header", "foreign-file", "empty"],
)
def test_damaged_files_are_rejected_naming_the_file(tmp_path, damage, message):
    path = tmp_path / "last.ckpt"
    save_checkpoint(path, sample_state())
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(CorruptCheckpointError, match=message) as err:
        load_checkpoint(path)
    assert str(path) in str(err.value)


class Boom:
    """Unpickling this would run code (a file appears)."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_a_payload_that_would_run_code_is_refused_even_with_a_valid_checksum(tmp_path):
    target = tmp_path / "pwned"
    buffer = io.BytesIO()
    torch.save({"x": Boom(str(target))}, buffer)
    payload = buffer.getvalue()
    header = b"v1 bytes=%d sha256=%s\n" % (len(payload), hashlib.sha256(payload).hexdigest().encode())
    (tmp_path / "evil.ckpt").write_bytes(ckpt.MAGIC + header + payload)
    with pytest.raises(CorruptCheckpointError, match="cannot be loaded safely"):
        load_checkpoint(tmp_path / "evil.ckpt")
    assert not target.exists()


def test_a_failed_write_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    save_checkpoint(path, {"iteration": 1})

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(ckpt.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"iteration": 2})
    monkeypatch.undo()
    assert load_checkpoint(path)["iteration"] == 1
    assert not list(tmp_path.glob(".*.tmp"))


def test_resuming_from_a_corrupt_checkpoint_fails_clearly(tmp_path, capsys, blobs_dataset):
    from engine_data import tiny_raw

    from metadl.config import config_from_dict
    from metadl.training.trainer import train

    run = tmp_path / "run"
    train(
        config_from_dict(tiny_raw(train={"iterations": 5, "val_every": 0})),
        run,
        progress=False,
        log=lambda _: None,
    )
    data = (run / "last.ckpt").read_bytes()
    (run / "last.ckpt").write_bytes(data[: len(data) // 2])
    assert main(["train", "--resume", str(run), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"{run / 'last.ckpt'} is truncated" in err

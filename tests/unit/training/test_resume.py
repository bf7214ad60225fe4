"""Resuming is exact: an interrupted run (an exception, ``kill -9`` of ``metadl train``, or a time limit)
that is resumed ends with the same weights, optimiser state, metrics.csv (but for its wall-clock column)
and saved model, bit for bit, as a run that was never interrupted."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from engine_data import image_config_file, run_torchrun, tiny_raw

import metadl.training.run as run_module
from metadl.cli import main
from metadl.config import config_from_dict
from metadl.training.checkpoint import load_checkpoint
from metadl.training.metrics import read_metrics
from metadl.training.trainer import train

SUBPROCESS_ENV = {**os.environ, "OMP_NUM_THREADS": "1"}  # the tests run torch single-threaded too


def _without_time(path: Path) -> list[str]:
    """The lines of a metrics.csv without its last column, ``time_s`` (wall-clock, never reproducible)."""
    lines = path.read_text().splitlines()
    assert lines[0].endswith(",time_s")
    return [line.rsplit(",", 1)[0] for line in lines]


def assert_same_run(a: Path, b: Path) -> None:
    """Same final weights, optimiser and sampler state, metrics.csv, best checkpoint and saved model."""
    assert _without_time(a / "metrics.csv") == _without_time(b / "metrics.csv")
    for name in ("last.ckpt", "best.ckpt"):
        ca, cb = load_checkpoint(a / name), load_checkpoint(b / name)
        assert ca["iteration"] == cb["iteration"] and ca["best_value"] == cb["best_value"]
        assert ca["model"].keys() == cb["model"].keys()
        for key in ca["model"]:
            assert torch.equal(ca["model"][key], cb["model"][key]), f"{name}: {key} differs"
    la, lb = load_checkpoint(a / "last.ckpt"), load_checkpoint(b / "last.ckpt")
    for sa, sb in zip(la["optimizer"]["state"].values(), lb["optimizer"]["state"].values(), strict=True):
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert torch.equal(la["sampler"]["generator"], lb["sampler"]["generator"])
    assert (a / "model" / "weights.safetensors").read_bytes() == (
        b / "model" / "weights.safetensors"
    ).read_bytes()


def test_resume_after_an_exception_equals_an_uninterrupted_run(blobs_dataset, tmp_path, monkeypatch):
    cfg = config_from_dict(tiny_raw(optimizer={"schedule": "cosine", "warmup": 3}))
    quiet = {"progress": False, "log": lambda _: None}
    train(cfg, tmp_path / "reference", **quiet)

    real_step, calls = run_module.meta_step, []

    def interrupted_step(*args, **kwargs):
        calls.append(1)
        if len(calls) == 13:  # after the checkpoint of iteration 10, before the one of iteration 15
            raise KeyboardInterrupt
        return real_step(*args, **kwargs)

    monkeypatch.setattr(run_module, "meta_step", interrupted_step)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "resumed", **quiet)
    monkeypatch.setattr(run_module, "meta_step", real_step)
    assert load_checkpoint(tmp_path / "resumed" / "last.ckpt")["iteration"] == 10
    assert len((tmp_path / "resumed" / "metrics.csv").read_text().splitlines()) == 1 + 12
    train(None, tmp_path / "resumed", resume=True, **quiet)
    assert_same_run(tmp_path / "reference", tmp_path / "resumed")

    # Resuming a finished run changes nothing.
    train(None, tmp_path / "resumed", resume=True, **quiet)
    assert_same_run(tmp_path / "reference", tmp_path / "resumed")


def test_sessions_cut_by_a_time_limit_add_up_to_the_uninterrupted_run(blobs_dataset, tmp_path):
    cfg = config_from_dict(tiny_raw())
    quiet = {"progress": False, "log": lambda _: None}
    train(cfg, tmp_path / "reference", **quiet)
    first = train(cfg, tmp_path / "limited", time_limit=1e-9, **quiet)  # stops after its first iteration
    assert (first.iterations, first.complete) == (1, False)
    assert load_checkpoint(tmp_path / "limited" / "last.ckpt")["iteration"] == 1
    assert (tmp_path / "limited" / "model" / "metadl.json").is_file()  # usable before it is finished
    sessions = 1
    while not train(None, tmp_path / "limited", resume=True, time_limit=1e-9, **quiet).complete:
        sessions += 1
    assert sessions == 29
    assert_same_run(tmp_path / "reference", tmp_path / "limited")
    times = [row["time_s"] for row in read_metrics(tmp_path / "limited" / "metrics.csv")]
    assert times == sorted(times) and times[0] > 0  # summed over the sessions, never reset


def test_a_run_from_before_the_time_column_resumes_with_its_own_columns(blobs_dataset, tmp_path):
    cfg = config_from_dict(tiny_raw())
    quiet = {"progress": False, "log": lambda _: None}
    train(cfg, tmp_path / "old", time_limit=1e-9, **quiet)
    metrics = tmp_path / "old" / "metrics.csv"
    metrics.write_text("\n".join(line.rsplit(",", 1)[0] for line in metrics.read_text().splitlines()) + "\n")
    assert train(None, tmp_path / "old", resume=True, **quiet).complete
    assert metrics.read_text().splitlines()[0] == "iteration,lr,loss,accuracy,val_accuracy,val_ci95"
    assert len(read_metrics(metrics)) == 30


def start_and_kill(config: Path, run: Path, delay: float = 0.0, resume: bool = False) -> bool:
    """Start ``metadl train`` in a subprocess and ``kill -9`` it once a checkpoint exists (plus ``delay``).

    Returns whether it was killed (False: it finished first).
    """
    args = ["--resume", str(run)] if resume else [str(config), "--out", str(run)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "metadl.cli", "train", *args, "--no-progress"],
        env=SUBPROCESS_ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    seen = (run / "last.ckpt").stat().st_mtime_ns if resume else None
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if (run / "last.ckpt").exists() and (run / "last.ckpt").stat().st_mtime_ns != seen:
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.002)
    proc.wait(timeout=120)
    if proc.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(f"metadl train failed: {proc.stderr.read().decode()}")
    return proc.returncode == -signal.SIGKILL


def test_resume_after_kill_9_equals_an_uninterrupted_run(tmp_path):
    config = image_config_file(tmp_path, iterations=300)
    assert start_and_kill(config, tmp_path / "killed"), "the run finished before it could be killed"
    killed_at = load_checkpoint(tmp_path / "killed" / "last.ckpt")["iteration"]
    assert 5 <= killed_at < 300
    assert main(["train", "--resume", str(tmp_path / "killed"), "--no-progress"]) == 0
    assert main(["train", str(config), "--out", str(tmp_path / "reference"), "--no-progress"]) == 0
    assert_same_run(tmp_path / "reference", tmp_path / "killed")


@pytest.mark.slow
def test_many_kills_at_random_moments_still_give_the_uninterrupted_run(tmp_path):
    config = image_config_file(tmp_path, iterations=400)
    rng = random.Random(0)
    kills = [
        start_and_kill(config, tmp_path / "killed", delay=rng.uniform(0, 0.3), resume=i > 0) for i in range(3)
    ]
    assert kills[0], "the run finished before it could be killed"
    assert main(["train", "--resume", str(tmp_path / "killed"), "--no-progress"]) == 0
    assert main(["train", str(config), "--out", str(tmp_path / "reference"), "--no-progress"]) == 0
    assert_same_run(tmp_path / "reference", tmp_path / "killed")


def test_two_process_data_parallel_run_matches_one_process(tmp_path):
    """``torchrun -m metadl.cli train``: 2 Gloo processes, one shard of the meta-batch each, the main one
    writing the run folder; the result matches a single-process run up to float summation order. (SGD: Adam's
    first steps are about lr * sign(grad), so gradient entries at rounding-noise level would flip whole steps.)"""
    config = image_config_file(tmp_path, iterations=20)
    sgd = ["--set", "optimizer.name=sgd", "--set", "optimizer.lr=0.2"]
    proc = run_torchrun(
        ["-m", "metadl.cli", "train", str(config), "--out", str(tmp_path / "ddp"), "--no-progress", *sgd],
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("run folder") == 2  # both processes finish; only rank 0 logs the rest
    assert main(["train", str(config), "--out", str(tmp_path / "one"), "--no-progress", *sgd]) == 0
    ddp, one = (load_checkpoint(tmp_path / name / "last.ckpt") for name in ("ddp", "one"))
    assert ddp["iteration"] == one["iteration"] == 20
    for key, value in one["model"].items():
        torch.testing.assert_close(ddp["model"][key], value, rtol=1e-4, atol=1e-5, msg=key)
    rows = [read_metrics(tmp_path / name / "metrics.csv") for name in ("ddp", "one")]
    assert [r["loss"] for r in rows[0]] == pytest.approx([r["loss"] for r in rows[1]], rel=1e-4, abs=1e-6)

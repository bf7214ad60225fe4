"""Nothing lost: one process per run folder, no silent restart, nothing non-finite saved, no folder left
by a run that could not start, and a clean stop on SIGTERM / SIGINT (issue 12, items 1, 2, 3, 6, 16)."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
import yaml
from engine_data import image_config_file, tiny_raw

from metadl.algorithms import LEARNERS, Learner
from metadl.algorithms.base import make_output
from metadl.cli import main
from metadl.config import config_from_dict
from metadl.training.checkpoint import load_checkpoint
from metadl.training.meta import NonFiniteLossError
from metadl.training.metrics import read_metrics
from metadl.training.runfolder import RunFolder, RunFolderError
from metadl.training.trainer import train
from metadl.validation import non_finite_tensors

QUIET = {"progress": False, "log": lambda _: None}
SUBPROCESS_ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def hold_lock(folder: Path) -> subprocess.Popen[str]:
    """A separate process that takes the run folder's lock and sleeps; returns once it holds it."""
    code = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from metadl.training.runfolder import RunFolder
        with RunFolder(Path({str(folder)!r})).lock():
            print("locked", flush=True)
            time.sleep(600)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=SUBPROCESS_ENV
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


# -- 1. one process per run folder --------------------------------------------------------------------


def test_a_second_process_is_refused_while_the_run_is_in_use_and_a_dead_holder_is_not_obeyed(
    blobs_dataset, tmp_path
):
    cfg = config_from_dict(tiny_raw(train={"iterations": 4, "val_every": 0}))
    train(cfg, tmp_path / "run", **QUIET)
    holder = hold_lock(tmp_path / "run")
    try:
        with pytest.raises(RunFolderError, match=rf"in use by host \S+ pid {holder.pid} "):
            train(None, tmp_path / "run", resume=True, **QUIET)
        rows = (tmp_path / "run" / "metrics.csv").read_text()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert rows.count("\n") == 1 + 4  # the refused process wrote nothing
    # The kernel dropped the dead process's lock: the run can be resumed (it is complete: nothing to do).
    assert train(None, tmp_path / "run", resume=True, **QUIET).iterations == 4


def test_the_cli_refuses_a_busy_run_folder_with_exit_code_2(blobs_dataset, tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(tiny_raw(train={"iterations": 2, "val_every": 0})))
    holder = hold_lock(tmp_path / "run")
    try:
        assert main(["train", str(config), "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    finally:
        holder.kill()
        holder.wait()
    err = capsys.readouterr().err
    assert "is in use by host" in err and f"pid {holder.pid}" in err and len(err.strip().splitlines()) == 1


# -- 2. no silent restart ------------------------------------------------------------------------------


def test_resume_without_last_checkpoint_refuses_a_run_with_history(blobs_dataset, tmp_path):
    cfg = config_from_dict(tiny_raw(train={"iterations": 6, "val_every": 2}))
    train(cfg, tmp_path / "run", **QUIET)
    (tmp_path / "run" / "last.ckpt").unlink()
    before = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir() if p.is_file()}
    with pytest.raises(RunFolderError, match=r"best\.ckpt, model, metrics\.csv \(6 rows\) but no last\.ckpt"):
        train(None, tmp_path / "run", resume=True, **QUIET)
    after = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir() if p.is_file()}
    assert after == before


# -- 3. nothing non-finite is saved ------------------------------------------------------------------


class InfBufferAfter(Learner):
    """ProtoNet-like toy learner whose finite-loss step makes a buffer infinite from its 5th call on
    (what a huge learning rate does to batch-norm running variances)."""

    calls = 0

    def __init__(self, *, backbone: torch.nn.Module, n_way: int) -> None:
        super().__init__()
        self.backbone, self.n_way = backbone, n_way
        self.register_buffer("running_var", torch.ones(3))

    def forward(self, batch):
        if self.training:
            InfBufferAfter.calls += 1
            if InfBufferAfter.calls >= 5:
                self.running_var.fill_(math.inf)
        t, q = batch.query_x.shape[:2]
        logits = self.backbone(batch.query_x.flatten(0, 1)).view(t, q, -1)[..., : self.n_way]
        return make_output(logits, batch)


def test_a_non_finite_buffer_is_never_checkpointed(blobs_dataset, tmp_path, monkeypatch):
    monkeypatch.setitem(LEARNERS, "inf_buffer", InfBufferAfter)
    monkeypatch.setattr(InfBufferAfter, "calls", 0)
    cfg = config_from_dict(
        tiny_raw(
            learner={"name": "inf_buffer"}, train={"val_every": 1, "checkpoint_every": 2, "val_episodes": 2}
        )
    )
    with pytest.raises(
        NonFiniteLossError, match=r"the training state is no longer finite \(model\.running_var\)"
    ):
        train(cfg, tmp_path / "run", **QUIET)
    for name in ("last.ckpt", "best.ckpt"):
        ckpt = load_checkpoint(tmp_path / "run" / name)
        assert non_finite_tensors(ckpt) == [], name
    assert load_checkpoint(tmp_path / "run" / "last.ckpt")["iteration"] == 4


# -- 6. a run that cannot start leaves nothing that blocks its folder ------------------------------------


def test_a_run_that_fails_before_its_first_iteration_can_be_started_again(blobs_dataset, tmp_path):
    bad = config_from_dict(tiny_raw(dataset={"name": "image_folder", "root": str(tmp_path / "nowhere")}))
    with pytest.raises(FileNotFoundError):
        train(bad, tmp_path / "run", **QUIET)
    assert not (tmp_path / "run").exists()
    good = config_from_dict(tiny_raw(train={"iterations": 2, "val_every": 0}))
    assert train(good, tmp_path / "run", **QUIET).iterations == 2


def test_a_folder_whose_run_never_finished_an_iteration_takes_new_settings(blobs_dataset, tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "config.yaml").write_text(yaml.safe_dump(tiny_raw(seed=5)))  # an older version's leftover
    good = config_from_dict(tiny_raw(train={"iterations": 2, "val_every": 0}))
    assert train(good, folder, **QUIET).iterations == 2
    assert yaml.safe_load((folder / "config.yaml").read_text())["seed"] == 0
    assert RunFolder(folder).history()


# -- 16. SIGTERM / SIGINT stop cleanly ---------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_checkpoints_saves_the_model_and_exits_non_zero(tmp_path, sig):
    config = image_config_file(tmp_path, iterations=100_000)
    run = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "metadl.cli", "train", str(config), "--out", str(run), "--no-progress"],
        env=SUBPROCESS_ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while (
        time.monotonic() < deadline
        and len(read_metrics(run / "metrics.csv") if (run / "metrics.csv").exists() else []) < 3
    ):
        time.sleep(0.01)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, err
    last = load_checkpoint(run / "last.ckpt")
    rows = read_metrics(run / "metrics.csv")
    assert (
        last["iteration"] == len(rows) == last["metrics_rows"] >= 3
    )  # nothing since the last periodic save lost
    assert (run / "model" / "metadl.json").is_file()
    assert f"stopped after {last['iteration']} of 100000 iterations" in out + err
    assert f"metadl train --resume {run}" in out + err


@pytest.mark.slow
def test_under_torchrun_every_rank_stops_after_the_same_step_on_sigterm(tmp_path):
    config = image_config_file(tmp_path, iterations=100_000)
    run = tmp_path / "ddp"
    launcher = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
    env = {k: v for k, v in SUBPROCESS_ENV.items() if k not in launcher}
    proc = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "--master_addr", "127.0.0.1", "-m", "metadl.cli", "train", str(config), "--out", str(run), "--no-progress"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not (run / "last.ckpt").exists():
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)  # the launcher passes it on to both ranks
    out, err = proc.communicate(timeout=240)
    assert proc.returncode != 0
    last = load_checkpoint(run / "last.ckpt")
    assert last["iteration"] == len(read_metrics(run / "metrics.csv")) >= 5
    assert (run / "model" / "metadl.json").is_file()
    assert out.count("run folder") == 2, out[-2000:] + err[-2000:]  # both ranks reached the end together


def test_training_a_learner_that_cannot_be_meta_trained_is_a_config_error(blobs_dataset, tmp_path, capsys):
    config = tmp_path / "rf.yaml"
    config.write_text(yaml.safe_dump(tiny_raw(learner={"name": "randomforest"})))
    assert main(["train", str(config), "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "learner.name='randomforest' cannot be meta-trained" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()

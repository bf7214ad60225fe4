"""The training engine in-process on tiny blobs: run folder contents, schedule, best checkpoint, failures."""

from __future__ import annotations

import math

import pytest
import torch
import yaml
from engine_data import tiny_raw

import metadl
from metadl.algorithms import LEARNERS, Learner
from metadl.algorithms.base import make_output
from metadl.cli import main
from metadl.config import config_from_dict, load_config
from metadl.training.build import lr_factor
from metadl.training.checkpoint import load_checkpoint
from metadl.training.meta import NonFiniteLossError
from metadl.training.metrics import read_metrics
from metadl.training.trainer import RunFolderError, load_trained, train


def test_run_folder_holds_config_metrics_checkpoints_plot_and_model(blobs_dataset, tmp_path):
    cfg = config_from_dict(tiny_raw())
    result = train(cfg, tmp_path / "run", progress=False, log=lambda _: None)
    run = tmp_path / "run"
    assert load_config(run / "config.yaml") == cfg
    rows = read_metrics(run / "metrics.csv")
    assert [r["iteration"] for r in rows] == list(range(1, 31))
    val = {r["iteration"]: r["val_accuracy"] for r in rows if "val_accuracy" in r}
    assert sorted(val) == [10, 20, 30] and all("val_ci95" in r for r in rows if "val_accuracy" in r)
    best_iteration = max(val, key=lambda i: (val[i], -i))  # the first of equal scores is kept
    assert result.best_iteration == best_iteration and result.best_value == val[best_iteration]
    assert load_checkpoint(run / "best.ckpt")["iteration"] == best_iteration
    assert load_checkpoint(run / "last.ckpt")["iteration"] == 30
    assert result.best_value > 0.6  # 3-way: chance is 1/3; blobs are well separated
    assert (run / "learning_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(run.glob(".*.tmp"))

    # The saved model is the best checkpoint and predicts as the returned learner does.
    model = metadl.load(run / "model")
    assert model.metadata["iteration"] == best_iteration
    x, y = torch.randn(6, 8), torch.tensor([4, 4, 7, 7, 9, 9])
    q = torch.randn(5, 8)
    expected = result.learner.eval().adapt(x, y).predict_proba(q)
    assert torch.allclose(model.adapt(x, y).predict_proba(q), expected, atol=1e-6)
    _, from_ckpt, info = load_trained(run)
    assert info["iteration"] == best_iteration
    assert torch.allclose(from_ckpt.adapt(x, y).predict_proba(q), expected, atol=1e-6)


def test_learning_rate_follows_warmup_and_cosine_schedule(blobs_dataset, tmp_path):
    cfg = config_from_dict(
        tiny_raw(
            optimizer={"schedule": "cosine", "warmup": 4, "lr": 0.02},
            train={"val_every": 0, "iterations": 12},
        )
    )
    train(cfg, tmp_path / "run", progress=False, log=lambda _: None)
    lrs = [r["lr"] for r in read_metrics(tmp_path / "run" / "metrics.csv")]
    assert lrs == pytest.approx([0.02 * lr_factor(i, cfg.optimizer, 12) for i in range(12)], rel=1e-12)
    assert lrs[:4] == pytest.approx([0.005, 0.01, 0.015, 0.02]) and lrs[-1] < 0.002


def test_step_schedule_halves_the_rate(blobs_dataset, tmp_path):
    cfg = config_from_dict(
        tiny_raw(
            optimizer={"schedule": "step", "step_size": 3, "gamma": 0.5},
            train={"val_every": 0, "iterations": 7},
        )
    )
    train(cfg, tmp_path / "run", progress=False, log=lambda _: None)
    lrs = [r["lr"] for r in read_metrics(tmp_path / "run" / "metrics.csv")]
    assert lrs == pytest.approx([0.01] * 3 + [0.005] * 3 + [0.0025])


def test_a_run_folder_is_never_overwritten(blobs_dataset, tmp_path):
    cfg = config_from_dict(tiny_raw(train={"iterations": 2, "val_every": 0}))
    train(cfg, tmp_path / "run", progress=False, log=lambda _: None)
    with pytest.raises(RunFolderError, match="already holds a run; continue it with --resume"):
        train(cfg, tmp_path / "run", progress=False)
    other = config_from_dict(tiny_raw(train={"iterations": 3, "val_every": 0}))
    with pytest.raises(RunFolderError, match=r"differs from the one .* \(train.iterations\)"):
        train(other, tmp_path / "run", resume=True, progress=False)


class NaNAfter(Learner):
    """ProtoNet-like toy learner whose meta-loss turns NaN from its 7th forward call on."""

    calls = 0

    def __init__(self, *, backbone, n_way: int) -> None:
        super().__init__()
        self.backbone, self.n_way = backbone, n_way

    def forward(self, batch):
        NaNAfter.calls += 1
        t, q = batch.query_x.shape[:2]
        logits = self.backbone(batch.query_x.flatten(0, 1)).view(t, q, -1)[..., : self.n_way]
        out = make_output(logits, batch)
        if NaNAfter.calls >= 7:
            out.loss = out.loss * math.nan
        return out


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(blobs_dataset, tmp_path, monkeypatch):
    monkeypatch.setitem(LEARNERS, "nan_after", NaNAfter)
    monkeypatch.setattr(NaNAfter, "calls", 0)
    cfg = config_from_dict(
        tiny_raw(learner={"name": "nan_after"}, train={"val_every": 0, "checkpoint_every": 2})
    )
    run = tmp_path / "run"
    with pytest.raises(
        NonFiniteLossError,
        match=r"stopped at iteration 7: meta-loss is nan.*The last good "
        r"checkpoint is .*last\.ckpt \(iteration 6\)",
    ):
        train(cfg, run, progress=False)
    ckpt = load_checkpoint(run / "last.ckpt")
    assert ckpt["iteration"] == 6 and ckpt["metrics_rows"] == 6
    assert all(v.isfinite().all() for v in ckpt["model"].values())
    assert [r["iteration"] for r in read_metrics(run / "metrics.csv")] == list(range(1, 7))
    assert yaml.safe_load((run / "config.yaml").read_text())["learner"]["name"] == "nan_after"


def test_cli_exits_non_zero_on_a_non_finite_loss(blobs_dataset, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(LEARNERS, "nan_after", NaNAfter)
    monkeypatch.setattr(NaNAfter, "calls", 0)
    config = tmp_path / "nan.yaml"
    config.write_text(
        yaml.safe_dump(tiny_raw(learner={"name": "nan_after"}, train={"val_every": 0, "checkpoint_every": 5}))
    )
    assert main(["train", str(config), "--out", str(tmp_path / "run"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "stopped at iteration 7: meta-loss is nan" in err and "last.ckpt (iteration 5)" in err


class RecordingWriter:
    """Stands in for tensorboard's SummaryWriter (the optional package is not a test dependency)."""

    def __init__(self, log_dir: str, purge_step: int) -> None:
        self.log_dir, self.purge_step, self.scalars = log_dir, purge_step, []
        WRITERS.append(self)

    def add_scalar(self, tag, value, step):
        self.scalars.append((tag, value, step))

    def flush(self):
        pass

    def close(self):
        pass


WRITERS: list[RecordingWriter] = []


def test_tensorboard_gets_every_row_and_resumes_purging_redone_steps(blobs_dataset, tmp_path, monkeypatch):
    import metadl.training.metrics as metrics_module

    WRITERS.clear()
    monkeypatch.setattr(
        metrics_module,
        "_open_tensorboard",
        lambda folder, purge_step: RecordingWriter(str(folder), purge_step),
    )
    cfg = config_from_dict(tiny_raw(train={"iterations": 10, "val_every": 5, "checkpoint_every": 5}))
    train(cfg, tmp_path / "run", progress=False, log=lambda _: None)
    writer = WRITERS[-1]
    assert writer.log_dir == str(tmp_path / "run" / "tensorboard") and writer.purge_step == 1
    tags = {tag for tag, _, _ in writer.scalars}
    assert tags == {"train/lr", "train/loss", "train/accuracy", "val/accuracy", "val/ci95", "train/time_s"}
    assert sorted(step for tag, _, step in writer.scalars if tag == "val/accuracy") == [5, 10]
    train(None, tmp_path / "run", resume=True, progress=False, log=lambda _: None)
    assert WRITERS[-1].purge_step == 11  # a resumed run's writer drops events logged after its checkpoint


def test_gradient_clipping_bounds_every_update(blobs_dataset, tmp_path):
    from metadl.training.build import build_learner

    raw = tiny_raw(
        optimizer={"name": "sgd", "lr": 1.0}, train={"iterations": 1, "val_every": 0, "grad_clip": 1e-3}
    )
    cfg = config_from_dict(raw)
    torch.manual_seed(cfg.seed)
    start = torch.nn.utils.parameters_to_vector(build_learner(cfg, (8,), "classification").parameters())
    result = train(cfg, tmp_path / "clipped", progress=False, log=lambda _: None)
    moved = torch.nn.utils.parameters_to_vector(result.learner.parameters()) - start
    assert 0 < moved.norm() <= 1e-3 * (1 + 1e-5)  # one SGD step of lr 1 on a gradient clipped to norm 1e-3
    unclipped = train(
        config_from_dict({**raw, "train": {**raw["train"], "grad_clip": None}}),
        tmp_path / "free",
        progress=False,
        log=lambda _: None,
    )
    assert (torch.nn.utils.parameters_to_vector(unclipped.learner.parameters()) - start).norm() > 1e-2

"""The ``augment`` section in the engine: training tasks only, seeded and resumable; unsupervised training tasks
come from the training split alone; bad settings fail at load time with one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from metadl.augment import AugmentedSource
from metadl.config import ConfigError, config_from_dict, config_to_dict
from metadl.data import create_dataset
from metadl.tasks.umtra import UMTRASource
from metadl.training.checkpoint import load_checkpoint
from metadl.training.distributed import DistributedContext
from metadl.training.run import TrainingRun
from metadl.training.runfolder import RunFolder
from metadl.training.trainer import train

pytestmark = pytest.mark.usefixtures("one_thread")

AUGMENT = {
    "train": [{"name": "affine", "degrees": 15, "translate": 0.1}, {"name": "elastic", "alpha": 1.0}],
    "classes": {"rotations": [0, 90, 180, 270], "p": 0.5},
    "mix": {"alpha": 0.5, "p": 0.5},
}


def raw(**changes):
    out = {
        "seed": 0,
        "device": "cpu",
        "dataset": {"name": "synthetic_glyphs", "image_size": 16, "num_classes": 8, "examples_per_class": 6},
        "sampler": {"ways": 3, "shots": 1, "queries": 2, "meta_batch": 2},
        "backbone": {"name": "conv4", "hidden": 8},
        "learner": {"name": "protonet"},
        "train": {"iterations": 6, "val_every": 3, "checkpoint_every": 2, "val_episodes": 4},
        "eval": {"episodes": 4},
    }
    out.update(changes)
    return out


def setup(cfg, tmp_path: Path) -> TrainingRun:
    return TrainingRun.setup(
        cfg, RunFolder(tmp_path / "run"), DistributedContext(), resume=False, progress=False
    )


def test_augmentation_wraps_the_training_source_only(tmp_path):
    plain = setup(config_from_dict(raw()), tmp_path / "a")
    augmented = setup(config_from_dict(raw(augment=AUGMENT)), tmp_path / "b")
    assert isinstance(augmented.state.sampler, AugmentedSource)
    assert not isinstance(plain.state.sampler, AugmentedSource)
    # validation episodes are the same with and without augmentation, and are the plain sampler's
    assert plain.validator is not None and augmented.validator is not None
    assert type(augmented.validator.sampler) is type(plain.validator.sampler)
    a, b = plain.validator.sampler.sample_batch(3), augmented.validator.sampler.sample_batch(3)
    assert torch.equal(a.support_x, b.support_x) and torch.equal(a.query_x, b.query_x)
    # training tasks differ (augmented), from the same underlying episodes
    assert not torch.equal(
        plain.state.sampler.sample_batch(2).query_x, augmented.state.sampler.sample_batch(2).query_x
    )


def test_a_config_without_augment_keeps_its_saved_form_and_the_section_round_trips():
    assert "augment" not in config_to_dict(config_from_dict(raw()))
    cfg = config_from_dict(raw(augment=AUGMENT))
    assert config_from_dict(config_to_dict(cfg)) == cfg
    assert config_to_dict(cfg)["augment"]["mix"] == {"alpha": 0.5, "p": 0.5}


def test_an_augmented_run_resumed_after_a_time_limit_equals_the_uninterrupted_run(tmp_path):
    cfg = config_from_dict(raw(augment=AUGMENT))
    quiet = {"progress": False, "log": lambda _: None}
    train(cfg, tmp_path / "straight", **quiet)
    first = train(cfg, tmp_path / "cut", time_limit=1e-9, **quiet)
    assert first.iterations == 1 and not first.complete
    train(None, tmp_path / "cut", resume=True, **quiet)
    a, b = (
        load_checkpoint(tmp_path / "straight" / "last.ckpt"),
        load_checkpoint(tmp_path / "cut" / "last.ckpt"),
    )
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert torch.equal(a["sampler"]["generator"], b["sampler"]["generator"])


def test_unsupervised_training_tasks_come_from_the_training_split_only(tmp_path):
    cfg = config_from_dict(raw(augment={"unsupervised": {"name": "umtra", "transforms": []}}))
    run = setup(cfg, tmp_path)
    source = run.state.sampler
    assert isinstance(source, UMTRASource)
    train_rows = {
        tuple(r.tolist()) for r in source.dataset.gather(torch.arange(len(source.dataset))).flatten(1)
    }
    options = {"image_size": 16, "num_classes": 8, "examples_per_class": 6}
    held_out = [create_dataset("synthetic_glyphs", split=s, **options) for s in ("val", "test")]
    other_rows = {tuple(r.tolist()) for ds in held_out for r in ds.gather(torch.arange(len(ds))).flatten(1)}
    batch = source.sample_batch(8)
    seen = {
        tuple(r.tolist()) for r in torch.cat([batch.support_x, batch.query_x], 1).flatten(2).flatten(0, 1)
    }
    assert seen <= train_rows and not seen & other_rows


def test_unsupervised_run_trains_and_validates_on_labelled_classes(tmp_path):
    cfg = config_from_dict(
        raw(augment={"unsupervised": {"name": "cactus", "partitions": 2, "clusters": 6, "dim": 8}})
    )
    result = train(cfg, tmp_path / "run", progress=False, log=lambda _: None)
    assert result.iterations == 6 and result.best_value is not None


@pytest.mark.parametrize(
    ("augment", "message"),
    [
        ({"train": [{"name": "affine", "degrees": -5}]}, r"augment.train\[0\] degrees = -5 is not allowed"),
        (
            {"train": [{"name": "afine"}]},
            r"augment.train\[0\] unknown transform 'afine' \(did you mean 'affine'\?\)",
        ),
        ({"train": {"name": "affine"}}, r"augment.train = .* give a list"),
        ({"mix": {"alpha": 0}}, r"augment.mix: alpha = 0 is not allowed"),
        (
            {"classes": {"rotation": [90]}},
            r"augment.classes: unknown key 'rotation' \(did you mean 'rotations'\?\)",
        ),
        ({"mixup": {}}, r"unknown key 'augment.mixup' \(did you mean 'mix'\?\)"),
        ({"unsupervised": {"name": "simclr"}}, r"augment.unsupervised.name = 'simclr' is not allowed"),
        ({"unsupervised": {"name": "umtra", "n_way": 5}}, r"augment.unsupervised.n_way is set by the engine"),
        ({"unsupervised": {"name": "cactus", "clusters": 0}}, r"augment.unsupervised.clusters = 0"),
        ({"mix": {"alpha": float("nan")}}, r"augment.mix.alpha = nan .*finite"),
    ],
)
def test_bad_augment_settings_fail_at_load_with_one_line(augment, message):
    with pytest.raises(ConfigError, match=message) as err:
        config_from_dict(raw(augment=augment))
    assert "\n" not in str(err.value)


def test_unsupervised_tasks_need_images():
    with pytest.raises(ConfigError, match="unsupervised tasks are built from a dataset.s images"):
        config_from_dict(
            {
                "dataset": {"name": "sinusoid"},
                "backbone": {"name": "mlp"},
                "learner": {"name": "maml"},
                "augment": {"unsupervised": {"name": "umtra"}},
            }
        )

"""Runs on task sources: each split is built through the registry (split argument, ``root/<split>`` or a
derived seed), the input shape and the task kind come from the source, and resuming keeps its state."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from test_resume import assert_same_run

from metadl.config import config_from_dict
from metadl.saving import load
from metadl.tasks import create_task_source, split_groups
from metadl.tasks.fertility import split_countries
from metadl.training.build import derive_seed, input_shape, make_sampler
from metadl.training.trainer import train

pytestmark = pytest.mark.usefixtures("one_thread")
QUIET = {"progress": False, "log": lambda _: None}


def raw(dataset: dict, **sections: dict) -> dict:
    return {
        "device": "cpu",
        "dataset": dataset,
        "sampler": {"shots": 4, "queries": 5, "meta_batch": 4},
        "backbone": {"name": "mlp", "hidden": [16]},
        "learner": {"name": "cnp", "hidden": 16},
        "train": {"iterations": 8, "val_every": 4, "checkpoint_every": 2, "val_episodes": 3},
        "eval": {"episodes": 4},
        **sections,
    }


def fertility_csv(root: Path, countries: int = 30) -> Path:
    """Countries in the World Bank wide format, each a noisy declining curve of its own."""
    rng = np.random.default_rng(0)
    years = list(range(1960, 1972))
    lines = ["Country Name,Country Code,Indicator Name,Indicator Code," + ",".join(map(str, years))]
    for i in range(countries):
        rates = ",".join(f"{6 - 0.2 * j + rng.normal(0, 0.1):.3f}" for j in range(len(years)))
        lines.append(f"Land {i},C{i:02d},Fertility,SP.DYN.TFRT.IN,{rates}")
    path = root / "fertility.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_split_source_draws_each_split_from_its_own_countries(tmp_path):
    cfg = config_from_dict(raw({"name": "fertility", "path": str(fertility_csv(tmp_path)), "min_years": 10}))
    codes = tuple(f"C{i:02d}" for i in range(30))
    names = {s: set(make_sampler(cfg, s, cfg.seed).names) for s in ("train", "val", "test")}
    for split, drawn in names.items():
        assert drawn == set(split_countries(codes, split))  # type: ignore[arg-type]
    assert not names["train"] & names["val"] and not names["train"] & names["test"]
    sampler = make_sampler(cfg, "test", 3, shape=(1, 2, 7))
    assert (sampler.k_shot, sampler.n_query) == (2, 7)  # the eval shape reaches the source
    again = create_task_source("fertility", path=cfg.dataset.options["path"], min_years=10, split="test",
                               k_shot=2, n_query=7, seed=derive_seed(3, "test"))  # fmt: skip
    assert torch.equal(sampler.sample().query_y, again.sample().query_y)  # seeded by (seed, split)


def test_a_folder_source_without_a_split_argument_reads_root_slash_split(tmp_path):
    rng = np.random.default_rng(0)
    for split, names in (("train", ("a", "b")), ("val", ("c",)), ("test", ("d", "e", "f"))):
        (tmp_path / split).mkdir()
        for name in names:
            x = rng.normal(size=(12, 3))
            np.savez(tmp_path / split / f"{name}.npz", X=x, y=x.sum(1))
    cfg = config_from_dict(raw({"name": "datasets", "root": str(tmp_path), "kind": "regression"}))
    assert [make_sampler(cfg, s, 0).names for s in ("train", "val", "test")] == [
        ("a", "b"), ("c",), ("d", "e", "f")
    ]  # fmt: skip
    assert make_sampler(cfg, "train", 0).kind == "regression"


def test_grouped_table_from_a_file_splits_its_groups(tmp_path):
    rows = "".join(f"u{u},{i},{(u * i) % 5}.5\n" for u in range(20) for i in range(12))
    (tmp_path / "ratings.csv").write_text("user,item,rating\n" + rows)
    dataset = {"name": "grouped_table", "table": str(tmp_path / "ratings.csv"), "key_column": "user",
               "target_column": "rating", "feature_columns": ["item"]}  # fmt: skip
    cfg = config_from_dict(raw(dataset))
    groups = [set(make_sampler(cfg, s, 0).names) for s in ("train", "val", "test")]
    assert [len(g) for g in groups] == [16, 2, 2] and set.union(*groups) == {f"u{u}" for u in range(20)}
    assert groups[2] == set(split_groups([f"u{u}" for u in range(20)], "test", fractions=(0.8, 0.1, 0.1)))


def test_input_shape_and_kind_come_from_the_source(tmp_path):
    cfg = config_from_dict(raw({"name": "sinusoid_2d"}))
    source = make_sampler(cfg, "train", 0)
    first = source.sample_batch(2).support_x
    assert input_shape(source) == (2,)
    assert torch.equal(make_sampler(cfg, "train", 0).sample_batch(2).support_x, first)
    result = train(cfg, tmp_path / "run", **QUIET)
    assert result.metric == "mse"
    model = load(result.model_dir)
    assert model.spec["backbone"]["in_features"] == 2 and model.spec["learner"]["out_features"] == 1
    mean = model.adapt(torch.randn(4, 2), torch.randn(4, 1)).predict(torch.randn(3, 2))
    assert mean.shape == (3, 1)


def test_step_function_sessions_cut_by_a_time_limit_add_up_to_the_uninterrupted_run(tmp_path):
    cfg = config_from_dict(
        raw({"name": "step_functions", "max_steps": 2}, learner={"name": "maml", "inner_lr": 0.01})
    )
    train(cfg, tmp_path / "reference", **QUIET)
    train(cfg, tmp_path / "limited", time_limit=1e-9, **QUIET)  # one iteration per session
    while not train(None, tmp_path / "limited", resume=True, time_limit=1e-9, **QUIET).complete:
        pass
    assert_same_run(tmp_path / "reference", tmp_path / "limited")


def test_a_source_whose_tasks_differ_in_size_is_refused_before_training(tmp_path):
    for split in ("train", "val"):
        (tmp_path / split).mkdir()
        for name, n in (("a", 10), ("b", 14)):
            np.savez(tmp_path / split / f"{name}.npz", X=np.ones((n, 2)), y=np.arange(n) % 2)
    cfg = config_from_dict(raw({"name": "datasets", "root": str(tmp_path)}, learner={"name": "protonet"}))
    with pytest.raises(ValueError, match="draws tasks of different sizes, which cannot be meta-batched"):
        train(cfg, tmp_path / "run", **QUIET)


def test_the_split_seed_option_deals_the_countries_anew(tmp_path):
    path = str(fertility_csv(tmp_path))
    dataset = {"name": "fertility", "path": path, "min_years": 10}
    default = config_from_dict(raw(dataset))
    other = config_from_dict(raw({**dataset, "split_seed": 1}))
    splits = {s: set(make_sampler(other, s, 0).names) for s in ("train", "val", "test")}
    assert splits["test"] != set(make_sampler(default, "test", 0).names)
    assert not splits["train"] & splits["test"] and len(set.union(*splits.values())) == 30

"""Omniglot Lake protocol for meta-clustering: training never reads an evaluation-alphabet image."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from metadl.algorithms.clustering_steps import ClusteringError
from metadl.apps.cluster.protocol import lake_data
from metadl.config import find_config, load_config
from metadl.data.base import FewShotDataset
from metadl.data.omniglot import LAKE_VAL_ALPHABETS
from metadl.evaluation.cluster_protocol import class_groups
from metadl.training.trainer import train

pytestmark = pytest.mark.usefixtures("one_thread")


def alphabets(ds: FewShotDataset) -> set[str]:
    return set(class_groups(ds.class_names))


def test_lake_parts_are_disjoint_alphabets(shared_data: Path) -> None:
    data = lake_data(shared_data / "omniglot")
    train, val, test = alphabets(data.train), alphabets(data.val), alphabets(data.test)
    assert (len(train), len(val), len(test)) == (25, 5, 20)
    assert not (train & val or train & test or val & test)
    assert data.train.num_classes + data.val.num_classes == 964 and data.test.num_classes == 659
    assert sorted(val) == sorted(train | val)[::6]  # every sixth background alphabet by name


def test_named_validation_alphabets_replace_the_default(shared_data: Path) -> None:
    default = lake_data(shared_data / "omniglot")
    data = lake_data(shared_data / "omniglot", val_alphabets=LAKE_VAL_ALPHABETS)
    train, val = alphabets(data.train), alphabets(data.val)
    assert val == set(LAKE_VAL_ALPHABETS) != alphabets(default.val)
    assert not train & val and train | val == alphabets(default.train) | alphabets(default.val)
    assert alphabets(data.test) == alphabets(default.test)
    with pytest.raises(ClusteringError, match="no group 'Klingon'"):
        lake_data(shared_data / "omniglot", val_alphabets=["Greek", "Klingon"])


def test_training_on_the_shipped_config_reads_background_images_only(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    evaluation = alphabets(lake_data(shared_data / "omniglot").test)
    seen: list[tuple[str, set[str]]] = []
    gather = FewShotDataset.gather

    def recording_gather(self: FewShotDataset, index: torch.Tensor) -> torch.Tensor:
        names = {self.class_names[int(c)] for c in self.labels[index.reshape(-1)].unique()}
        seen.append((self.name, {n.split("/")[0] for n in names}))
        return gather(self, index)

    monkeypatch.setattr(FewShotDataset, "gather", recording_gather)
    cfg = load_config(
        find_config("cluster_omniglot_lake"),
        [
            f"dataset.root={shared_data / 'omniglot'}",
            "dataset.download=false",
            "device=cpu",
            "sampler.ways=4",
            "sampler.shots=2",
            "sampler.queries=1",
            "backbone.hidden=8",
            "train.iterations=3",
        ],
    )
    train(cfg, tmp_path / "run", progress=False, log=lambda _: None)
    assert len(seen) >= 3
    assert {name for name, _ in seen} == {"omniglot-lake-background"}
    read = set().union(*(a for _, a in seen))
    assert read and not read & evaluation

"""benchmarks/meta_clustering.py: a saved model's backbone is scored as is (``saved``) or fine-tuned (``--init``)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
import torch

from metadl.algorithms import create_learner
from metadl.apps.cluster.protocol import LakeData
from metadl.data.base import FewShotDataset
from metadl.models import create_backbone
from metadl.saving import save_model

pytestmark = pytest.mark.usefixtures("one_thread")
SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "meta_clustering.py"


def benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location("meta_clustering", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.HIDDEN[0] = 4  # a tiny Conv-4
    return module


def tiny_lake() -> LakeData:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (20 * 10, 1, 28, 28), generator=g, dtype=torch.uint8)
    ds = FewShotDataset(
        images, torch.arange(20).repeat_interleave(10), [f"A{c // 5}/c{c}" for c in range(20)]
    )
    return LakeData(ds, ds, ds)


def saved_protonet(folder: Path) -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    spec = {"backbone": {"name": "conv4", "in_channels": 1, "hidden": 4, "image_size": 28}, "learner": {"name": "protonet", "n_way": 5}}  # fmt: skip
    learner = create_learner("protonet", backbone=create_backbone("conv4", in_channels=1, hidden=4, image_size=28), n_way=5)  # fmt: skip
    save_model(folder, learner, spec=spec)
    return {k: v.clone() for k, v in learner.backbone.named_parameters()}


def params(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return dict(module.named_parameters())


def test_saved_method_returns_the_saved_backbone(tmp_path: Path) -> None:
    mc, data = benchmark(), tiny_lake()
    weights = saved_protonet(tmp_path / "model")
    backbone, notes = mc.train_method("saved", data, 0, 0, model=tmp_path / "model")
    assert notes == {"model": str(tmp_path / "model")}
    assert all(torch.equal(weights[k], p) for k, p in params(backbone).items())


@pytest.mark.parametrize("method", ["softkmeans", "pairwise"])
def test_init_starts_the_clustering_learner_from_the_saved_backbone(tmp_path: Path, method: str) -> None:
    mc, data = benchmark(), tiny_lake()
    weights = saved_protonet(tmp_path / "model")
    frozen, _ = mc.train_method(method, data, 1, 0, init=tmp_path / "model", lr=0.0)  # lr 0: weights stay
    assert all(torch.equal(weights[k], p) for k, p in params(frozen.backbone).items())
    moved, notes = mc.train_method(method, data, 2, 0, init=tmp_path / "model", lr=1e-2)
    assert notes["init"] == str(tmp_path / "model") and notes["lr"] == 1e-2
    assert not all(torch.equal(weights[k], p) for k, p in params(moved.backbone).items())
    scratch, notes = mc.train_method(method, data, 1, 0, lr=0.0)
    assert "init" not in notes
    first = next(iter(weights))
    assert not torch.equal(weights[first], params(scratch.backbone)[first])

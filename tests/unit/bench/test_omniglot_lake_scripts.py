"""The Lake-protocol screening scripts: every variant is a valid config moving the lever it names, and
the heads put on a trained embedding compute what they claim (nearest neighbours, averaged probabilities)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

from metadl.algorithms import create_learner
from metadl.config import config_to_dict, load_config, shipped_config
from metadl.models import create_backbone
from metadl.tasks import TaskBatch

BENCHMARKS = Path(__file__).resolve().parents[3] / "benchmarks"


def script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


screen = script("omniglot_lake")
heads = script("omniglot_lake_heads")


def flat(name: str) -> dict[str, object]:
    raw = config_to_dict(load_config(shipped_config(screen.CONFIG), list(screen.VARIANTS[name])))
    return {
        f"{s}.{k}": v for s, section in raw.items() if isinstance(section, dict) for k, v in section.items()
    }


@pytest.mark.parametrize(
    ("variant", "changed"),
    [
        ("way20_aug", {"augment.train"}),
        ("way20_cosine", {"optimizer.schedule"}),
        ("way20_h128", {"backbone.hidden"}),
        ("way20_px48", {"dataset.image_size"}),
        ("within20", {"sampler.source"}),
        ("way60", {"sampler.ways"}),
        ("way20_resnet12", {"backbone.name", "backbone.hidden", "backbone.channels"}),
    ],
)
def test_each_variant_moves_only_its_lever_from_the_base(variant: str, changed: set[str]) -> None:
    base, moved = flat("way20"), flat(variant)
    assert {k for k in base.keys() | moved.keys() if base.get(k) != moved.get(k)} == changed


def test_the_base_variant_is_the_recipe_before_the_levers_whatever_the_shipped_config() -> None:
    base = flat("way20")
    assert base["optimizer.schedule"] == "step" and "augment.train" not in base
    assert (base["optimizer.step_size"], base["optimizer.gamma"]) == (2000, 0.5)  # the long run's schedule
    assert (base["dataset.image_size"], base["backbone.hidden"], base["sampler.source"]) == (
        28,
        64,
        "episodes",
    )


def test_the_augmentation_variant_uses_affine_and_elastic_transforms() -> None:
    train = flat("way20_aug")["augment.train"]
    assert isinstance(train, list) and [t["name"] for t in train] == ["affine", "elastic"]


def one_shot_batch(ways: int = 5, queries: int = 3, dim: int = 6) -> TaskBatch:
    g = torch.Generator().manual_seed(0)
    support_x = torch.randn(1, ways, dim, generator=g)
    query_x = torch.randn(1, ways * queries, dim, generator=g)
    return TaskBatch(
        support_x, torch.arange(ways).view(1, -1), query_x, torch.arange(ways).repeat(queries).view(1, -1)
    )


def base_learner(ways: int = 5, dim: int = 6):
    torch.manual_seed(0)
    return create_learner(
        "protonet", backbone=create_backbone("mlp", in_features=dim, hidden=[8]), n_way=ways
    )


@pytest.mark.parametrize(("head", "distance"), [("protonet", "euclidean"), ("protonet_cosine", "cosine")])
def test_one_shot_prototype_heads_are_nearest_neighbours_on_the_shared_embedding(
    head: str, distance: str
) -> None:
    learner, batch = base_learner(), one_shot_batch()
    model = heads.with_head(learner, head, 5)
    assert model.backbone is learner.backbone
    with torch.no_grad():
        s, q = learner.backbone(batch.support_x[0]), learner.backbone(batch.query_x[0])
        if distance == "euclidean":
            nearest = torch.cdist(q, s).argmin(1)
        else:
            nearest = (
                torch.nn.functional.normalize(q, dim=1) @ torch.nn.functional.normalize(s, dim=1).T
            ).argmax(1)
        assert torch.equal(model(batch).logits[0].argmax(1), nearest)


@pytest.mark.parametrize("head", sorted(heads.HEADS))
def test_every_head_scores_a_one_shot_episode(head: str) -> None:
    out = heads.with_head(base_learner(), head, 5)(one_shot_batch())
    assert out.logits.shape == (1, 15, 5) and torch.isfinite(out.logits).all()


def test_test_time_augmentation_averages_the_embeddings_of_the_views() -> None:
    """With a transform that adds 1, every embedding is the mean of f(x) and f(x + 1) (2 views)."""
    learner, batch = base_learner(), one_shot_batch()

    def plus_one(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return x + 1

    model = heads.TestTimeAugmented(learner, plus_one, views=2)
    with torch.no_grad():
        mean = (learner.embed(batch.query_x) + learner.embed(batch.query_x + 1)) / 2
        torch.testing.assert_close(model.embed(batch.query_x), mean)
        one_view = heads.TestTimeAugmented(learner, plus_one, views=1)(batch)
        torch.testing.assert_close(one_view.logits, learner(batch).logits)


def test_fine_tuning_adapts_a_copy_and_learns_the_support_set() -> None:
    """Steps on an episode's support set change the copy only; with no steps it is the trained head."""
    learner, batch = base_learner(), one_shot_batch()
    before = [p.clone() for p in learner.parameters()]

    def noisy(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return x + 0.05 * torch.randn(x.shape, generator=generator)

    def support_loss(steps: int) -> float:
        model = heads.FineTuned(learner, noisy, steps=steps, lr=1e-2, seed=0)
        support_only = TaskBatch(batch.support_x, batch.support_y, batch.support_x, batch.support_y)
        return float(model(support_only).loss)

    with torch.no_grad():
        base = learner(batch)
    torch.testing.assert_close(heads.FineTuned(learner, noisy, 0, 1e-2)(batch).logits, base.logits)
    assert support_loss(30) < support_loss(0)
    assert all(torch.equal(a, b) for a, b in zip(before, learner.parameters(), strict=True))
    again = heads.FineTuned(learner, noisy, 5, 1e-2, seed=3)
    torch.testing.assert_close(
        again(batch).logits, heads.FineTuned(learner, noisy, 5, 1e-2, seed=3)(batch).logits
    )

"""Class rotation and MLTI mixing keep classes consistent; the augmented source is seeded and resumable."""

from __future__ import annotations

import pytest
import torch

from metadl.augment import Affine, AugmentedSource, AugmentError, ClassRotation, TaskMix
from metadl.augment.tasks import class_blocks
from metadl.data.base import FewShotDataset
from metadl.tasks import EpisodeSampler, SinusoidSampler, TaskBatch, VariableEpisodeSampler

pytestmark = pytest.mark.usefixtures("one_thread")


def pool() -> FewShotDataset:
    g = torch.Generator().manual_seed(0)
    return FewShotDataset(
        torch.rand(80, 1, 6, 6, generator=g), torch.arange(8).repeat_interleave(10), list("abcdefgh")
    )


def episodes(seed: int = 0) -> EpisodeSampler:
    return EpisodeSampler(pool(), n_way=4, k_shot=2, n_query=3, seed=seed)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def variants(x: torch.Tensor) -> list[torch.Tensor]:
    """The 8 rotations / mirrors of an image ``(C, H, W)``."""
    return [torch.rot90(v, k, (-2, -1)) for v in (x, x.flip(-1)) for k in range(4)]


def which(x: torch.Tensor, original: torch.Tensor) -> int:
    return next(i for i, v in enumerate(variants(original)) if torch.equal(v, x))


def test_class_rotation_applies_one_transform_per_class_to_support_and_query():
    batch = episodes().sample_batch(6)
    out = ClassRotation(rotations=[0, 90, 180, 270], flip=0.5, p=1.0)(batch, gen())
    used = set()
    for t in range(6):
        for c in range(4):
            s = (batch.support_y[t] == c).nonzero().flatten()
            q = (batch.query_y[t] == c).nonzero().flatten()
            kinds = {which(out.support_x[t, i], batch.support_x[t, i]) for i in s}
            kinds |= {which(out.query_x[t, i], batch.query_x[t, i]) for i in q}
            assert len(kinds) == 1  # the whole class, support and query, moved together
            used |= kinds
    assert len(used) > 3  # and different classes got different transforms
    assert torch.equal(out.support_y, batch.support_y) and torch.equal(out.query_y, batch.query_y)


def test_class_rotation_with_p_zero_is_the_identity():
    batch = episodes().sample_batch(2)
    out = ClassRotation(p=0.0)(batch, gen())
    assert torch.equal(out.support_x, batch.support_x) and torch.equal(out.query_x, batch.query_x)


def test_class_rotation_needs_square_images_and_valid_angles():
    with pytest.raises(AugmentError, match="each must be one of"):
        ClassRotation(rotations=[45])
    flat = TaskBatch(
        torch.zeros(1, 2, 1, 2, 3), torch.tensor([[0, 1]]), torch.zeros(1, 2, 1, 2, 3), torch.tensor([[0, 1]])
    )
    with pytest.raises(AugmentError, match="square images"):
        ClassRotation()(flat, gen())


def test_class_blocks_refuses_unequal_classes():
    with pytest.raises(AugmentError, match="same number of examples per class"):
        class_blocks(torch.tensor([[0, 0, 1]]))


def test_mix_is_a_convex_combination_of_one_class_of_each_task_per_class():
    a, b = episodes(0).sample_batch(3), episodes(1).sample_batch(3)
    out = TaskMix(alpha=0.5, p=1.0)(a, b, gen())
    for t in range(3):
        for c in range(4):
            own_s, own_q = (a.support_y[t] == c).nonzero().flatten(), (a.query_y[t] == c).nonzero().flatten()
            # find the partner class and the weight from the first support example, then check all the others
            found = None
            for pc in range(4):
                ps = (b.support_y[t] == pc).nonzero().flatten()
                diff = a.support_x[t, own_s[0]] - b.support_x[t, ps[0]]
                lam = ((out.support_x[t, own_s[0]] - b.support_x[t, ps[0]]) * diff).sum() / diff.pow(2).sum()
                if torch.allclose(
                    out.support_x[t, own_s[0]],
                    lam * a.support_x[t, own_s[0]] + (1 - lam) * b.support_x[t, ps[0]],
                    atol=1e-5,
                ):
                    found = (pc, lam)
            assert found is not None
            pc, lam = found
            assert 0 < lam < 1
            ps, pq = (b.support_y[t] == pc).nonzero().flatten(), (b.query_y[t] == pc).nonzero().flatten()
            for own, other, x, px, ox in (
                (own_s, ps, a.support_x, b.support_x, out.support_x),
                (own_q, pq, a.query_x, b.query_x, out.query_x),
            ):
                for i, j in zip(own.tolist(), other.tolist(), strict=True):
                    assert torch.allclose(ox[t, i], lam * x[t, i] + (1 - lam) * px[t, j], atol=1e-5)


def test_mix_with_p_zero_keeps_the_task():
    a, b = episodes(0).sample_batch(2), episodes(1).sample_batch(2)
    assert torch.equal(TaskMix(p=0.0)(a, b, gen()).support_x, a.support_x)


def test_augmented_source_is_seeded_resumable_and_leaves_the_wrapped_stream_alone():
    def source(seed: int = 3) -> AugmentedSource:
        return AugmentedSource(
            episodes(), transforms=Affine(degrees=20), classes=ClassRotation(), mix=TaskMix(), seed=seed
        )

    a, b = source(), source()
    torch.manual_seed(0)
    first = a.sample_batch(4)
    torch.manual_seed(1)
    assert torch.equal(b.sample_batch(4).query_x, first.query_x)
    state = a.state_dict()
    nxt = a.sample_batch(4)
    c = source(seed=99)
    c.load_state_dict(state)
    assert torch.equal(c.sample_batch(4).support_x, nxt.support_x)
    assert not torch.equal(source(seed=4).sample_batch(4).support_x, first.support_x)


def test_augmented_source_refuses_regression_and_mixing_of_unbatchable_sources():
    with pytest.raises(AugmentError, match="classification"):
        AugmentedSource(SinusoidSampler(k_shot=2, n_query=2), transforms=Affine())
    with pytest.raises(AugmentError, match="batchable"):
        AugmentedSource(VariableEpisodeSampler(pool(), min_ways=2, max_ways=3), mix=TaskMix())

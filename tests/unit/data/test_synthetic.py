"""Synthetic glyphs: shapes, exact rendering of a known stroke, determinism, split hygiene, difficulty."""

from __future__ import annotations

import pytest
import torch

from metadl.data.synthetic import DEFAULT_NUM_CLASSES, render, synthetic_glyphs
from metadl.tasks import EpisodeSampler


@pytest.fixture(scope="module")
def test_split():
    return synthetic_glyphs("test", num_classes=40, examples_per_class=10)


def test_shapes_dtype_range(test_split) -> None:
    ds = test_split
    assert ds.data.shape == (400, 1, 28, 28) and ds.data.dtype == torch.uint8
    assert ds.labels.tolist() == torch.arange(40).repeat_interleave(10).tolist()
    assert ds.num_classes == 40 and ds.class_names[7] == "test/glyph0007"
    x = ds.data.float() / 255
    assert x.amax(dim=(1, 2, 3)).min() == 1.0  # every image has fully inked pixels
    ink = x.mean(dim=(1, 2, 3))
    assert float(ink.min()) > 0.01 and float(ink.max()) < 0.35  # strokes on a dark background
    assert ((x > 0) & (x < 1)).any(), "edges should be anti-aliased, not binary"
    assert x[:, :, 0].sum() + x[:, :, -1].sum() < x.sum() * 0.02  # glyphs sit inside the frame
    gathered = ds.gather(torch.tensor([0, 1]))
    assert gathered.dtype == torch.float32 and float(gathered.max()) == 1.0


def test_other_image_size() -> None:
    ds = synthetic_glyphs("val", num_classes=3, examples_per_class=2, image_size=40)
    assert ds.x_shape == (1, 40, 40) and len(ds) == 6


def test_default_sizes() -> None:
    assert DEFAULT_NUM_CLASSES == {"train": 600, "val": 100, "test": 200}


def test_render_horizontal_stroke_closed_form() -> None:
    """A straight stroke along pixel row 14 with pen width 2: coverage 1 on the row, ~0.5 one row off, 0 two off."""
    s = 28
    y = (14 - (s - 1) / 2) / (0.4 * s)  # glyph coordinate of the centre of pixel row 14
    line = torch.tensor([[-0.5, y], [-0.2, y], [0.2, y], [0.5, y]])
    ctrl = torch.zeros(1, 2, 4, 2)
    ctrl[0, 0] = line
    img = render(ctrl, torch.tensor([[True, False]]), torch.tensor([2.0]), s)[0].int()
    cols = slice(10, 18)  # well inside the stroke, which spans columns 7.9 .. 19.1
    assert (img[14, cols] == 255).all()
    # Samples are <= 0.5 px apart, so the nearest one is 1 to sqrt(1 + 0.25^2) px away: ink 0.47..0.5.
    for row in (13, 15):
        assert ((img[row, cols] >= 119) & (img[row, cols] <= 128)).all(), img[row, cols]
    assert (img[:12] == 0).all() and (img[17:] == 0).all()
    assert (img[:, :6] == 0).all() and (img[:, 22:] == 0).all()


def test_render_strokes_leaving_the_image() -> None:
    """Off-image parts are cut cleanly: no ink from a stroke far outside, the same inside pixels as unclipped."""
    far = torch.tensor([[-3.0, -3.0], [-2.5, -3.2], [-2.2, -2.8], [-2.0, -2.0]])  # wholly above-left
    across = torch.tensor([[0.0, 0.0], [-0.8, 0.1], [-1.6, 0.2], [-2.4, 0.3]])  # leaves on the left
    ctrl = torch.stack([torch.stack([far, across]), torch.stack([across, far])])  # (2, 2, 4, 2)
    imgs = render(ctrl, torch.tensor([[True, False], [False, True]]), torch.tensor([2.6, 2.6]), 28)
    assert (imgs[0] == 0).all() and (imgs[1] == 0).all()
    both = render(ctrl, torch.tensor([[True, True], [True, False]]), torch.tensor([2.6, 2.6]), 28)
    assert int(both[0].int().sum()) > 0 and torch.equal(both[0], both[1])  # `far` adds nothing
    assert both[0][:, 0].any()  # the stroke reaches the left border


def test_same_seed_same_bytes_other_seed_differs() -> None:
    a = synthetic_glyphs("train", num_classes=6, examples_per_class=4, seed=3)
    b = synthetic_glyphs("train", num_classes=6, examples_per_class=4, seed=3)
    c = synthetic_glyphs("train", num_classes=6, examples_per_class=4, seed=4)
    assert torch.equal(a.data, b.data)
    assert not torch.equal(a.data, c.data)


def test_classes_are_stable_across_sizes() -> None:
    small = synthetic_glyphs("test", num_classes=5, examples_per_class=4)
    large = synthetic_glyphs("test", num_classes=12, examples_per_class=4)
    assert torch.equal(small.data, large.data[: len(small)])
    assert list(small.class_names) == list(large.class_names[:5])


def test_splits_are_disjoint() -> None:
    splits = {s: synthetic_glyphs(s, num_classes=30, examples_per_class=2) for s in ("train", "val", "test")}
    names = [set(ds.class_names) for ds in splits.values()]
    assert not (names[0] & names[1] or names[0] & names[2] or names[1] & names[2])
    flat = {s: ds.data.flatten(1).float() for s, ds in splits.items()}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        # No glyph of one split is (nearly) a glyph of another.
        assert float(torch.cdist(flat[a], flat[b]).min()) > 255.0


def test_same_class_more_alike_than_other_classes_but_not_trivially(test_split) -> None:
    """5-way 1-shot nearest neighbour on raw pixels: far above chance (20%), far below perfect."""
    batch = EpisodeSampler(test_split, n_way=5, k_shot=1, n_query=5, seed=0).sample_batch(400)
    dist = torch.cdist(batch.query_x.flatten(2), batch.support_x.flatten(2))  # (T, 25, 5)
    accuracy = float((dist.argmin(-1) == batch.query_y).float().mean())
    assert 0.28 < accuracy < 0.7, accuracy


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"split": "dev"}, "choose one of"),
        ({"num_classes": 0}, "num_classes must be >= 1"),
        ({"examples_per_class": 0}, "examples_per_class must be >= 1"),
        ({"image_size": 4}, "image_size must be >= 8"),
        ({"seed": -1}, "seed must be >= 0"),
    ],
)
def test_bad_arguments(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        synthetic_glyphs(**kwargs)

"""Image transforms: closed-form cases (identity, exact rotations and shifts), seeded determinism, the registry."""

from __future__ import annotations

import pytest
import torch

from metadl.augment import (
    TRANSFORMS,
    Affine,
    AugmentError,
    ColorJitter,
    Elastic,
    PixelDropout,
    RandomResizedCrop,
    StrokeWidth,
    compose,
    create_transform,
    list_transforms,
)
from metadl.augment.transforms import affine_matrices, gaussian_blur, warp

pytestmark = pytest.mark.usefixtures("one_thread")


# Settings that change an image (affine's defaults are the identity).
ACTIVE = {"affine": {"degrees": 20, "translate": 0.1}}


def active(name: str):
    return create_transform(name, **ACTIVE.get(name, {}))


def images(b: int = 6, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, 1, 10, 10, generator=torch.Generator().manual_seed(seed))


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_rotation_by_quarter_turns_equals_rot90(k):
    x = images()
    theta = affine_matrices(torch.full((6,), 90.0 * k), torch.zeros(6), torch.ones(6), torch.zeros(6, 2))
    assert torch.allclose(warp(x, theta), torch.rot90(x, k, (2, 3)), atol=1e-5)


def test_translation_by_whole_pixels_shifts_with_zero_fill():
    x = images(1)
    shift = torch.tensor([[2 * 3 / 10, 0.0]])  # 3 pixels right, in normalised coordinates
    out = warp(x, affine_matrices(torch.zeros(1), torch.zeros(1), torch.ones(1), shift))
    assert torch.allclose(out[..., 3:], x[..., :-3], atol=1e-5)
    assert torch.allclose(out[..., :3], torch.zeros(1, 1, 10, 3))


def test_affine_scale_two_zooms_into_the_centre():
    x = torch.zeros(1, 1, 8, 8)
    x[0, 0, 3:5, 3:5] = 1.0  # a 2x2 square at the centre becomes 4x4
    out = warp(x, affine_matrices(torch.zeros(1), torch.zeros(1), torch.full((1,), 2.0), torch.zeros(1, 2)))
    assert out[0, 0, 2:6, 2:6].min() > 0.2 and out[0, 0, 0].max() == 0.0
    assert float(out.sum()) == pytest.approx(4 * float(x.sum()), rel=0.05)


@pytest.mark.parametrize(
    "transform",
    [
        Affine(),
        Affine(degrees=30, translate=0.2, shear=20, p=0.0),
        Elastic(alpha=0.0),
        Elastic(alpha=3.0, p=0.0),
        RandomResizedCrop(scale=(1.0, 1.0), ratio=(1.0, 1.0)),
        ColorJitter(brightness=0.0, contrast=0.0),
        StrokeWidth(p=0.0),
        PixelDropout(rate=0.0),
    ],
    ids=lambda t: type(t).__name__,
)
def test_neutral_settings_leave_images_unchanged(transform):
    x = images()
    assert torch.allclose(transform(x, gen()), x, atol=1e-5)


@pytest.mark.parametrize("name", list_transforms())
def test_same_generator_state_same_output_and_no_global_rng(name):
    x = images()
    transform = active(name)
    torch.manual_seed(123)
    first = transform(x, gen(5))
    torch.manual_seed(999)  # the global RNG has no say
    assert torch.equal(transform(x, gen(5)), first)
    assert first.shape == x.shape
    assert not torch.equal(transform(x, gen(6)), first) or name == "stroke_width"


@pytest.mark.parametrize("name", list_transforms())
def test_examples_are_transformed_independently(name):
    """Each example's output depends on itself and its own draws only: no pixel crosses examples (or classes)."""
    x = images(4)
    y = x.clone()
    y[1:] = 0.0
    out_x, out_y = active(name)(x, gen(1)), active(name)(y, gen(1))
    assert torch.allclose(out_x[0], out_y[0], atol=1e-6)


def test_elastic_field_is_smooth_and_bounded_by_alpha():
    field = Elastic(alpha=2.0, sigma=3.0).displacement(4, 28, 28, gen()) * 14  # back to pixels
    assert field.abs().max() <= 2.0 + 1e-5
    rough = 2 * torch.rand(4, 28, 28, 2, generator=gen()) - 1
    step = (field[:, 1:] - field[:, :-1]).abs().mean() / field.abs().mean()
    assert step < 0.5 * (rough[:, 1:] - rough[:, :-1]).abs().mean() / rough.abs().mean()


def test_gaussian_blur_keeps_a_constant_inside_and_sums_to_one():
    out = gaussian_blur(torch.ones(1, 1, 21, 21), 2.0)
    assert out[0, 0, 10, 10] == pytest.approx(1.0, abs=1e-6)


def test_color_jitter_matches_closed_form():
    x = torch.full((1, 1, 2, 2), 0.5)
    x[0, 0, 0, 0] = 0.1
    out = ColorJitter(brightness=0.0, contrast=0.5)(x, gen())
    factor = (out - out.mean()) / (x - x.mean())
    assert torch.allclose(factor, factor.flatten()[0].expand_as(factor), atol=1e-5)
    assert 0.5 <= float(factor.flatten()[0]) <= 1.5


def test_stroke_width_dilates_or_erodes_a_line():
    x = torch.zeros(20, 1, 9, 9)
    x[:, :, 3:6, 4] = 1.0
    out = StrokeWidth(p=1.0)(x, gen())
    sums = out.flatten(1).sum(1)
    assert set(sums.tolist()) == {15.0, 0.0}  # a 3-pixel line: 5x3 dilated, gone when eroded


def test_pixel_dropout_rate():
    out = PixelDropout(rate=0.3)(torch.ones(50, 1, 20, 20), gen())
    assert (out == 0).float().mean().item() == pytest.approx(0.3, abs=0.02)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Affine(degrees=-1), "degrees = -1 is not allowed"),
        (lambda: Affine(scale=[1.2, 0.8]), "low must be <= high"),
        (lambda: Affine(padding="wrap"), "padding = 'wrap'"),
        (lambda: Elastic(alpha=True), "alpha = True"),
        (lambda: RandomResizedCrop(scale=0.5), r"give \[low, high\]"),
        (lambda: create_transform("rotate"), "unknown transform 'rotate'"),
        (lambda: create_transform("affine", degree=3), r"did you mean 'degrees'"),
        (lambda: compose([{"degrees": 3}]), r"\[0\] = .*a transform is a mapping with a name"),
    ],
)
def test_bad_settings_fail_with_one_line(build, message):
    with pytest.raises(AugmentError, match=message) as err:
        build()
    assert "\n" not in str(err.value)


def test_transforms_refuse_non_image_batches():
    with pytest.raises(AugmentError, match=r"float image batches \(B, C, H, W\)"):
        Affine()(torch.zeros(3, 4), gen())


def test_registry_lists_every_entry():
    assert list_transforms() == sorted(TRANSFORMS)

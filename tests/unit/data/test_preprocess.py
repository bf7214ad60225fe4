"""Preprocessing of arbitrary images to what a model was trained on: exact expected tensors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from metadl.data.preprocess import Preprocessing, load_folder_tree, load_image, load_images, preprocess_image
from metadl.data.synthetic import synthetic_glyphs


def bar_image(
    mode: str = "L", ink: int = 0, paper: int = 255, size=(28, 28)
) -> tuple[Image.Image, np.ndarray]:
    """A vertical bar of ``ink`` on ``paper``; returns the image and its [0, 1] grey array."""
    arr = np.full(size[::-1], paper, np.uint8)
    arr[4:24, 12:16] = ink
    return Image.fromarray(arr).convert(mode), arr / 255.0


def test_rgb_to_grey_uses_itu_601_luma_and_grey_to_rgb_repeats():
    red = Image.new("RGB", (28, 28), (255, 0, 0))
    x = preprocess_image(red, Preprocessing(image_size=28, channels=1))
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32
    torch.testing.assert_close(x, torch.full((1, 28, 28), 0.299))
    grey = Image.new("L", (10, 10), 51)
    torch.testing.assert_close(
        preprocess_image(grey, Preprocessing(image_size=10, channels=3)), torch.full((3, 10, 10), 0.2)
    )


def test_dark_ink_on_white_is_inverted_for_a_bright_ink_model_and_kept_otherwise():
    img, grey = bar_image(ink=0, paper=255)
    expected = torch.from_numpy(1 - grey).float()[None]
    torch.testing.assert_close(
        preprocess_image(img, Preprocessing(image_size=28, background="dark")), expected
    )
    kept = torch.from_numpy(grey).float()[None]
    for p in (
        Preprocessing(image_size=28, background="light"),
        Preprocessing(image_size=28, background=None),
        Preprocessing(image_size=28, background="dark", invert="never"),
    ):
        torch.testing.assert_close(preprocess_image(img, p), kept)
    bright, bright_grey = bar_image(ink=255, paper=0)
    torch.testing.assert_close(
        preprocess_image(bright, Preprocessing(image_size=28, background="dark")),
        torch.from_numpy(bright_grey).float()[None],
    )
    torch.testing.assert_close(
        preprocess_image(bright, Preprocessing(image_size=28, invert="always")),
        torch.from_numpy(1 - bright_grey).float()[None],
    )


@pytest.mark.parametrize("stroke", [0, 255])
def test_rgba_strokes_on_transparency_become_bright_ink_on_dark_whatever_their_colour(stroke):
    rgba = np.zeros((28, 28, 4), np.uint8)
    rgba[..., :3] = stroke
    rgba[4:24, 12:16, 3] = 255  # opaque bar, the rest fully transparent
    x = preprocess_image(Image.fromarray(rgba, "RGBA"), Preprocessing(image_size=28, background="dark"))
    expected = torch.zeros(1, 28, 28)
    expected[0, 4:24, 12:16] = 1.0
    torch.testing.assert_close(x, expected)


def test_transparency_of_natural_images_is_white_as_in_image_folder():
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:4, :, 3] = 255  # top half opaque red, bottom half transparent
    x = preprocess_image(Image.fromarray(rgba, "RGBA"), Preprocessing(image_size=8, channels=3))
    torch.testing.assert_close(x[:, :4], torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1).expand(3, 4, 8))
    torch.testing.assert_close(x[:, 4:], torch.ones(3, 4, 8))


def wide_image() -> Image.Image:
    """40 wide x 20 high, black, with a white rectangle at x 10..30, y 4..16."""
    arr = np.zeros((20, 40), np.uint8)
    arr[4:16, 10:30] = 255
    return Image.fromarray(arr)


@pytest.mark.parametrize(
    ("fit", "rows", "cols"),
    [
        ("stretch", slice(4, 16), slice(5, 15)),  # x shrinks by 2, y unchanged
        ("pad", slice(7, 13), slice(5, 15)),  # padded to 40x40 (rows 10..30), then halved
        ("crop", slice(4, 16), slice(0, 20)),
    ],  # central 20x20 is x 10..30
)
def test_odd_sized_image_is_stretched_padded_or_cropped_to_the_expected_pixels(fit, rows, cols):
    x = preprocess_image(wide_image(), Preprocessing(image_size=20, fit=fit, resample="box"))
    expected = torch.zeros(1, 20, 20)
    expected[0, rows, cols] = 1.0
    torch.testing.assert_close(x, expected)


def test_non_square_target_size_and_normalisation():
    x = preprocess_image(
        Image.new("L", (30, 30), 255), Preprocessing(image_size=(12, 20), mean=[0.5], std=[0.25])
    )
    assert x.shape == (1, 12, 20)
    torch.testing.assert_close(x, torch.full((1, 12, 20), 2.0))


def test_other_modes_binary_palette_16_bit(tmp_path):
    img, grey = bar_image(ink=255, paper=0)
    p = Preprocessing(image_size=28)
    expected = torch.from_numpy(grey).float()[None]
    torch.testing.assert_close(preprocess_image(img.convert("1"), p), expected)
    torch.testing.assert_close(preprocess_image(img.convert("P"), p), expected)
    sixteen = Image.fromarray((grey * 65535).astype(np.uint16))
    assert sixteen.mode.startswith("I;16")
    torch.testing.assert_close(preprocess_image(sixteen, p), expected)
    sixteen.save(tmp_path / "deep.png")  # reopened as I;16 or I depending on the Pillow version
    torch.testing.assert_close(load_image(tmp_path / "deep.png", p), expected)
    quarter = Image.fromarray(np.full((4, 4), 16384, np.uint16))
    torch.testing.assert_close(
        preprocess_image(quarter, Preprocessing(image_size=4)), torch.full((1, 4, 4), 16384 / 65535)
    )


def test_resize_filter_box_averages_cells():
    arr = np.zeros((4, 4), np.uint8)
    arr[0, 0] = 255  # one of the four pixels of the top-left 2x2 cell
    x = preprocess_image(Image.fromarray(arr), Preprocessing(image_size=2, resample="box"))
    torch.testing.assert_close(x, torch.tensor([[[0.25, 0.0], [0.0, 0.0]]]))


def test_settings_are_validated_and_survive_json():
    p = Preprocessing(
        image_size=(28, 32),
        channels=3,
        background="dark",
        fit="pad",
        resample="box",
        mean=[0.5] * 3,
        std=[0.2] * 3,
    )
    assert Preprocessing.from_dict(json.loads(json.dumps(p.to_dict()))) == p
    with pytest.raises(ValueError, match=r"channels=2.*\[1, 3\]"):
        Preprocessing(image_size=28, channels=2)
    with pytest.raises(ValueError, match="resample='cubic'"):
        Preprocessing(image_size=28, resample="cubic")
    with pytest.raises(ValueError, match="image_size"):
        Preprocessing(image_size=0)
    with pytest.raises(ValueError, match="mean needs 1 values"):
        Preprocessing(image_size=28, mean=[0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match=r"unknown preprocessing keys \['size'\]"):
        Preprocessing.from_dict({"image_size": 28, "size": 3})


def test_for_dataset_measures_the_background_convention():
    glyphs = synthetic_glyphs("test", num_classes=5, examples_per_class=4)
    p = Preprocessing.for_dataset(glyphs.data, resample="box")
    assert (p.image_size, p.channels, p.background, p.resample) == ((28, 28), 1, "dark", "box")
    assert Preprocessing.for_dataset(255 - glyphs.data).background == "light"
    noise = torch.rand(20, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    assert Preprocessing.for_dataset(noise).background is None


def test_folder_tree_labels_are_sorted_folder_names_and_errors_name_the_file(tmp_path):
    img, _ = bar_image()
    for cls, n in (("zeta", 2), ("alpha", 1)):
        (tmp_path / "s" / cls).mkdir(parents=True)
        for i in range(n):
            img.save(tmp_path / "s" / cls / f"{i}.png")
    (tmp_path / "s" / "zeta" / "notes.txt").write_text("not an image")
    (tmp_path / "s" / ".hidden").mkdir()
    p = Preprocessing(image_size=16)
    tree = load_folder_tree(tmp_path / "s", p)
    assert tree.class_names == ["alpha", "zeta"] and tree.labels.tolist() == [0, 1, 1]
    assert tree.x.shape == (3, 1, 16, 16) and [f.name for f in tree.files] == ["0.png", "0.png", "1.png"]

    (tmp_path / "s" / "empty").mkdir()
    with pytest.raises(ValueError, match=r"class folder .*empty holds no images"):
        load_folder_tree(tmp_path / "s", p)
    (tmp_path / "s" / "empty" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(ValueError, match=r"cannot read image .*broken\.png"):
        load_folder_tree(tmp_path / "s", p)
    img.save(tmp_path / "s" / "loose.png")
    with pytest.raises(ValueError, match=r"outside any class folder \(loose\.png\)"):
        load_folder_tree(tmp_path / "s", p)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_folder_tree(tmp_path / "nope", p)

    (tmp_path / "q" / "sub").mkdir(parents=True)
    img.save(tmp_path / "q" / "b.png")
    img.save(tmp_path / "q" / "sub" / "a.jpg")
    q = load_images(tmp_path / "q", p)
    assert [f.relative_to(tmp_path / "q").as_posix() for f in q.files] == [
        "b.png",
        "sub/a.jpg",
    ] and q.labels is None
    assert load_images(tmp_path / "q" / "b.png", p).x.shape == (1, 1, 16, 16)
    (tmp_path / "none").mkdir()
    with pytest.raises(ValueError, match="holds no images"):
        load_images(tmp_path / "none", p)

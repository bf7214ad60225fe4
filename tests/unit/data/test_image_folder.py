"""image_folder on generated trees: modes, sizes, class order, splits by class list, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from metadl.data.image_folder import image_folder


def _tree(root: Path) -> Path:
    """Three classes of odd-sized images in every common mode; pixel values chosen to be checkable."""
    rng = np.random.default_rng(0)
    (root / "b_rgb").mkdir(parents=True)
    for i in range(3):
        arr = rng.integers(0, 256, size=(13 + i, 29, 3), dtype=np.uint8)
        Image.fromarray(arr).save(root / "b_rgb" / f"{i}.png")
    Image.new("RGB", (7, 5), (10, 200, 30)).save(root / "b_rgb" / "flat.JPG", quality=100)
    (root / "a_gray").mkdir()
    Image.new("L", (17, 17), 77).save(root / "a_gray" / "0.png")
    Image.new("1", (9, 31), 1).save(root / "a_gray" / "1.bmp")
    Image.new("I;16", (11, 11), 65535).save(root / "a_gray" / "2.png")  # 16-bit white
    (root / "a_gray" / "notes.txt").write_text("not an image")
    (root / "c_alpha").mkdir()
    Image.new("RGBA", (21, 8), (0, 0, 0, 0)).save(root / "c_alpha" / "clear.png")  # fully transparent
    palette = Image.new("P", (6, 6), 3)
    palette.putpalette([0, 0, 0] * 3 + [255, 255, 255])  # index 3 is white
    palette.save(root / "c_alpha" / "palette.gif")
    (root / ".hidden").mkdir()
    return root


def test_grayscale_tree(tmp_path: Path) -> None:
    ds = image_folder(_tree(tmp_path), image_size=10)
    assert ds.class_names == ["a_gray", "b_rgb", "c_alpha"]  # sorted, hidden folder ignored
    assert ds.class_counts.tolist() == [3, 4, 2]  # notes.txt ignored, .JPG matched case-insensitively
    assert ds.data.shape == (9, 1, 10, 10) and ds.data.dtype == torch.uint8
    gray = ds.data[:3, 0]
    assert (gray[0] == 77).all() and (gray[1] == 255).all() and (gray[2] == 255).all()  # L, 1, I;16
    assert (ds.data[7, 0] == 255).all()  # transparent pixels composited on white
    assert (ds.data[8, 0] == 255).all()  # palette index looked up


def test_rgb_tree_keeps_colour_and_resizes_exactly_like_pillow(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    ds = image_folder(root, image_size=12, channels=3)
    assert ds.data.shape == (9, 3, 12, 12)
    with Image.open(root / "b_rgb" / "1.png") as img:
        expected = np.asarray(img.resize((12, 12), Image.Resampling.BILINEAR)).transpose(2, 0, 1)
    np.testing.assert_array_equal(ds.data[4].numpy(), expected)  # b_rgb files sorted: 0, 1, 2, flat
    flat = ds.data[6].float().mean(dim=(1, 2))
    assert torch.allclose(flat, torch.tensor([10.0, 200.0, 30.0]), atol=3)  # JPEG, near-lossless


def test_invert_and_class_subset(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    ds = image_folder(root, image_size=4, invert=True, classes=["c_alpha", "a_gray"], name="sub")
    assert ds.class_names == ["c_alpha", "a_gray"] and ds.name == "sub"
    assert (ds.data[:2] == 0).all()  # white became 0
    assert (ds.data[2, 0] == 255 - 77).all()


@pytest.mark.parametrize(
    ("setup", "kwargs", "error", "match"),
    [
        (lambda r: None, {}, FileNotFoundError, "does not exist"),
        (lambda r: r.mkdir(), {}, ValueError, "no class folders and no images"),
        (lambda r: (r / "x").mkdir(parents=True), {}, ValueError, "x holds no images"),
        (lambda r: _tree(r), {"classes": ["a_gray", "zebra"]}, ValueError, "zebra"),
        (lambda r: _tree(r), {"channels": 2}, ValueError, "channels must be 1"),
        (lambda r: _tree(r), {"image_size": 0}, ValueError, "image_size"),
    ],
)
def test_clear_errors(tmp_path: Path, setup, kwargs: dict, error: type, match: str) -> None:
    root = tmp_path / "root"
    setup(root)
    with pytest.raises(error, match=match):
        image_folder(root, **kwargs)


def test_unreadable_image_is_named(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    (root / "b_rgb" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(ValueError, match="broken.png"):
        image_folder(root, image_size=8)


def test_a_folder_of_images_only_is_one_unlabelled_class(tmp_path: Path) -> None:
    root = tmp_path / "pool"
    root.mkdir()
    for i in range(3):
        Image.new("L", (5, 5), i * 50).save(root / f"{i}.png")
    ds = image_folder(root, image_size=5)
    assert ds.class_names == ["pool"] and ds.labels.tolist() == [0, 0, 0]
    assert ds.data[:, 0, 0, 0].tolist() == [0, 50, 100]

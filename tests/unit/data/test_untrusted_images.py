"""Images and folders from users: bounded memory, refused sizes, links that are not followed (issue 12)."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from metadl.data import preprocess
from metadl.data.image_folder import image_folder
from metadl.data.preprocess import Preprocessing, load_folder_tree, load_image, preprocess_image

PAD = Preprocessing(image_size=28, channels=1, background="dark", fit="pad", resample="box")


@pytest.mark.parametrize("size", [(4000, 1), (1, 4000), (4000, 3)])
def test_thin_images_are_resized_before_padding_in_bounded_memory(size):
    image = Image.new("L", size, 255)
    tracemalloc.start()
    try:
        x = preprocess_image(image, PAD)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert x.shape == (1, 28, 28)
    assert peak < 2 << 20, f"{peak} bytes for a {size} image"  # padding to 4000 x 4000 first took 128 MB


def test_a_60000_pixel_strip_is_read_quickly(tmp_path):
    Image.new("L", (60000, 1), 0).save(tmp_path / "strip.png")
    x = load_image(tmp_path / "strip.png", PAD)
    assert x.shape == (1, 28, 28) and float(x.max()) == 0.0


def test_padding_keeps_the_content_centred_and_the_border_colour():
    arr = np.zeros((10, 40), np.uint8)
    arr[:, 10:30] = 255  # the middle half is ink
    x = preprocess_image(Image.fromarray(arr), Preprocessing(image_size=20, fit="pad", resample="box"))
    expected = torch.zeros(1, 20, 20)
    expected[0, 7:12, 5:15] = 1.0  # resized to 20 x 5, placed at row (20 - 5) // 2 = 7 on the border's black
    torch.testing.assert_close(x, expected)


def test_an_image_past_the_pixel_limit_is_refused_before_decoding(tmp_path, monkeypatch):
    Image.new("L", (300, 200)).save(tmp_path / "big.png")
    monkeypatch.setattr(preprocess, "MAX_IMAGE_PIXELS", 50_000)
    with pytest.raises(
        ValueError, match=r"big\.png is 300 x 200 = 60000 pixels, more than the 50000 metadl reads"
    ):
        load_image(tmp_path / "big.png", PAD)


def test_a_decompression_bomb_is_one_clear_error(tmp_path, monkeypatch):
    Image.new("L", (300, 200)).save(tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 20_000)  # Pillow refuses images over twice this
    with pytest.raises(ValueError, match=r"bomb\.png is refused: .*decompression bomb.*shrink it first"):
        load_image(tmp_path / "bomb.png", PAD)


def support_tree(root: Path) -> Path:
    for name in ("cat", "dog"):
        (root / name).mkdir(parents=True)
        Image.new("L", (8, 8), 40 if name == "cat" else 200).save(root / name / "1.png")
    return root


@pytest.mark.parametrize("target", ["root", "parent", "outside"])
def test_class_folders_linking_out_of_the_support_folder_are_refused(tmp_path, target):
    root = support_tree(tmp_path / "support")
    (tmp_path / "elsewhere").mkdir()
    Image.new("L", (8, 8)).save(tmp_path / "elsewhere" / "x.png")
    dest = {"root": root, "parent": tmp_path, "outside": tmp_path / "elsewhere"}[target]
    (root / "loop").symlink_to(dest, target_is_directory=True)
    with pytest.raises(ValueError, match=r"loop is a symbolic link to .* not followed"):
        load_folder_tree(root, PAD)
    with pytest.raises(ValueError, match=r"loop is a symbolic link to .* not followed"):
        image_folder(root, image_size=8)


def test_links_inside_the_support_folder_are_followed_and_image_links_out_refused(tmp_path):
    root = support_tree(tmp_path / "support")
    (root / "kitten").symlink_to(root / "cat", target_is_directory=True)
    assert load_folder_tree(root, PAD).class_names == ["cat", "dog", "kitten"]
    (tmp_path / "secret.png").write_bytes(b"not yours")
    (root / "dog" / "2.png").symlink_to(tmp_path / "secret.png")
    with pytest.raises(ValueError, match=r"2\.png is a symbolic link to .*secret\.png"):
        load_folder_tree(root, PAD)


def test_a_missing_split_folder_says_which_splits_exist_and_how_to_turn_validation_off(tmp_path):
    support_tree(tmp_path / "data" / "train")
    with pytest.raises(
        FileNotFoundError, match=r"data/val does not exist .* holds \['train'\].*val_split: null"
    ):
        image_folder(tmp_path / "data" / "val", image_size=8)

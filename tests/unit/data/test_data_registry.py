"""The dataset registry: names, errors, and builders reached through it."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from PIL import Image

import metadl.data as data
from metadl.data import DATASETS, FewShotDataset, create_dataset, list_datasets


def test_names_and_exports() -> None:
    assert {"omniglot", "image_folder"} <= set(list_datasets())
    assert list_datasets() == sorted(DATASETS)
    for name in ("omniglot", "image_folder", "create_dataset", "list_datasets", "download_url"):
        assert name in data.__all__ and hasattr(data, name)


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_every_builder_is_keyword_configurable_and_documented(name: str) -> None:
    build = DATASETS[name]
    assert build.__doc__ and "Example:" in build.__doc__
    assert inspect.signature(build).return_annotation in (FewShotDataset, "FewShotDataset")


def test_unknown_name_lists_the_names() -> None:
    with pytest.raises(ValueError, match="unknown dataset 'mini'.*omniglot"):
        create_dataset("mini")


def test_bad_keyword_fails_before_loading() -> None:
    with pytest.raises(TypeError, match="create_dataset\\('image_folder'\\).*colour"):
        create_dataset("image_folder", root="/nonexistent", colour=True)


def test_create_image_folder(tmp_path: Path) -> None:
    for c in ("x", "y"):
        (tmp_path / c).mkdir()
        Image.new("L", (5, 5), 9).save(tmp_path / c / "0.png")
    ds = create_dataset("image_folder", root=tmp_path, image_size=5)
    assert ds.num_classes == 2 and ds.x_shape == (1, 5, 5)


@pytest.mark.data
def test_create_omniglot(shared_data: Path, omniglot_cache_dir: Path) -> None:
    ds = create_dataset("omniglot", root=shared_data / "omniglot", split="val", cache_dir=omniglot_cache_dir)
    assert ds.num_classes == 688 and ds.x_shape == (1, 28, 28)

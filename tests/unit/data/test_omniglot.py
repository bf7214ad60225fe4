"""Omniglot: every source route gives the official pixels; Vinyals/Lake splits; rotations; the cache."""

from __future__ import annotations

import importlib
import time
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from metadl.data.base import FewShotDataset
from metadl.data.omniglot import omniglot, read_omniglot_set

og = importlib.import_module("metadl.data.omniglot")  # the module (metadl.data.omniglot is the function)
pytestmark = pytest.mark.data
# what the shared_data fixture returns; module-scoped fixtures cannot use that function-scoped fixture
SHARED_DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"


def _class(ds: FewShotDataset, name: str) -> np.ndarray:
    """The ``(20, S, S)`` images of one class."""
    c = ds.class_names.index(name)
    start = int(ds.class_offsets[c])
    return ds.data[start : start + int(ds.class_counts[c]), 0].numpy()


def _rezip(src: Path, dst: Path, old_top: str, new_top: str) -> Path:
    """The official small zip with its top folder renamed (PNG bytes untouched): the official layout."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            assert info.filename.startswith(old_top + "/")
            zout.writestr(new_top + info.filename[len(old_top) :], zin.read(info))
    return dst


def _official_pngs(zip_path: Path) -> Iterator[tuple[str, int, Image.Image]]:
    """(``Alphabet/characterNN``, drawer index 0..19, image) for every PNG of an official zip."""
    with zipfile.ZipFile(zip_path) as z:
        for name in sorted(n for n in z.namelist() if n.endswith(".png")):
            _, alphabet, character, file = name.split("/")
            drawer = int(file[:-4].split("_")[1]) - 1
            with z.open(name) as f, Image.open(f) as img:
                img.load()
                yield f"{alphabet}/{character}", drawer, img


@pytest.fixture
def cache_dir(omniglot_cache_dir: Path) -> Path:
    return omniglot_cache_dir


@pytest.fixture(scope="module")
def small_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A root holding only ``images_background.zip`` (official layout, 136 characters)."""
    src = SHARED_DATA / "omniglot" / "images_background_small1.zip"
    if not src.is_file():
        pytest.skip(f"{src} not found")
    root = tmp_path_factory.mktemp("small")
    _rezip(src, root / "images_background.zip", "images_background_small1", "images_background")
    return root


def test_zip_route_equals_official_pngs_and_npz_route(shared_data: Path, small_root: Path) -> None:
    images, names = read_omniglot_set(small_root, "background", image_size=105)
    assert (small_root / "images_background").is_dir()  # (d): unpacked safely into the root
    assert images.shape == (136, 20, 105, 105) and images.dtype == np.uint8
    index = {n: i for i, n in enumerate(names)}
    count = 0
    for name, drawer, img in _official_pngs(shared_data / "omniglot" / "images_background_small1.zip"):
        assert img.mode == "1" and img.size == (105, 105)
        ink = np.where(np.asarray(img), 0, 255)  # official: white (True) background, black ink
        np.testing.assert_array_equal(images[index[name], drawer], ink, err_msg=f"{name} drawer {drawer + 1}")
        count += 1
    assert count == 136 * 20

    full, full_names = read_omniglot_set(shared_data / "omniglot", "background", image_size=105)
    assert len(full_names) == 964 and set(names) <= set(full_names)
    rows = [full_names.index(n) for n in names]
    np.testing.assert_array_equal(full[rows], images)


def test_png_tree_route_and_resize_match_npz_route(shared_data: Path, small_root: Path) -> None:
    read_omniglot_set(small_root, "background", image_size=105)  # makes sure the tree is unpacked
    (small_root / "images_background.zip").rename(small_root / "moved.zip")  # (c): the PNG tree alone
    try:
        images, names = read_omniglot_set(small_root, "background", image_size=28)
    finally:
        (small_root / "moved.zip").rename(small_root / "images_background.zip")
    full, full_names = read_omniglot_set(shared_data / "omniglot", "background", image_size=28)
    np.testing.assert_array_equal(full[[full_names.index(n) for n in names]], images)
    assert images.shape == (136, 20, 28, 28) and 0 < images.mean() < 60  # mostly dark background


def test_nearest_reproduces_the_protonet_pipeline(small_root: Path) -> None:
    """ProtoNet: open the mode-'1' PNG, rotate by PIL, resize (nearest for mode '1'), 1 - x."""
    images, names = read_omniglot_set(small_root, "background", image_size=28, resample="nearest")
    tree = small_root / "images_background"
    for name in names[::17]:
        png = sorted((tree / name).glob("*.png"))[3]
        for turns in range(4):
            with Image.open(png) as img:
                theirs = np.asarray(img.rotate(90 * turns).resize((28, 28)))
            ours = np.rot90(images[names.index(name), 3], turns)
            np.testing.assert_array_equal(ours, np.where(theirs, 0, 255), err_msg=f"{png} rot {90 * turns}")


@pytest.mark.parametrize(("split", "characters"), [("train", 1028), ("val", 172), ("test", 423)])
def test_vinyals_split_sizes(shared_data: Path, cache_dir: Path, split: str, characters: int) -> None:
    ds = omniglot(shared_data / "omniglot", split, cache_dir=cache_dir, progress=False)
    assert ds.num_classes == 4 * characters and len(ds) == 20 * 4 * characters
    assert ds.x_shape == (1, 28, 28) and ds.data.dtype == torch.uint8
    assert ds.class_counts.eq(20).all()
    x = ds.gather(ds.class_offsets[:8])
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0 and float(x.mean()) < 0.3  # ink bright, sparse


def test_vinyals_splits_are_disjoint_and_cover_omniglot(shared_data: Path, cache_dir: Path) -> None:
    chars = {}
    for split in ("train", "val", "test", "trainval"):
        names = omniglot(shared_data / "omniglot", split, cache_dir=cache_dir, progress=False).class_names
        chars[split] = {n.rsplit("/", 1)[0] for n in names}
    assert not chars["train"] & chars["val"] and not chars["train"] & chars["test"]
    assert not chars["val"] & chars["test"]
    assert chars["trainval"] == chars["train"] | chars["val"]
    assert len(chars["trainval"] | chars["test"]) == 1623


def test_rotations_are_exact_quarter_turns(shared_data: Path, cache_dir: Path) -> None:
    root = shared_data / "omniglot"
    ds = omniglot(root, "val", cache_dir=cache_dir, progress=False)
    lake = {
        which: omniglot(root, which, protocol="lake", cache_dir=cache_dir, progress=False)
        for which in ("background", "evaluation")
    }
    for char in sorted({n.rsplit("/", 1)[0] for n in ds.class_names})[::20]:
        base = _class(ds, f"{char}/rot000")
        plain = next(_class(d, char) for d in lake.values() if char in d.class_names)
        np.testing.assert_array_equal(base, plain)  # a Vinyals class at rot000 is the plain character
        for turns in (1, 2, 3):
            rotated = _class(ds, f"{char}/rot{90 * turns:03d}")
            np.testing.assert_array_equal(rotated, np.rot90(base, turns, axes=(1, 2)))
            pil = np.stack([np.asarray(Image.fromarray(b).rotate(90 * turns)) for b in base])
            np.testing.assert_array_equal(rotated, pil)  # same direction as PIL (ProtoNet's rotate)


def test_lake_splits(shared_data: Path, cache_dir: Path) -> None:
    root = shared_data / "omniglot"
    bg = omniglot(root, "background", protocol="lake", cache_dir=cache_dir, progress=False)
    ev = omniglot(root, "evaluation", protocol="lake", cache_dir=cache_dir, progress=False)
    assert (bg.num_classes, ev.num_classes) == (964, 659)
    assert not {n.split("/")[0] for n in bg.class_names} & {n.split("/")[0] for n in ev.class_names}
    rot = omniglot(root, "evaluation", protocol="lake", rotations=True, cache_dir=cache_dir, progress=False)
    assert rot.num_classes == 4 * 659 and rot.class_names[1].endswith("/rot090")
    plain = omniglot(root, "val", rotations=False, cache_dir=cache_dir, progress=False)
    assert plain.num_classes == 172 and "/rot" not in plain.class_names[0]


def test_cache_is_reused_and_fast(shared_data: Path, cache_dir: Path, tmp_path: Path) -> None:
    omniglot(shared_data / "omniglot", "background", protocol="lake", cache_dir=cache_dir, progress=False)
    (cache,) = cache_dir.glob("omniglot_28px_bilinear_*.npz")
    stamp = cache.stat().st_mtime_ns
    start = time.perf_counter()
    # an empty root: only the cache can answer
    ds = omniglot(tmp_path, "evaluation", protocol="lake", cache_dir=cache_dir, progress=False)
    elapsed = time.perf_counter() - start
    assert ds.num_classes == 659 and cache.stat().st_mtime_ns == stamp
    assert elapsed < 5.0, f"loading from the cache took {elapsed:.1f} s"
    assert sorted(p.name for p in cache_dir.iterdir()) == [cache.name]  # no temporary files left


def test_corrupt_cache_is_never_used_silently(shared_data: Path, cache_dir: Path, tmp_path: Path) -> None:
    omniglot(shared_data / "omniglot", "background", protocol="lake", cache_dir=cache_dir, progress=False)
    (good,) = cache_dir.glob("omniglot_28px_bilinear_*.npz")
    bad_dir = tmp_path / "cache"
    bad_dir.mkdir()
    bad = bad_dir / good.name
    empty_root = tmp_path / "empty"
    empty_root.mkdir()
    wrong = {"images": np.zeros((3, 20, 28, 28), np.uint8), "names": np.array(["a/character01"] * 3)}
    for corrupt in ("garbage", "truncated", "wrong_arrays"):
        if corrupt == "garbage":
            bad.write_bytes(b"not an npz at all")
        elif corrupt == "truncated":
            bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
        else:
            np.savez(bad, **wrong, sets=np.array(["background"] * 3), resample="bilinear", version=1)
        with pytest.warns(UserWarning, match="unusable"), pytest.raises(FileNotFoundError) as info:
            omniglot(empty_root, "background", protocol="lake", cache_dir=bad_dir, progress=False)
        assert str(bad) in str(info.value) and "download=True" in str(info.value)


def test_corrupt_cache_is_rebuilt_from_sources(shared_data: Path, tmp_path: Path) -> None:
    (tmp_path / "omniglot_10px_nearest_v1.npz").write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="rebuilding"):
        ds = omniglot(
            shared_data / "omniglot",
            "test",
            image_size=10,
            resample="nearest",
            cache_dir=tmp_path,
            progress=False,
        )
    assert ds.num_classes == 1692 and ds.x_shape == (1, 10, 10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the rebuilt cache is valid: no warning the second time
        omniglot(shared_data / "omniglot", "val", image_size=10, resample="nearest", cache_dir=tmp_path)


def test_missing_data_says_where_to_put_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="download=True") as info:
        omniglot(tmp_path, "background", protocol="lake", cache_dir=tmp_path / "c")
    assert "images_background.zip" in str(info.value) and "brendenlake/omniglot" in str(info.value)
    with pytest.raises(FileNotFoundError, match="train.txt.*download=True"):
        omniglot(tmp_path, "train", cache_dir=tmp_path / "c")


def test_download_fetches_official_zips_with_their_sha256(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    small = {"background": "images_background_small1", "evaluation": "images_background_small2"}

    def fake_download(url: str, dest: Path, *, sha256: str, progress: bool) -> Path:
        calls.append((url, Path(dest).name, sha256))
        which = Path(dest).stem.removeprefix("images_")
        return _rezip(
            shared_data / "omniglot" / f"{small[which]}.zip", Path(dest), small[which], Path(dest).stem
        )

    monkeypatch.setattr(og, "download_url", fake_download)
    with pytest.raises(ValueError, match="136 characters, expected 964"):  # the stand-ins are subsets
        og.load_omniglot_characters(tmp_path / "new", cache_dir=tmp_path / "c", download=True, progress=False)
    assert calls == [
        (og.ZIP_URL.format(w), f"images_{w}.zip", og.ZIP_SHA256[w]) for w in ("background", "evaluation")
    ]
    assert og.ZIP_URL.format("background") == (
        "https://raw.githubusercontent.com/brendenlake/omniglot/master/python/images_background.zip"
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"protocol": "snell"}, "protocol must be one of"),
        ({"split": "background"}, "not a vinyals split.*train"),
        ({"split": "test", "protocol": "lake"}, "background"),
        ({"split": "background", "protocol": "lake", "image_size": 0}, "image_size"),
        ({"split": "background", "protocol": "lake", "resample": "cubic"}, "resample must be one of"),
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        omniglot(tmp_path, **kwargs)


def test_split_file_must_be_the_published_one(shared_data: Path, tmp_path: Path) -> None:
    lines = (shared_data / "omniglot" / "splits_vinyals" / "val.txt").read_text().splitlines()
    (tmp_path / "splits_vinyals").mkdir()
    (tmp_path / "splits_vinyals" / "val.txt").write_text("\n".join(lines[:-4]) + "\n")
    with pytest.raises(ValueError, match="not the Vinyals split file"):
        omniglot(tmp_path, "val", cache_dir=tmp_path / "c")

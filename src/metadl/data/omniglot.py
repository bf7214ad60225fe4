"""Omniglot (Lake et al. 2015): 1623 handwritten characters from 50 alphabets, 20 drawings each.

Two protocols:

- ``"vinyals"`` (Vinyals et al. 2016, as used by ProtoNet and MAML): the split files of
  jakesnell/prototypical-networks list ``Alphabet/characterNN/rotDDD`` classes; every character in four
  rotations (0, 90, 180, 270 degrees) counts as four classes. train / val / trainval / test hold
  1028 / 172 / 1200 / 423 characters, i.e. 4112 / 688 / 4800 / 1692 classes.
- ``"lake"`` (the paper's own split): ``"background"`` (964 characters, 30 alphabets) and
  ``"evaluation"`` (659 characters, 20 alphabets), without rotations unless ``rotations=True``. To tune
  without touching the evaluation alphabets, ``"val"`` holds some background alphabets
  (``val_alphabets``, default :data:`LAKE_VAL_ALPHABETS`) and ``"train"`` the other background ones.

Pixels: ink is bright (uint8 255, 1.0 after :meth:`FewShotDataset.gather`) on a dark background (0),
the convention of the ProtoNet and MAML code. Images are resized from 105x105 with Pillow, by default
with its bilinear filter, which Pillow widens when shrinking (a triangle over 2 x 3.75 source pixels at
105 -> 28): antialiased grey levels, no ringing, the default of torchvision's ``Resize``, and within
one grey level of resizing the rotated image instead (Pillow rounds to 8 bits between its two passes).
``resample="nearest"`` gives the binary images of the original ProtoNet and MAML code exactly (Pillow
resizes their mode-'1' PNGs with nearest whatever filter is asked for). Pillow's "box" samples pixel
centres rather than averaging areas and is not rotation-consistent; bicubic and lanczos clip their
negative lobes between passes. Rotations are ``np.rot90`` of the resized image (exact,
counter-clockwise like ``PIL.Image.rotate``).

Sources, tried in this order in ``root``: a compact cache built by metadl (``.npz`` of uint8 holding all
1623 characters at one image size and filter); ``images_{background,evaluation}.npz`` with ``characters.csv`` (bool
arrays, True = white background); the official PNG folders ``images_background/`` and
``images_evaluation/``; the official zips (unpacked safely into ``root``); a download of the official zips
when ``download=True``.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from metadl.data.base import FewShotDataset
from metadl.data.download import ChecksumError, download_url, safe_extract_zip, sha256sum
from metadl.fileio import atomic_file

ZIP_URL = "https://raw.githubusercontent.com/brendenlake/omniglot/master/python/images_{}.zip"
# sha256 of the official zips (9,464,212 and 6,462,886 bytes) as recorded by tensorflow/datasets
# (url_checksums/omniglot.txt) and by torchvision's prototype Omniglot dataset; the two agree, and the
# same tensorflow/datasets file gives the small zips the hashes they have in ../shared/data. torchvision's
# md5s for the same files are 68d2efa1b9178cc56df9314c21c6e718 / 6b91aef0f799c5bb55b94e3f2daec811.
ZIP_SHA256 = {
    "background": "ad41ab679c8b5d90b271ef46be6987cc81211774a695c29dcc5367b2b26ee640",
    "evaluation": "1f61a8f3366785b057fc117d9228e78a16e3d976c8953b2a10fcc74cf0609cee",
}
SPLIT_URL = (
    "https://raw.githubusercontent.com/jakesnell/prototypical-networks/"
    "c9bb4d258267c11cb6e23f0a19242d24ca98ad8a/data/omniglot/splits/vinyals/{}.txt"
)
SPLIT_SHA256 = {
    "train": "984522c194c30fb678ce53304a160a42faf5403ad4f9a67010f32dd3a35738e0",
    "val": "11f99e54faee3e26f53d3231c1cceac5bf7b8730e9be31cb6dab256551dc0c1a",
    "trainval": "5276ae50c755596d0bff7f2284e85625695549a85ee6e36b6491ad1e5d1cc26a",
    "test": "845264cc5c156180828ccf17915668b17ee21424d0170df6e7d81676aa5d1204",
}
SETS = ("background", "evaluation")
NUM_CHARACTERS = {"background": 964, "evaluation": 659}
TRAINING_SPLITS = ("train", "trainval", "background")  # rotated under rotations="train"
SPLITS = {"vinyals": tuple(SPLIT_SHA256), "lake": (*SETS, "train", "val")}
# Validation alphabets of the Lake protocol: five background alphabets with at least 20 characters (so
# 20-way within-alphabet episodes exist), drawn with random.Random(0).sample(candidates, 5); 153 characters.
LAKE_VAL_ALPHABETS = ("Anglo-Saxon_Futhorc", "Burmese_(Myanmar)", "Grantha", "Greek", "Syriac_(Estrangelo)")
RESAMPLE = ("bilinear", "nearest", "box", "hamming", "bicubic", "lanczos")
DRAWINGS = 20
ORIGINAL_SIZE = 105
_CACHE_VERSION = 1
_NAME = re.compile(r"[^/]+/character\d+")
# How to fix a missing or unreachable source, for users of the library and of the command line alike.
_LOCAL_COPY = (
    "point root at a local copy instead (metadl: --set dataset.root=DIR --set dataset.download=false; "
    "DIR holds images_background.npz + images_evaluation.npz + characters.csv or the official zips or "
    "PNG folders, and splits_vinyals/, e.g. ../shared/data/omniglot)"
)
_DOWNLOAD = "pass download=True (metadl: --set dataset.download=true)"


class OmniglotDownloadError(OSError):
    """A file could not be downloaded (offline, proxy, server down); the message says how to use a local copy."""


def _download(url: str, dest: Path, sha256: str, progress: bool) -> Path:
    try:
        return download_url(url, dest, sha256=sha256, progress=progress)
    except OSError as err:
        raise OmniglotDownloadError(f"{err}; offline? {_LOCAL_COPY}") from None


class CorruptCacheError(ValueError):
    """The compact cache file cannot be read or does not hold a complete Omniglot."""


@dataclass(frozen=True)
class OmniglotCharacters:
    """Every character of a source at one image size, sorted by set then name.

    Attributes:
        images: ``(C, 20, S, S)`` uint8, ink 255 on background 0; ``[c, k]`` is drawer ``k + 1``.
        names: ``"Alphabet/characterNN"`` for each of the C characters.
        sets: ``"background"`` or ``"evaluation"`` for each character.
    """

    images: np.ndarray
    names: tuple[str, ...]
    sets: tuple[str, ...]


def _check_resize(image_size: int, resample: str) -> None:
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise ValueError(f"image_size must be a positive int, got {image_size!r}")
    if resample not in RESAMPLE:
        raise ValueError(f"resample must be one of {RESAMPLE}, got {resample!r}")


def _resize(ink: np.ndarray, size: int, resample: str) -> np.ndarray:
    """``(M, 105, 105)`` uint8 -> ``(M, size, size)`` with the named Pillow filter."""
    if ink.shape[-1] == size and ink.shape[-2] == size:
        return ink
    out = np.empty((len(ink), size, size), np.uint8)
    f = Image.Resampling[resample.upper()]
    for i, img in enumerate(ink):
        out[i] = np.asarray(Image.fromarray(img).resize((size, size), f))
    return out


def _read_npz(
    npz: Path, table: Path, which: str, size: int, resample: str, progress: bool
) -> tuple[np.ndarray, list[str]]:
    with open(table, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("set") == which]
    rows.sort(key=lambda r: int(r["npz_index"]))
    if [int(r["npz_index"]) for r in rows] != list(range(len(rows))):
        raise ValueError(f"{table} should give npz_index 0..N-1 for the {which} characters")
    names = [f"{r['alphabet']}/{r['character']}" for r in rows]
    with np.load(npz, allow_pickle=False) as arrays:
        images = arrays["images"]
    expected = (len(names), DRAWINGS, ORIGINAL_SIZE, ORIGINAL_SIZE)
    if images.dtype != np.bool_ or images.shape != expected:
        raise ValueError(
            f"{npz}: expected a bool array of shape {expected} (per {table.name}), "
            f"got {images.dtype} {images.shape}"
        )
    out = np.empty((len(names), DRAWINGS, size, size), np.uint8)
    for c in tqdm(range(len(names)), desc=f"omniglot {which}", disable=not progress):
        out[c] = _resize(np.where(images[c], 0, 255).astype(np.uint8), size, resample)  # True = background
    return out, names


def _read_png_tree(folder: Path, size: int, resample: str, progress: bool) -> tuple[np.ndarray, list[str]]:
    alphabets = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    characters = [
        c for a in alphabets for c in sorted(a.iterdir()) if c.is_dir() and not c.name.startswith(".")
    ]
    if not characters:
        raise ValueError(f"{folder} holds no Alphabet/characterNN/ folders of PNGs")
    out = np.empty((len(characters), DRAWINGS, size, size), np.uint8)
    for c, char_dir in enumerate(tqdm(characters, desc=f"omniglot {folder.name}", disable=not progress)):
        files = sorted(char_dir.glob("*.png"))
        if len(files) != DRAWINGS:
            raise ValueError(f"{char_dir} should hold {DRAWINGS} PNG drawings, found {len(files)}")
        ink = np.empty((DRAWINGS, ORIGINAL_SIZE, ORIGINAL_SIZE), np.uint8)
        for k, file in enumerate(files):
            try:
                with Image.open(file) as img:
                    gray = np.asarray(img.convert("L"))
            except OSError as err:
                raise ValueError(f"cannot read Omniglot image {file}: {err}") from err
            if gray.shape != (ORIGINAL_SIZE, ORIGINAL_SIZE):
                raise ValueError(f"{file} is {gray.shape[1]}x{gray.shape[0]}, Omniglot images are 105x105")
            ink[k] = 255 - gray  # official PNGs: black ink on white
        out[c] = _resize(ink, size, resample)
    return out, [f"{p.parent.name}/{p.name}" for p in characters]


def _source(root: Path, which: str) -> tuple[str, Path] | None:
    """The first raw source of one set found in ``root``, as (kind, path)."""
    npz, tree, archive = root / f"images_{which}.npz", root / f"images_{which}", root / f"images_{which}.zip"
    if npz.is_file() and (root / "characters.csv").is_file():
        return "npz", npz
    if tree.is_dir():
        return "png", tree
    if archive.is_file():
        return "zip", archive
    return None


def _missing(root: Path, which: str) -> str:
    return (
        f"Omniglot images_{which} not found in {root}: looked for images_{which}.npz with characters.csv, "
        f"the folder images_{which}/ (official PNG layout) and images_{which}.zip. Put one of them there "
        f"(the official zip is {ZIP_URL.format(which)}), {_DOWNLOAD}, or {_LOCAL_COPY}"
    )


def read_omniglot_set(
    root: str | os.PathLike[str],
    which: str,
    *,
    image_size: int = 28,
    resample: str = "bilinear",
    progress: bool = False,
) -> tuple[np.ndarray, list[str]]:
    """One set (``"background"`` or ``"evaluation"``) from the raw files in ``root``, without the cache.

    Returns ``(images, names)``: ``(C, 20, S, S)`` uint8 (ink 255) and ``"Alphabet/characterNN"`` names,
    sorted by name. Any number of characters is accepted (e.g. the official small subsets); a zip is
    unpacked into ``root`` first.
    """
    if which not in SETS:
        raise ValueError(f"which must be one of {SETS}, got {which!r}")
    _check_resize(image_size, resample)
    root = Path(root)
    found = _source(root, which)
    if found is None:
        raise FileNotFoundError(_missing(root, which))
    kind, path = found
    if kind == "zip":
        safe_extract_zip(path, root)
        kind, path = "png", root / f"images_{which}"
        if not path.is_dir():
            raise ValueError(f"{found[1]} does not hold a top-level images_{which}/ folder")
    if kind == "npz":
        images, names = _read_npz(path, root / "characters.csv", which, image_size, resample, progress)
    else:
        images, names = _read_png_tree(path, image_size, resample, progress)
    order = sorted(range(len(names)), key=names.__getitem__)
    return images[order], [names[i] for i in order]


def _cache_problem(arrays: dict[str, np.ndarray], image_size: int, resample: str) -> str | None:
    """Why a loaded cache cannot be trusted, or None."""
    if set(arrays) != {"images", "names", "sets", "resample", "version"}:
        return f"arrays {sorted(arrays)}, expected images, names, resample, sets, version"
    if arrays["version"].shape != () or int(arrays["version"]) != _CACHE_VERSION:
        return f"format version {arrays['version']}, expected {_CACHE_VERSION}"
    if str(arrays["resample"]) != resample:
        return f"resized with {arrays['resample']}, expected {resample}"
    total = sum(NUM_CHARACTERS.values())
    images, names, sets = arrays["images"], arrays["names"].tolist(), arrays["sets"].tolist()
    if images.dtype != np.uint8 or images.shape != (total, DRAWINGS, image_size, image_size):
        return f"images are {images.dtype} {images.shape}, expected uint8 {(total, DRAWINGS, image_size, image_size)}"
    if len(names) != total or len(set(names)) != total or not all(_NAME.fullmatch(str(n)) for n in names):
        return f"{len(set(names))} distinct Alphabet/characterNN names, expected {total}"
    if len(sets) != total or {s: sets.count(s) for s in SETS} != NUM_CHARACTERS:
        return f"set sizes differ from {NUM_CHARACTERS}"
    return None


def _load_cache(path: Path, image_size: int, resample: str) -> OmniglotCharacters:
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
        problem = _cache_problem(arrays, image_size, resample)
    except Exception as err:  # any failure to parse the file means it is unusable
        problem = f"{type(err).__name__}: {err}"
    if problem:
        raise CorruptCacheError(f"Omniglot cache {path} is unusable ({problem})")
    names, sets = tuple(arrays["names"].tolist()), tuple(arrays["sets"].tolist())
    return OmniglotCharacters(arrays["images"], names, sets)


def _write_cache(path: Path, chars: OmniglotCharacters, resample: str) -> None:
    """Write atomically (:func:`metadl.fileio.atomic_file`): a killed writer never leaves half a cache."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path, suffix=".part") as f:
        np.savez_compressed(
            f,
            images=chars.images,
            names=np.array(chars.names),
            sets=np.array(chars.sets),
            resample=np.array(resample),
            version=np.array(_CACHE_VERSION),
        )


def default_cache_dir(root: str | os.PathLike[str]) -> Path:
    """``root/metadl_cache`` when ``root`` is writable, else a folder under ``$XDG_CACHE_HOME/metadl``."""
    root = Path(root)
    if root.is_dir() and os.access(root, os.W_OK):
        return root / "metadl_cache"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "metadl" / f"omniglot-{hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:12]}"


def _build(root: Path, image_size: int, resample: str, download: bool, progress: bool) -> OmniglotCharacters:
    for which in SETS:
        if _source(root, which) is None:
            if not download:
                raise FileNotFoundError(_missing(root, which))
            url = ZIP_URL.format(which)
            _download(url, root / f"images_{which}.zip", ZIP_SHA256[which], progress)
    parts = {}
    for which in SETS:
        parts[which] = read_omniglot_set(
            root, which, image_size=image_size, resample=resample, progress=progress
        )
        if len(parts[which][1]) != NUM_CHARACTERS[which]:
            raise ValueError(
                f"Omniglot images_{which} in {root} has {len(parts[which][1])} characters, expected "
                f"{NUM_CHARACTERS[which]}: an incomplete copy? (the official zip is {ZIP_URL.format(which)})"
            )
    return OmniglotCharacters(
        np.concatenate([parts[w][0] for w in SETS]),
        tuple(n for w in SETS for n in parts[w][1]),
        tuple(w for w in SETS for _ in parts[w][1]),
    )


def load_omniglot_characters(
    root: str | os.PathLike[str],
    *,
    image_size: int = 28,
    resample: str = "bilinear",
    cache_dir: str | os.PathLike[str] | None = None,
    download: bool = False,
    progress: bool = True,
) -> OmniglotCharacters:
    """All 1623 characters at ``image_size``: from the cache, else built from ``root`` and cached.

    The cache is ``cache_dir/omniglot_{S}px_{resample}_v1.npz`` (``cache_dir`` defaults to
    :func:`default_cache_dir`). A cache that cannot be read or is incomplete is rebuilt, with a warning.
    """
    _check_resize(image_size, resample)
    root = Path(root)
    if download:
        root.mkdir(parents=True, exist_ok=True)
    cache = (
        Path(cache_dir or default_cache_dir(root))
        / f"omniglot_{image_size}px_{resample}_v{_CACHE_VERSION}.npz"
    )
    stale = None
    if cache.is_file():
        try:
            return _load_cache(cache, image_size, resample)
        except CorruptCacheError as err:
            stale = err
            warnings.warn(f"{err}; rebuilding it from {root}", stacklevel=2)
    try:
        chars = _build(root, image_size, resample, download, progress)
    except FileNotFoundError as err:
        if stale is not None:
            raise FileNotFoundError(f"{stale}, and it cannot be rebuilt: {err}") from err
        raise
    try:
        _write_cache(cache, chars, resample)
    except OSError as err:
        warnings.warn(
            f"could not write the Omniglot cache {cache} ({err}); the next load rebuilds it", stacklevel=2
        )
    return chars


def _split_classes(root: Path, split: str, download: bool, progress: bool) -> list[str]:
    """The ``Alphabet/characterNN/rotDDD`` lines of a Vinyals split file, checked against its sha256."""
    candidates = [root / "splits_vinyals" / f"{split}.txt", root / "splits" / "vinyals" / f"{split}.txt"]
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        if not download:
            raise FileNotFoundError(
                f"Vinyals split file {split}.txt not found at {candidates[0]} or {candidates[1]}; "
                f"put {SPLIT_URL.format(split)} there, {_DOWNLOAD}, or {_LOCAL_COPY}"
            )
        path = _download(SPLIT_URL.format(split), candidates[0], SPLIT_SHA256[split], progress)
    actual = sha256sum(path)
    if actual != SPLIT_SHA256[split]:
        raise ChecksumError(
            f"{path} is not the Vinyals split file: expected sha256 {SPLIT_SHA256[split]}, got {actual}"
        )
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def _assemble(
    chars: OmniglotCharacters, classes: list[tuple[str, int]], rotated: bool, name: str
) -> FewShotDataset:
    """One class per (character, quarter turns), in the given order."""
    index = {n: i for i, n in enumerate(chars.names)}
    unknown = [c for c, _ in classes if c not in index]
    if unknown:
        raise ValueError(f"{name}: {len(unknown)} characters are not in Omniglot, e.g. {unknown[:3]}")
    rows = np.array([index[c] for c, _ in classes], dtype=np.int64)
    turns = np.array([k for _, k in classes], dtype=np.int64)
    size = chars.images.shape[-1]
    out = np.empty((len(classes), DRAWINGS, size, size), np.uint8)
    for k in range(4):
        sel = np.flatnonzero(turns == k)
        if sel.size:
            out[sel] = np.rot90(chars.images[rows[sel]], k, axes=(2, 3))
    names = [f"{c}/rot{90 * k:03d}" if rotated else c for c, k in classes]
    labels = torch.arange(len(classes)).repeat_interleave(DRAWINGS)
    return FewShotDataset(torch.from_numpy(out.reshape(-1, 1, size, size)), labels, names, name=name)


def _lake_characters(chars: OmniglotCharacters, split: str, val_alphabets: Sequence[str]) -> list[str]:
    """The names of the characters of one Lake split, in order."""
    if split in SETS:
        return [n for n, s in zip(chars.names, chars.sets, strict=True) if s == split]
    background = sorted(
        {n.partition("/")[0] for n, s in zip(chars.names, chars.sets, strict=True) if s == SETS[0]}
    )
    unknown = sorted(set(val_alphabets) - set(background))
    if unknown or not val_alphabets:
        raise ValueError(
            f"val_alphabets must name background alphabets (e.g. {background[:3]}), got {unknown or list(val_alphabets)}"
        )
    held = set(val_alphabets)
    return [
        n
        for n, s in zip(chars.names, chars.sets, strict=True)
        if s == SETS[0] and (n.partition("/")[0] in held) == (split == "val")
    ]


def omniglot(
    root: str | os.PathLike[str],
    split: str = "train",
    *,
    protocol: str = "vinyals",
    image_size: int = 28,
    resample: str = "bilinear",
    rotations: bool | str | None = None,
    val_alphabets: Sequence[str] = LAKE_VAL_ALPHABETS,
    download: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> FewShotDataset:
    """One split of Omniglot as a :class:`FewShotDataset` of ``(N, 1, S, S)`` uint8 images.

    Args:
        root: the folder with the data (see the module docstring for the accepted layouts); the
            Vinyals split files are read from ``root/splits_vinyals/`` or ``root/splits/vinyals/``.
        split: ``"train"``, ``"val"``, ``"trainval"`` or ``"test"`` (Vinyals); ``"background"``,
            ``"evaluation"``, ``"train"`` (background minus ``val_alphabets``) or ``"val"`` (Lake).
        protocol: ``"vinyals"`` or ``"lake"``.
        image_size: side S of the square images (105 keeps the originals).
        resample: the Pillow filter that resizes them (see the module docstring).
        rotations: classes per rotation; defaults to True for Vinyals (as its split files list them)
            and False for Lake. ``False`` with Vinyals keeps the split's characters unrotated.
            ``"train"``: rotations on the training splits only (:data:`TRAINING_SPLITS`), so one config
            trains on rotated classes and validates and tests on the characters as drawn.
        val_alphabets: background alphabets of the Lake ``"val"`` split (not in its ``"train"``).
        download: fetch the official zips and split files (sha256-checked) when they are missing.
        cache_dir: where the compact cache lives (default :func:`default_cache_dir`).
        progress: show progress bars while downloading or building the cache.

    Example:
        >>> ds = omniglot("data/omniglot", "train")  # doctest: +SKIP
        >>> ds.num_classes, len(ds), ds.x_shape, ds.class_names[1]  # doctest: +SKIP
        (4112, 82240, (1, 28, 28), 'Angelic/character01/rot090')
    """
    if protocol not in SPLITS:
        raise ValueError(f"protocol must be one of {sorted(SPLITS)}, got {protocol!r}")
    if split not in SPLITS[protocol]:
        raise ValueError(f"split {split!r} is not a {protocol} split; choose one of {list(SPLITS[protocol])}")
    _check_resize(image_size, resample)
    if rotations not in (None, True, False, "train"):
        raise ValueError(
            f"rotations must be true, false, null or 'train' (training splits only), got {rotations!r}"
        )
    if rotations == "train":
        rotated = split in TRAINING_SPLITS
    else:
        rotated = (protocol == "vinyals") if rotations is None else bool(rotations)
    root = Path(root)
    classes: list[tuple[str, int]] = []
    if protocol == "vinyals":  # read the split file first: a missing one fails before any heavy work
        for line in _split_classes(root, split, download, progress):
            char, _, rot = line.rpartition("/")
            if not re.fullmatch(r"rot(000|090|180|270)", rot):
                raise ValueError(f"unexpected line {line!r} in the Vinyals {split} split")
            if rotated or rot == "rot000":
                classes.append((char, int(rot[3:]) // 90))
    chars = load_omniglot_characters(
        root,
        image_size=image_size,
        resample=resample,
        cache_dir=cache_dir,
        download=download,
        progress=progress,
    )
    if protocol == "lake":
        turns = range(4) if rotated else range(1)
        keep = _lake_characters(chars, split, val_alphabets)
        classes = [(n, k) for n in keep for k in turns]
    return _assemble(chars, classes, rotated, name=f"omniglot-{protocol}-{split}")

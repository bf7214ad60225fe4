"""Any ``root/<class>/<image>`` folder tree as a :class:`FewShotDataset`.

The layout of mini-ImageNet, CIFAR-FS, CUB and most few-shot image sets once unpacked: one folder per
class, images of any mode and size inside. Images are converted to grayscale (``channels=1``, ITU-R 601
luma) or RGB (``channels=3``; transparent pixels composited on white), resized to a square
``image_size`` with Pillow's bilinear filter (antialiased when shrinking, the default of torchvision's
``Resize``, so results match the usual pipelines) and stored as uint8 ``(N, C, S, S)``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from metadl.data.base import FewShotDataset
from metadl.data.preprocess import check_link

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def _to_mode(img: Image.Image, channels: int) -> Image.Image:
    """Convert any Pillow image to 8-bit 'L' or 'RGB'."""
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):  # 16-bit or float grayscale
        arr = np.asarray(img, dtype=np.float64)
        if arr.max(initial=0) > 255:  # 16-bit data: scale 0..65535 to 0..255
            arr = arr * (255.0 / 65535.0)
        img = Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8))
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return img.convert("L" if channels == 1 else "RGB")


def _load(file: Path, image_size: int, channels: int) -> np.ndarray:
    """``(channels, S, S)`` uint8 for one file; a file Pillow cannot decode raises naming it."""
    try:
        with Image.open(file) as opened:
            opened.load()
            img = _to_mode(opened, channels)
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise ValueError(f"cannot read image {file}: {err}") from err
    if img.size != (image_size, image_size):
        img = img.resize((image_size, image_size), Image.Resampling.BILINEAR)
    arr = np.asarray(img, dtype=np.uint8)
    return arr[None] if channels == 1 else arr.transpose(2, 0, 1)


def _visible_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _images(folder: Path, suffixes: set[str]) -> list[Path]:
    """The image files directly inside ``folder`` (by suffix, hidden files skipped), sorted by name."""
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in suffixes
    )


def image_folder(
    root: str | os.PathLike[str],
    *,
    image_size: int = 84,
    channels: int = 1,
    invert: bool = False,
    extensions: Sequence[str] = IMAGE_EXTENSIONS,
    classes: Sequence[str] | None = None,
    name: str | None = None,
) -> FewShotDataset:
    """Read ``root/<class>/<image>`` into a :class:`FewShotDataset` of uint8 ``(N, channels, S, S)``.

    A folder of images without class folders is read as one class named after the folder: an unlabelled
    pool for the unsupervised task sources (``augment.unsupervised`` in a config: UMTRA, CACTUs).

    Args:
        root: a folder with one sub-folder per class (hidden entries are ignored), or of images only.
        image_size: side S of the square output (images are resized, aspect not kept).
        channels: 1 for grayscale, 3 for RGB.
        invert: store ``255 - pixel`` (e.g. dark ink on white paper becomes bright on dark).
        extensions: file suffixes read as images (case-insensitive); other files are ignored.
        classes: the class folders to keep, in this order (a split by class list); default all,
            sorted by name.
        name: the dataset's name (default: the folder's name).

    Example:
        >>> import tempfile, pathlib
        >>> from PIL import Image
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> for c in ("cat", "dog"):
        ...     (root / c).mkdir()
        ...     for i in range(3):
        ...         Image.new("RGB", (40, 30), (i * 80, 0, 0)).save(root / c / f"{i}.png")
        >>> ds = image_folder(root, image_size=16, channels=3)
        >>> ds.class_names, tuple(ds.data.shape), ds.data.dtype
        (['cat', 'dog'], (6, 3, 16, 16), torch.uint8)
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels!r}")
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise ValueError(f"image_size must be a positive int, got {image_size!r}")
    root = Path(root)
    if not root.is_dir():
        siblings = _visible_dirs(root.parent) if root.parent.is_dir() else []
        hint = (
            f"; {root.parent} holds {[p.name for p in siblings][:5]}: a split is a sub-folder of dataset.root, so "
            f"create {root.name}/ or choose another split (dataset.val_split: null turns validation off)"
            if siblings
            else ""
        )
        raise FileNotFoundError(
            f"image folder {root} does not exist (expected root/<class>/<image> files){hint}"
        )
    suffixes = {e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions}
    found = {p.name: p for p in _visible_dirs(root)}
    if not found and _images(root, suffixes):  # an unlabelled folder: its images are one class
        found = {root.name: root}
    if not found:
        raise ValueError(f"{root} has no class folders and no images; expected root/<class>/<image> files")
    if classes is None:
        chosen = list(found)
    else:
        chosen = list(classes)
        missing = [c for c in chosen if c not in found]
        if missing:
            raise ValueError(
                f"classes not found in {root}: {missing[:5]} (there are {len(found)} class folders)"
            )
        if len(set(chosen)) != len(chosen):
            raise ValueError("classes lists a class more than once")
    images: list[np.ndarray] = []
    labels: list[int] = []
    for label, cls in enumerate(chosen):
        check_link(found[cls], root)
        files = _images(found[cls], suffixes)
        for file in files:
            check_link(file, root)
        if not files:
            raise ValueError(f"class folder {found[cls]} holds no images with suffix in {sorted(suffixes)}")
        images.extend(_load(f, image_size, channels) for f in files)
        labels.extend([label] * len(files))
    data = np.stack(images)
    if invert:
        np.subtract(255, data, out=data)
    return FewShotDataset(
        torch.from_numpy(data), torch.tensor(labels, dtype=torch.long), chosen, name=name or root.name
    )

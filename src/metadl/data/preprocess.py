"""Bring any image to what a model was trained on: size, channels, ink polarity, [0, 1] floats.

A saved model records a :class:`Preprocessing` (see :mod:`metadl.saving`); ``metadl predict`` applies
it to every support and query image. The steps, in order:

1. **Decode** with Pillow, any mode: ``1``, ``L``, ``P``, ``RGB``, ``RGBA``, ``LA``, ``CMYK``, 16-bit
   (``I;16*``, divided by 65535) and 32-bit ``I`` (divided by 65535 if any value exceeds 255, else by
   255: Pillow opens 16-bit PNGs as ``I`` or ``I;16`` depending on the version). Values become floats
   in [0, 1], without an 8-bit round trip.
2. **Transparency** is treated as background and composited away. For natural images
   (``background=None``) it becomes white, as in :func:`metadl.data.image_folder.image_folder`; for ink
   models it becomes whatever contrasts with the opaque pixels (white under dark strokes, black under
   light ones), so a transparent PNG of strokes keeps its strokes whatever their colour.
3. **Channels**: to 1 with ITU-R 601-2 luma (``0.299 R + 0.587 G + 0.114 B``, Pillow's ``L``), to 3 by
   repeating the grey channel.
4. **Size**: ``fit="stretch"`` resizes to ``image_size`` ignoring the aspect ratio (what
   ``image_folder`` does at training time); ``"pad"`` resizes the image to fit inside ``image_size``
   keeping its aspect ratio, then pads the short side with the background colour (median of the
   border), so a wide glyph is not squashed and a thin 16000 x 1 strip costs no more than a small
   image; ``"crop"`` takes the central square. Resizing is done on float data with Pillow's ``resample`` filter: ``"box"``
   (area averaging, what the Omniglot loader uses, so a pixel is the fraction of its cell covered by
   ink), ``"bilinear"`` (antialiased when shrinking, torchvision's default), ``"bicubic"``,
   ``"lanczos"`` or ``"nearest"``.
5. **Ink polarity**: ``background="dark"`` means the training images have bright ink on a dark
   background (Omniglot, the synthetic glyphs); ``"light"`` the reverse; ``None`` that there is no
   such convention (photos) and nothing is ever inverted. With ``invert="auto"`` an image is inverted
   (``1 - x``) when the median of its one-pixel border, after resizing, lies on the other side of 0.5
   than the training background: a scan of dark ink on white paper becomes bright ink on black.
   ``invert="always"`` / ``"never"`` override the guess.
6. **Normalisation**: optional per-channel ``(x - mean) / std`` after all of the above.

Images of more than ``MAX_IMAGE_PIXELS`` pixels (32 million, e.g. 8000 x 4000) are refused before they are
decoded, with a message that says so; Pillow's decompression-bomb check is reported the same way.

Example:
    >>> from PIL import Image
    >>> page = Image.new("L", (60, 40), 255)                 # white paper ...
    >>> page.paste(0, (25, 5, 35, 35))                       # ... with a black bar
    >>> p = Preprocessing(image_size=28, channels=1, background="dark", fit="pad")
    >>> x = preprocess_image(page, p)
    >>> tuple(x.shape), float(x[0, 0, 0]), float(x[0, 14, 14])   # inverted: dark background, bright ink
    ((1, 28, 28), 0.0, 1.0)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "box": Image.Resampling.BOX,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}
FITS = ("stretch", "pad", "crop")
BACKGROUNDS = ("dark", "light", None)
INVERTS = ("auto", "always", "never")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm")
LUMA = np.array([0.299, 0.587, 0.114])
MAX_IMAGE_PIXELS = 32_000_000  # decoded to float64, a 4-channel image of this size takes 1 GB


@dataclass(frozen=True)
class Preprocessing:
    """What the training images looked like, and how to make any image look like them.

    Attributes:
        image_size: output side (square) or ``(height, width)``.
        channels: 1 (grey) or 3 (RGB).
        background: ``"dark"`` (bright ink on dark, Omniglot-style), ``"light"`` (dark ink on light)
            or ``None`` (no ink convention: never invert).
        invert: ``"auto"`` (decide per image from its border), ``"always"`` or ``"never"``.
        fit: ``"stretch"``, ``"pad"`` or ``"crop"`` (how a non-matching aspect ratio is handled).
        resample: Pillow filter name, one of ``RESAMPLE``.
        mean, std: optional per-channel normalisation applied last.
    """

    image_size: int | tuple[int, int]
    channels: int = 1
    background: str | None = None
    invert: str = "auto"
    fit: str = "stretch"
    resample: str = "bilinear"
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        given: Any = self.image_size
        size = (given, given) if isinstance(given, int) and not isinstance(given, bool) else tuple(given)
        if len(size) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in size):
            raise ValueError(f"image_size must be a positive int or (height, width), got {self.image_size!r}")
        object.__setattr__(self, "image_size", size)
        for key, value, allowed in (
            ("channels", self.channels, (1, 3)),
            ("background", self.background, BACKGROUNDS),
            ("invert", self.invert, INVERTS),
            ("fit", self.fit, FITS),
            ("resample", self.resample, tuple(RESAMPLE)),
        ):
            if value not in allowed:
                raise ValueError(f"preprocessing {key}={value!r}; choose one of {list(allowed)}")
        for key in ("mean", "std"):
            stats = getattr(self, key)
            if stats is not None:
                values = tuple(float(v) for v in stats)
                if len(values) != self.channels:
                    raise ValueError(
                        f"preprocessing {key} needs {self.channels} values (one per channel), got {values}"
                    )
                object.__setattr__(self, key, values)
        if self.std is not None and min(self.std) <= 0:
            raise ValueError(f"preprocessing std must be > 0, got {self.std}")

    @property
    def height(self) -> int:
        return self.image_size[0]  # type: ignore[index]

    @property
    def width(self) -> int:
        return self.image_size[1]  # type: ignore[index]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; :meth:`from_dict` reads it back."""
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preprocessing:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown preprocessing keys {unknown}; allowed: {sorted(known)}")
        if "image_size" not in d:
            raise ValueError("preprocessing needs image_size")
        return cls(**d)

    @classmethod
    def for_dataset(cls, data: Tensor, **overrides: Any) -> Preprocessing:
        """Describe training images ``(N, C, H, W)`` (uint8 or [0, 1] floats): size, channels, and the
        background convention measured on the images' borders (``"dark"`` or ``"light"`` when at least
        95% of up to 1000 images agree, else ``None``). ``overrides`` set any other field.

        Example:
            >>> glyphs = torch.zeros(10, 1, 28, 28, dtype=torch.uint8); glyphs[:, :, 10:18, 12:16] = 255
            >>> Preprocessing.for_dataset(glyphs, resample="box").to_dict()["background"]
            'dark'
        """
        if data.dim() != 4 or data.shape[1] not in (1, 3):
            raise ValueError(f"for_dataset expects images (N, 1 or 3, H, W), got shape {tuple(data.shape)}")
        sample = data[:: max(1, len(data) // 1000)].float()
        sample = sample / 255.0 if data.dtype == torch.uint8 else sample
        dark = (border_median(sample.mean(1)) < 0.5).float().mean().item()
        background = "dark" if dark >= 0.95 else "light" if dark <= 0.05 else None
        settings: dict[str, Any] = {
            "image_size": tuple(data.shape[-2:]),
            "channels": data.shape[1],
            "background": background,
        }
        return cls(**{**settings, **overrides})


def border_median(images: Tensor) -> Tensor:
    """Median of the one-pixel border of each ``(..., H, W)`` image: its background level."""
    ring = torch.cat([images[..., 0, :], images[..., -1, :], images[..., 1:-1, 0], images[..., 1:-1, -1]], -1)
    return ring.median(-1).values


def to_float_array(img: Image.Image) -> np.ndarray:
    """Any Pillow image -> ``(H, W, C)`` float64 in [0, 1]; C is 1 (grey) or 3 (RGB), plus 1 for alpha."""
    mode = img.mode
    if mode.startswith("I;16"):
        return (np.asarray(img, dtype=np.float64) / 65535.0)[..., None]
    if mode in ("I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        scale = (
            65535.0 if arr.max(initial=0) > 255 else 255.0 if (mode == "I" or arr.max(initial=0) > 1) else 1.0
        )
        return np.clip(arr / scale, 0, 1)[..., None]
    has_alpha = mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in img.info
    if mode in ("1", "L") and not has_alpha:
        target = "L"
    elif mode in ("LA", "La") or (mode in ("L", "1") and has_alpha):
        target = "LA"
    else:
        target = "RGBA" if has_alpha else "RGB"
    arr = np.asarray(img.convert(target), dtype=np.float64) / 255.0
    return arr[..., None] if arr.ndim == 2 else arr


def composite_alpha(arr: np.ndarray, background: str | None) -> np.ndarray:
    """Drop the alpha channel of ``(H, W, 2 or 4)`` by compositing onto white, or, for ink models, onto
    the colour (white or black) that contrasts with the opaque pixels."""
    colour, alpha = arr[..., :-1], arr[..., -1:]
    fill = 1.0
    if background is not None and alpha.sum() > 0:
        luma = colour.mean(-1, keepdims=True) if colour.shape[-1] == 1 else colour @ LUMA[:, None]
        fill = 0.0 if (luma * alpha).sum() / alpha.sum() > 0.5 else 1.0
    return colour * alpha + fill * (1 - alpha)


def _fit(arr: np.ndarray, fit: str, height: int, width: int, resample: str) -> np.ndarray:
    """``(H, W, C)`` to ``(height, width, C)``: stretched, centre-cropped, or resized to fit inside and
    padded with the border's median colour (see the module docstring)."""
    h, w = arr.shape[:2]
    if fit == "stretch" or h * width == w * height:
        return _resize(arr, height, width, resample)
    if fit == "crop":
        ch, cw = (h, round(h * width / height)) if w * height > h * width else (round(w * height / width), w)
        top, left = (h - ch) // 2, (w - cw) // 2
        return _resize(arr[top : top + ch, left : left + cw], height, width, resample)
    scale = min(height / h, width / w)  # the whole image fits inside the target
    inner_h, inner_w = max(1, min(height, round(h * scale))), max(1, min(width, round(w * scale)))
    fill = border_median(torch.from_numpy(arr).permute(2, 0, 1)).numpy()
    out = np.broadcast_to(fill, (height, width, arr.shape[2])).copy()
    top, left = (height - inner_h) // 2, (width - inner_w) // 2
    out[top : top + inner_h, left : left + inner_w] = _resize(arr, inner_h, inner_w, resample)
    return out


def _resize(arr: np.ndarray, height: int, width: int, resample: str) -> np.ndarray:
    """Resize each channel of ``(H, W, C)`` float data with a Pillow filter (in float32 mode ``F``)."""
    if arr.shape[:2] == (height, width):
        return arr
    chans = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(arr[..., c], dtype=np.float32)).resize(
                (width, height), RESAMPLE[resample]
            )
        )
        for c in range(arr.shape[2])
    ]
    return np.stack(chans, -1).astype(np.float64)


def preprocess_image(image: Image.Image, preprocessing: Preprocessing) -> Tensor:
    """One Pillow image -> float32 ``(C, H, W)`` as the model expects (see the module docstring)."""
    p = preprocessing
    check_image_size(image)
    arr = to_float_array(image)
    if arr.shape[2] in (2, 4):
        arr = composite_alpha(arr, p.background)
    if p.channels == 1 and arr.shape[2] == 3:
        arr = arr @ LUMA[:, None]
    elif p.channels == 3 and arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    arr = _fit(arr, p.fit, p.height, p.width, p.resample)
    x = torch.from_numpy(np.clip(arr, 0.0, 1.0)).permute(2, 0, 1).float()  # (C, H, W)
    if p.invert == "always" or (
        p.invert == "auto" and p.background is not None and needs_inversion(x, p.background)
    ):
        x = 1.0 - x
    if p.mean is not None:
        x = x - torch.tensor(p.mean).view(-1, 1, 1)
    if p.std is not None:
        x = x / torch.tensor(p.std).view(-1, 1, 1)
    return x


def check_image_size(image: Image.Image, where: str = "the image") -> None:
    """Refuse an image of more than ``MAX_IMAGE_PIXELS`` pixels (checked on its header, before decoding).

    Example:
        >>> check_image_size(Image.new("L", (60000, 1)))          # thin is fine: 60,000 pixels
        >>> check_image_size(Image.new("1", (10000, 5000)), "big.png")
        Traceback (most recent call last):
        ...
        ValueError: big.png is 10000 x 5000 = 50000000 pixels, more than the 32000000 metadl reads; shrink it first (e.g. to 2048 pixels on its long side)
    """
    w, h = image.size
    if w * h > MAX_IMAGE_PIXELS:
        raise ValueError(
            f"{where} is {w} x {h} = {w * h} pixels, more than the {MAX_IMAGE_PIXELS} metadl reads; "
            "shrink it first (e.g. to 2048 pixels on its long side)"
        )


def needs_inversion(x: Tensor, background: str) -> bool:
    """True when the border of ``x (C, H, W)`` in [0, 1] is on the other side of 0.5 than ``background``."""
    level = float(border_median(x.mean(0)))
    return level > 0.5 if background == "dark" else level < 0.5


def load_image(path: str | os.PathLike[str], preprocessing: Preprocessing) -> Tensor:
    """Read one image file and preprocess it to ``(C, H, W)``; a file Pillow cannot decode raises
    ``ValueError`` naming it."""
    try:
        with Image.open(path) as img:
            check_image_size(img, str(path))
            img.load()
            return preprocess_image(img, preprocessing)
    except Image.DecompressionBombError as err:
        raise ValueError(f"{path} is refused: {err}; shrink it first") from None
    except (OSError, ValueError, SyntaxError) as err:
        raise ValueError(f"cannot read image {path}: {err}") from None


@dataclass
class ImageFiles:
    """Preprocessed images and where they came from.

    Attributes:
        x: ``(N, C, H, W)`` float32.
        files: the N source files, in the order of ``x``.
        labels: ``(N,)`` int64 class index (``load_folder_tree``) or ``None`` (``load_images``).
        class_names: one name per class (the folder names), or ``None``.
    """

    x: Tensor
    files: list[Path]
    labels: Tensor | None = None
    class_names: list[str] | None = None


def check_link(path: Path, root: Path) -> None:
    """Refuse a symbolic link that leads out of ``root``, to ``root`` itself or to a folder above the link
    (a loop): such a class folder would pull in other classes' images, or files from anywhere.

    Example:
        >>> import tempfile, pathlib
        >>> root = pathlib.Path(tempfile.mkdtemp()); (root / "cat").symlink_to(root)
        >>> check_link(root / "cat", root)
        Traceback (most recent call last):
        ...
        ValueError: .../cat is a symbolic link to .../..., which is not inside ...; links out of the folder, to it or above themselves are not followed: copy the files in instead
    """
    if not path.is_symlink():
        return
    target, top = path.resolve(), root.resolve()
    if (
        top not in target.parents
        or target in path.parent.resolve().parents
        or target == path.parent.resolve()
    ):
        raise ValueError(
            f"{path} is a symbolic link to {target}, which is not inside {root}; links out of the folder, "
            "to it or above themselves are not followed: copy the files in instead"
        )


def _image_files(
    folder: Path, extensions: Sequence[str], *, recursive: bool, root: Path | None = None
) -> list[Path]:
    """Image files below ``folder`` (links are checked against ``root``, default ``folder``)."""
    pattern = folder.rglob("*") if recursive else folder.iterdir()
    found = sorted(
        p
        for p in pattern
        if p.is_file()
        and p.suffix.lower() in extensions
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
    for p in found:
        check_link(p, root or folder)
    return found


def load_folder_tree(
    root: str | os.PathLike[str],
    preprocessing: Preprocessing,
    *,
    extensions: Sequence[str] = IMAGE_EXTENSIONS,
) -> ImageFiles:
    """A support set: ``root/<class>/<image>``, one folder per class (class name = folder name, classes
    sorted by name, hidden entries ignored, images found at any depth below their class folder)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(
            f"support folder {root} does not exist (expected {root}/<class>/<image> files)"
        )
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    for folder in class_dirs:
        check_link(folder, root)
    loose = [p.name for p in _image_files(root, extensions, recursive=False)]
    if loose:
        raise ValueError(
            f"{root} has images outside any class folder ({', '.join(loose[:3])}); put each class's "
            f"images in a sub-folder named after the class, e.g. {root / 'cat' / loose[0]}"
        )
    if not class_dirs:
        raise ValueError(f"{root} has no class folders; expected {root}/<class>/<image> files")
    images: list[Tensor] = []
    labels: list[int] = []
    files: list[Path] = []
    for label, folder in enumerate(class_dirs):
        found = _image_files(folder, extensions, recursive=True, root=root)
        if not found:
            raise ValueError(f"class folder {folder} holds no images with a suffix in {list(extensions)}")
        images += [load_image(f, preprocessing) for f in found]
        labels += [label] * len(found)
        files += found
    return ImageFiles(torch.stack(images), files, torch.tensor(labels), [d.name for d in class_dirs])


def load_images(
    root: str | os.PathLike[str],
    preprocessing: Preprocessing,
    *,
    extensions: Sequence[str] = IMAGE_EXTENSIONS,
) -> ImageFiles:
    """Every image below ``root`` (sorted by path, hidden entries ignored), or the one file ``root``."""
    root = Path(root)
    if root.is_file():
        return ImageFiles(load_image(root, preprocessing).unsqueeze(0), [root])
    if not root.is_dir():
        raise FileNotFoundError(f"query folder {root} does not exist")
    found = _image_files(root, extensions, recursive=True)
    if not found:
        raise ValueError(f"{root} holds no images with a suffix in {list(extensions)}")
    return ImageFiles(torch.stack([load_image(f, preprocessing) for f in found]), found)

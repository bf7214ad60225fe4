"""Omniglot scenes: a few-shot detection benchmark generated from Omniglot and written as COCO.

Each canvas is ``canvas`` x ``canvas`` pixels (128) of dark background holding 2-6 handwritten
characters, each drawn at a random side of 20-48 pixels at a random place where its box overlaps the
boxes already there by at most ``max_iou``, plus up to ``max_distractors`` random pen strokes that are
no character (clutter a detector must not box). A box is the tight box of the character's ink.

Classes: ``base_per_alphabet`` characters from each of the 30 *background* alphabets are the base
classes; ``novel_per_alphabet`` characters from each of ``novel_alphabets`` *evaluation* alphabets are
the novel classes (>= 20 from >= 5 alphabets by default), so novel classes come from alphabets a base
detector never saw, the Omniglot analogue of VOC's novel split. Drawers (20 per character) are split:
0-11 draw the training canvases, 12-15 validation, 16-19 test, so test characters are new drawings.

Training canvases hold novel characters too (a fraction ``novel_fraction`` of their objects):
``train_all.json`` annotates them (the oracle's data and the pool K-shot samples are drawn from),
``train_base.json`` leaves them unannotated, as in the VOC/COCO few-shot splits. ``val.json`` and
``test.json`` annotate every character, half base and half novel on average. ``split.json`` names the
base and novel categories and the spec the files were generated from.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from metadl.data.detection.annotations import BoxAnnotation, DetectionDataset, ImageInfo
from metadl.data.detection.coco import write_coco
from metadl.data.detection.fewshot import base_only
from metadl.data.omniglot import OmniglotCharacters
from metadl.fileio import atomic_write_bytes

DRAWERS = {"train": range(0, 12), "val": range(12, 16), "test": range(16, 20)}
INK = 64  # a pixel with more ink than this (of 255) belongs to the character's box


@dataclass(frozen=True)
class SceneSpec:
    """What the generator draws (the fields of the ``scenes`` section of ``detect_omniglot_scenes``)."""

    canvas: int = 128
    min_objects: int = 2
    max_objects: int = 6
    min_size: int = 20
    max_size: int = 48
    max_iou: float = 0.15
    max_distractors: int = 3
    base_per_alphabet: int = 1
    novel_alphabets: int = 5
    novel_per_alphabet: int = 4
    novel_fraction: float = 0.25
    train_images: int = 1200
    val_images: int = 150
    test_images: int = 300
    seed: int = 0

    def __post_init__(self) -> None:
        if not 2 <= self.min_objects <= self.max_objects:
            raise ValueError(
                f"objects per canvas {self.min_objects}-{self.max_objects}: need 2 <= min <= max"
            )
        if not 8 <= self.min_size <= self.max_size <= self.canvas // 2:
            raise ValueError(f"sizes {self.min_size}-{self.max_size}: need 8 <= min <= max <= canvas / 2")
        if not 0 <= self.novel_fraction < 1 or not 0 <= self.max_iou < 1:
            raise ValueError("novel_fraction and max_iou must be in [0, 1)")


@dataclass(frozen=True)
class SceneClasses:
    """The characters the scenes draw: indices into :class:`OmniglotCharacters`, base then novel."""

    base: tuple[int, ...]
    novel: tuple[int, ...]


def choose_classes(chars: OmniglotCharacters, spec: SceneSpec) -> SceneClasses:
    """Base characters from every background alphabet, novel ones from evaluation alphabets (seeded)."""
    rng = np.random.default_rng(spec.seed)
    alphabets: dict[tuple[str, str], list[int]] = {}
    for i, (name, which) in enumerate(zip(chars.names, chars.sets, strict=True)):
        alphabets.setdefault((which, name.split("/")[0]), []).append(i)

    def pick(which: str, n_alphabets: int | None, per: int) -> tuple[int, ...]:
        names = sorted(a for w, a in alphabets if w == which)
        if n_alphabets is not None:
            if n_alphabets > len(names):
                raise ValueError(f"{n_alphabets} {which} alphabets asked, {len(names)} exist")
            names = sorted(names[i] for i in rng.choice(len(names), n_alphabets, replace=False))
        out: list[int] = []
        for name in names:
            members = alphabets[(which, name)]
            out += sorted(members[i] for i in rng.choice(len(members), per, replace=False))
        return tuple(out)

    return SceneClasses(pick("background", None, spec.base_per_alphabet),
                        pick("evaluation", spec.novel_alphabets, spec.novel_per_alphabet))  # fmt: skip


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def draw_canvas(
    chars: OmniglotCharacters, labels: list[int], drawers: range, spec: SceneSpec, rng: np.random.Generator
) -> tuple[np.ndarray, list[tuple[int, tuple[float, float, float, float]]]]:
    """One canvas: ``(canvas, canvas)`` uint8 (ink 255) and ``(character index, tight box)`` per object
    placed (an object with no free place after 50 tries is left out)."""
    canvas = np.zeros((spec.canvas, spec.canvas), np.uint8)
    placed: list[tuple[int, tuple[float, float, float, float]]] = []
    for label in labels:
        side = int(rng.integers(spec.min_size, spec.max_size + 1))
        glyph = Image.fromarray(chars.images[label, int(rng.choice(drawers))]).resize(
            (side, side), Image.Resampling.BILINEAR
        )
        ink = np.asarray(glyph)
        rows, cols = np.nonzero(ink.max(axis=1) > INK)[0], np.nonzero(ink.max(axis=0) > INK)[0]
        if rows.size == 0:
            continue
        for _ in range(50):
            x, y = (int(v) for v in rng.integers(0, spec.canvas - side + 1, size=2))
            box = (
                float(x + cols[0]),
                float(y + rows[0]),
                float(cols[-1] - cols[0] + 1),
                float(rows[-1] - rows[0] + 1),
            )
            if all(_iou(box, other) <= spec.max_iou for _, other in placed):
                np.maximum(canvas[y : y + side, x : x + side], ink, out=canvas[y : y + side, x : x + side])
                placed.append((label, box))
                break
    image = Image.fromarray(canvas)
    pen = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(0, spec.max_distractors + 1))):
        start = rng.uniform(0, spec.canvas, size=2)
        points = [tuple(start)]
        for _ in range(int(rng.integers(1, 3))):
            start = np.clip(start + rng.normal(0, 10, size=2), 0, spec.canvas - 1)
            points.append(tuple(start))
        pen.line([(float(a), float(b)) for a, b in points], fill=255, width=int(rng.integers(2, 4)))
    return np.asarray(image), placed


def generate_scenes(chars: OmniglotCharacters, spec: SceneSpec, out: str | Path) -> Path:
    """Write the benchmark into ``out`` (see the module docstring); returns ``out``.

    Deterministic from ``spec.seed``: the same spec and characters give the same files.
    """
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    classes = choose_classes(chars, spec)
    category = {c: i for i, c in enumerate(classes.base + classes.novel, start=1)}
    categories = {i: chars.names[c] for c, i in category.items()}
    rng = np.random.default_rng(spec.seed + 1)
    sets = {"train": (spec.train_images, spec.novel_fraction), "val": (spec.val_images, 0.5),
            "test": (spec.test_images, 0.5)}  # fmt: skip
    image_id = 0
    for split, (count, novel_fraction) in sets.items():
        images, boxes = [], []
        for n in range(count):
            k = int(rng.integers(spec.min_objects, spec.max_objects + 1))
            novel = rng.random(k) < novel_fraction
            labels = [int(rng.choice(classes.novel if is_novel else classes.base)) for is_novel in novel]
            pixels, placed = draw_canvas(chars, labels, DRAWERS[split], spec, rng)
            image_id += 1
            name = f"images/{split}_{n:05d}.png"
            Image.fromarray(pixels).save(out / name)
            images.append(ImageInfo(image_id, name, spec.canvas, spec.canvas))
            boxes += [BoxAnnotation(image_id, category[label], box) for label, box in placed]
        ds = DetectionDataset(tuple(images), tuple(boxes), categories, out)
        if split == "train":
            write_coco(ds, out / "train_all.json")
            write_coco(base_only(ds, {category[c] for c in classes.novel}), out / "train_base.json")
        else:
            write_coco(ds, out / f"{split}.json")
    split_info = {
        "base": [chars.names[c] for c in classes.base],
        "novel": [chars.names[c] for c in classes.novel],
        "spec": asdict(spec),
    }
    atomic_write_bytes(out / "split.json", json.dumps(split_info, indent=1).encode())
    return out

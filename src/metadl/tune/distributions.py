"""The few-shot task distributions to learn tuning from: synthetic glyphs, Omniglot alphabets, text intents.

Warm-starting a search needs a database of searches on *other* task distributions. This module generates
36 synthetic-glyph distributions, each small enough that a trial trains in seconds on a CPU: the product of

- **difficulty** (easy, medium, hard): the per-drawing variation of :class:`~metadl.data.synthetic.GlyphStyle`
  (control-point jitter, stroke shift, rotation, scale, shear, translation) scaled by 0.4, 1 and 1.7;
- **pen** (thin, thick): the pen width range;
- **image size** (16, 20 pixels);
- **episode shape** (5-way 1-shot, 5-way 5-shot, 10-way 1-shot).

Each distribution draws its own glyph alphabet (its index is the glyph seed): no two share a class. A
distribution has 60 training, 20 validation and 20 test classes of 10 drawings each.

Given their data folders, :func:`task_distributions` adds 16 distributions of real data
(:mod:`metadl.tune.real_distributions`): 10 Omniglot alphabet subsets at 16-28 pixels and 6 text-intent
subsets of CLINC150 and BANKING77 (frozen sentence embeddings).

Example:
    >>> dists = task_distributions()
    >>> len(dists), len({d.name for d in dists}), dists[0].name
    (36, 36, 'glyphs-easy-thin-16px-5w1s')
    >>> len(task_distributions(omniglot="data/omniglot", clinc150="data/clinc150", banking77="data/banking77"))
    52
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, replace
from typing import Any

from metadl.data.base import FewShotDataset
from metadl.data.synthetic import GlyphStyle, synthetic_glyphs
from metadl.tune.budget import Distribution, TrialBudget, trial_config
from metadl.tune.real_distributions import intent_distributions, omniglot_distributions

__all__ = ["Distribution", "TaskDistribution", "TrialBudget", "find_distribution", "task_distributions"]

DIFFICULTY = {"easy": 0.4, "medium": 1.0, "hard": 1.7}
PEN = {"thin": (0.8, 1.4), "thick": (2.4, 3.6)}
IMAGE_SIZES = (16, 20)
SHAPES = ((5, 1), (5, 5), (10, 1))  # (ways, shots)
CLASSES = {"train": 60, "val": 20, "test": 20}
EXAMPLES_PER_CLASS = 10


@dataclass(frozen=True)
class TaskDistribution:
    """One synthetic-glyph task distribution (see the module docstring)."""

    difficulty: str
    pen: str
    image_size: int
    ways: int
    shots: int
    glyph_seed: int

    @property
    def modality(self) -> str:
        return "image"

    @property
    def name(self) -> str:
        return f"glyphs-{self.difficulty}-{self.pen}-{self.image_size}px-{self.ways}w{self.shots}s"

    def style(self) -> GlyphStyle:
        base, k = GlyphStyle(), DIFFICULTY[self.difficulty]
        return replace(
            base,
            jitter=base.jitter * k,
            stroke_shift=base.stroke_shift * k,
            rotation=base.rotation * k,
            scale=base.scale * k,
            aspect=base.aspect * k,
            shear=base.shear * k,
            translation=base.translation * k,
            width=PEN[self.pen],
        )

    def splits(self) -> dict[str, FewShotDataset]:
        """The train, val and test splits (rendered in about a second)."""
        return {split: self.split(split) for split in CLASSES}

    def split(self, split: str) -> FewShotDataset:
        """One split: ``"train"``, ``"val"`` or ``"test"``."""
        return synthetic_glyphs(
            split,
            num_classes=CLASSES[split],
            examples_per_class=EXAMPLES_PER_CLASS,
            image_size=self.image_size,
            seed=self.glyph_seed,
            style=self.style(),
        )

    def config(self, budget: TrialBudget | None = None, *, seed: int = 0) -> dict[str, Any]:
        """A config mapping for a trial on this distribution (its data is given as splits, not read from it)."""
        dataset = {"name": "synthetic_glyphs", "image_size": self.image_size, "seed": self.glyph_seed}
        return trial_config(
            dataset, ways=self.ways, shots=self.shots, backbone="conv4", budget=budget, seed=seed
        )


def glyph_distributions() -> list[TaskDistribution]:
    """The 36 synthetic-glyph distributions, in a fixed order (difficulty, pen, size, shape)."""
    combos = itertools.product(DIFFICULTY, PEN, IMAGE_SIZES, SHAPES)
    return [
        TaskDistribution(difficulty, pen, size, ways, shots, glyph_seed=1000 + i)
        for i, (difficulty, pen, size, (ways, shots)) in enumerate(combos)
    ]


def task_distributions(
    *,
    omniglot: str | os.PathLike[str] | None = None,
    clinc150: str | os.PathLike[str] | None = None,
    banking77: str | os.PathLike[str] | None = None,
    encoder: str = "wordllama",
) -> list[Distribution]:
    """The 36 glyph distributions, then those of the real data whose folder is given (Omniglot's 10 alphabet
    subsets, CLINC150's 5 domain pairs, BANKING77; :mod:`metadl.tune.real_distributions`)."""
    out: list[Distribution] = list(glyph_distributions())
    if omniglot is not None:
        out += omniglot_distributions(omniglot)
    out += intent_distributions(clinc150, banking77, encoder=encoder)
    return out


def find_distribution(name: str, **data: Any) -> Distribution:
    """The distribution called ``name`` among :func:`task_distributions` ``(**data)``."""
    by_name = {d.name: d for d in task_distributions(**data)}
    if name not in by_name:
        raise ValueError(
            f"unknown task distribution {name!r}; choose one of {sorted(by_name)} "
            "(Omniglot and text-intent distributions need their data folder)"
        )
    return by_name[name]

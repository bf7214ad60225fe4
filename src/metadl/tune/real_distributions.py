"""Task distributions made of real data: Omniglot alphabet subsets and text-intent subsets.

Beside the 36 synthetic-glyph distributions (:mod:`metadl.tune.distributions`), the tuning database
learns from distributions whose data a user actually has:

- **Omniglot alphabet subsets** (10): the 30 background alphabets, sorted by name, dealt into 10 groups of
  3 (alphabet ``i`` goes to group ``i % 10``); group ``g`` is seen at ``16/20/28`` pixels (``g % 3``) through
  5-way 1-shot, 5-way 5-shot or 10-way 1-shot episodes (``g // 3 % 3``). Evaluation alphabets are never used.
- **Text-intent subsets** (6): CLINC150's 10 domains in 5 pairs (sorted by name; 30 intents each; 5-way
  1-shot and 5-way 5-shot alternate), and BANKING77's 77 intents (10-way 1-shot), each utterance a frozen
  sentence embedding (WordLlama by default), so a trial trains an MLP on vectors.

Each distribution's classes are its own (no two share a class) and are split by class 60/20/20 into
train/val/test (:mod:`metadl.data.class_subsets`); its config names the dataset builder and options that
rebuild exactly those splits.

Example:
    >>> dists = omniglot_distributions("data/omniglot")
    >>> len(dists), dists[0].name, dists[0].alphabets
    (10, 'omniglot-g0-16px-5w1s', ('Alphabet_of_the_Magi', 'Cyrillic', 'Korean'))
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

from metadl.data.base import FewShotDataset
from metadl.data.registry import create_dataset
from metadl.tune.budget import TrialBudget, trial_config

# The 30 background alphabets of Omniglot (Lake et al. 2015), sorted by name.
BACKGROUND_ALPHABETS = (
    "Alphabet_of_the_Magi", "Anglo-Saxon_Futhorc", "Arcadian", "Armenian", "Asomtavruli_(Georgian)",
    "Balinese", "Bengali", "Blackfoot_(Canadian_Aboriginal_Syllabics)", "Braille", "Burmese_(Myanmar)",
    "Cyrillic", "Early_Aramaic", "Futurama", "Grantha", "Greek", "Gujarati", "Hebrew",
    "Inuktitut_(Canadian_Aboriginal_Syllabics)", "Japanese_(hiragana)", "Japanese_(katakana)", "Korean",
    "Latin", "Malay_(Jawi_-_Arabic)", "Mkhedruli_(Georgian)", "N_Ko", "Ojibwe_(Canadian_Aboriginal_Syllabics)",
    "Sanskrit", "Syriac_(Estrangelo)", "Tagalog", "Tifinagh",
)  # fmt: skip
OMNIGLOT_GROUPS = 10
OMNIGLOT_SIZES = (16, 20, 28)
SHAPES = ((5, 1), (5, 5), (10, 1))  # (ways, shots)
CLINC150_DOMAINS = (
    "auto_and_commute", "banking", "credit_cards", "home", "kitchen_and_dining", "meta", "small_talk",
    "travel", "utility", "work",
)  # fmt: skip
SPLITS = ("train", "val", "test")


class DatasetSubset(ABC):
    """What the real-data distributions share: their splits are a registered dataset builder's splits (the
    ``dataset()`` config section), and a trial trains the modality's default backbone on them."""

    modality: ClassVar[str]
    backbone: ClassVar[str]
    ways: int
    shots: int

    @abstractmethod
    def dataset(self) -> dict[str, Any]:
        """The config's ``dataset`` section: a builder of :data:`metadl.data.DATASETS` and its options."""

    def split(self, split: str) -> FewShotDataset:
        section = self.dataset()
        options = {k: v for k, v in section.items() if k != "name"}
        return create_dataset(section["name"], split=split, **options)

    def splits(self) -> dict[str, FewShotDataset]:
        return {s: self.split(s) for s in SPLITS}

    def config(self, budget: TrialBudget | None = None, *, seed: int = 0) -> dict[str, Any]:
        return trial_config(
            self.dataset(), ways=self.ways, shots=self.shots, backbone=self.backbone, budget=budget, seed=seed
        )


@dataclass(frozen=True)
class OmniglotSubset(DatasetSubset):
    """The characters of a few Omniglot background alphabets at one image size and episode shape."""

    modality = "image"
    backbone = "conv4"

    group: int
    alphabets: tuple[str, ...]
    image_size: int
    ways: int
    shots: int
    root: str

    @property
    def name(self) -> str:
        return f"omniglot-g{self.group}-{self.image_size}px-{self.ways}w{self.shots}s"

    def dataset(self) -> dict[str, Any]:
        return {
            "name": "omniglot_alphabets",
            "root": self.root,
            "image_size": self.image_size,
            "alphabets": list(self.alphabets),
            "seed": 2000 + self.group,
        }


@dataclass(frozen=True)
class IntentSubset(DatasetSubset):
    """Some intents of a text corpus, each utterance a frozen sentence embedding, at one episode shape."""

    modality = "vector"
    backbone = "mlp"

    corpus: str
    domains: tuple[str, ...]
    ways: int
    shots: int
    root: str
    encoder: str = "wordllama"
    seed: int = 3000

    @property
    def name(self) -> str:
        scope = "+".join(self.domains) if self.domains else "all"
        return f"{self.corpus}-{scope}-{self.ways}w{self.shots}s"

    def dataset(self) -> dict[str, Any]:
        return {
            "name": "sentence_embeddings",
            "root": self.root,
            "corpus": self.corpus,
            "domains": list(self.domains),
            "encoder": self.encoder,
            "seed": self.seed,
        }


def omniglot_distributions(root: str | os.PathLike[str]) -> list[OmniglotSubset]:
    """The 10 Omniglot alphabet-subset distributions of the module docstring, reading ``root``."""
    out = []
    for group in range(OMNIGLOT_GROUPS):
        alphabets = BACKGROUND_ALPHABETS[group::OMNIGLOT_GROUPS]
        ways, shots = SHAPES[group // 3 % 3]
        size = OMNIGLOT_SIZES[group % 3]
        out.append(OmniglotSubset(group, alphabets, size, ways, shots, str(root)))
    return out


def intent_distributions(
    clinc150: str | os.PathLike[str] | None = None,
    banking77: str | os.PathLike[str] | None = None,
    *,
    encoder: str = "wordllama",
) -> list[IntentSubset]:
    """The text-intent distributions of the module docstring, for the corpora whose folder is given."""
    out = []
    if clinc150 is not None:
        for i in range(0, len(CLINC150_DOMAINS), 2):
            ways, shots = SHAPES[(i // 2) % 2]
            pair = CLINC150_DOMAINS[i : i + 2]
            out.append(IntentSubset("clinc150", pair, ways, shots, str(clinc150), encoder, seed=3000 + i))
    if banking77 is not None:
        out.append(IntentSubset("banking77", (), 10, 1, str(banking77), encoder, seed=3100))
    return out

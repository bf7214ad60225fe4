"""Real-data task distributions (Omniglot alphabet subsets, text intents) and the modality of the space."""

from __future__ import annotations

import json
import random
import zlib
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch
from torch import Tensor

from metadl.config import config_from_dict
from metadl.data import class_subsets
from metadl.data.class_subsets import split_classes
from metadl.data.omniglot import LAKE_VAL_ALPHABETS, load_omniglot_characters
from metadl.experiments import ExperimentDB
from metadl.experiments.database import RunRecord
from metadl.tune.distributions import TrialBudget, find_distribution, task_distributions
from metadl.tune.populate import populate
from metadl.tune.real_distributions import (
    BACKGROUND_ALPHABETS,
    CLINC150_DOMAINS,
    intent_distributions,
    omniglot_distributions,
)
from metadl.tune.space import SPACE, check_params, grid, suggest, values_for
from metadl.tune.warmstart import warm_start

DATA = {"omniglot": "o", "clinc150": "c", "banking77": "b"}


def test_there_are_16_real_distributions_and_no_two_share_a_class() -> None:
    dists = task_distributions(**DATA)
    assert len(dists) == 52 and len({d.name for d in dists}) == 52
    omni = omniglot_distributions("o")
    alphabets = [a for d in omni for a in d.alphabets]
    assert sorted(alphabets) == sorted(
        BACKGROUND_ALPHABETS
    )  # every background alphabet once, no evaluation one
    assert {(d.image_size, d.ways, d.shots) for d in omni[:9]} == {
        (s, w, k) for s in (16, 20, 28) for w, k in ((5, 1), (5, 5), (10, 1))
    }
    clinc = [d for d in intent_distributions("c") if d.corpus == "clinc150"]
    assert sorted(x for d in clinc for x in d.domains) == sorted(CLINC150_DOMAINS)
    assert {d.modality for d in omni} == {"image"} and {
        d.modality for d in intent_distributions("c", "b")
    } == {"vector"}
    assert find_distribution("banking77-all-10w1s", **DATA).ways == 10
    with pytest.raises(ValueError, match="need their data folder"):
        find_distribution("banking77-all-10w1s")


def test_the_vector_space_has_no_conv4() -> None:
    points = grid("vector")
    assert len(points) == 60 and {p["backbone"] for p in points} == {"mlp"}
    assert {p["backbone"] for p in grid("image")} == {"conv4", "mlp"}
    rng = random.Random(0)
    for _ in range(50):
        point = suggest(lambda _n, values: rng.choice(values), "vector")
        assert check_params(point, "vector") == point
    conv = next(p for p in grid() if p["backbone"] == "conv4")
    with pytest.raises(ValueError, match="backbone='conv4'"):
        check_params(conv, "vector")
    with pytest.raises(ValueError, match="modality='audio'"):
        values_for(SPACE[1], "audio")


def test_a_vector_target_is_never_proposed_a_conv4() -> None:
    """The image neighbour's best points are Conv-4s; a text target gets its best MLP points instead."""
    points = grid()
    image = {"ways": 5.0, "is_vector": 0.0, "is_image": 1.0}
    records = [
        RunRecord(kind="trial", distribution="glyphs", config={}, params=p, metafeatures=image,
                  metrics={"val_accuracy": 0.9 if p["backbone"] == "conv4" else 0.1 + 0.001 * i})
        for i, p in enumerate(points)
    ]  # fmt: skip
    target = {"ways": 5.0, "is_vector": 1.0, "is_image": 0.0}
    plan = warm_start(records, target, neighbours=1, per_neighbour=3, top=3)
    assert len(plan.candidates) == 3 and all(c.params["backbone"] == "mlp" for c in plan.candidates)
    best_mlp = max(
        (r for r in records if r.params["backbone"] == "mlp"), key=lambda r: r.metrics["val_accuracy"]
    )
    assert best_mlp.params in [c.params for c in plan.candidates]
    assert all(
        c.params["backbone"] == "conv4" for c in warm_start(records, image, neighbours=1, top=2).candidates
    )


def _fake_encode(texts: Sequence[str]) -> Tensor:
    """Utterances of one intent share their first 6 bits (so they cluster), the rest from the text."""
    intent = torch.tensor([zlib.crc32(t.rsplit(" ", 1)[-1].encode()) for t in texts], dtype=torch.long)
    text = torch.tensor([zlib.crc32(t.encode()) for t in texts], dtype=torch.long)
    return torch.cat(
        [(intent[:, None] >> torch.arange(6)) & 1, (text[:, None] >> torch.arange(2)) & 1], 1
    ).float()


class _FakeEncoder:
    def encode(self, texts: Sequence[str]) -> Tensor:
        return _fake_encode(texts)


@pytest.fixture
def clinc_pair(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """CLINC150-shaped: the first two domains of CLINC150_DOMAINS, 15 intents each, 4 utterances per intent."""
    domains = {d: [f"{d}{i}" for i in range(15)] for d in CLINC150_DOMAINS[:2]}
    data: dict[str, list[list[str]]] = {"train": [], "val": [], "test": []}
    for intents in domains.values():
        for intent in intents:
            for split, n in (("train", 2), ("val", 1), ("test", 1)):
                data[split] += [[f"{split} {j} {intent}", intent] for j in range(n)]
    data |= {"oos_train": [], "oos_val": [], "oos_test": []}
    (tmp_path / "data_full.json").write_text(json.dumps(data))
    (tmp_path / "domains.json").write_text(json.dumps(domains))
    monkeypatch.setattr(class_subsets, "text_encoder", lambda name: _FakeEncoder())
    return tmp_path


@pytest.mark.usefixtures("one_thread")
def test_populate_on_a_text_distribution_trains_mlps_on_the_embeddings(
    clinc_pair: Path, tmp_path: Path
) -> None:
    dist = intent_distributions(clinc_pair)[0]
    splits = dist.splits()
    assert {s: ds.num_classes for s, ds in splits.items()} == {"train": 18, "val": 6, "test": 6}
    assert splits["train"].x_shape == (8,)
    cfg = config_from_dict(dist.config())  # the config names the builder that made these splits
    assert cfg.dataset.name == "sentence_embeddings" and cfg.dataset.options["domains"] == list(dist.domains)
    db = ExperimentDB(tmp_path / "db.sqlite")
    budget = TrialBudget(iterations=4, val_every=2, val_episodes=4, test_episodes=4, queries=2)
    report = populate(db, [dist], trials=4, budget=budget, log=lambda _: None)
    rows = db.query(distribution=dist.name)
    assert report.trials_run == 4 and {r.params["backbone"] for r in rows} == {"mlp"}
    assert all(r.metafeatures["is_vector"] == 1.0 for r in rows)
    assert all(0 <= r.metrics["test_accuracy"] <= 1 for r in rows)


def test_omniglot_subsets_have_enough_classes_and_no_evaluation_alphabet(
    shared_data: Path, tmp_path: Path
) -> None:
    root = shared_data / "omniglot"
    chars = load_omniglot_characters(root, image_size=28, cache_dir=tmp_path, progress=False)
    background = {
        n.partition("/")[0] for n, s in zip(chars.names, chars.sets, strict=True) if s == "background"
    }
    assert set(BACKGROUND_ALPHABETS) == background and set(LAKE_VAL_ALPHABETS) <= background
    for dist in omniglot_distributions(root):
        pool = [n for n in chars.names if n.partition("/")[0] in dist.alphabets]
        for split in ("val", "test"):  # each holds a full episode's classes
            assert len(split_classes(pool, split, seed=dist.dataset()["seed"])) >= dist.ways, dist.name
    dist = omniglot_distributions(root)[2]  # 28 px: the cached size
    cfg = config_from_dict(dist.config())
    assert cfg.dataset.name == "omniglot_alphabets" and cfg.dataset.image_size == 28

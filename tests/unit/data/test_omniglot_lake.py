"""Lake's protocol: validation alphabets carved out of the background set, evaluation images never read in
training, and within-alphabet episodes whose drawers are the real Omniglot drawers."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from metadl.config import config_from_dict, config_to_dict, load_config, shipped_config
from metadl.data.omniglot import LAKE_VAL_ALPHABETS, OmniglotCharacters, load_omniglot_characters, omniglot
from metadl.tasks import AlphabetEpisodeSampler
from metadl.training.trainer import train

# The module itself (metadl.data re-exports a function of the same name).
omniglot_module = importlib.import_module("metadl.data.omniglot")


def alphabets(names: Any) -> set[str]:
    return {n.split("/")[0] for n in names}


def test_validation_alphabets_are_background_ones_kept_out_of_train(
    shared_data: Path, omniglot_cache_dir: Path
) -> None:
    root, kw = (
        shared_data / "omniglot",
        {"protocol": "lake", "cache_dir": omniglot_cache_dir, "progress": False},
    )
    bg, ev = omniglot(root, "background", **kw), omniglot(root, "evaluation", **kw)
    tr, va = omniglot(root, "train", **kw), omniglot(root, "val", **kw)
    assert alphabets(va.class_names) == set(LAKE_VAL_ALPHABETS)
    assert not alphabets(tr.class_names) & alphabets(va.class_names)
    assert sorted([*tr.class_names, *va.class_names]) == sorted(bg.class_names)
    assert not alphabets(bg.class_names) & alphabets(ev.class_names)
    assert (tr.num_classes, va.num_classes) == (964 - 153, 153)
    other = omniglot(root, "val", val_alphabets=["Latin"], **kw)
    assert alphabets(other.class_names) == {"Latin"}
    with pytest.raises(ValueError, match="val_alphabets must name background alphabets"):
        omniglot(root, "val", val_alphabets=["Angelic"], **kw)  # an evaluation alphabet


def test_rotations_on_training_splits_only(shared_data: Path, omniglot_cache_dir: Path) -> None:
    root, kw = (
        shared_data / "omniglot",
        {"protocol": "lake", "cache_dir": omniglot_cache_dir, "progress": False},
    )
    assert omniglot(root, "train", rotations="train", **kw).num_classes == 4 * (964 - 153)
    assert omniglot(root, "val", rotations="train", **kw).num_classes == 153
    assert omniglot(root, "evaluation", rotations="train", **kw).num_classes == 659
    with pytest.raises(ValueError, match="rotations must be"):
        omniglot(root, "train", rotations="yes", **kw)


def test_within_alphabet_episodes_use_the_real_drawers(shared_data: Path, omniglot_cache_dir: Path) -> None:
    """Each image of an episode is the npz image ``[character, drawer]`` that the sampler says it is."""
    root = shared_data / "omniglot"
    chars = load_omniglot_characters(root, cache_dir=omniglot_cache_dir, progress=False)
    row = {n: i for i, n in enumerate(chars.names)}
    ev = omniglot(root, "evaluation", protocol="lake", cache_dir=omniglot_cache_dir, progress=False)
    sampler = AlphabetEpisodeSampler(ev, n_way=20, k_shot=1, n_query=1, seed=0)
    assert len(sampler.groups) == 20  # every evaluation alphabet has at least 20 characters
    for _ in range(10):
        state = sampler.state_dict()
        episode = sampler.sample_episode()
        sampler.load_state_dict(state)
        task = sampler.sample()
        assert task.name == episode.group and alphabets(task.classes) == {episode.group}
        (s,), (q,) = episode.support_drawers, episode.query_drawers
        assert s != q
        for label, name in enumerate(task.classes):
            expected = chars.images[row[name]]
            assert np.array_equal(task.support_x[label, 0].mul(255).round().byte().numpy(), expected[s])
            assert np.array_equal(task.query_x[label, 0].mul(255).round().byte().numpy(), expected[q])


class GuardedImages(np.ndarray):
    """Omniglot's ``(C, 20, S, S)`` images that raise when a forbidden character's row is read."""

    forbidden: frozenset[int] | None = None

    def __getitem__(self, key: Any) -> Any:
        if self.forbidden is not None:
            rows = np.arange(self.shape[0])[key[0] if isinstance(key, tuple) else key]
            touched = self.forbidden.intersection(np.atleast_1d(rows).tolist())
            if touched:
                raise AssertionError(f"read {len(touched)} evaluation characters, e.g. row {min(touched)}")
        return np.asarray(super().__getitem__(key))


@pytest.fixture
def guarded(shared_data: Path, omniglot_cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    chars = load_omniglot_characters(shared_data / "omniglot", cache_dir=omniglot_cache_dir, progress=False)
    images = chars.images.view(GuardedImages)
    images.forbidden = frozenset(i for i, s in enumerate(chars.sets) if s == "evaluation")
    fake = OmniglotCharacters(images, chars.names, chars.sets)
    monkeypatch.setattr(omniglot_module, "load_omniglot_characters", lambda *a, **k: fake)
    yield


def test_guard_catches_an_evaluation_read(guarded: None, shared_data: Path) -> None:
    """The instrument works: loading the evaluation alphabets trips it."""
    with pytest.raises(AssertionError, match="evaluation characters"):
        omniglot(shared_data / "omniglot", "evaluation", protocol="lake", progress=False)


def test_training_the_shipped_config_never_reads_an_evaluation_image(
    guarded: None, shared_data: Path, tmp_path: Path, one_thread: None
) -> None:
    raw = config_to_dict(load_config(shipped_config("protonet_omniglot_lake_20w1s")))
    raw["dataset"].update(root=str(shared_data / "omniglot"), download=False)
    raw["sampler"].update(ways=5, queries=2)
    raw["train"].update(iterations=3, val_every=2, checkpoint_every=2, val_episodes=2)
    raw["device"] = "cpu"
    result = train(config_from_dict(raw), tmp_path / "run", progress=False)
    assert result.best_value is not None and 0.0 <= result.best_value <= 1.0
    assert torch.isfinite(torch.tensor(result.best_value))

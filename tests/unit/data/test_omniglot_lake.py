"""Lake's protocol: validation alphabets carved out of the background set, evaluation images never read in
training, and within-alphabet episodes whose drawers are the real Omniglot drawers."""

from __future__ import annotations

import csv
import importlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from metadl.cli import main
from metadl.config import config_from_dict, config_to_dict, load_config, shipped_config
from metadl.data.omniglot import LAKE_VAL_ALPHABETS, OmniglotCharacters, load_omniglot_characters, omniglot
from metadl.data.preprocess import preprocess_image
from metadl.saving import load
from metadl.tasks import AlphabetEpisodeSampler
from metadl.training.run import TrainResult
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


def guard_evaluation(shared_data: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on, reading an evaluation character's images from the loaded Omniglot raises."""
    chars = load_omniglot_characters(shared_data / "omniglot", cache_dir=cache_dir, progress=False)
    images = chars.images.view(GuardedImages)
    images.forbidden = frozenset(i for i, s in enumerate(chars.sets) if s == "evaluation")
    fake = OmniglotCharacters(images, chars.names, chars.sets)
    monkeypatch.setattr(omniglot_module, "load_omniglot_characters", lambda *a, **k: fake)


def test_guard_catches_an_evaluation_read(
    shared_data: Path, omniglot_cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The instrument works: loading the evaluation alphabets trips it."""
    guard_evaluation(shared_data, omniglot_cache_dir, monkeypatch)
    omniglot(shared_data / "omniglot", "train", protocol="lake", progress=False)
    with pytest.raises(AssertionError, match="evaluation characters"):
        omniglot(shared_data / "omniglot", "evaluation", protocol="lake", progress=False)


@pytest.fixture(scope="module")
def lake_run(omniglot_cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    """A few iterations of the shipped config (smaller episodes), trained with evaluation reads guarded."""
    shared_data = Path(__file__).resolve().parents[3].parent / "shared" / "data"
    if not shared_data.is_dir():
        pytest.skip(f"real datasets not found at {shared_data}")
    raw = config_to_dict(load_config(shipped_config("protonet_omniglot_lake_20w1s")))
    raw["dataset"].update(root=str(shared_data / "omniglot"), download=False)
    raw["sampler"].update(ways=5, queries=2)
    raw["train"].update(iterations=3, val_every=2, checkpoint_every=2, val_episodes=2)
    raw["device"] = "cpu"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with pytest.MonkeyPatch.context() as monkeypatch:
            guard_evaluation(shared_data, omniglot_cache_dir, monkeypatch)
            return train(config_from_dict(raw), tmp_path_factory.mktemp("lake") / "run", progress=False)
    finally:
        torch.set_num_threads(threads)


def test_training_the_shipped_config_never_reads_an_evaluation_image(lake_run: TrainResult) -> None:
    assert lake_run.iterations == 3 and lake_run.best_value is not None  # trained and validated, guarded


def test_predict_on_original_pngs_matches_the_training_preprocessing(
    lake_run: TrainResult, shared_data: Path, omniglot_cache_dir: Path, tmp_path: Path, capsys: Any
) -> None:
    """105x105 PNGs written from the npz, through `metadl predict`, give what the loader's tensors give."""
    root = shared_data / "omniglot"
    ev = omniglot(root, "evaluation", protocol="lake", cache_dir=omniglot_cache_dir, progress=False)
    with np.load(root / "images_evaluation.npz") as f:
        raw = f["images"]  # (659, 20, 105, 105) bool, True = white background
    with (root / "characters.csv").open() as f:
        rows = {
            f"{r['alphabet']}/{r['character']}": int(r["npz_index"])
            for r in csv.DictReader(f)
            if r["set"] == "evaluation"
        }
    chars, support_drawer, query_drawer = ev.class_names[100:105], 3, 11
    for name in chars:
        folder = tmp_path / "support" / name.replace("/", "_")
        folder.mkdir(parents=True)
        (tmp_path / "query").mkdir(exist_ok=True)
        Image.fromarray(raw[rows[name], support_drawer]).save(
            folder / "a.png"
        )  # mode "1", as the official PNGs
        Image.fromarray(raw[rows[name], query_drawer]).save(
            tmp_path / "query" / f"{name.replace('/', '_')}.png"
        )
    assert main(["predict", str(lake_run.model_dir), "--support", str(tmp_path / "support"),
                 "--query", str(tmp_path / "query"), "--json"]) == 0  # fmt: skip
    predicted = {r["file"]: r["probabilities"] for r in json.loads(capsys.readouterr().out)}

    model = load(lake_run.model_dir)
    assert model.preprocessing is not None
    index = torch.tensor(
        [[ev.class_names.index(n) * 20 + d for n in chars] for d in (support_drawer, query_drawer)]
    )
    loader_x = ev.gather(index)  # (2, 5, 1, 28, 28): the tensors training and evaluation use
    png_x = torch.stack([preprocess_image(Image.open(tmp_path / "query" / f), model.preprocessing) for f in
                         sorted(predicted)])  # fmt: skip
    assert (png_x - loader_x[1]).abs().max() <= 1.0 / 255 + 1e-6  # the same image, up to 8-bit rounding
    proba = model.adapt(loader_x[0], torch.arange(5)).predict_proba(loader_x[1])
    for i, name in enumerate(chars):
        p = predicted[f"{name.replace('/', '_')}.png"]
        expected = proba[i].tolist()
        got = [p[n.replace("/", "_")] for n in chars]
        assert np.allclose(got, expected, atol=1e-3), (name, got, expected)

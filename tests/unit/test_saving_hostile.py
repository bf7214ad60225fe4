"""Saved models that are damaged or hostile: refused at load, before anything big is built or allocated."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load as safetensors_load
from safetensors.torch import save as safetensors_save

from metadl.saving import DOC_NAME, WEIGHTS_NAME, SavedModelError, build_from_spec, load, save_model

SPEC = {
    "backbone": {"name": "mlp", "in_features": 6, "hidden": [8]},
    "learner": {"name": "protonet", "n_way": 3},
}


@pytest.fixture
def saved(tmp_path) -> Path:
    torch.manual_seed(0)
    return save_model(tmp_path / "m", build_from_spec(SPEC), spec=SPEC)


def rewrite_weights(folder: Path, change) -> None:
    """Change the tensors of a saved model and record the new size and sha256, as an attacker would."""
    weights = safetensors_load((folder / WEIGHTS_NAME).read_bytes())
    change(weights)
    blob = safetensors_save(weights)
    (folder / WEIGHTS_NAME).write_bytes(blob)
    doc = json.loads((folder / DOC_NAME).read_text())
    doc["weights"].update(bytes=len(blob), sha256=hashlib.sha256(blob).hexdigest())
    (folder / DOC_NAME).write_text(json.dumps(doc))


def edit_doc(folder: Path, change) -> None:
    doc = json.loads((folder / DOC_NAME).read_text())
    change(doc)
    (folder / DOC_NAME).write_text(json.dumps(doc))


# ------------------------------------------------------------------ item 4: dtype and non-finite weights


def test_weights_of_the_wrong_dtype_are_refused_naming_the_tensor(saved):
    rewrite_weights(saved, lambda w: w.update({"backbone.net.0.weight": w["backbone.net.0.weight"].long()}))
    with pytest.raises(SavedModelError, match=r"dtype differs.*backbone\.net\.0\.weight: torch\.int64"):
        load(saved)


def test_weights_in_two_float_dtypes_are_refused(saved):
    rewrite_weights(saved, lambda w: w.update({"backbone.net.0.bias": w["backbone.net.0.bias"].half()}))
    with pytest.raises(SavedModelError, match=r"dtype differs.*backbone\.net\.0\.bias"):
        load(saved)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_weights_are_refused_at_load(saved, value):
    def poison(w):
        w["backbone.net.0.weight"][0, 0] = value

    rewrite_weights(saved, poison)
    with pytest.raises(SavedModelError, match=r"weights\.safetensors: NaN or infinite values in \['backbone"):
        load(saved)


def test_all_nan_weights_are_refused_at_load(saved):
    rewrite_weights(saved, lambda w: w.update({k: torch.full_like(v, float("nan")) for k, v in w.items()}))
    with pytest.raises(SavedModelError, match="NaN or infinite values"):
        load(saved)


def test_a_diverged_learner_is_not_saved(tmp_path):
    learner = build_from_spec(SPEC)
    with torch.no_grad():
        next(learner.parameters())[0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"NaN or infinite values in \['backbone\.net\.0\.weight'\]"):
        save_model(tmp_path / "m", learner, spec=SPEC)
    assert not (tmp_path / "m").exists()


# ------------------------------------------------------------------ item 10: hostile metadl.json


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d["spec"]["backbone"].update(hidden=[10_000_000]), "spec describes a learner of"),
        (lambda d: d["spec"]["backbone"].update(hidden=10**30), "above the limit"),
        (lambda d: d["spec"]["backbone"].update(hidden=[8] * 5000), "5000 items, more than the 1024"),
        (lambda d: d["spec"]["backbone"].update(in_features=10**9), "above the limit|spec describes"),
        (lambda d: d["spec"]["learner"].update(n_way=10**9), "n_way = 1000000000 is above the limit"),
        (lambda d: d["spec"]["backbone"].update(hidden=[0]), "does not build a learner|do not match"),
        (lambda d: d["spec"]["backbone"].update(hidden=[-5]), "does not build a learner"),
        (lambda d: d.update(preprocessing={"image_size": 60000}), "above the limit of 4096 pixels"),
        (lambda d: d["weights"].update(bytes="many"), "spec describes a learner|records"),
    ],
)
def test_hostile_sizes_are_refused_before_anything_is_built(saved, change, message):
    edit_doc(saved, change)
    start = time.perf_counter()
    with pytest.raises(SavedModelError, match=message):
        load(saved)
    assert time.perf_counter() - start < 5


def test_hostile_image_size_in_the_spec_is_refused(tmp_path):
    spec = {
        "backbone": {"name": "conv4", "in_channels": 1, "hidden": 8, "image_size": 16},
        "learner": {"name": "protonet", "n_way": 3},
    }
    folder = save_model(tmp_path / "m", build_from_spec(spec), spec=spec)
    edit_doc(folder, lambda d: d["spec"]["backbone"].update(image_size=60000))
    with pytest.raises(
        SavedModelError, match=r"spec\.backbone\.image_size = 60000 is above the limit of 4096"
    ):
        load(folder)


def test_deeply_nested_json_is_refused_without_a_recursion_error(saved):
    doc = json.loads((saved / DOC_NAME).read_text())
    text = json.dumps(doc)[:-1] + ', "metadata": ' + "[" * 100_000 + "]" * 100_000 + "}"
    (saved / DOC_NAME).write_text(text)
    with pytest.raises(SavedModelError, match="nested 100001 levels deep, more than the 32 allowed"):
        load(saved)


def test_a_huge_json_file_is_refused_unread(saved):
    with open(saved / DOC_NAME, "ab") as f:
        f.write(b" " * (5 << 20))
    with pytest.raises(SavedModelError, match="more than the 4194304 a metadl JSON file may have"):
        load(saved)


def test_nan_in_json_is_refused(saved):
    text = (saved / DOC_NAME).read_text().replace('"metadata": {}', '"metadata": {"x": NaN}')
    (saved / DOC_NAME).write_text(text)
    with pytest.raises(SavedModelError, match="NaN is not a JSON number"):
        load(saved)


# ------------------------------------------------------------------ item 12: single-class support sets


def test_a_support_set_with_one_class_is_refused(saved):
    model = load(saved)
    with pytest.raises(ValueError, match=r"single class \('7'\).*at least 2 classes"):
        model.adapt(torch.randn(3, 6), torch.tensor([7, 7, 7]))
    model.adapt(torch.randn(2, 6), torch.tensor([7, 8]))  # two classes are fine


# ------------------------------------------------------------------ items 14 and 15: temporaries, run folders


def test_stale_temporary_model_folders_are_removed_but_fresh_ones_kept(tmp_path):
    stale, fresh = tmp_path / ".m.tmp-dead1234", tmp_path / ".m.tmp-live5678"
    for folder in (stale, fresh):
        folder.mkdir()
        (folder / WEIGHTS_NAME).write_bytes(b"partial")
    os.utime(stale, (time.time() - 7 * 3600, time.time() - 7 * 3600))
    save_model(tmp_path / "m", build_from_spec(SPEC), spec=SPEC)
    assert not stale.exists() and fresh.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".m.tmp-live5678", "m"]


def test_a_run_folder_is_loaded_through_its_model_folder(tmp_path):
    save_model(tmp_path / "run" / "model", build_from_spec(SPEC), spec=SPEC)
    assert load(tmp_path / "run").path == tmp_path / "run" / "model"
    with pytest.raises(SavedModelError, match=r"no metadl\.json in it, nor in .*empty/model"):
        load(tmp_path / "empty")

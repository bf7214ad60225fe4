"""Saved models for use: one folder with the weights, the recipe to rebuild the learner, and its preprocessing.

A saved model is a folder::

    MODEL/
      metadl.json            what the model is: spec, preprocessing, versions, sha256 of the weights
      weights.safetensors    every parameter and buffer (``state_dict``), as safetensors

``metadl.json`` holds ``spec`` (``{"backbone": {"name": ..., **kwargs}, "learner": {"name": ...,
**hyperparameters}}``, enough to rebuild the learner through :func:`create_backbone` and
:func:`create_learner`), ``preprocessing`` (a :class:`Preprocessing` dict or ``null``), free-form
``metadata`` (training settings, validation accuracy, ...), the metadl and torch versions, and the size and
sha256 of the weights file. A folder rather than one file keeps the description human-readable and lets
its hash cover the weights byte for byte.

Loading never executes code from the files: JSON and safetensors only, no pickle. The learner is rebuilt
from the spec through the registries and the weights are loaded strictly (every key, shape and dtype must
match, and every floating-point value must be finite); a corrupt, truncated or mismatched file raises
:class:`SavedModelError` naming the file and what is wrong. Nothing in ``metadl.json`` is trusted before it
is bounded (:mod:`metadl.validation`): its size and nesting depth, every integer of the spec, and the
size of the learner the spec describes, which is built first on the ``meta`` device (no memory) and must
fit in the weights file before anything real is allocated. ``load`` also accepts a run folder of
``metadl train`` (it holds the model in ``RUN/model``).

Writing is atomic: both files go to a temporary folder next to ``MODEL`` (each fsynced), which is then
renamed to ``MODEL``. Replacing an existing model takes two renames (old out of the way, new in); a crash
between them leaves the old model in ``.MODEL.old-*`` beside it. A folder that is not a saved model is
never replaced. Temporary folders ``.MODEL.tmp-*`` left by a writer that was killed are removed by the
next save once they are old enough that no live writer can own them (:func:`metadl.fileio.remove_stale`).

Example:
    >>> import tempfile, pathlib
    >>> from metadl.algorithms import create_learner
    >>> from metadl.models import create_backbone
    >>> spec = {"backbone": {"name": "mlp", "in_features": 4, "hidden": [8]}, "learner": {"name": "protonet", "n_way": 3}}
    >>> learner = create_learner("protonet", backbone=create_backbone("mlp", in_features=4, hidden=[8]), n_way=3)
    >>> folder = save_model(pathlib.Path(tempfile.mkdtemp()) / "model", learner, spec=spec)
    >>> model = load(folder)
    >>> predictor = model.adapt(torch.randn(6, 4), torch.tensor([7, 7, 8, 8, 9, 9]))
    >>> predictor.predict(torch.randn(2, 4)).shape, predictor.predict_proba(torch.randn(2, 4)).shape
    (torch.Size([2]), torch.Size([2, 3]))
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as safetensors_load
from safetensors.torch import save as safetensors_save
from torch import Tensor, nn

from metadl.algorithms.base import Learner, Predictor
from metadl.algorithms.randomforest import ForestPredictor
from metadl.algorithms.registry import create_learner
from metadl.data.preprocess import Preprocessing, load_folder_tree, load_image, load_images
from metadl.fileio import remove_stale
from metadl.models.registry import create_backbone
from metadl.validation import (
    MAX_IMAGE_SIDE,
    check_spec_limits,
    check_support_labels,
    non_finite_tensors,
    read_json,
)

FORMAT = "metadl.saved_model"
FORMAT_VERSION = 1
DOC_NAME = "metadl.json"
WEIGHTS_NAME = "weights.safetensors"
RUN_MODEL_DIR = "model"  # where `metadl train` saves the model inside a run folder
# What a hostile spec can make a learner's constructor raise (a bad size, an overflow, a zero division).
_BUILD_ERRORS = (TypeError, ValueError, RuntimeError, ArithmeticError, NotImplementedError)


class SavedModelError(ValueError):
    """A saved model cannot be read: the message names the file and what is wrong with it."""


def check_spec(spec: Any) -> dict[str, dict[str, Any]]:
    """Validate ``{"backbone": {"name": str, **kw}, "learner": {"name": str, **kw}}``; returns a JSON copy."""
    if not isinstance(spec, dict) or set(spec) != {"backbone", "learner"}:
        keys = sorted(spec) if isinstance(spec, dict) else type(spec).__name__
        raise ValueError(f"spec must be a dict with exactly the keys 'backbone' and 'learner', got {keys}")
    for part in ("backbone", "learner"):
        value = spec[part]
        if not isinstance(value, dict) or not isinstance(value.get("name"), str):
            raise ValueError(
                f"spec[{part!r}] must be a dict with a string 'name' and its keyword arguments, got {value!r}"
            )
        if part == "learner" and "backbone" in value:
            raise ValueError(
                "spec['learner'] must not hold 'backbone'; the backbone is described by spec['backbone']"
            )
    try:
        return json.loads(json.dumps(spec, allow_nan=False))
    except (TypeError, ValueError) as err:
        raise ValueError(f"spec must hold JSON values only (numbers, strings, lists, dicts): {err}") from None


def build_from_spec(spec: dict[str, dict[str, Any]], device: str | torch.device = "cpu") -> Learner:
    """Rebuild a learner from a spec through the registries (freshly initialised weights).

    The global random state is left untouched, so building does not change later sampling or training.
    ``device="meta"`` builds the structure only, without allocating its tensors.
    """
    backbone_kw, learner_kw = dict(spec["backbone"]), dict(spec["learner"])
    with torch.random.fork_rng(devices=[]), torch.device(device):
        backbone = create_backbone(backbone_kw.pop("name"), **backbone_kw)
        return create_learner(learner_kw.pop("name"), backbone=backbone, **learner_kw)


def _rebuild(spec: dict[str, dict[str, Any]], weights: dict[str, Tensor]) -> Learner:
    """The learner of ``spec`` in the floating-point dtype of ``weights`` (a float64 model stays float64)."""
    learner = build_from_spec(spec)
    float_dtypes = {t.dtype for t in weights.values() if t.is_floating_point()}
    if len(float_dtypes) == 1:
        learner = learner.to(float_dtypes.pop())
    return learner


def _state_tensors(learner: nn.Module) -> dict[str, Tensor]:
    """Every parameter and persistent buffer as contiguous CPU tensors that share no memory."""
    state = learner.state_dict()
    bad = [k for k, v in state.items() if not isinstance(v, Tensor)]
    if bad:
        raise ValueError(f"state_dict entries that are not tensors cannot be saved as safetensors: {bad[:5]}")
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in state.items()}


def _describe_mismatch(expected: dict[str, Tensor], actual: dict[str, Tensor]) -> str:
    missing, unexpected = sorted(set(expected) - set(actual)), sorted(set(actual) - set(expected))
    common = sorted(set(expected) & set(actual))
    shapes = [
        f"{k}: {tuple(actual[k].shape)} vs {tuple(expected[k].shape)}"
        for k in common
        if actual[k].shape != expected[k].shape
    ]
    dtypes = [
        f"{k}: {actual[k].dtype} vs {expected[k].dtype}"
        for k in common
        if actual[k].dtype != expected[k].dtype
    ]
    parts = [
        f"{label} {items[:5]}"
        for label, items in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("shape differs", shapes),
            ("dtype differs", dtypes),
        )
        if items
    ]
    return "; ".join(parts)


def _fsync_dir(path: Path) -> None:
    if platform.system() == "Windows":  # directories cannot be opened for fsync there
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_folder_atomically(target: Path, files: dict[str, bytes]) -> None:
    """Write ``files`` into a fresh folder and rename it to ``target`` (see the module docstring)."""
    if target.exists() and not (target.is_dir() and (target / DOC_NAME).is_file()):
        raise FileExistsError(f"{target} exists and is not a metadl saved model; refusing to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(target.parent, f".{target.name}.tmp-*")
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        for name, data in files.items():
            with open(tmp / name, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        _fsync_dir(tmp)
        if target.exists():
            old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
            os.rename(target, old)
            os.rename(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, target)
        _fsync_dir(target.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def save_model(
    path: str | os.PathLike[str],
    learner: nn.Module,
    *,
    spec: dict[str, Any],
    preprocessing: Preprocessing | dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Save ``learner`` to the folder ``path`` (created or replaced atomically); returns the folder.

    Args:
        learner: the trained learner (any device; its state is copied to the CPU).
        spec: how to rebuild it: ``{"backbone": {"name", **kwargs}, "learner": {"name", **hyperparameters}}``.
            It is checked now: the spec must rebuild a learner with the same state keys and shapes.
        preprocessing: what the training images looked like (needed by ``metadl predict``).
        metadata: anything JSON-serialisable to keep alongside (training settings, scores).
    """
    spec = check_spec(spec)
    weights = _state_tensors(learner)
    nonfinite = non_finite_tensors(weights)
    if nonfinite:
        raise ValueError(
            f"the learner holds NaN or infinite values in {nonfinite[:5]}; a diverged model is not saved "
            "(lower the learning rate, or save from an earlier checkpoint)"
        )
    try:
        expected = _rebuild(spec, weights).state_dict()
    except (TypeError, ValueError) as err:
        raise ValueError(f"spec does not build a learner: {err}") from err
    mismatch = _describe_mismatch(expected, weights)
    if mismatch:
        raise ValueError(
            f"spec does not describe this learner (rebuilt from the spec vs the learner's state): {mismatch}"
        )
    if isinstance(preprocessing, dict):
        preprocessing = Preprocessing.from_dict(preprocessing)
    blob = safetensors_save(weights, metadata={"format": FORMAT})
    from metadl import __version__

    doc = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "metadl_version": __version__,
        "torch_version": torch.__version__,
        "spec": spec,
        "preprocessing": None if preprocessing is None else preprocessing.to_dict(),
        "metadata": metadata or {},
        "weights": {"file": WEIGHTS_NAME, "bytes": len(blob), "sha256": hashlib.sha256(blob).hexdigest()},
    }
    try:
        text = json.dumps(doc, indent=2, allow_nan=False) + "\n"
    except (TypeError, ValueError) as err:
        raise ValueError(f"metadata must hold JSON values only: {err}") from None
    target = Path(path)
    _write_folder_atomically(target, {WEIGHTS_NAME: blob, DOC_NAME: text.encode()})
    return target


def _read_doc(doc_path: Path) -> dict[str, Any]:
    try:
        doc = read_json(doc_path)
    except UnicodeDecodeError as err:
        raise SavedModelError(f"{doc_path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    except json.JSONDecodeError as err:
        raise SavedModelError(
            f"{doc_path}: not valid JSON ({err}); the file is truncated or corrupt"
        ) from None
    except ValueError as err:
        raise SavedModelError(f"{doc_path}: refused, {err}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise SavedModelError(f'{doc_path}: not a metadl saved model (no "format": "{FORMAT}")')
    version = doc.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise SavedModelError(
            f"{doc_path}: format_version {version!r} (written by metadl {doc.get('metadl_version')}) is not "
            f"readable by this metadl, which reads versions up to {FORMAT_VERSION}; upgrade metadl"
        )
    for key, kind in (("spec", dict), ("weights", dict), ("metadata", dict)):
        if not isinstance(doc.get(key), kind):
            raise SavedModelError(f"{doc_path}: missing or malformed {key!r}")
    return doc


def _read_weights(folder: Path, doc_path: Path, record: dict[str, Any]) -> dict[str, Tensor]:
    name = record.get("file")
    if not isinstance(name, str) or Path(name).name != name or name in ("", ".", ".."):
        raise SavedModelError(
            f"{doc_path}: weights file {name!r} must be a plain file name inside the model folder"
        )
    weights_path = folder / name
    try:
        size = weights_path.stat().st_size
        if size != record.get("bytes"):
            raise SavedModelError(
                f"{weights_path}: {size} bytes but {doc_path} records {record.get('bytes')}; "
                "the weights file is truncated or was replaced"
            )
        blob = weights_path.read_bytes()
    except OSError as err:
        raise SavedModelError(f"{weights_path}: cannot read the weights ({err})") from None
    if len(blob) != record.get("bytes"):
        raise SavedModelError(
            f"{weights_path}: {len(blob)} bytes but {doc_path} records {record.get('bytes')}; "
            "the weights file is truncated or was replaced"
        )
    digest = hashlib.sha256(blob).hexdigest()
    if digest != record.get("sha256"):
        raise SavedModelError(
            f"{weights_path}: sha256 {digest} but {doc_path} records {record.get('sha256')}; the weights file is corrupt"
        )
    try:
        return safetensors_load(blob)
    except (SafetensorError, ValueError, RuntimeError) as err:
        raise SavedModelError(f"{weights_path}: not a readable safetensors file ({err})") from None


def _model_folder(path: str | os.PathLike[str]) -> Path:
    """The model folder for a model folder, its ``metadl.json``, or a run folder holding ``model/``."""
    folder = Path(path)
    if folder.is_file() and folder.name == DOC_NAME:
        return folder.parent
    if not (folder / DOC_NAME).is_file() and (folder / RUN_MODEL_DIR / DOC_NAME).is_file():
        return folder / RUN_MODEL_DIR
    if not (folder / DOC_NAME).is_file():
        raise SavedModelError(
            f"{folder}: not a metadl saved model folder (no {DOC_NAME} in it, nor in {folder / RUN_MODEL_DIR})"
        )
    return folder


def _checked_spec(doc: dict[str, Any], doc_path: Path) -> dict[str, dict[str, Any]]:
    """The spec, bounded and built on the ``meta`` device: it must fit in the recorded weights file."""
    try:
        spec = check_spec(doc["spec"])
        check_spec_limits(spec)
        elements = sum(t.numel() for t in build_from_spec(spec, device="meta").state_dict().values())
    except _BUILD_ERRORS as err:
        raise SavedModelError(f"{doc_path}: the spec does not build a learner: {err}") from None
    recorded = doc["weights"].get("bytes")
    if not isinstance(recorded, int) or elements > recorded:  # at least one byte per element
        raise SavedModelError(
            f"{doc_path}: the spec describes a learner of {elements} values, more than the {recorded} bytes "
            "the weights file records; the spec was changed or belongs to another model"
        )
    return spec


def load(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> SavedModel:
    """Load a model saved by :func:`save_model` onto ``device``: the folder, its ``metadl.json``, or the run
    folder of ``metadl train`` (which holds it in ``model/``).

    Returns a :class:`SavedModel`: ``.learner`` (in eval mode), ``.preprocessing``, ``.adapt(x, y)``.
    """
    folder = _model_folder(path)
    doc_path = folder / DOC_NAME
    doc = _read_doc(doc_path)
    spec = _checked_spec(doc, doc_path)
    weights = _read_weights(folder, doc_path, doc["weights"])
    weights_path = folder / doc["weights"]["file"]
    nonfinite = non_finite_tensors(weights)
    if nonfinite:
        raise SavedModelError(
            f"{weights_path}: NaN or infinite values in {nonfinite[:5]}; the model diverged before it was "
            "saved: save it again from a checkpoint with finite weights"
        )
    try:
        learner = _rebuild(spec, weights)
    except _BUILD_ERRORS as err:
        raise SavedModelError(f"{doc_path}: the spec does not build a learner: {err}") from None
    mismatch = _describe_mismatch(learner.state_dict(), weights)
    if mismatch:
        raise SavedModelError(f"{weights_path}: weights do not match the spec in {doc_path}: {mismatch}")
    learner.load_state_dict(weights, strict=True)
    try:
        pre = doc.get("preprocessing")
        preprocessing = None if pre is None else Preprocessing.from_dict(pre)
    except (TypeError, ValueError) as err:
        raise SavedModelError(f"{doc_path}: bad preprocessing: {err}") from None
    if preprocessing is not None and max(preprocessing.height, preprocessing.width) > MAX_IMAGE_SIDE:
        raise SavedModelError(
            f"{doc_path}: preprocessing image_size {preprocessing.image_size} is above the limit of "
            f"{MAX_IMAGE_SIDE} pixels a side"
        )
    learner.to(device).eval()
    return SavedModel(learner, spec, preprocessing, doc["metadata"], folder, doc.get("metadl_version"))


def is_regression_spec(spec: dict[str, dict[str, Any]]) -> bool:
    """Whether a spec builds a regression learner (``out_features`` instead of ``n_way``)."""
    return spec["learner"].get("out_features") is not None


def read_spec(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """The checked spec of a saved model (folder, ``metadl.json`` or run folder), without its weights."""
    doc_path = _model_folder(path) / DOC_NAME
    return _checked_spec(_read_doc(doc_path), doc_path)


def is_regression_model(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a saved regression model; False for anything else (a classifier, a text model,
    or no model at all, which the caller's own loader then reports)."""
    try:
        return is_regression_spec(read_spec(path))
    except SavedModelError:
        return False


@dataclass
class SavedModel:
    """A loaded model: the learner plus what is needed to use it on raw images.

    Attributes:
        learner: the rebuilt learner with its trained weights, in eval mode.
        spec, preprocessing, metadata: as saved.
        path: the folder it was loaded from.
        metadl_version: the metadl version that saved it.
    """

    learner: Learner
    spec: dict[str, dict[str, Any]]
    preprocessing: Preprocessing | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    metadl_version: str | None = None

    def _tensors(self) -> Iterator[Tensor]:
        yield from self.learner.parameters()
        yield from self.learner.buffers()

    @property
    def device(self) -> torch.device:
        return next(self._tensors(), torch.empty(0)).device

    @property
    def dtype(self) -> torch.dtype:
        return next((t.dtype for t in self._tensors() if t.is_floating_point()), torch.float32)

    def _input(self, x: Tensor) -> Tensor:
        return x.to(self.device, self.dtype) if x.is_floating_point() else x.to(self.device)

    def adapt(self, support_x: Tensor, support_y: Tensor) -> Predictor:
        """Adapt to one support set ``(S, *x_shape)`` with any integer labels (or float targets); the
        predictor moves its inputs to the model's device and returns outputs there."""
        check_support_labels(support_y)
        self.learner.eval()
        inner = self.learner.adapt(self._input(support_x), support_y.to(self.device))
        variance = (lambda x: inner.predict_variance(self._input(x))) if inner.has_variance else None
        score = lambda x: inner.decision_function(self._input(x))  # noqa: E731
        if isinstance(inner, ForestPredictor):  # keeps what metadl.export needs to convert the forest
            assert inner.classes_ is not None
            return ForestPredictor(score, inner.classes_, backbone=inner.backbone, forest=inner.forest)
        return Predictor(score, inner.classes_, variance)

    @property
    def is_regression(self) -> bool:
        """The learner was built for float targets (its spec gives ``out_features``)."""
        return is_regression_spec(self.spec)

    def preprocess(self, image_path: str | os.PathLike[str]) -> Tensor:
        """One image file as the model expects it: ``(C, H, W)`` float32 on the CPU."""
        return load_image(image_path, self._require_preprocessing())

    def _require_preprocessing(self) -> Preprocessing:
        if self.preprocessing is None:
            raise ValueError(
                f"the model at {self.path} was saved without preprocessing, so raw images cannot be prepared "
                "for it; save it again with save_model(..., preprocessing=Preprocessing(...))"
            )
        return self.preprocessing

    def save(self, path: str | os.PathLike[str]) -> Path:
        return save_model(
            path, self.learner, spec=self.spec, preprocessing=self.preprocessing, metadata=self.metadata
        )


def predict_folders(
    model: SavedModel,
    support: str | os.PathLike[str],
    query: str | os.PathLike[str],
    *,
    batch_size: int = 256,
) -> list[dict[str, Any]]:
    """Adapt ``model`` to ``support/<class>/<image>`` and classify every image below ``query``.

    Returns one dict per query file: ``file`` (relative to ``query``), ``label`` (a class folder name),
    ``probability`` (of that label) and ``probabilities`` (one per class, summing to 1).
    """
    pre = model._require_preprocessing()
    sup = load_folder_tree(support, pre)
    assert sup.labels is not None  # a folder tree always has its labels
    check_support_labels(sup.labels, sup.class_names)
    qry = load_images(query, pre)
    predictor = model.adapt(sup.x, sup.labels)
    if predictor.classes_ is None:
        raise ValueError(f"the model at {model.path} is a regression learner; predict_folders classifies")
    names = [sup.class_names[int(c)] for c in predictor.classes_.tolist()]  # type: ignore[index]
    proba = torch.cat([predictor.predict_proba(chunk).float().cpu() for chunk in qry.x.split(batch_size)])
    root = Path(query)
    rows = []
    for file, p in zip(qry.files, proba.tolist(), strict=True):
        best = max(range(len(p)), key=p.__getitem__)
        rel = file.relative_to(root).as_posix() if root.is_dir() else str(file)
        rows.append(
            {
                "file": rel,
                "label": names[best],
                "probability": p[best],
                "probabilities": dict(zip(names, p, strict=True)),
            }
        )
    return rows

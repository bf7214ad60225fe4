"""ONNX export of an *adapted* predictor: the backbone plus whatever was fitted to one support set.

What is exported is ``learner.adapt(support_x, support_y)``, frozen: ProtoNet's prototypes, the
ridge / SVM / logistic-regression head's weights, MAML's (Meta-SGD's, ANIL's, Reptile's) adapted
parameters, a neural process's support encodings. The ONNX graph maps a query batch ``x`` to

* classification: ``scores`` ``(B, N)`` and ``probabilities`` ``(B, N)`` (softmax), with the original
  labels of the support set in the model's metadata (``classes``, a JSON list: ``classes[argmax]`` is
  the prediction);
* regression: ``prediction`` ``(B, out)``, plus ``variance`` ``(B, out)`` for learners that predict one.

The export goes through ``torch.export`` (``torch.onnx.export(..., dynamo=True)``), which traces the
predictor's own code once: no second implementation of any head is written for ONNX, so the exported
graph computes what ``predict`` computes (``check_parity`` runs it in onnxruntime and compares). The
batch dimension is dynamic. The one head that is not PyTorch, the scikit-learn random forest, is the
exception: its backbone is traced and its forest converted by skl2onnx (:mod:`metadl.export_forest`).
Other code torch.export cannot trace fails with :class:`OnnxExportError`. Needs
``pip install metadl[onnx]`` (onnx, onnxscript, skl2onnx; onnxruntime for ``check_parity``).

Caveat: a MAML-family learner with batch norm in transductive mode normalises with the statistics of the
query batch (as in ``predict``), so the ONNX model's outputs for one row depend on the rest of its batch,
exactly as metadl's do.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import logging
import os
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from metadl.algorithms.base import Predictor
from metadl.algorithms.randomforest import ForestPredictor
from metadl.apps.regression import support_table
from metadl.data.preprocess import load_folder_tree
from metadl.export_forest import FEATURES, forest_model
from metadl.fileio import atomic_write_bytes
from metadl.saving import SavedModel
from metadl.tasks.tables import format_of, read_table
from metadl.validation import check_support_labels

if TYPE_CHECKING:
    from onnx import ModelProto


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporter's progress notes (loggers, warnings and prints) for one export."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "onnxscript", "onnx_ir")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


class OnnxExportError(ValueError):
    """The predictor cannot be exported, or the ONNX packages are missing (the message says which)."""


class AdaptedModule(nn.Module):
    """A :class:`Predictor` as an ``nn.Module`` whose ``forward`` gives the ONNX outputs (see the module docstring).

    Example:
        >>> p = Predictor(lambda x: 2 * x, torch.tensor([5, 9]))
        >>> scores, proba = AdaptedModule(p)(torch.tensor([[0.0, 1.0]]))
        >>> scores.tolist(), round(proba[0, 1].item(), 4)
        ([[0.0, 2.0]], 0.8808)
    """

    def __init__(self, predictor: Predictor) -> None:
        super().__init__()
        self.predictor = predictor

    @property
    def output_names(self) -> list[str]:
        if self.predictor.classes_ is not None:
            return ["scores", "probabilities"]
        return ["prediction", "variance"] if self.predictor.has_variance else ["prediction"]

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        p = self.predictor
        scores = p.decision_function(x)
        if p.classes_ is not None:
            return scores, scores.softmax(-1)
        return (scores, p.predict_variance(x)) if p.has_variance else (scores,)


class _Features(nn.Module):
    """``x`` -> ``backbone(x).flatten(1)``: what a head is fitted on (see ``heads.embed_tasks``)."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, x: Tensor) -> Tensor:
        return self.backbone(x).flatten(1)


def _trace(module: nn.Module, example_x: Tensor, output_names: list[str], learner_name: str) -> ModelProto:
    """``module`` as an ONNX model with the input ``x`` (dynamic batch) via ``torch.onnx.export``."""
    batch = torch.export.Dim("batch", min=1)
    try:
        with _quiet(), torch.no_grad():
            program = torch.onnx.export(
                module, (example_x,), dynamo=True, input_names=["x"], output_names=output_names,
                dynamic_shapes=({0: batch},), verbose=False,
            )  # fmt: skip
    except Exception as err:  # torch.export raises many types; each means "this code cannot be traced"
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(err)).strip()  # the exporter colours its messages
        first = text.splitlines()[0] if text else type(err).__name__
        raise OnnxExportError(
            f"cannot export {learner_name or 'this predictor'} to ONNX ({type(err).__name__}: {first}); "
            "a head must be PyTorch code torch.export can trace (or the randomforest head)"
        ) from None
    assert program is not None
    return program.model_proto


@dataclass(frozen=True)
class ExportedModel:
    """What :func:`export_onnx` wrote: the file, its output names and the support set's labels."""

    path: Path
    outputs: list[str]
    classes: list[str] | None


def export_onnx(
    predictor: Predictor,
    example_x: Tensor,
    path: str | os.PathLike[str],
    *,
    learner_name: str = "",
    class_names: list[str] | None = None,
) -> ExportedModel:
    """Write ``predictor`` (``learner.adapt(...)``) as an ONNX model taking ``x`` shaped like ``example_x``.

    ``example_x``: ``(B, *x_shape)`` a query batch (its values only steer the trace; B is dynamic).
    ``class_names``: names of the integer labels the predictor was adapted to (``class_names[label]``),
    stored as the model's ``classes``; by default the labels themselves.
    """
    try:
        import onnx  # optional dependency: metadl[onnx]
    except ImportError:
        raise OnnxExportError("ONNX export needs the onnx packages: pip install metadl[onnx]") from None
    module = AdaptedModule(predictor).eval()
    if isinstance(predictor, ForestPredictor):
        if importlib.util.find_spec("skl2onnx") is None:
            raise OnnxExportError("exporting the randomforest head needs skl2onnx: pip install metadl[onnx]")
        features = _trace(_Features(predictor.backbone), example_x, [FEATURES], learner_name)
        proto = forest_model(predictor, features)
    else:
        proto = _trace(module, example_x, module.output_names, learner_name)
    labels = [] if predictor.classes_ is None else [int(c) for c in predictor.classes_.tolist()]
    classes = (
        None if predictor.classes_ is None else [class_names[c] if class_names else str(c) for c in labels]
    )
    meta = {
        "metadl_learner": learner_name,
        "classes": json.dumps(classes),
        "outputs": json.dumps(module.output_names),
    }
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    buffer = io.BytesIO()
    onnx.save(proto, buffer)
    target = Path(path)
    atomic_write_bytes(target, buffer.getvalue())
    return ExportedModel(target, module.output_names, classes)


def run_onnx(path: str | os.PathLike[str], x: Tensor) -> dict[str, Tensor]:
    """Run an exported model in onnxruntime on the CPU: ``{output name: tensor}``."""
    try:
        import onnxruntime  # optional dependency: metadl[onnx]
    except ImportError:
        raise OnnxExportError("running ONNX models needs onnxruntime: pip install metadl[onnx]") from None
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    values = session.run(names, {session.get_inputs()[0].name: x.detach().cpu().numpy()})
    return {n: torch.from_numpy(v) for n, v in zip(names, values, strict=True)}


def check_parity(
    path: str | os.PathLike[str], predictor: Predictor, x: Tensor, *, atol: float = 1e-4
) -> float:
    """Largest absolute difference between onnxruntime's outputs and the predictor's on ``x``.

    Raises :class:`OnnxExportError` when it exceeds ``atol`` or the predicted labels differ.
    """
    ours = [t.detach().float().cpu() for t in AdaptedModule(predictor).eval()(x)]
    theirs = list(run_onnx(path, x).values())
    worst = max(float((a - b.float()).abs().max()) for a, b in zip(ours, theirs, strict=True))
    if worst > atol:
        raise OnnxExportError(f"{path}: onnxruntime differs from metadl by {worst:.3g} (> {atol})")
    if predictor.classes_ is not None and not torch.equal(ours[0].argmax(-1), theirs[0].argmax(-1)):
        raise OnnxExportError(f"{path}: onnxruntime predicts other classes than metadl")
    return worst


def read_support(
    model: SavedModel, support: str | os.PathLike[str], target_column: str | None
) -> tuple[Tensor, Tensor, list[str] | None]:
    """A support set for ``model``: ``(x, y, class names)`` from an image folder tree (``<class>/<image>``)
    or a CSV / JSON Lines table (``target_column``: the float target of a regression model, default ``y``,
    or the label of a classifier, default ``label``; every other column is a feature)."""
    path = Path(support)
    if path.is_dir():
        if model.preprocessing is None:
            raise OnnxExportError(
                f"the model at {model.path} was saved without image preprocessing; give a CSV support table"
            )
        images = load_folder_tree(path, model.preprocessing)
        assert images.labels is not None
        check_support_labels(images.labels, images.class_names)
        return images.x, images.labels, images.class_names
    if model.is_regression:
        x, y, _ = support_table(path, target_column or "y")
        return x, y, None
    fmt = format_of(path)
    if fmt not in ("csv", "jsonl") or not path.is_file():
        raise OnnxExportError(
            f"support {path}: give a folder of <class>/<image> files or a .csv / .jsonl table"
        )
    table = read_table(path, fmt)
    column = target_column or "label"
    names = table.labels(column, "--target-column")
    features = [c for c in table.columns if c != column]
    classes = sorted(set(names))
    y = torch.tensor([classes.index(n) for n in names])
    check_support_labels(y, classes)
    return table.numbers(features), y, classes


def export_model(
    model: SavedModel,
    support: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    target_column: str | None = None,
) -> ExportedModel:
    """``metadl export``: adapt a saved model to ``support``, export it to ``out`` and check it in onnxruntime."""
    x, y, class_names = read_support(model, support, target_column)
    predictor = model.adapt(x, y)
    name = str(model.spec["learner"].get("name", ""))
    exported = export_onnx(predictor, x, out, learner_name=name, class_names=class_names)
    check_parity(exported.path, predictor, x)
    return exported

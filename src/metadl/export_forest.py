"""The random-forest head in ONNX: the traced backbone joined to the scikit-learn forest.

:func:`metadl.export.export_onnx` traces the backbone with ``torch.onnx.export`` (``x`` -> ``features``)
and hands it here with the :class:`~metadl.algorithms.randomforest.ForestPredictor`; the fitted
``RandomForestClassifier`` is converted by skl2onnx (``convert_sklearn``, no ZipMap, the ``ai.onnx.ml``
``TreeEnsembleClassifier``) and the two graphs are joined with ``onnx.compose.merge_models``. A few
standard operators then compute what the predictor computes from the forest's probabilities ``p``
(``(B, K)``, ordered as ``forest.classes_``):

* ``p @ M`` places column ``k`` at class ``forest.classes_[k]`` of the full ``(B, N)`` vector (``M`` is
  0/1, so this is exact); classes the forest never saw get probability 0, as in ``score_head``;
* ``scores = log(max(p, floor))`` and ``probabilities = softmax(scores)``.

Needs ``pip install metadl[onnx]`` (onnx, skl2onnx), imported on first use like ``metadl.export`` does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from metadl.algorithms.randomforest import ForestPredictor

if TYPE_CHECKING:
    import onnx

FEATURES = "features"  # the traced backbone's output, the forest's input
_ML_OPSET = 3  # ai.onnx.ml: TreeEnsembleClassifier with double thresholds is in 3; onnxruntime runs it


def _opset(model: onnx.ModelProto) -> int:
    """The default-domain opset of ``model`` (what torch.onnx.export chose)."""
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def forest_model(predictor: ForestPredictor, backbone: onnx.ModelProto) -> onnx.ModelProto:
    """``backbone`` (input ``x``, output ``features`` ``(B, D)``) followed by ``predictor.forest``.

    The result has the input ``x`` and the outputs ``scores`` and ``probabilities``, ``(B, N)`` with
    ``N = len(predictor.classes_)``, equal to the predictor's ``decision_function`` and ``predict_proba``.
    """
    import onnx  # optional dependencies: metadl[onnx]
    from onnx import compose, helper, numpy_helper
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    assert predictor.classes_ is not None
    forest, n_classes = predictor.forest, len(predictor.classes_)
    opset = _opset(backbone)
    converted = convert_sklearn(
        forest,
        initial_types=[(FEATURES, FloatTensorType([None, int(forest.n_features_in_)]))],
        options={id(forest): {"zipmap": False}},
        target_opset={"": opset, "ai.onnx.ml": _ML_OPSET},
    )
    converted.ir_version = backbone.ir_version  # merge_models needs equal IR versions
    merged = compose.merge_models(
        backbone, converted, io_map=[(FEATURES, FEATURES)], prefix2="forest/",
        outputs=["forest/probabilities"],
    )  # fmt: skip
    placement = np.zeros((len(forest.classes_), n_classes), dtype=np.float32)
    placement[np.arange(len(forest.classes_)), np.asarray(forest.classes_, dtype=np.int64)] = 1.0
    graph = merged.graph
    graph.initializer.extend(
        [
            numpy_helper.from_array(placement, "forest/placement"),
            numpy_helper.from_array(np.array(predictor.floor, dtype=np.float32), "forest/floor"),
        ]
    )
    graph.node.extend(
        [
            helper.make_node("MatMul", ["forest/probabilities", "forest/placement"], ["forest/full"]),
            helper.make_node("Max", ["forest/full", "forest/floor"], ["forest/floored"]),
            helper.make_node("Log", ["forest/floored"], ["scores"]),
            helper.make_node("Softmax", ["scores"], ["probabilities"], axis=-1),
        ]
    )
    del graph.output[:]
    graph.output.extend(
        [
            helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, ["batch", n_classes])
            for name in ("scores", "probabilities")
        ]
    )
    onnx.checker.check_model(merged)
    return merged

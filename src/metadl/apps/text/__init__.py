"""Few-shot text classification: a text encoder composed with a learner, shipped zero-training models,
the intent-detection protocol, and ``metadl predict`` on CSV / JSON Lines / ``.txt`` folders."""

from metadl.apps.text.model import Prediction, TextModel, TextPredictor, gather_inputs

__all__ = ["Prediction", "TextModel", "TextPredictor", "gather_inputs"]

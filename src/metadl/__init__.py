"""metadl: deep meta-learning with vectorised few-shot learners.

``metadl.load(path)`` reads a saved model and ``metadl.save_model(path, learner, spec=...)`` writes one
(see :mod:`metadl.saving`). They are imported on first use, so ``import metadl`` and the CLI stay fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["__version__", "load", "save_model"]

if TYPE_CHECKING:
    from metadl.saving import load, save_model


def __getattr__(name: str) -> Any:
    if name in ("load", "save_model"):
        from metadl import saving

        return getattr(saving, name)
    raise AttributeError(f"module 'metadl' has no attribute {name!r}")

"""The Keras 3 interop example runs: a metadl backbone inside a Keras model via TorchModuleWrapper."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "keras_backbone.py"


@pytest.mark.skipif(
    importlib.util.find_spec("keras") is None, reason="keras is not installed (pip install metadl[keras])"
)
def test_the_keras_example_trains_a_head_on_a_frozen_metadl_backbone():
    """Its own assertions: the wrapped layer's features equal the backbone's, fit leaves the backbone
    unchanged; here: the loss fell and the Keras model classifies the new problem."""
    env = os.environ | {"KERAS_BACKEND": "torch", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(EXAMPLE)], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    found = re.search(r"torch backend\): loss ([\d.]+) -> ([\d.]+), training accuracy ([\d.]+)", done.stdout)
    assert found, done.stdout
    first, last, accuracy = map(float, found.groups())
    assert last < 0.5 * first and accuracy > 0.8

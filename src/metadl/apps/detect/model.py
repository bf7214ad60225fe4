"""A trained detector on disk: ``MODEL/detector.ckpt`` (sha256-checked, ``weights_only`` load) with its
architecture, class names and input size; the spec is bounded before anything is built.

Example:
    >>> import tempfile, pathlib
    >>> from metadl.models.detection import CenterNetDetector, DetectorSpec
    >>> folder = pathlib.Path(tempfile.mkdtemp()) / "model"
    >>> _ = save_detector(SavedDetector(CenterNetDetector(DetectorSpec(2, hidden=4, dim=8)), ["a", "b"], 64, 1), folder)
    >>> load_detector(folder).class_names
    ['a', 'b']
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from metadl.models.detection import CenterNetDetector, DetectorSpec
from metadl.training.checkpoint import load_checkpoint, save_checkpoint
from metadl.training.runfolder import MODEL_DIR

MODEL_FILE = "detector.ckpt"
LIMITS = {"n_classes": 100_000, "hidden": 1024, "dim": 4096, "in_channels": 4, "image_size": 4096}


class DetectorModelError(ValueError):
    """A path is not a saved detector, or its description is out of bounds."""


@dataclass(frozen=True)
class SavedDetector:
    """A detector with its class names (index order), the square input side and channel count it expects."""

    detector: CenterNetDetector
    class_names: list[str]
    image_size: int
    channels: int


def save_detector(model: SavedDetector, folder: str | Path) -> Path:
    """Write ``folder/detector.ckpt`` atomically; returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {
        "spec": dataclasses.asdict(model.detector.spec),
        "weights": model.detector.state_dict(),
        "class_names": list(model.class_names),
        "image_size": model.image_size,
        "channels": model.channels,
    }
    save_checkpoint(folder / MODEL_FILE, state)
    return folder


def model_file(path: str | Path) -> Path:
    """The checkpoint of a detector given as a run folder, a model folder or the file itself."""
    path = Path(path)
    for candidate in (path, path / MODEL_FILE, path / MODEL_DIR / MODEL_FILE):
        if candidate.is_file():
            return candidate
    raise DetectorModelError(
        f"{path} holds no saved detector ({MODEL_FILE}); give a run folder or its model/"
    )


def load_detector(path: str | Path) -> SavedDetector:
    """Read a detector saved by :func:`save_detector` (a run folder, a model folder or the file)."""
    file = model_file(path)
    state = load_checkpoint(file)
    spec = state.get("spec")
    if not isinstance(spec, dict) or set(spec) != {f.name for f in dataclasses.fields(DetectorSpec)}:
        raise DetectorModelError(f"{file}: the detector spec is missing or has unexpected keys")
    sizes = {**spec, "image_size": state.get("image_size"), "in_channels": state.get("channels")}
    for key, limit in LIMITS.items():
        value = sizes.get(key)
        if not isinstance(value, int) or not 1 <= value <= limit:
            raise DetectorModelError(f"{file}: {key} = {value!r} is outside 1..{limit}")
    names = state.get("class_names")
    if not isinstance(names, list) or len(names) != spec["n_classes"]:
        raise DetectorModelError(f"{file}: class_names must list the {spec['n_classes']} classes")
    try:
        detector = CenterNetDetector(DetectorSpec(**spec))
        detector.load_state_dict(state["weights"])
    except (ValueError, RuntimeError, KeyError) as err:
        raise DetectorModelError(
            f"{file}: the weights do not fit the spec ({str(err).splitlines()[0]})"
        ) from None
    return SavedDetector(detector.eval(), [str(n) for n in names], state["image_size"], state["channels"])

"""Explicit bounds on what metadl reads from files it did not write itself.

A saved model's ``metadl.json`` decides what gets built: a hostile or damaged one could ask for a layer
of ten million units, an image side of 60,000 pixels, a list of a million layers, or JSON nested deep
enough to exhaust Python's recursion. Everything here checks such input *before* anything is allocated
or built, and raises ``ValueError`` with a one-line message that names the key, the value and the limit.

The limits are far above any real model (the largest shipped backbone, ResNet-12, has 12.4 M parameters
and takes 84-pixel images) and far below what a machine would fail on.

Example:
    >>> check_spec_limits({"backbone": {"name": "mlp", "hidden": [64, 64]}, "learner": {"name": "protonet"}})
    >>> check_spec_limits({"backbone": {"name": "conv4", "image_size": 60000}, "learner": {"name": "maml"}})
    Traceback (most recent call last):
    ...
    ValueError: spec.backbone.image_size = 60000 is above the limit of 4096
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

MAX_JSON_BYTES = 4 << 20  # metadl.json holds a spec, preprocessing and metadata: kilobytes
MAX_JSON_DEPTH = 32
MAX_LIST_ITEMS = 1024  # e.g. the widths of an MLP's hidden layers
MAX_INT = 1 << 31  # any other integer in a spec
# Integers whose size is work or memory per input, bounded tighter than MAX_INT.
SPEC_INT_LIMITS = {
    "image_size": 4096,
    "n_way": 100_000,
    "inner_steps": 10_000,
    "eval_inner_steps": 10_000,
    "max_iter": 10_000,
    "fce_steps": 1_000,
    "n_estimators": 100_000,
}
MAX_IMAGE_SIDE = SPEC_INT_LIMITS["image_size"]


def json_depth(text: str) -> int:
    """The deepest nesting of ``[`` / ``{`` in a JSON text (brackets inside strings are not counted).

    Example:
        >>> json_depth('{"a": [1, {"b": "[[["}]}')
        3
    """
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def read_json(path: Path, *, max_bytes: int = MAX_JSON_BYTES, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse a JSON file of at most ``max_bytes`` nested at most ``max_depth`` deep; NaN and Infinity
    (which Python's ``json`` accepts by default) are refused. Raises ``ValueError`` saying which bound."""
    size = path.stat().st_size
    if size > max_bytes:
        raise ValueError(f"{size} bytes, more than the {max_bytes} a metadl JSON file may have")
    text = path.read_bytes().decode("utf-8")
    depth = json_depth(text)
    if depth > max_depth:
        raise ValueError(f"nested {depth} levels deep, more than the {max_depth} allowed")
    return json.loads(text, parse_constant=_no_constant)


def _check_value(key: str, value: Any) -> None:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, int):
        limit = SPEC_INT_LIMITS.get(key.rpartition(".")[2], MAX_INT)
        if abs(value) > limit:
            raise ValueError(f"{key} = {value} is above the limit of {limit}")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{key} = {value} is not a finite number")
    elif isinstance(value, list):
        if len(value) > MAX_LIST_ITEMS:
            raise ValueError(f"{key} has {len(value)} items, more than the {MAX_LIST_ITEMS} allowed")
        for item in value:
            _check_value(key, item)
    elif isinstance(value, dict):
        for k, item in value.items():
            _check_value(f"{key}.{k}", item)


def check_spec_limits(spec: dict[str, Any], root: str = "spec") -> None:
    """Refuse a spec with an integer, list or number beyond the module's limits (see the docstring);
    ``root`` prefixes the keys in messages."""
    for key, value in spec.items():
        _check_value(f"{root}.{key}" if root else key, value)


def state_nbytes(state: dict[str, Tensor]) -> int:
    """Bytes the tensors of a state dict take (works on the ``meta`` device, where nothing is allocated).

    Example:
        >>> state_nbytes({"w": torch.empty(3, 4, device="meta"), "b": torch.empty(4, dtype=torch.float64)})
        80
    """
    return sum(t.numel() * t.element_size() for t in state.values())


def non_finite_tensors(state: Any, prefix: str = "") -> list[str]:
    """Names of the floating-point tensors in a nested state (dicts, lists) that hold NaN or inf.

    Checked before every save: a state with an infinite batch-norm variance or optimizer moment would
    make a "last good" checkpoint that fails again on resume.

    Example:
        >>> non_finite_tensors({"model": {"w": torch.ones(2), "bn.var": torch.tensor([1.0, float("inf")])}})
        ['model.bn.var']
    """
    if isinstance(state, torch.Tensor):
        finite = not state.is_floating_point() and not state.is_complex() or bool(state.isfinite().all())
        return [] if finite else [prefix or "tensor"]
    if isinstance(state, dict):
        items = ((f"{prefix}.{k}" if prefix else str(k), v) for k, v in state.items())
    elif isinstance(state, list | tuple):
        items = ((f"{prefix}.{i}" if prefix else str(i), v) for i, v in enumerate(state))
    else:
        return []
    return [name for key, value in items for name in non_finite_tensors(value, key)]


def check_support_labels(labels: Tensor, class_names: list[str] | None = None) -> None:
    """A classifier adapted to a support set needs at least two classes: with one, every query would be
    given that class with probability 1.0. Float targets (regression) are not checked.

    Example:
        >>> check_support_labels(torch.tensor([3, 3, 3]), ["cat"])
        Traceback (most recent call last):
        ...
        ValueError: the support set has a single class ('cat'): a classifier needs examples of at least 2 classes to choose between; add a folder of examples of another class
    """
    if labels.is_floating_point() or labels.numel() == 0:
        return
    classes = torch.unique(labels)
    if len(classes) < 2:
        name = class_names[0] if class_names else str(int(classes[0])) if len(classes) else "none"
        raise ValueError(
            f"the support set has a single class ({name!r}): a classifier needs examples of at least 2 "
            "classes to choose between; add a folder of examples of another class"
        )

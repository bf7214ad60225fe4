"""The search space of ``metadl tune``: learner, architecture and optimisation, as conditional choices.

Every parameter is a finite choice, so that a search, the experiment database and the meta-model all speak
of the same points (a configuration tried on one task distribution can be proposed as is for another one,
and the warm-start benchmark can tabulate the whole space). Conditional parameters exist only when their
parent takes certain values: MLP depth only for the MLP backbone, inner-loop settings only for MAML.

=============  ================================  =================
parameter      values                            when
=============  ================================  =================
learner        protonet, maml                    always
backbone       conv4, mlp (mlp for vectors)      always
width          16, 48 (channels or units)        always
depth          1, 2 (hidden layers)              backbone = mlp
lr             0.001, 0.003, 0.01 (Adam)         always
inner_lr       0.1, 0.5                          learner = maml
inner_steps    1, 2                              learner = maml
=============  ================================  =================

MAML runs first-order here: a trial is a few dozen iterations, and second-order gradients would triple it.
The space depends on the input **modality**: images admit both backbones; vectors (sentence embeddings)
only the MLP, since a Conv-4 has no image to read. A study, a grid and a warm start are each over one
modality's points.

Example:
    >>> p = {"learner": "protonet", "backbone": "mlp", "width": 16, "depth": 2, "lr": 0.003}
    >>> apply_params({"backbone": {"name": "conv4"}, "learner": {"name": "maml"}}, p)["backbone"]
    {'name': 'mlp', 'hidden': [16, 16]}
    >>> len(grid()), len(grid("vector"))
    (90, 60)
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

Params = dict[str, Any]


@dataclass(frozen=True)
class Choice:
    """One parameter: its values, and the parent parameter values that make it exist (``None``: always)."""

    name: str
    values: tuple[Any, ...]
    parent: str | None = None
    when: tuple[Any, ...] = ()

    def active(self, params: Mapping[str, Any]) -> bool:
        return self.parent is None or params.get(self.parent) in self.when


SPACE: tuple[Choice, ...] = (
    Choice("learner", ("protonet", "maml")),
    Choice("backbone", ("conv4", "mlp")),
    Choice("width", (16, 48)),
    Choice("depth", (1, 2), parent="backbone", when=("mlp",)),
    Choice("lr", (0.001, 0.003, 0.01)),
    Choice("inner_lr", (0.1, 0.5), parent="learner", when=("maml",)),
    Choice("inner_steps", (1, 2), parent="learner", when=("maml",)),
)


# The backbones that can read each input modality.
BACKBONES = {"image": ("conv4", "mlp"), "vector": ("mlp",)}


def values_for(choice: Choice, modality: str = "image") -> tuple[Any, ...]:
    """The values ``choice`` may take for inputs of ``modality`` (``"image"`` or ``"vector"``)."""
    if modality not in BACKBONES:
        raise ValueError(f"modality={modality!r}; choose one of {sorted(BACKBONES)}")
    return BACKBONES[modality] if choice.name == "backbone" else choice.values


def modality_of(features: Mapping[str, float]) -> str:
    """The modality of the search space for a distribution with these meta-features (vector or image)."""
    return "vector" if features.get("is_vector") else "image"


def suggest(choose: Callable[[str, tuple[Any, ...]], Any], modality: str = "image") -> Params:
    """A point of the space, each active parameter picked by ``choose(name, values)`` (e.g. an Optuna trial's
    ``suggest_categorical``), in the order of :data:`SPACE` so that parents are picked before children."""
    params: Params = {}
    for choice in SPACE:
        if choice.active(params):
            params[choice.name] = choose(choice.name, values_for(choice, modality))
    return params


def check_params(params: Mapping[str, Any], modality: str = "image") -> Params:
    """``params`` if it is a point of the space (every active parameter set to one of its values, nothing else)."""
    expected = [c for c in SPACE if c.active(params)]
    unknown = sorted(set(params) - {c.name for c in expected})
    wrong = [
        f"{c.name}={params.get(c.name)!r} (choose from {list(values_for(c, modality))})"
        for c in expected
        if params.get(c.name) not in values_for(c, modality)
    ]
    if unknown or wrong:
        raise ValueError(
            f"not a point of the tuning space: {', '.join(wrong + [f'{u} is not used here' for u in unknown])}"
        )
    return dict(params)


def grid(modality: str = "image") -> list[Params]:
    """Every point of the space for ``modality`` (conditional parameters only where they exist)."""
    return list(_expand({}, 0, modality))


def _expand(params: Params, index: int, modality: str) -> Iterator[Params]:
    if index == len(SPACE):
        yield dict(params)
        return
    choice = SPACE[index]
    if not choice.active(params):
        yield from _expand(params, index + 1, modality)
        return
    for value in values_for(choice, modality):
        yield from _expand({**params, choice.name: value}, index + 1, modality)


def apply_params(raw: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the config mapping ``raw`` with ``params`` applied (backbone and learner sections replaced)."""
    out = copy.deepcopy(dict(raw))
    width = params["width"]
    out["backbone"] = (
        {"name": "conv4", "hidden": width}
        if params["backbone"] == "conv4"
        else {"name": "mlp", "hidden": [width] * params["depth"]}
    )
    out["learner"] = {"name": params["learner"]}
    if params["learner"] == "maml":
        out["learner"].update(
            inner_lr=params["inner_lr"], inner_steps=params["inner_steps"], first_order=True
        )
    out["optimizer"] = {**out.get("optimizer", {}), "lr": params["lr"]}
    return out


def encode(params: Mapping[str, Any]) -> list[float]:
    """Numbers for a meta-model: a one-hot per categorical parameter, the log of numeric ones, -1 when inactive.

    Example:
        >>> p = {"learner": "maml", "backbone": "conv4", "width": 16, "lr": 0.01, "inner_lr": 0.1, "inner_steps": 1}
        >>> [round(v, 2) for v in encode(p)]  # maml, conv4, log 16, no depth, log 0.01, log 0.1, log 1
        [0.0, 1.0, 1.0, 0.0, 2.77, -1.0, -4.61, -2.3, 0.0]
    """
    out: list[float] = []
    for choice in SPACE:
        value = params.get(choice.name)
        if isinstance(choice.values[0], str):
            out += [float(value == v) for v in choice.values]
        else:
            out.append(math.log(value) if value is not None and choice.active(params) else -1.0)
    return out


def encoded_names() -> list[str]:
    """The name of each number :func:`encode` returns."""
    return [
        f"{c.name}={v}" if isinstance(c.values[0], str) else c.name
        for c in SPACE
        for v in (c.values if isinstance(c.values[0], str) else c.values[:1])
    ]


def params_key(params: Mapping[str, Any]) -> str:
    """A canonical string for a point (for counting distinct configurations)."""
    return ",".join(f"{k}={params[k]}" for k in sorted(params))


def describe(params: Mapping[str, Any]) -> str:
    """``maml conv4-48 lr=0.003 inner_lr=0.5x2``-style one-liner."""
    arch = f"{params['backbone']}-{params['width']}" + (f"x{params['depth']}" if "depth" in params else "")
    inner = f" inner_lr={params['inner_lr']}x{params['inner_steps']}" if params["learner"] == "maml" else ""
    return f"{params['learner']} {arch} lr={params['lr']}{inner}"

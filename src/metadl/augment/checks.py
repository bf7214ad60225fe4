"""The augmentation module's error type and its checks of numbers given by a user (config or code)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


class AugmentError(ValueError):
    """An augmentation setting is not allowed; the one-line message names the value and the fix."""


def check_number(name: str, value: Any, low: float, high: float) -> float:
    """``value`` as a float in ``[low, high]``, else :class:`AugmentError` naming it.

    Example:
        >>> check_number("p", 1, 0, 1)
        1.0
        >>> check_number("p", 2, 0, 1)
        Traceback (most recent call last):
        ...
        metadl.augment.checks.AugmentError: p = 2 is not allowed: must be a number in [0, 1]
    """
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not low <= value <= high:
        raise AugmentError(f"{name} = {value!r} is not allowed: must be a number in [{low:g}, {high:g}]")
    return float(value)


def check_pair(name: str, value: Any, low: float, high: float) -> tuple[float, float]:
    """``value`` as ``(a, b)`` with ``low <= a <= b <= high``.

    Example:
        >>> check_pair("scale", [0.9, 1.1], 0.05, 20)
        (0.9, 1.1)
    """
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 2:
        raise AugmentError(f"{name} = {value!r} is not allowed: give [low, high], e.g. [0.9, 1.1]")
    a, b = (check_number(name, v, low, high) for v in value)
    if a > b:
        raise AugmentError(f"{name} = {list(value)} is not allowed: low must be <= high")
    return a, b

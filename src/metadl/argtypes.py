"""Argument types shared by the ``metadl`` commands (``cli.py`` and the applications' ``command.py`` modules).

Example:
    >>> duration("1h30m"), positive_int("3")
    (5400.0, 3)
"""

from __future__ import annotations

import argparse
import re


def duration(text: str) -> float:
    """Seconds in ``"90s"``, ``"45m"``, ``"2h"`` or ``"1h30m"``."""
    match = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?", text.strip())
    if not text.strip() or match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration; write e.g. 90s, 45m, 2h or 1h30m")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    total = 3600 * hours + 60 * minutes + seconds
    if total <= 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a positive duration; write e.g. 90s, 45m, 2h or 1h30m"
        )
    return total


def positive_int(text: str) -> int:
    """An integer >= 1; anything else (``0``, ``-2``, ``abc``) is argparse's one-line usage error."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value

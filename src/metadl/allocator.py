"""glibc malloc settings for meta-training, applied in-process by the ``metadl`` command.

With glibc's defaults, the large buffers of a meta-iteration (tens to hundreds of MB) are handed back
to the system when freed (``munmap``, or trimming the top of the heap) and faulted in again on the next
iteration: 60k-125k page faults and up to 0.42 s of system time per iteration, with a wide spread
(``docs/benchmarks.md``; training is 7-35% faster without it). Three ``mallopt`` settings keep them:

- ``M_MMAP_THRESHOLD`` = 32 MiB: blocks below it come from the heap, not from their own ``mmap``;
- ``M_TRIM_THRESHOLD`` = -1: never give the top of the heap back (``mallopt`` takes a C ``int``, so the
  16 GiB that the ``MALLOC_TRIM_THRESHOLD_`` environment variable used to say cannot be passed; -1 is
  the documented "disable trimming", what 16 GiB meant on machines of that size);
- ``M_TOP_PAD`` = 1 GiB: grow the heap in large steps.

Only the command-line entry point (:func:`metadl.cli.main`) calls :func:`tune_malloc`: importing a
library must not change its host process's allocator. Nothing is done outside Linux with glibc (musl,
macOS and Windows have other allocators), and a setting the user chose is kept: when its environment
variable (``MALLOC_TOP_PAD_`` ...) or its ``GLIBC_TUNABLES`` entry is set, glibc has read it at start-up.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class MallocSetting:
    """One ``mallopt(param, value)`` call, with the names under which a user may have set it already."""

    name: str  # the constant's name in <malloc.h>
    param: int  # its value there
    value: int
    env: str  # the environment variable glibc reads at start-up for the same setting
    tunable: str  # the GLIBC_TUNABLES name for it


SETTINGS = (
    MallocSetting(
        "M_MMAP_THRESHOLD", -3, 32 * 2**20, "MALLOC_MMAP_THRESHOLD_", "glibc.malloc.mmap_threshold"
    ),
    MallocSetting("M_TRIM_THRESHOLD", -1, -1, "MALLOC_TRIM_THRESHOLD_", "glibc.malloc.trim_threshold"),
    MallocSetting("M_TOP_PAD", -2, 2**30, "MALLOC_TOP_PAD_", "glibc.malloc.top_pad"),
)


class Libc(Protocol):
    """What :func:`tune_malloc` needs of the C library (a ``ctypes.CDLL``; a mock in tests)."""

    def mallopt(self, param: int, value: int) -> int: ...


def is_glibc() -> bool:
    """Whether this process runs on Linux with the GNU C library (not musl, macOS or Windows).

    Example:
        >>> isinstance(is_glibc(), bool)
        True
    """
    if sys.platform != "linux" or "CS_GNU_LIBC_VERSION" not in os.confstr_names:
        return False
    return (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc ")


def tune_malloc(environ: Mapping[str, str] = os.environ, libc: Libc | None = None) -> list[str]:
    """Apply :data:`SETTINGS` through glibc's ``mallopt``, except those the user set in ``environ``.

    Returns the names of the settings applied (none outside glibc). ``libc`` defaults to the C library
    this process runs on.

    Example:
        >>> class FakeLibc:
        ...     def mallopt(self, param: int, value: int) -> int:
        ...         return 1
        >>> applied = tune_malloc({"MALLOC_TOP_PAD_": "0"}, FakeLibc())  # the user's top pad is kept
        >>> applied in (["M_MMAP_THRESHOLD", "M_TRIM_THRESHOLD"], [])  # [] outside glibc
        True
    """
    if not is_glibc():
        return []
    if libc is None:
        process = ctypes.CDLL(None)  # the symbols of the running process, glibc's among them
        process.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        process.mallopt.restype = ctypes.c_int
        libc = process
    tunables = environ.get("GLIBC_TUNABLES", "")
    applied = []
    for setting in SETTINGS:
        if setting.env in environ or f"{setting.tunable}=" in tunables:
            continue
        if libc.mallopt(setting.param, setting.value) == 1:  # 0: glibc refused it (kept its default)
            applied.append(setting.name)
    return applied

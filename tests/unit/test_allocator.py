"""The glibc malloc settings: the right mallopt calls, the user's settings kept, only from the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from unittest import mock

import pytest

from metadl import allocator
from metadl.allocator import is_glibc, tune_malloc

MIB = 2**20
# <malloc.h>: M_TRIM_THRESHOLD -1, M_TOP_PAD -2, M_MMAP_THRESHOLD -3
EXPECTED = [mock.call(-3, 32 * MIB), mock.call(-1, -1), mock.call(-2, 1024 * MIB)]
glibc_only = pytest.mark.skipif(not is_glibc(), reason="mallopt is glibc's")


def fake_libc(result: int = 1) -> mock.Mock:
    libc = mock.Mock()
    libc.mallopt.return_value = result
    return libc


@glibc_only
def test_mallopt_gets_the_three_settings():
    libc = fake_libc()
    assert tune_malloc({}, libc) == ["M_MMAP_THRESHOLD", "M_TRIM_THRESHOLD", "M_TOP_PAD"]
    assert libc.mallopt.call_args_list == EXPECTED


@glibc_only
@pytest.mark.parametrize(
    ("environ", "kept"),
    [
        ({"MALLOC_MMAP_THRESHOLD_": "131072"}, -3),
        ({"MALLOC_TRIM_THRESHOLD_": "0"}, -1),
        ({"MALLOC_TOP_PAD_": "0"}, -2),
        ({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2:glibc.malloc.top_pad=0"}, -2),
    ],
)
def test_a_setting_the_user_chose_is_kept(environ, kept):
    libc = fake_libc()
    tune_malloc(environ, libc)
    assert libc.mallopt.call_args_list == [c for c in EXPECTED if c.args[0] != kept]


@glibc_only
def test_a_setting_glibc_refuses_is_not_reported_as_applied():
    assert tune_malloc({}, fake_libc(result=0)) == []


@pytest.mark.parametrize("platform", ["darwin", "win32"])
def test_nothing_is_done_outside_linux(monkeypatch, platform):
    monkeypatch.setattr(allocator.sys, "platform", platform)
    libc = fake_libc()
    assert not is_glibc() and tune_malloc({}, libc) == []
    libc.mallopt.assert_not_called()


def test_nothing_is_done_on_musl(monkeypatch):
    monkeypatch.setattr(allocator.os, "confstr_names", {})  # musl has no _CS_GNU_LIBC_VERSION
    libc = fake_libc()
    assert not is_glibc() and tune_malloc({}, libc) == []
    libc.mallopt.assert_not_called()


# Runs in a fresh interpreter: counts the lookups of `mallopt` in the process's C library while metadl
# and its CLI are imported (none allowed), then while the CLI runs (one).
SPY = """
import ctypes
lookups = []
class Spy(ctypes.CDLL):
    def __getattr__(self, name):
        if name == "mallopt":
            lookups.append(name)
        return super().__getattr__(name)
ctypes.CDLL = Spy
import metadl, metadl.allocator, metadl.cli, metadl.config, metadl.training, metadl.algorithms
print(len(lookups))
metadl.cli.main(["list", "learners"])
print(len(lookups))
"""


@glibc_only
def test_import_metadl_leaves_the_allocator_alone_and_the_cli_tunes_it():
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    out = subprocess.run(
        [sys.executable, "-c", SPY], capture_output=True, text=True, check=True, env=env
    ).stdout.splitlines()
    assert out[0] == "0", "importing metadl called mallopt"
    assert out[-1] == "1", "the CLI did not call mallopt"

"""Fixtures for the training-engine tests."""

from __future__ import annotations

import pytest
from engine_data import blobs

from metadl.data import DATASETS


@pytest.fixture
def blobs_dataset(monkeypatch):
    """Registers the in-memory ``blobs`` dataset for the duration of a test."""
    monkeypatch.setitem(DATASETS, "blobs", blobs)
    return "blobs"


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models on a shared 2-core machine: a second intra-op thread only waits (10-100x slower)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

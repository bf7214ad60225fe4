"""Fixtures shared by the test suite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """``<repo>/../shared/data`` with the real datasets; the test is skipped when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real datasets not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One intra-op thread for tiny tensors: on a busy 2-core machine a second thread only waits for a
    descheduled peer (10-100x slower). Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def one_thread_per_module() -> Iterator[None]:
    """As ``one_thread``, for a whole module whose module-scoped fixtures train tiny models (the
    recommendation tests: one of them took 65 s on two threads against 2.6 s on one)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def stand_in_characters():
    """Omniglot-shaped characters for the detection tests, no download: 30 background and 20 evaluation
    alphabets of 6 characters, each drawing a filled disc of random radius (ink 255)."""
    import numpy as np

    from metadl.data.omniglot import OmniglotCharacters

    rng = np.random.default_rng(0)
    names, sets = [], []
    for which, count in (("background", 30), ("evaluation", 20)):
        for a in range(count):
            for c in range(6):
                names.append(f"{which[:2]}{a:02d}/character{c + 1:02d}")
                sets.append(which)
    yy, xx = np.mgrid[:48, :48]
    radius = rng.integers(8, 22, size=(len(names), 20))
    images = ((yy - 24) ** 2 + (xx - 24) ** 2 < radius[..., None, None] ** 2).astype(np.uint8) * 255
    return OmniglotCharacters(images, tuple(names), tuple(sets))


@pytest.fixture(autouse=True)
def _experiment_db(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs that tests train or evaluate are recorded in a throw-away database, never in the user's."""
    monkeypatch.setenv("METADL_DB", str(tmp_path_factory.mktemp("db") / "experiments.sqlite"))

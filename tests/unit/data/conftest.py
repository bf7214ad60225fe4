"""Fixtures for the data tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def omniglot_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One Omniglot cache folder for the session: the first test that loads builds it, the rest reuse it."""
    return tmp_path_factory.mktemp("omniglot_cache")

"""Omniglot's errors tell a command-line user what to type (issue 12, item 11)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from metadl.data.omniglot import omniglot

og = importlib.import_module("metadl.data.omniglot")


def test_missing_files_name_the_command_line_setting_not_only_the_python_keyword(tmp_path: Path) -> None:
    with pytest.raises(
        FileNotFoundError, match=r"train\.txt.*--set dataset\.download=true.*--set dataset\.root="
    ):
        omniglot(tmp_path, "train", cache_dir=tmp_path / "c")
    with pytest.raises(FileNotFoundError, match=r"images_background.*--set dataset\.download=true"):
        omniglot(tmp_path, "background", protocol="lake", cache_dir=tmp_path / "c")


def test_an_offline_download_says_how_to_point_at_a_local_copy(tmp_path: Path, monkeypatch) -> None:
    def offline(url: str, dest: Path, *, sha256: str, progress: bool) -> Path:
        raise OSError(
            f"could not download {url}: <urlopen error [Errno -3] Temporary failure in name resolution>"
        )

    monkeypatch.setattr(og, "download_url", offline)
    with pytest.raises(og.OmniglotDownloadError) as info:
        omniglot(tmp_path, "train", download=True, cache_dir=tmp_path / "c", progress=False)
    message = str(info.value)
    assert "could not download https://raw.githubusercontent.com/jakesnell" in message
    assert "offline? point root at a local copy" in message and "--set dataset.root=DIR" in message
    assert "\n" not in message

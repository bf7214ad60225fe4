"""Datasets: the in-memory :class:`FewShotDataset`, real data sets, downloads, and their registry."""

from __future__ import annotations

from metadl.data.base import FewShotDataset
from metadl.data.download import ChecksumError, UnsafeArchiveError, download_url, safe_extract_zip, sha256sum
from metadl.data.image_folder import image_folder
from metadl.data.omniglot import omniglot
from metadl.data.registry import DATASETS, create_dataset, list_datasets

__all__ = [
    "DATASETS",
    "ChecksumError",
    "FewShotDataset",
    "UnsafeArchiveError",
    "create_dataset",
    "download_url",
    "image_folder",
    "list_datasets",
    "omniglot",
    "safe_extract_zip",
    "sha256sum",
]

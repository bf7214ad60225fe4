"""Unpacking is bounded: declared sizes, actual sizes, compression ratio and member count (issue 12, item 8)."""

from __future__ import annotations

import os
import struct
import time
import zipfile
from pathlib import Path

import pytest

from metadl.data.download import ExtractLimits, UnsafeArchiveError, safe_extract_zip


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def patch_declared_size(path: Path, size: int) -> None:
    """Rewrite the uncompressed size that the central directory records for every member."""
    data = bytearray(path.read_bytes())
    at = data.find(b"PK\x01\x02")
    while at >= 0:
        data[at + 24 : at + 28] = struct.pack("<I", size)
        at = data.find(b"PK\x01\x02", at + 4)
    path.write_bytes(bytes(data))


def written(target: Path) -> list[str]:
    return sorted(str(p.relative_to(target)) for p in target.rglob("*")) if target.exists() else []


def test_a_member_declaring_gigabytes_is_refused_before_anything_is_written(tmp_path):
    archive = make_zip(tmp_path / "a.zip", {"top/x.bin": os.urandom(1000)})
    patch_declared_size(archive, 0xF000_0000)  # 3.75 GiB, from an archive of about a kilobyte
    with pytest.raises(UnsafeArchiveError, match=r"member 'top/x\.bin' declares 4026531840 bytes, more than"):
        safe_extract_zip(archive, tmp_path / "out", limits=ExtractLimits(max_member_bytes=1 << 30))
    assert written(tmp_path / "out") == []


def test_a_highly_compressible_member_is_refused_as_a_zip_bomb(tmp_path):
    archive = make_zip(tmp_path / "bomb.zip", {"top/zeros.bin": bytes(8 << 20)})
    assert archive.stat().st_size < 100_000
    start = time.perf_counter()
    with pytest.raises(UnsafeArchiveError, match=r"expands \d+-fold .* a zip bomb"):
        safe_extract_zip(archive, tmp_path / "out")
    assert time.perf_counter() - start < 1 and written(tmp_path / "out") == []


def test_a_member_that_decompresses_to_more_than_it_declares_is_stopped(tmp_path):
    archive = make_zip(tmp_path / "liar.zip", {"top/x.bin": os.urandom(5000)})
    patch_declared_size(archive, 100)
    with pytest.raises(ValueError, match=r"liar\.zip"):
        safe_extract_zip(archive, tmp_path / "out")
    assert [p for p in written(tmp_path / "out") if not p.startswith(".")] == []


@pytest.mark.parametrize(
    "limits, message",
    [
        (ExtractLimits(max_members=3), "has 5 members, more than the limit of 3"),
        (ExtractLimits(max_total_bytes=4000), "declares 5000 bytes in all, more than the limit of 4000"),
        (ExtractLimits(max_member_bytes=999), "declares 1000 bytes, more than the limit of 999"),
        (ExtractLimits(max_ratio=0.5, ratio_floor_bytes=10), "expands"),
    ],
)
def test_each_limit_is_enforced(tmp_path, limits, message):
    archive = make_zip(tmp_path / "a.zip", {f"top/{i}.bin": os.urandom(1000) for i in range(5)})
    with pytest.raises(UnsafeArchiveError, match=message):
        safe_extract_zip(archive, tmp_path / "out", limits=limits)


def test_archives_within_the_limits_unpack(tmp_path):
    archive = make_zip(tmp_path / "a.zip", {"top/small.txt": b"a" * 5000, "top/x.bin": os.urandom(1000)})
    safe_extract_zip(archive, tmp_path / "out")
    assert (
        tmp_path / "out" / "top" / "small.txt"
    ).read_bytes() == b"a" * 5000  # small files may compress well


def test_a_corrupt_member_is_one_clear_error(tmp_path):
    archive = make_zip(tmp_path / "a.zip", {"top/x.bin": os.urandom(5000)})
    data = bytearray(archive.read_bytes())
    data[100:200] = bytes(100)  # inside the compressed data of the member
    archive.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"a\.zip is corrupt .*download it again"):
        safe_extract_zip(archive, tmp_path / "out")


def test_stale_extraction_and_download_temporaries_are_removed(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    stale, fresh = target / ".a.zip.dead.tmp", target / ".a.zip.live.tmp"
    stale.mkdir()
    fresh.mkdir()
    os.utime(stale, (0, 0))
    safe_extract_zip(make_zip(tmp_path / "a.zip", {"top/x.txt": b"hi"}), target)
    assert not stale.exists() and fresh.exists()

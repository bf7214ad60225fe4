"""Downloading and unpacking data files safely: checksums, atomic writes, zip-slip protection.

Two promises hold whatever happens (a crash, a dropped connection, a wrong file on the server):

- a file appears under its final name only complete and with the expected sha256 (it is streamed to a
  temporary file in the same folder, hashed on the way, fsynced, then renamed atomically);
- unpacking an archive never writes outside its target folder (absolute names, ``..``, drive letters
  and symlinks are refused before anything is written), and each top-level entry appears atomically;
- unpacking is bounded (:class:`ExtractLimits`): the number of members, the bytes of each member and of
  all of them, and each member's compression ratio are checked against what the archive declares before
  anything is written, and the bytes actually decompressed are counted as they are written, so an
  archive that lies about its sizes (a "zip bomb") is stopped at the limit, not after filling the disk.

Temporary ``.part`` files of downloads that were killed are removed by the next download into the same
folder once they are old enough that no live download can own them (:func:`metadl.fileio.remove_stale`).

Only the standard library (``urllib``, ``zipfile``, ``hashlib``) and tqdm for the progress bar.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import shutil
import stat
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, BinaryIO

from tqdm.auto import tqdm

from metadl.fileio import atomic_file, fsync_dir, remove_stale

_CHUNK = 1 << 20
_DRIVE = re.compile(r"^[A-Za-z]:")


class ChecksumError(ValueError):
    """A file's sha256 is not the expected one."""


class UnsafeArchiveError(ValueError):
    """An archive member would land outside the target folder (or is a link), or unpacking it would
    exceed the :class:`ExtractLimits`."""


@dataclass(frozen=True)
class ExtractLimits:
    """Bounds on unpacking one archive. The defaults are far above any dataset metadl reads (the official
    Omniglot zips hold 32,460 PNGs, 20 MB unpacked) and far below what fills a disk.

    Attributes:
        max_members: files and folders in the archive.
        max_member_bytes: uncompressed bytes of one member.
        max_total_bytes: uncompressed bytes of all members together.
        max_ratio: uncompressed / compressed bytes of one member, checked for members larger than
            ``ratio_floor_bytes`` (tiny files compress well without being bombs).
    """

    max_members: int = 1_000_000
    max_member_bytes: int = 4 << 30
    max_total_bytes: int = 32 << 30
    max_ratio: float = 200.0
    ratio_floor_bytes: int = 1 << 20


def _check_declared(infos: list[zipfile.ZipInfo], archive: Path, limits: ExtractLimits) -> None:
    """Refuse an archive whose declared sizes exceed ``limits``, before anything is written."""
    if len(infos) > limits.max_members:
        raise UnsafeArchiveError(
            f"{archive.name} has {len(infos)} members, more than the limit of {limits.max_members}"
        )
    total = 0
    for info in infos:
        where = f"{archive.name}: member {info.filename!r}"
        if info.file_size > limits.max_member_bytes:
            raise UnsafeArchiveError(
                f"{where} declares {info.file_size} bytes, more than the limit of {limits.max_member_bytes}"
            )
        ratio = info.file_size / max(1, info.compress_size)
        if info.file_size > limits.ratio_floor_bytes and ratio > limits.max_ratio:
            raise UnsafeArchiveError(
                f"{where} expands {ratio:.0f}-fold ({info.compress_size} -> {info.file_size} bytes), more "
                f"than the limit of {limits.max_ratio:.0f}: a zip bomb?"
            )
        total += info.file_size
    if total > limits.max_total_bytes:
        raise UnsafeArchiveError(
            f"{archive.name} declares {total} bytes in all, more than the limit of {limits.max_total_bytes}"
        )


def _copy_bounded(src: IO[bytes], dst: IO[bytes], allowed: int, where: str) -> int:
    """Copy at most ``allowed`` bytes; raise if the source holds more. Returns the bytes copied."""
    copied = 0
    while chunk := src.read(min(_CHUNK, allowed - copied + 1)):
        copied += len(chunk)
        if copied > allowed:
            raise UnsafeArchiveError(f"{where} decompresses to more bytes than it declares or is allowed")
        dst.write(chunk)
    return copied


def sha256sum(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.txt"
        >>> _ = p.write_bytes(b"abc")
        >>> sha256sum(p)[:16]
        'ba7816bf8f01cfea'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _stream(url: str, out: BinaryIO, *, timeout: float, progress: bool, desc: str) -> str:
    """Write the body of ``url`` to ``out``; return its hex sha256."""
    digest = hashlib.sha256()
    request = urllib.request.Request(url, headers={"User-Agent": "metadl"})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.URLError as err:
        raise OSError(f"could not download {url}: {err}") from err
    with response:
        size = response.headers.get("Content-Length")
        total = int(size) if size and size.isdigit() else None
        received = 0
        with tqdm(total=total, unit="B", unit_scale=True, desc=desc, disable=not progress) as bar:
            try:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            except http.client.IncompleteRead as err:
                got = received + len(err.partial)
                raise OSError(f"download of {url} was cut off after {got} bytes") from err
    if total is not None and received != total:
        raise OSError(f"download of {url} stopped after {received} of {total} bytes")
    return digest.hexdigest()


def download_url(
    url: str,
    dest: str | os.PathLike[str],
    *,
    sha256: str,
    timeout: float = 60.0,
    progress: bool = True,
) -> Path:
    """Download ``url`` to ``dest`` and check its sha256; return the final path.

    The body is streamed to a temporary file next to ``dest``, hashed on the way, fsynced and renamed
    into place, so ``dest`` never holds a partial or unverified file. If ``dest`` already exists with the
    expected hash nothing is downloaded.

    Args:
        url: an ``http://`` or ``https://`` address.
        dest: the file to write, or an existing folder (the file is then named after the URL).
        sha256: the expected hex digest (64 characters); a mismatch deletes the download and raises
            :class:`ChecksumError` naming the file, the expected and the actual hash.
        timeout: seconds to wait on the connection and on each read.
        progress: show a tqdm progress bar (on stderr).
    """
    expected = sha256.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", expected):
        raise ValueError(f"sha256 must be 64 hex characters, got {sha256!r}")
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ("http", "https"):
        raise ValueError(f"only http(s) URLs can be downloaded, got {url!r}")
    dest = Path(dest)
    if dest.is_dir():
        dest = dest / PurePosixPath(parsed.path).name
    if dest.is_file() and sha256sum(dest) == expected:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(dest.parent, f".{dest.name}.*.part")
    with atomic_file(dest, suffix=".part") as out:  # replaced only once the hash matches
        actual = _stream(url, out, timeout=timeout, progress=progress, desc=dest.name)
        if actual != expected:
            raise ChecksumError(
                f"checksum mismatch for {dest.name} from {url}: expected sha256 {expected}, got {actual}; "
                "the download was deleted (the file changed upstream or was corrupted on the way)"
            )
    return dest


def _member_path(info: zipfile.ZipInfo, archive: Path) -> PurePosixPath | None:
    """The member's relative path, ``None`` for junk to skip; raises if it could escape the target."""
    name = info.filename
    where = f"{archive.name}: member {name!r}"
    if "\x00" in name:
        raise UnsafeArchiveError(f"{where} has a NUL byte in its name")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise UnsafeArchiveError(f"{where} is a symbolic link; links are refused")
    unified = name.replace("\\", "/")
    if unified.startswith("/") or _DRIVE.match(unified):
        raise UnsafeArchiveError(f"{where} has an absolute path")
    parts = [p for p in unified.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(f"{where} climbs out of the target with '..'")
    if not parts or parts[0] == "__MACOSX":
        return None
    return PurePosixPath(*parts)


def safe_extract_zip(
    zip_path: str | os.PathLike[str],
    target: str | os.PathLike[str],
    *,
    limits: ExtractLimits = ExtractLimits(),
) -> Path:
    """Extract a zip archive into ``target`` without ever writing outside it; return ``target``.

    Every member is checked before anything is written: absolute names, drive letters, ``..``
    components and symbolic links raise :class:`UnsafeArchiveError`; ``__MACOSX/`` entries are skipped.
    Sizes are bounded by ``limits`` (see :class:`ExtractLimits`), declared and actual.
    The archive is unpacked into a temporary folder next to ``target``, then each top-level entry is
    renamed into ``target``. An entry that already exists there is kept as it is (it can only have got
    there complete, by that rename), so calling this again is cheap and a run cut short is finished by
    the next one.

    Example:
        >>> import tempfile, zipfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> with zipfile.ZipFile(d / "a.zip", "w") as z:
        ...     z.writestr("top/x.txt", "hi")
        ...     z.writestr("__MACOSX/top/._x.txt", "junk")
        >>> out = safe_extract_zip(d / "a.zip", d / "out")
        >>> (out / "top" / "x.txt").read_text(), sorted(p.name for p in out.iterdir())
        ('hi', ['top'])
    """
    zip_path, target = Path(zip_path), Path(target)
    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as err:
        raise ValueError(f"cannot read zip archive {zip_path}: {err}") from None
    with archive:
        _check_declared(archive.infolist(), zip_path, limits)
        members = [
            (info, rel) for info in archive.infolist() if (rel := _member_path(info, zip_path)) is not None
        ]
        tops = {rel.parts[0] for _, rel in members}
        missing = {top for top in tops if not (target / top).exists()}
        if not missing:
            return target
        target.mkdir(parents=True, exist_ok=True)
        remove_stale(target, f".{zip_path.name}.*.tmp")
        tmp = Path(tempfile.mkdtemp(dir=target, prefix=f".{zip_path.name}.", suffix=".tmp"))
        left = limits.max_total_bytes
        try:
            for info, rel in members:
                if rel.parts[0] not in missing:
                    continue
                out = tmp.joinpath(*rel.parts)
                if info.is_dir():
                    out.mkdir(parents=True, exist_ok=True)
                    continue
                out.parent.mkdir(parents=True, exist_ok=True)
                allowed = min(info.file_size, limits.max_member_bytes, left)
                with archive.open(info) as src, open(out, "wb") as dst:
                    left -= _copy_bounded(src, dst, allowed, f"{zip_path.name}: member {info.filename!r}")
            for top in sorted(missing):
                os.replace(tmp / top, target / top)
            fsync_dir(target)
        except (zipfile.BadZipFile, zlib.error, EOFError) as err:
            raise ValueError(f"{zip_path} is corrupt ({err}); delete it and download it again") from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target

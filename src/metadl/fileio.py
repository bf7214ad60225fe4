"""File-system helpers shared by every writer that must not lose data: checkpoints, metrics, downloads,
caches, saved models. One way to replace a file atomically lives here, and nowhere else."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


def _file_mode() -> int:
    """Permissions a plainly created file gets here (0o666 minus the umask); mkstemp would give 0o600."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


_FILE_MODE = _file_mode()  # read once, at import, while the process is still single-threaded

# Temporary entries untouched this long belong to a writer that died (a write takes seconds to minutes).
STALE_AFTER_S = 6 * 3600.0


def fsync_dir(folder: str | os.PathLike[str]) -> None:
    """Make a rename inside ``folder`` durable (a no-op where folders cannot be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def remove_stale(
    folder: str | os.PathLike[str], pattern: str, *, older_than: float = STALE_AFTER_S
) -> list[Path]:
    """Delete the entries of ``folder`` matching ``pattern`` (temporary files or folders left by a writer
    that was killed) untouched for ``older_than`` seconds; returns what was removed.

    A live writer touches its temporary entry as it writes (a download's ``.part`` file grows, a model's
    temporary folder gets its files), so only entries idle for longer than any write takes are removed;
    a concurrent writer's fresh entry is never touched.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp()); _ = (d / ".x.part").write_text("partial")
        >>> os.utime(d / ".x.part", (0, 0))   # last touched in 1970
        >>> _ = (d / ".y.part").write_text("being written now")
        >>> [p.name for p in remove_stale(d, ".*.part")], sorted(p.name for p in d.iterdir())
        (['.x.part'], ['.y.part'])
    """
    now = time.time()
    removed = []
    for entry in Path(folder).glob(pattern):
        try:
            if now - entry.lstat().st_mtime < older_than:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        except OSError:  # removed meanwhile by another process, or not ours to remove
            continue
        removed.append(entry)
    return removed


@contextlib.contextmanager
def atomic_file(
    path: str | os.PathLike[str], *, suffix: str = ".tmp", durable: bool = True
) -> Iterator[BinaryIO]:
    """Write ``path`` through a temporary file that replaces it only when the block ends without error.

    Readers see the old file or the whole new one, never a part: the bytes go to ``.<name>.<random><suffix>``
    in the same folder, which is renamed over ``path`` (``os.replace`` is atomic). ``durable=True`` also
    fsyncs the file and the folder, so the new file survives a power cut; a cache that can recompute
    its entries passes False. An error inside the block (a failed checksum, say) removes the temporary
    file and leaves ``path`` as it was; a killed writer leaves at most the temporary file, which
    :func:`remove_stale` clears later.

    Example:
        >>> import tempfile, pathlib
        >>> target = pathlib.Path(tempfile.mkdtemp()) / "a.bin"
        >>> with atomic_file(target) as f:
        ...     _ = f.write(b"abc")
        >>> target.read_bytes()
        b'abc'
    """
    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=suffix)
    try:
        os.fchmod(fd, _FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            yield f
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable:
        fsync_dir(target.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, durable: bool = True) -> None:
    """Replace ``path`` with ``data`` atomically (see :func:`atomic_file`).

    Example:
        >>> import tempfile, pathlib
        >>> target = pathlib.Path(tempfile.mkdtemp()) / "a.bin"
        >>> atomic_write_bytes(target, b"abc"); target.read_bytes()
        b'abc'
    """
    with atomic_file(path, durable=durable) as f:
        f.write(data)

"""File-system helpers shared by the writers that must not lose data (downloads, checkpoints, models)."""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from pathlib import Path

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

"""The run folder: where a run's files live, what history it holds, and the lock that keeps it to one process.

A run folder holds::

    config.yaml            the resolved config (every default spelled out); --resume reads it back
    metrics.csv            one row per iteration (see metadl.training.metrics)
    learning_curves.png    redrawn at every validation and at the end
    tensorboard/           event files, when the optional tensorboard package is installed
    last.ckpt, best.ckpt   the latest state, and the weights with the best validation score
    model/                 the trained learner saved for use (metadl.load, metadl predict, metadl eval)
    .lock                  held (``flock``) by the process that trains the run; names its host and pid

Only one process may work on a run folder at a time: two writers would interleave ``metrics.csv`` and
overwrite each other's checkpoints. :meth:`RunFolder.lock` takes an exclusive ``flock`` on ``.lock`` for
the life of a training session. The kernel drops the lock when its process dies, however it dies, so a
lock left by a dead process is never obeyed; a live holder is named (host, pid) in the refusal.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

CONFIG_FILE, METRICS_FILE, LAST, BEST, MODEL_DIR, LOCK_FILE = (
    "config.yaml",
    "metrics.csv",
    "last.ckpt",
    "best.ckpt",
    "model",
    ".lock",
)


class RunFolderError(ValueError):
    """The run folder cannot be used as asked (it holds another run, is not a run, or is busy)."""


@dataclass(frozen=True)
class RunFolder:
    """The files of one run (see the module docstring).

    Example:
        >>> import tempfile
        >>> folder = RunFolder(Path(tempfile.mkdtemp()) / "run")
        >>> folder.history(), folder.holds_run()
        ([], False)
    """

    path: Path

    @property
    def config(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def metrics(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def last(self) -> Path:
        return self.path / LAST

    @property
    def best(self) -> Path:
        return self.path / BEST

    @property
    def model(self) -> Path:
        return self.path / MODEL_DIR

    def holds_run(self) -> bool:
        """Whether a run was started here (its ``config.yaml`` exists)."""
        return self.config.is_file()

    def history(self) -> list[str]:
        """What the run has produced so far: the names of its checkpoints, saved model and logged rows."""
        found = [p.name for p in (self.last, self.best, self.model) if p.exists()]
        rows = _data_rows(self.metrics)
        if rows:
            found.append(f"{METRICS_FILE} ({rows} rows)")
        return found

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run folder exclusively (creating the folder) until the block ends.

        Raises :class:`RunFolderError` naming the holder when another live process has it.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 256, 0).decode("utf-8", "replace").strip() or "another process"
                raise RunFolderError(
                    f"{self.path} is in use by {holder}; wait for it to finish (or stop it), "
                    "or choose another --out"
                ) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, _holder().encode(), 0)
            try:
                yield
            finally:
                os.ftruncate(fd, 0)
        finally:
            os.close(fd)  # closing the descriptor releases the flock


def _holder() -> str:
    return f"host {socket.gethostname()} pid {os.getpid()} (since {time.strftime('%Y-%m-%d %H:%M:%S')})"


def _data_rows(path: Path) -> int:
    """Lines after the header of a CSV file (0 when it is missing or empty); read as bytes, never decoded."""
    if not path.is_file():
        return 0
    with open(path, "rb") as f:
        lines = sum(1 for line in f if line.strip())
    return max(0, lines - 1)


def default_run_dir(config_path: Path | None) -> Path:
    """``runs/<config name>-<date>-<time>`` under the current folder."""
    stem = config_path.stem if config_path is not None else "run"
    return Path("runs") / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"

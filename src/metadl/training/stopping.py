"""Stopping a run cleanly when asked to: SIGTERM (what a cluster scheduler or container runtime sends
before it kills a job) and SIGINT (Ctrl-C).

While :class:`StopRequests` is active, the first such signal only records that a stop was asked for;
the training loop finishes the step it is in, writes a checkpoint and the saved model, says how to
resume, and the command exits non-zero. A second SIGINT interrupts at once, as Ctrl-C normally does.
(Lightning's preemption handling works the same way.) Under torchrun every process asks its peers
each step, so all of them stop after the same step.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType
from typing import Any

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequests:
    """Records SIGTERM / SIGINT while active (a context manager; handlers are restored on exit).

    Example:
        >>> import os
        >>> with StopRequests() as stop:
        ...     os.kill(os.getpid(), signal.SIGTERM)
        ...     stop.requested
        'SIGTERM'
    """

    def __init__(self) -> None:
        self.requested: str | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # asked twice: stop now
        self.requested = signal.Signals(signum).name

    @property
    def exit_code(self) -> int:
        """The shell's convention for a process ended by the signal: 128 + its number."""
        if self.requested is None:
            return 0
        return 128 + int(signal.Signals[self.requested])

    def __enter__(self) -> StopRequests:
        if threading.current_thread() is threading.main_thread():  # handlers can only be set there
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

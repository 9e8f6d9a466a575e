"""SIGTERM (what `docker stop` and Kubernetes send) handled for the length of a block."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType


@contextmanager
def on_sigterm(handler: Callable[[int, FrameType | None], object]) -> Iterator[None]:
    """Call `handler` on SIGTERM while the block runs, then put back the handler it replaced.
    Outside the main thread, where Python allows no handler, the block runs without one."""
    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)

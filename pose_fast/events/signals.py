"""SIGTERM as an exception: :func:`exit_on_sigterm`, so that shutdown unwinds like Ctrl-C and stores commit."""
from __future__ import annotations

import contextlib
import signal
import threading

__all__ = ["exit_on_sigterm"]


@contextlib.contextmanager
def exit_on_sigterm():
    """While active (main thread only), SIGTERM raises ``SystemExit(143)`` like Ctrl-C raises KeyboardInterrupt.

    ``with`` blocks and ``finally`` clauses then run, so an :class:`~pose_fast.events.EventStore` commits everything
    on shutdown. A repeated SIGTERM during that shutdown is ignored. The previous handler is restored on leaving.
    Elsewhere than in the main thread this does nothing (Python only delivers signals there).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    state = {"fired": False}

    def handler(signum, frame):
        if state["fired"]:
            return
        state["fired"] = True
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)

"""Every error pose_fast raises for a person to read: one line that says what failed and what to do.

All derive from :class:`PoseFastError`, so a front end catches one type; each also derives from the built-in type
it stood for before (``RuntimeError``, ``ImportError``, ``ValueError``), so older ``except`` clauses still work.
"""
from __future__ import annotations

__all__ = ["PoseFastError", "ModelError", "EngineError", "BackendUnavailableError", "SourceError", "SinkError",
           "PipelineError", "EventStoreError", "BenchError", "first_line"]


class PoseFastError(Exception):
    """Base of every pose_fast error; ``str(exc)`` is one line for people."""


class ModelError(PoseFastError, RuntimeError):
    """The model files cannot be found, fetched or verified."""


class EngineError(PoseFastError, RuntimeError):
    """The engine (local OpenVINO or a remote server) cannot run as asked."""


class BackendUnavailableError(PoseFastError, ImportError):
    """The requested decoder backend cannot be imported."""


class SourceError(PoseFastError, RuntimeError):
    """The video source cannot be opened or read."""


class SinkError(PoseFastError, RuntimeError):
    """An output (window, video file, JSON Lines file) cannot be written."""


class PipelineError(PoseFastError, RuntimeError):
    """The pipeline was set up wrongly (bad mode, limit, ...)."""


class EventStoreError(PoseFastError, RuntimeError):
    """The events database cannot be opened, read or written."""


class BenchError(PoseFastError, RuntimeError):
    """A benchmark cannot run as asked."""


#: Lines of OpenVINO's multi-line messages that say where in its sources it failed, not what failed.
_NOISE = ("Exception from", "Check ")


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message that says what failed (its type's name when it has no message)."""
    text = str(exc).strip()
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(_NOISE):
            return line
    return text.splitlines()[0].strip() if text else type(exc).__name__

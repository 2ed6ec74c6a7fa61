"""Per-event snapshots: the annotated frame of an event as a JPEG in ``<db>.snapshots/`` beside the database,
written by the event writer thread, with a retention cap (the oldest removed first)."""
from __future__ import annotations

import logging
import os
from collections import deque
from pathlib import Path
from typing import Deque, Optional, Tuple

import numpy as np

__all__ = ["SnapshotFolder", "snapshot_folder", "DEFAULT_KEEP_FILES", "KEEP_BYTES"]

log = logging.getLogger("pose_fast.events")

DEFAULT_KEEP_FILES = 10000
KEEP_BYTES = 1 << 30  # 1 GiB: whichever of the two caps is reached first
_QUALITY = 85


def snapshot_folder(db_path) -> Path:
    """``<db>.snapshots``: where the snapshots of the database ``db_path`` are."""
    return Path(f"{db_path}.snapshots")


class SnapshotFolder:
    """The snapshots of one database: :meth:`save` writes one, then removes the oldest beyond ``keep_files`` files
    or :data:`KEEP_BYTES` bytes. Names sort by time (they start with the event's UTC time), so "oldest" is the first
    name. ``keep_files=0`` stores none. A snapshot that cannot be written is a warning (once), never a lost event."""

    def __init__(self, db_path, keep_files: int = DEFAULT_KEEP_FILES, keep_bytes: int = KEEP_BYTES):
        if isinstance(keep_files, bool) or not isinstance(keep_files, int) or keep_files < 0:
            raise ValueError(f"the number of snapshots to keep must be an integer >= 0, got {keep_files!r}")
        self.folder = snapshot_folder(db_path)
        self.keep_files = keep_files
        self.keep_bytes = int(keep_bytes)
        self._files: Optional[Deque[Tuple[str, int]]] = None  # (name, size), oldest first; read at the first save
        self._bytes = 0
        self._warned = False
        self.written = 0
        self.removed = 0

    @property
    def enabled(self) -> bool:
        return self.keep_files > 0

    def _scan(self) -> None:
        files = []
        try:
            with os.scandir(self.folder) as entries:
                for entry in entries:
                    if entry.name.endswith(".jpg") and entry.is_file():
                        files.append((entry.name, entry.stat().st_size))
        except FileNotFoundError:
            pass
        files.sort()
        self._files = deque(files)
        self._bytes = sum(size for _, size in files)

    def save(self, frame: np.ndarray, name: str) -> Optional[str]:
        """Encode ``frame`` (BGR) as ``name`` (``.jpg``); return the name, or None when disabled or not written."""
        if not self.enabled:
            return None
        import cv2

        try:
            if self._files is None:
                self.folder.mkdir(parents=True, exist_ok=True)
                self._scan()
            ok, data = cv2.imencode(".jpg", frame, (cv2.IMWRITE_JPEG_QUALITY, _QUALITY))
            if not ok:
                raise OSError("the frame cannot be encoded as JPEG")
            path = self.folder / name
            tmp = path.with_suffix(".tmp")
            with open(tmp, "wb") as out:
                out.write(data.tobytes())
            os.replace(tmp, path)
        except OSError as exc:
            if not self._warned:
                self._warned = True
                log.warning("event snapshots cannot be written to %s (%s); events are still stored, without them",
                            self.folder, exc.strerror or exc)
            return None
        self._files.append((name, len(data)))
        self._bytes += len(data)
        self.written += 1
        self._prune()
        return name

    def _prune(self) -> None:
        files = self._files
        while files and (len(files) > self.keep_files or self._bytes > self.keep_bytes):
            name, size = files.popleft()
            self._bytes -= size
            try:
                os.unlink(self.folder / name)
                self.removed += 1
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("an old snapshot %s cannot be removed (%s)", self.folder / name, exc.strerror or exc)

    def path(self, name: Optional[str]) -> Optional[Path]:
        """The file of a stored snapshot name, if it still exists (retention may have removed it)."""
        if not name or "/" in name or "\\" in name or name.startswith("."):
            return None
        path = self.folder / name
        return path if path.is_file() else None

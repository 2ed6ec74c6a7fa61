"""Where annotated frames go: an OpenCV window, a video file, a JSON Lines file. All are context managers.

A sink gets every :class:`pose_fast.pipeline.FrameResult` in order through ``write(result)``. ``result.frame`` is the
ring slot itself and is valid only during ``write()``: a sink copies or encodes what it needs and keeps no
reference. A sink ends the run by raising :class:`StopPipeline` from ``write()`` (the window does on ``q``/Esc).
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Optional

import cv2

from .errors import SinkError
from .timestamps import iso_utc

__all__ = ["Sink", "StopPipeline", "SinkError", "WindowSink", "VideoSink", "JsonlSink"]


class StopPipeline(Exception):
    """Raised by a sink's ``write()`` to end the run cleanly (not an error)."""


class Sink:
    """Base class: ``write(result)``, ``close()``, and the context manager protocol."""

    def write(self, result) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class WindowSink(Sink):
    """An OpenCV window. ``q`` or Esc quits, space pauses and resumes; closing the window quits.

    Call it from one thread (the thread running the pipeline). Needs a display (``DISPLAY`` on Linux).
    """

    def __init__(self, title: str = "pose_fast"):
        self.title = title
        self.paused = False
        self._open = False

    def _ensure_window(self) -> None:
        if not self._open:
            # opencv-python points Qt at its own font folder, which it does not ship, and Qt complains on every
            # window: use the system's fonts instead when that folder is missing
            if sys.platform.startswith("linux") and not os.path.isdir(os.environ.get("QT_QPA_FONTDIR", "")):
                for fonts in ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/truetype", "/usr/share/fonts"):
                    if os.path.isdir(fonts):
                        os.environ["QT_QPA_FONTDIR"] = fonts
                        break
            try:
                cv2.namedWindow(self.title, cv2.WINDOW_AUTOSIZE)
            except cv2.error as exc:
                raise SinkError(f"cannot open a window ({str(exc).strip().splitlines()[-1]}): there is no "
                                f"display; use --no-show") from None
            self._open = True

    def _closed_by_user(self) -> bool:
        try:
            return cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1
        except cv2.error:
            return True

    def _handle(self, key: int) -> None:
        key &= 0xFF
        if key in (ord("q"), ord("Q"), 27):
            raise StopPipeline("quit from the window")
        if key == ord(" "):
            self.paused = not self.paused

    def write(self, result) -> None:
        self._ensure_window()
        cv2.imshow(self.title, result.frame)
        key = cv2.waitKey(1)
        if key != -1:
            self._handle(key)
        if self._closed_by_user():
            raise StopPipeline("window closed")
        while self.paused:
            key = cv2.waitKey(50)
            if key != -1:
                self._handle(key)
            if self._closed_by_user():
                raise StopPipeline("window closed")

    def close(self) -> None:
        if self._open:
            self._open = False
            try:
                cv2.destroyWindow(self.title)
                cv2.waitKey(1)
            except cv2.error:
                pass


def _check_output_path(path: Path, what: str, suffixes=None) -> Path:
    path = Path(path).expanduser()
    if suffixes and path.suffix.lower() not in suffixes:
        raise SinkError(f"{what} {path} must end in {' or '.join(suffixes)}")
    if path.is_dir():
        raise SinkError(f"{what} {path} is a folder: give a file name")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise SinkError(f"cannot write {what} {path}: the folder {parent} does not exist")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise SinkError(f"cannot write {what} {path}: permission denied")
    return path


class VideoSink(Sink):
    """Annotated frames into a video file (``mp4v`` in ``.mp4``; ``.avi`` gets MJPG).

    Parameters
    ----------
    path : str or Path
    fps : float
        Frame rate written in the file (the source's; 25 when unknown).
    """

    SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv")

    def __init__(self, path, fps: Optional[float] = None):
        self.path = _check_output_path(path, "output video", self.SUFFIXES)
        self.fps = float(fps) if fps and fps > 0 else 25.0
        self.frames = 0
        self._writer = None
        self._size = None

    def _open(self, width: int, height: int) -> None:
        fourcc = cv2.VideoWriter_fourcc(*("MJPG" if self.path.suffix.lower() == ".avi" else "mp4v"))
        writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, (width, height))
        if not writer.isOpened():
            raise SinkError(f"cannot write video {self.path}: OpenCV has no encoder for it (use a .mp4 name)")
        self._writer, self._size = writer, (width, height)

    def write(self, result) -> None:
        frame = result.frame
        height, width = frame.shape[:2]
        if self._writer is None:
            self._open(width, height)
        elif self._size != (width, height):
            raise SinkError(f"frame size changed to {width}x{height} while writing {self.path}")
        self._writer.write(frame)
        self.frames += 1

    def close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.release()


class JsonlSink(Sink):
    """One JSON object per frame: ``{"index", "timestamp" (ISO-8601 UTC, Z), "people": [{"id", "keypoints"
    (18 × [x, y, score]), "score"}]}``. ``id`` is the track id (-1 while not yet born) or, without a tracker, the
    person's order number 1..P left to right. With ``fragments=True`` each object also has ``"fragments"``: the
    decoded poses that are not people (:mod:`pose_fast.people`), as ``{"keypoints", "score"}``.
    """

    def __init__(self, path, fragments: bool = False):
        self.path = _check_output_path(path, "JSON file")
        self.fragments = bool(fragments)
        try:
            self._file = open(self.path, "w", encoding="utf-8")
        except OSError as exc:
            raise SinkError(f"cannot write JSON file {self.path}: {exc.strerror}") from None
        self.frames = 0

    def write(self, result) -> None:
        people = result.poses.to_list()
        ids = result.labels
        for person, pid in zip(people, ids):
            person["id"] = int(pid)
        record = {"index": int(result.index), "timestamp": iso_utc(result.timestamp), "people": people}
        if self.fragments:
            record["fragments"] = result.fragments.to_list()
        try:
            self._file.write(json.dumps(record, separators=(",", ":")) + "\n")
            self._file.flush()  # readable while the run goes on (tail -f)
        except OSError as exc:
            raise SinkError(f"cannot write JSON file {self.path}: {exc.strerror}; free some space or choose "
                            f"another --json file") from None
        self.frames += 1

    def close(self) -> None:
        if not self._file.closed:
            try:
                self._file.close()
            except OSError as exc:
                raise SinkError(f"cannot write JSON file {self.path}: {exc.strerror}") from None

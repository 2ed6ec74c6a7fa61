"""What a run measures on: the model's IR per precision (:func:`find_model`, and :func:`fetch_hint` when it is
missing), the default video (:func:`default_video`) and the distinct frames kept in memory (:func:`read_frames`)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Tuple

import numpy as np

from ..errors import BenchError, ModelError
from ..model import MODEL_NAME, resolve_model

__all__ = ["DEFAULT_VIDEO", "MAX_DISTINCT_FRAMES", "fetch_hint", "find_model", "default_video", "read_frames"]

#: The video used when none is given: shoppers in an aisle, 2-5 people per frame (looked up in POSE_FAST_VIDEO_DIR
#: and ``../shared/videos`` beside the working directory).
DEFAULT_VIDEO = "store-aisle-detection.mp4"
#: Distinct frames kept in memory for inference only and decoding (longer runs cycle through them).
MAX_DISTINCT_FRAMES = 64


def fetch_hint(precision: str) -> str:
    """How to get the IR of ``precision`` when it is missing (one clause, for skip reasons and the report)."""
    return (f"fetch it with `pose-fast fetch-model --precision {precision}` (into the user cache), or put "
            f"{MODEL_NAME}/{precision}/{MODEL_NAME}.xml and .bin under POSE_FAST_MODEL_DIR")


def find_model(precision: str, model_dir=None) -> Optional[Path]:
    """The local ``.xml`` of ``precision`` (in ``model_dir``, then ``POSE_FAST_MODEL_DIR``, then the user cache),
    or None. Never downloads."""
    if model_dir is not None:
        xml = Path(model_dir) / MODEL_NAME / precision / f"{MODEL_NAME}.xml"
        if xml.is_file() and xml.with_suffix(".bin").is_file():
            return xml
    try:
        return resolve_model(None, precision, download=False)
    except ModelError:
        return None


def default_video() -> Optional[Path]:
    """The default bench video if it can be found (POSE_FAST_VIDEO_DIR, then ../shared/videos, shared/videos)."""
    candidates = []
    env = os.environ.get("POSE_FAST_VIDEO_DIR")
    if env:
        candidates.append(Path(env) / DEFAULT_VIDEO)
    here = Path.cwd()
    candidates += [here.parent / "shared" / "videos" / DEFAULT_VIDEO, here / "shared" / "videos" / DEFAULT_VIDEO]
    for path in candidates:
        if path.is_file():
            relative = os.path.relpath(path)
            return Path(relative) if len(relative) < len(str(path)) else path
    return None


def read_frames(spec: str, count: int) -> Tuple[list, object]:
    """Up to ``count`` distinct frames of the source (at most MAX_DISTINCT_FRAMES) and the opened source's facts."""
    from ..frames import SourceError, open_source

    try:
        source = open_source(spec)
    except SourceError as exc:
        raise BenchError(str(exc)) from None
    try:
        frames = []
        want = max(1, min(count, MAX_DISTINCT_FRAMES))
        while len(frames) < want:
            buf = np.empty(source.shape, np.uint8)
            frame = source.read(buf)
            if frame is None:
                break
            frames.append(np.ascontiguousarray(frame))
        facts = {"spec": str(spec), "width": source.width, "height": source.height, "fps": source.fps,
                 "frame_count": source.frame_count, "live": source.live, "kind": source.kind}
    finally:
        source.close()
    if not frames:
        raise BenchError(f"could not read a frame from {spec}: give a video file with at least one frame")
    return frames, facts

"""Named cameras: ``--camera NAME=SPEC`` options, ``POSE_FAST_CAMERAS``, and the ``[[cameras]]`` of a config file.

A camera is a name people and the API use (``door``; events carry it as their ``source``) and a spec only the
server knows: a camera index (``0``), a local device path (``/dev/video0``) or a stream URL (``rtsp://``,
``http(s)://``). A bare ``--camera SPEC`` is named ``camera``, so ``--camera 0`` keeps working; ``--camera none``
means no camera at all.

The config file (``--config pose_fast.toml``; TOML, read with ``tomllib``, ``tomli`` before Python 3.11)::

    [[cameras]]
    name = "door"
    url = "rtsp://192.168.1.20:554/stream1"
    input_height = 256          # optional: this camera's network input height

    [[cameras]]
    name = "desk"
    device = "/dev/video0"      # or a camera index: device = 0
"""
from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

from .errors import PoseFastError

__all__ = ["CameraConfig", "CameraConfigError", "parse_camera", "parse_cameras", "cameras_from_env",
           "load_config_file", "cameras_from_config", "DEFAULT_CAMERA_NAME", "RESERVED_NAMES"]

DEFAULT_CAMERA_NAME = "camera"
#: Names a camera cannot have: ``demo`` is the web app's demo video.
RESERVED_NAMES = ("demo",)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_NONE = ("none", "off", "no", "false", "-1", "")
_CAMERA_KEYS = ("name", "url", "device", "input_height", "zones", "lines")
_TOP_KEYS = ("cameras", "zones", "lines", "mqtt")


class CameraConfigError(PoseFastError, ValueError):
    """A camera option or config file the server cannot use; one line naming it and what it takes."""


@dataclass(frozen=True)
class CameraConfig:
    """One named camera: ``spec`` is what :func:`pose_fast.frames.open_source` opens."""

    name: str
    spec: str
    input_height: Optional[int] = None

    def describe(self) -> str:
        return f"camera {self.name} ({self.spec})"


def _check_name(name: str, where: str) -> str:
    if not _NAME.fullmatch(name):
        raise CameraConfigError(f"{where}: camera name {name!r} must be 1-64 letters, digits, '_', '-' or '.', "
                                f"starting with a letter or digit")
    if name.lower() in RESERVED_NAMES:
        raise CameraConfigError(f"{where}: {name!r} is the demo video's name; call the camera something else")
    return name


def _check_spec(spec: str, where: str) -> str:
    from .errors import SourceError
    from .frames import parse_spec  # one definition of what a source can be

    try:
        parse_spec(spec)
    except SourceError as exc:
        raise CameraConfigError(f"{where}: {exc}") from None
    return spec


def parse_camera(text: str) -> CameraConfig:
    """``NAME=SPEC`` or a bare ``SPEC`` (named ``camera``)."""
    text = str(text).strip()
    name, sep, spec = text.partition("=")
    if not sep or not _NAME.fullmatch(name.strip()) or "://" in name:
        name, spec = DEFAULT_CAMERA_NAME, text  # a bare spec (a URL may hold '=' in its query)
    name, spec = name.strip(), spec.strip()
    if not spec:
        raise CameraConfigError(f"--camera {text!r}: give NAME=SPEC, where SPEC is a camera index, a device path "
                                f"or an rtsp:// or http(s):// URL")
    return CameraConfig(_check_name(name, f"--camera {text}"), _check_spec(spec, f"--camera {text}"))


def _unique(cameras: List[CameraConfig]) -> List[CameraConfig]:
    seen: Dict[str, CameraConfig] = {}
    for camera in cameras:
        if camera.name in seen:
            raise CameraConfigError(f"two cameras are named {camera.name!r} ({seen[camera.name].spec} and "
                                    f"{camera.spec}): give each its own NAME=")
        seen[camera.name] = camera
    return cameras


def parse_cameras(values: Iterable[str]) -> List[CameraConfig]:
    """Every ``--camera`` value in order; ``none`` (alone) means no cameras."""
    values = [str(v) for v in values]
    if any(v.strip().lower() in _NONE for v in values):
        if len(values) > 1:
            raise CameraConfigError("--camera none turns the cameras off: give it alone")
        return []
    return _unique([parse_camera(v) for v in values])


def cameras_from_env(text: str) -> List[CameraConfig]:
    """``POSE_FAST_CAMERAS``: comma-separated ``NAME=SPEC`` values (a URL with a comma goes in the config file)."""
    return parse_cameras([part for part in str(text).split(",") if part.strip()] or ["none"])


def load_config_file(path) -> Dict[str, Any]:
    """The parsed TOML of a config file; CameraConfigError (one line) when it is missing or not TOML."""
    if sys.version_info >= (3, 11):
        import tomllib  # novermin - Python 3.11+, tomli below
    else:
        import tomli as tomllib

    path = Path(os.path.expanduser(str(path)))
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))  # text: also what tomli 1.x reads
    except FileNotFoundError:
        raise CameraConfigError(f"config file {path} not found") from None
    except IsADirectoryError:
        raise CameraConfigError(f"config file {path} is a folder") from None
    except OSError as exc:
        raise CameraConfigError(f"config file {path} cannot be read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise CameraConfigError(f"config file {path} is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise CameraConfigError(f"config file {path} is not valid TOML: {exc}") from None
    unknown = sorted(set(data) - set(_TOP_KEYS))
    if unknown:
        raise CameraConfigError(f"config file {path}: unknown setting {unknown[0]!r} (it takes "
                                f"{', '.join(_TOP_KEYS)})")
    return data


def cameras_from_config(data: Dict[str, Any], path="the config file") -> List[CameraConfig]:
    """The ``[[cameras]]`` of a parsed config file."""
    entries = data.get("cameras", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise CameraConfigError(f"{path}: cameras must be [[cameras]] tables")
    cameras = []
    for number, entry in enumerate(entries, 1):
        where = f"{path}, camera {number}"
        unknown = sorted(set(entry) - set(_CAMERA_KEYS))
        if unknown:
            raise CameraConfigError(f"{where}: unknown key {unknown[0]!r} (a camera takes name, url or device, "
                                    f"input_height)")
        name = entry.get("name")
        if not isinstance(name, str):
            raise CameraConfigError(f"{where}: needs a name = \"...\"")
        where = f"{path}, camera {name!r}"
        has = [key for key in ("url", "device") if key in entry]
        if len(has) != 1:
            raise CameraConfigError(f"{where}: give either url = \"rtsp://...\" or device = 0 or \"/dev/video0\"")
        spec = entry[has[0]]
        if isinstance(spec, bool) or not isinstance(spec, (str, int)):
            raise CameraConfigError(f"{where}: {has[0]} must be a string{' or a number' * (has[0] == 'device')}")
        height = entry.get("input_height")
        if height is not None and (isinstance(height, bool) or not isinstance(height, int) or height < 8
                                   or height % 8):
            raise CameraConfigError(f"{where}: input_height must be a multiple of 8, got {height!r}")
        cameras.append(CameraConfig(_check_name(name, where), _check_spec(str(spec), where), height))
    return _unique(cameras)

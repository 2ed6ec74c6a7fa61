"""The pose_fast web app: live annotated MJPEG view, camera/demo toggle, device choice, ``/detections``.

``create_app(config)`` builds it (Flask's application-factory pattern). Settings, highest priority first: the
``config`` mapping, environment variables, defaults:

=================  ===========================  ====================================================================
config key         environment                  meaning (default)
=================  ===========================  ====================================================================
``HOST``           ``POSE_FAST_HOST``           address ``pose-fast web`` binds (``127.0.0.1``)
``PORT``           ``POSE_FAST_PORT``           its port (``5000``)
``DATABASE``       ``POSE_FAST_DB``             events database (the per-user data folder, see
                                                :func:`pose_fast.events.default_db_path`)
``DEMO_VIDEO``     ``POSE_FAST_DEMO_VIDEO``     the video behind ``source=demo``, looped (``../shared/videos/
                                                one-by-one-person-detection.mp4`` when it exists, else none);
                                                ``none`` disables it
``CAMERAS``        ``POSE_FAST_CAMERAS``        the named cameras, always on (``NAME=SPEC`` values, comma-separated in
                                                the variable, or :class:`pose_fast.cameras.CameraConfig` objects;
                                                see :mod:`pose_fast.cameras`); when unset, ``CAMERA``
``CAMERA``         ``POSE_FAST_CAMERA``         round 1's setting: a camera index, named ``camera`` (``0``); ``none``
                                                disables it
``STALL_TIMEOUT``  ``POSE_FAST_STALL_TIMEOUT``  seconds without a frame before a camera is reopened (``10``)
``SNAPSHOT_KEEP``  ``POSE_FAST_SNAPSHOT_KEEP``  event snapshots kept beside the database (``10000``, and at most
                                                1 GiB); ``0`` stores none
``START_CAMERAS``                               start the cameras in ``create_app`` (``True``; ``pose-fast web``
                                                starts them itself once its checks pass)
``DEVICE``         ``POSE_FAST_DEVICE``         device when the URL names none (``AUTO``)
``MODEL``          ``POSE_FAST_MODEL``          model ``.xml`` (found via ``POSE_FAST_MODEL_DIR`` or the cache)
``INPUT_HEIGHT``   ``POSE_FAST_INPUT_HEIGHT``   network input height, a multiple of 8 (``256``)
``STREAM_GRACE``   ``POSE_FAST_STREAM_GRACE``   seconds a stream runs on after its last viewer leaves (``2``)
``REALTIME``       ``POSE_FAST_REALTIME``       play the demo video at its own frame rate (``1``)
``JPEG_QUALITY``   ``POSE_FAST_JPEG_QUALITY``   MJPEG quality 1-100 (``80``)
``DEFAULT_SOURCE`` ``POSE_FAST_SOURCE``         source when the URL names none (the first camera, else the demo)
``SERVER``         ``POSE_FAST_SERVER``         remote engine ``grpc://host:port[/model]`` (none: in-process)
``MAX_VIEWERS``    ``POSE_FAST_MAX_VIEWERS``    MJPEG viewers at once, all streams (``24``; each holds a thread)
``MIN_POSE_SCORE`` ``POSE_FAST_MIN_POSE_SCORE`` lowest pose score that counts as a person (``10``, see
                                               :mod:`pose_fast.people`)
``ALLOWED_HOSTS``  ``POSE_FAST_ALLOWED_HOSTS``  names accepted in ``Host`` besides IP addresses, ``localhost`` and
                                               ``HOST`` (comma-separated; see :mod:`pose_fast.webapp.hosts`)
``VIEWER_TIMEOUT`` ``POSE_FAST_VIEWER_TIMEOUT`` seconds a viewer may leave a frame untaken before it loses its slot
                                               and its connection (``5``)
``MOTION_GATE``    ``POSE_FAST_MOTION_GATE``    skip inference while nobody is in view and nothing moves (``1``/``0``;
                                               default: on for the camera, off for the demo video)
``MQTT_URL``       ``POSE_FAST_MQTT``           publish events, people counts and Home Assistant discovery to this
                                                broker, ``mqtt://[user:pass@]host[:port][/prefix]`` (none)
``MQTT_CA``                                     CA file for an ``mqtts://`` broker (the system's)
``ZONES``                                       zones and lines per camera, ``{name or None: (zones, lines)}``
                                                (:func:`pose_fast.zones.zones_from_config`; none)
=================  ===========================  ====================================================================
"""
from __future__ import annotations

import atexit
import os
import weakref
from pathlib import Path
from typing import Any, Mapping, Optional

from flask import Flask

from pose_fast.errors import PoseFastError

__all__ = ["create_app", "load_config", "default_demo_video", "DEFAULT_DEMO_VIDEO", "ConfigError", "NONE_VALUES"]

ROOT = Path(__file__).resolve().parent.parent
_SHARED_VIDEO = Path("shared") / "videos" / "one-by-one-person-detection.mp4"
#: The demo video used when none is configured, if the shared data sits beside the project.
DEFAULT_DEMO_VIDEO = ROOT.parent / _SHARED_VIDEO


def default_demo_video() -> Optional[str]:
    """``../shared/videos/one-by-one-person-detection.mp4`` beside the project (or the current folder), if any."""
    for candidate in (DEFAULT_DEMO_VIDEO, Path.cwd().parent / _SHARED_VIDEO):
        if candidate.is_file():
            return str(candidate)
    return None

_ENV = {
    "HOST": "POSE_FAST_HOST",
    "PORT": "POSE_FAST_PORT",
    "DATABASE": "POSE_FAST_DB",
    "DEMO_VIDEO": "POSE_FAST_DEMO_VIDEO",
    "CAMERA": "POSE_FAST_CAMERA",
    "CAMERAS": "POSE_FAST_CAMERAS",
    "STALL_TIMEOUT": "POSE_FAST_STALL_TIMEOUT",
    "SNAPSHOT_KEEP": "POSE_FAST_SNAPSHOT_KEEP",
    "DEVICE": "POSE_FAST_DEVICE",
    "MODEL": "POSE_FAST_MODEL",
    "INPUT_HEIGHT": "POSE_FAST_INPUT_HEIGHT",
    "STREAM_GRACE": "POSE_FAST_STREAM_GRACE",
    "REALTIME": "POSE_FAST_REALTIME",
    "JPEG_QUALITY": "POSE_FAST_JPEG_QUALITY",
    "DEFAULT_SOURCE": "POSE_FAST_SOURCE",
    "SERVER": "POSE_FAST_SERVER",
    "MAX_VIEWERS": "POSE_FAST_MAX_VIEWERS",
    "MIN_POSE_SCORE": "POSE_FAST_MIN_POSE_SCORE",
    "ALLOWED_HOSTS": "POSE_FAST_ALLOWED_HOSTS",
    "VIEWER_TIMEOUT": "POSE_FAST_VIEWER_TIMEOUT",
    "MOTION_GATE": "POSE_FAST_MOTION_GATE",
    "MQTT_URL": "POSE_FAST_MQTT",
}
#: Values that switch a setting (the camera, the demo video) off.
NONE_VALUES = ("", "none", "off", "no", "false", "-1")


class ConfigError(PoseFastError, ValueError):
    """A setting has a value the app cannot use; the message names the setting and what it accepts."""


def _defaults() -> dict:
    from pose_fast.events import default_db_path
    from pose_fast.people import MIN_POSE_SCORE

    return {
        "HOST": "127.0.0.1",
        "PORT": 5000,
        "DATABASE": str(default_db_path()),
        "DEMO_VIDEO": default_demo_video(),
        "CAMERA": 0,
        "CAMERAS": None,
        "STALL_TIMEOUT": 10.0,
        "START_CAMERAS": True,
        "SNAPSHOT_KEEP": 10000,
        "DEVICE": "AUTO",
        "MODEL": None,
        "INPUT_HEIGHT": 256,
        "STREAM_GRACE": 2.0,
        "REALTIME": True,
        "JPEG_QUALITY": 80,
        "DEFAULT_SOURCE": None,
        "SERVER": None,
        "SNAPSHOT_TIMEOUT": 30.0,
        "MAX_VIEWERS": 24,
        "MIN_POSE_SCORE": MIN_POSE_SCORE,
        "ALLOWED_HOSTS": (),
        "VIEWER_TIMEOUT": 5.0,
        "MOTION_GATE": None,
        "MQTT_URL": None,
        "MQTT_CA": None,
        "ZONES": {},
    }


def _number(key: str, value, kind, low=None, high=None):
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key} must be a number, got {value!r}") from None
    if (low is not None and number < low) or (high is not None and number > high):
        raise ConfigError(f"{key} must be between {low} and {high}, got {value!r}")
    return number


def _flag(key: str, value) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{key} must be 1 or 0, got {value!r}")


def _optional_path(value) -> Optional[str]:
    if value is None or str(value).strip().lower() in NONE_VALUES:
        return None
    return str(Path(str(value)).expanduser())


def load_config(config: Optional[Mapping[str, Any]] = None, environ: Optional[Mapping[str, str]] = None) -> dict:
    """The app's settings: ``config`` over the environment over the defaults, checked and typed."""
    environ = os.environ if environ is None else environ
    settings = _defaults()
    for key, var in _ENV.items():
        if environ.get(var) not in (None, ""):
            settings[key] = environ[var]
    if "CAMERA" in (config or {}) and "CAMERAS" not in (config or {}):
        settings["CAMERAS"] = None  # round 1's setting, given here, wins over POSE_FAST_CAMERAS
    settings.update(config or {})
    settings["PORT"] = _number("PORT", settings["PORT"], int, 0, 65535)
    settings["INPUT_HEIGHT"] = _number("INPUT_HEIGHT", settings["INPUT_HEIGHT"], int, 8, 4096)
    if settings["INPUT_HEIGHT"] % 8:
        raise ConfigError(f"INPUT_HEIGHT must be a multiple of 8, got {settings['INPUT_HEIGHT']}")
    settings["STREAM_GRACE"] = _number("STREAM_GRACE", settings["STREAM_GRACE"], float, 0, 3600)
    settings["JPEG_QUALITY"] = _number("JPEG_QUALITY", settings["JPEG_QUALITY"], int, 1, 100)
    settings["SNAPSHOT_TIMEOUT"] = _number("SNAPSHOT_TIMEOUT", settings["SNAPSHOT_TIMEOUT"], float, 0, 3600)
    settings["MAX_VIEWERS"] = _number("MAX_VIEWERS", settings["MAX_VIEWERS"], int, 1, 100000)
    hosts = settings["ALLOWED_HOSTS"]
    hosts = hosts.split(",") if isinstance(hosts, str) else hosts
    settings["ALLOWED_HOSTS"] = tuple(h.strip() for h in hosts if h and h.strip())
    settings["VIEWER_TIMEOUT"] = _number("VIEWER_TIMEOUT", settings["VIEWER_TIMEOUT"], float, 0.5, 3600)
    settings["MIN_POSE_SCORE"] = _number("MIN_POSE_SCORE", settings["MIN_POSE_SCORE"], float, 0, 1e6)
    settings["REALTIME"] = _flag("REALTIME", settings["REALTIME"])
    if settings["MOTION_GATE"] is not None:
        settings["MOTION_GATE"] = _flag("MOTION_GATE", settings["MOTION_GATE"])
    camera = settings["CAMERA"]
    if camera is None or str(camera).strip().lower() in NONE_VALUES:
        settings["CAMERA"] = None
    else:
        settings["CAMERA"] = _number("CAMERA", camera, int, 0, 1000)
    settings["CAMERAS"] = _cameras(settings["CAMERAS"], settings["CAMERA"])
    settings["STALL_TIMEOUT"] = _number("STALL_TIMEOUT", settings["STALL_TIMEOUT"], float, 0.1, 3600)
    settings["SNAPSHOT_KEEP"] = _number("SNAPSHOT_KEEP", settings["SNAPSHOT_KEEP"], int, 0, 10**9)
    settings["DEMO_VIDEO"] = _optional_path(settings["DEMO_VIDEO"])
    settings["MODEL"] = _optional_path(settings["MODEL"])
    settings["DATABASE"] = _optional_path(settings["DATABASE"])
    settings["DEVICE"] = str(settings["DEVICE"] or "AUTO").strip() or "AUTO"
    source = settings["DEFAULT_SOURCE"]
    settings["DEFAULT_SOURCE"] = str(source).strip() if source else None
    names = [c.name for c in settings["CAMERAS"]] + ["demo"]
    if settings["DEFAULT_SOURCE"] is not None and settings["DEFAULT_SOURCE"] not in names:
        raise ConfigError(f"DEFAULT_SOURCE must be one of the cameras or demo ({', '.join(names)}), got {source!r}")
    return settings


def _cameras(value, camera: Optional[int]) -> list:
    """``CAMERAS`` as CameraConfig objects; unset: round 1's ``CAMERA`` index, named ``camera``."""
    from pose_fast.cameras import DEFAULT_CAMERA_NAME, CameraConfig, CameraConfigError, cameras_from_env, parse_cameras

    try:
        if value is None:
            return [] if camera is None else [CameraConfig(DEFAULT_CAMERA_NAME, str(camera))]
        if isinstance(value, str):
            return cameras_from_env(value)
        given = [c for c in value if isinstance(c, CameraConfig)]
        parsed = parse_cameras([c for c in value if not isinstance(c, CameraConfig)]) if len(given) < len(value) \
            else []
        cameras = given + parsed
        if len({c.name for c in cameras}) < len(cameras):
            raise CameraConfigError("two cameras have the same name: give each its own NAME=")
        return cameras
    except CameraConfigError as exc:
        raise ConfigError(f"CAMERAS: {exc}") from None
    except TypeError:
        raise ConfigError(f"CAMERAS must be NAME=SPEC values or CameraConfig objects, got {value!r}") from None


def create_app(config: Optional[Mapping[str, Any]] = None) -> Flask:
    """Build the web app.

    Parameters
    ----------
    config : mapping, optional
        Settings (see the module docstring) overriding the environment; e.g. ``{"DEMO_VIDEO": path,
        "DATABASE": db, "CAMERA": None, "INPUT_HEIGHT": 128}`` in tests.

    The app's streams are in ``app.extensions["pose_fast_streams"]`` (a
    :class:`pose_fast.webapp.streams.StreamManager`); ``app.extensions["pose_fast_streams"].close()`` stops them
    (done at interpreter exit too).
    """
    from . import detections, health, metrics, openapi, views
    from .hosts import install_host_check
    from .responses import register_error_handlers
    from .streams import StreamManager

    app = Flask(__name__)
    app.config.update(load_config(config))
    app.config["DATABASE"] = app.config["DATABASE"] or ""
    app.json.sort_keys = False
    manager = StreamManager(
        demo_video=app.config["DEMO_VIDEO"], cameras=app.config["CAMERAS"], model=app.config["MODEL"],
        input_height=app.config["INPUT_HEIGHT"], database=app.config["DATABASE"] or None,
        grace=app.config["STREAM_GRACE"], realtime=app.config["REALTIME"], jpeg_quality=app.config["JPEG_QUALITY"],
        server=app.config["SERVER"], max_viewers=app.config["MAX_VIEWERS"],
        min_pose_score=app.config["MIN_POSE_SCORE"], viewer_timeout=app.config["VIEWER_TIMEOUT"],
        device=app.config["DEVICE"], stall_timeout=app.config["STALL_TIMEOUT"],
        snapshot_keep=app.config["SNAPSHOT_KEEP"], motion_gate=app.config["MOTION_GATE"])
    app.extensions["pose_fast_streams"] = manager
    from pose_fast.integrations.mqtt import MqttError

    from .integrations import WebIntegrations

    try:  # metrics always; zones, MQTT when configured (the publisher starts now: a refused login is an error)
        manager.integrations = WebIntegrations(app.config["DATABASE"] or None, manager.source_names(),
                                               zones=app.config["ZONES"], mqtt_url=app.config["MQTT_URL"] or None,
                                               mqtt_ca=app.config["MQTT_CA"])
    except MqttError as exc:
        raise ConfigError(str(exc)) from None
    app.extensions["pose_fast_metrics"] = manager.integrations.metrics
    ref = weakref.ref(manager)
    atexit.register(lambda: ref() is not None and ref().close(timeout=5))
    register_error_handlers(app)
    install_host_check(app)
    app.register_blueprint(detections.bp)
    app.register_blueprint(views.page_bp)
    app.register_blueprint(views.streams_bp)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(metrics.bp)
    if app.config["START_CAMERAS"]:
        manager.start_cameras()  # always on: recording from now, watched or not
    return app

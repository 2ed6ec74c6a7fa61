"""Inference engines behind one contract (:mod:`pose_fast.engines.contract`).

>>> from pose_fast.engines import open_engine
>>> engine = open_engine(device="CPU")                        # OpenVINO in this process   # doctest: +SKIP
>>> engine = open_engine(server="grpc://127.0.0.1:9000")      # a KServe v2 model server   # doctest: +SKIP

:class:`Engine` (:mod:`pose_fast.engines.local`) and :class:`RemoteEngine` (:mod:`pose_fast.engines.remote`) are
imported on first use: the remote one needs the ``remote`` extra (``tritonclient[grpc]``).
"""
from __future__ import annotations

import os
from typing import Optional

from .contract import (
    DEFAULT_INPUT_HEIGHT,
    MODES,
    STRIDE,
    EngineError,
    InferenceEngine,
    ResultCallback,
    check_frame,
    network_size_for,
)

__all__ = ["open_engine", "Engine", "RemoteEngine", "InferenceEngine", "EngineError", "MODES", "STRIDE",
           "DEFAULT_INPUT_HEIGHT", "ResultCallback", "check_frame", "network_size_for", "LOCAL_ONLY_OPTIONS",
           "refuse_local_options"]

#: Options that only make sense for the local engine: refused with a server.
LOCAL_ONLY_OPTIONS = {"model": "--model", "device": "--device-name", "precision": "--precision"}


def open_engine(server: Optional[str] = None, **kwargs) -> InferenceEngine:
    """The local :class:`Engine` with ``kwargs``, or a :class:`RemoteEngine` when ``server`` (or
    ``POSE_FAST_SERVER``) names a KServe v2 gRPC endpoint (``grpc://host:port[/model]``).

    With a server, the local-only options (``model``, ``device``, ``precision``, ``core``) must be left out (or
    None): a server runs its own model on its own device, so they would be ignored; EngineError says so.
    """
    server = server or os.environ.get("POSE_FAST_SERVER") or None
    if not server:
        from .local import Engine

        unset = [key for key in LOCAL_ONLY_OPTIONS if key in kwargs and kwargs[key] is None]
        return Engine(**{key: value for key, value in kwargs.items() if key not in unset})  # their defaults
    refuse_local_options(**{key: kwargs.get(key) for key in LOCAL_ONLY_OPTIONS})
    from .remote import RemoteEngine

    return RemoteEngine(server, num_requests=kwargs.get("num_requests"), mode=kwargs.get("mode", "latency"),
                        input_height=kwargs.get("input_height", DEFAULT_INPUT_HEIGHT))


def refuse_local_options(**options) -> None:
    """EngineError naming the :data:`LOCAL_ONLY_OPTIONS` given (not None) for a remote engine."""
    given = [LOCAL_ONLY_OPTIONS[key] for key, value in options.items() if value is not None]
    if given:
        one = len(given) == 1
        raise EngineError(f"{' and '.join(given)} {'does' if one else 'do'} not apply with --server (the server "
                          f"runs its own model on its own device): leave {'it' if one else 'them'} out")


def __getattr__(name: str):
    if name == "Engine":
        from .local import Engine

        return Engine
    if name == "RemoteEngine":
        from .remote import RemoteEngine

        return RemoteEngine
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

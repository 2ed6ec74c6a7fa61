"""pose_fast: real-time multi-person 2D pose estimation on video with OpenVINO.

>>> import pose_fast
>>> engine = pose_fast.open_engine(device="CPU")                                   # doctest: +SKIP
>>> heatmaps, pafs = engine.infer(frame)                                           # doctest: +SKIP
>>> poses = pose_fast.decode(heatmaps, pafs, frame_size=(w, h))                    # doctest: +SKIP
>>> with pose_fast.open_source("clip.mp4") as source:                              # doctest: +SKIP
...     pose_fast.Pipeline(source, engine, sinks=[pose_fast.JsonlSink("poses.jsonl")]).run()

The names below are imported on first use, so ``import pose_fast`` stays cheap (no OpenVINO, NumPy or OpenCV until
they are needed). ``docs/architecture.md`` says which module does what.
"""
from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from pathlib import Path


class _CheckoutFrontEnds(importlib.abc.MetaPathFinder):
    """In a source checkout the front ends sit beside the package (``cli/``, ``webapp/``); this finds them as
    ``pose_fast.cli`` and ``pose_fast.webapp``, where an installed wheel has them inside the package."""

    def __init__(self, root: Path):
        self.root = root

    def find_spec(self, fullname, path=None, target=None):
        package, _, name = fullname.partition(".")
        if package != __name__ or name not in ("cli", "webapp"):
            return None
        folder = self.root / name
        return importlib.util.spec_from_file_location(fullname, folder / "__init__.py",
                                                      submodule_search_locations=[str(folder)])


def _find_front_ends_in_checkout() -> None:
    here = Path(__file__).resolve().parent
    if (here / "cli").is_dir() or not (here.parent / "cli" / "__init__.py").is_file():
        return  # installed: the front ends are inside the package (or absent)
    if not any(isinstance(finder, _CheckoutFrontEnds) for finder in sys.meta_path):
        sys.meta_path.insert(0, _CheckoutFrontEnds(here.parent))  # before any installed copy's finder


_find_front_ends_in_checkout()


#: Public name -> the module that defines it.
_EXPORTS = {
    "Engine": "engines.local", "open_engine": "engines", "InferenceEngine": "engines.contract",
    "decode": "decoding", "Decoder": "decoding", "Poses": "poses", "PersonFilter": "people",
    "Tracker": "tracking", "Pipeline": "pipeline", "FrameResult": "pipeline", "open_source": "frames",
    "EventStore": "events", "EventRecorder": "events", "read_events": "events",
    "JsonlSink": "sinks", "VideoSink": "sinks", "WindowSink": "sinks", "Renderer": "render",
    "PoseFastError": "errors", "EngineError": "errors", "SourceError": "errors", "EventStoreError": "errors",
}
__all__ = sorted(_EXPORTS) + ["__version__"]


def __dir__():
    return sorted(set(globals()) | set(__all__))


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value  # looked up once
        return value
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("pose_fast")
        except PackageNotFoundError:  # a checkout that was never installed
            return "0+unknown"
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

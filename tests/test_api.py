"""The library's public face: what ``import pose_fast`` offers, what it costs, and one error type to catch."""
from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys
from importlib.metadata import version

import pytest

import pose_fast
from pose_fast import errors


def test_import_pose_fast_stays_cheap():
    code = ("import sys, pose_fast; heavy = [m for m in ('numpy', 'cv2', 'openvino', 'flask', 'click', 'apsw') "
            "if m in sys.modules]; print(','.join(heavy))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


def test_every_public_name_resolves():
    for name in pose_fast.__all__:
        assert getattr(pose_fast, name) is not None, name
    assert pose_fast.Engine is importlib.import_module("pose_fast.engines.local").Engine
    assert pose_fast.__version__ == version("pose_fast")
    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        pose_fast.Nothing  # noqa: B018


def _public_modules():
    names = []
    packages = [pose_fast, importlib.import_module("pose_fast.cli"), importlib.import_module("pose_fast.webapp")]
    for package in packages:  # the front ends are not under pose_fast's folder in a checkout
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if not any(part.startswith("_") for part in info.name.split(".")):
                names.append(info.name)
    return sorted(set(names))


@pytest.mark.parametrize("name", _public_modules())
def test_every_public_module_says_what_it_exports(name):
    module = importlib.import_module(name)
    assert hasattr(module, "__all__"), f"{name} has no __all__"
    for exported in module.__all__:
        assert hasattr(module, exported), f"{name}.__all__ names {exported!r}, which it does not have"


def test_every_error_is_a_pose_fast_error():
    found = [obj for _, obj in inspect.getmembers(errors, inspect.isclass) if issubclass(obj, BaseException)]
    assert len(found) >= 8
    for cls in found:
        assert issubclass(cls, errors.PoseFastError), cls
    assert issubclass(errors.BackendUnavailableError, ImportError)  # what callers caught before
    assert issubclass(errors.EngineError, RuntimeError)


def test_first_line_skips_openvinos_source_locations():
    exc = RuntimeError("Exception from src/inference/src/core.cpp:99:\nCheck 'x' failed at y\nthe device is gone\n")
    assert errors.first_line(exc) == "the device is gone"
    assert errors.first_line(ValueError("")) == "ValueError"
    assert errors.first_line(OSError("disk full\nmore")) == "disk full"


def test_decode_is_the_function_whoever_imported_the_decoder_first():
    """pose_fast.decode is the function; its module is pose_fast.decoding (a module of the same name would replace
    the attribute as soon as anything imported it)."""
    import pose_fast.decoding
    import pose_fast.pipeline  # noqa: F401 - imports the decoder module

    assert pose_fast.decode is pose_fast.decoding.decode and callable(pose_fast.decode)

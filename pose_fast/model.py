"""Find the human-pose-estimation-0001 IR: explicit path, ``POSE_FAST_MODEL_DIR``, user cache, or download.

Downloads come from the official Open Model Zoo storage, go to a temporary file, and are renamed into the cache
only after the checksum (and size) match, so an interrupted or corrupted download leaves nothing behind.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from .errors import ModelError, first_line
from .folders import user_cache_dir

__all__ = ["MODEL_NAME", "PRECISIONS", "DEFAULT_PRECISION", "CHECKSUMS", "FileSpec", "INPUT_NAME", "PAF_OUTPUT",
           "HEATMAP_OUTPUT", "ModelError", "check_precision", "default_precision", "cache_dir", "resolve_model",
           "file_digest", "fetch_model", "verify_ir", "print_progress"]

MODEL_NAME = "human-pose-estimation-0001"
PRECISIONS = ("FP32", "FP16", "FP16-INT8")
DEFAULT_PRECISION = "FP16-INT8"

STORAGE = "https://storage.openvinotoolkit.org/repositories/open_model_zoo"
BASE_URLS = {
    "FP32": f"{STORAGE}/2023.0/models_bin/1/{MODEL_NAME}/FP32/",
    "FP16": f"{STORAGE}/2023.0/models_bin/1/{MODEL_NAME}/FP16/",
    "FP16-INT8": f"{STORAGE}/2022.1/models_bin/3/{MODEL_NAME}/FP16-INT8/",
}


@dataclass(frozen=True)
class FileSpec:
    """One file of a precision: its name and, where published, its size and checksum."""

    name: str
    size: Optional[int]
    algorithm: Optional[str]
    digest: Optional[str]


# Open Model Zoo 2023.0 model.yml. The 2022.1 FP16-INT8 checksums are not published anywhere we could find, so
# those files are accepted when OpenVINO reads the pair and its tensors are the pose model's (see verify_ir).
CHECKSUMS = {
    "FP32": (
        FileSpec(f"{MODEL_NAME}.xml", 152120, "sha384",
                 "64e24ceca496aba4fb818edbea7c3a1405bc42c3166eac1b4be4f6cc89623c80cb9a1fd4c32d245d423653aa588e1a0b"),
        FileSpec(f"{MODEL_NAME}.bin", 16394708, "sha384",
                 "64ef06d261ae522409172a396d927f7345525dbde011e3e2bff487f73e7b1d8cf622091feba9c23c7d4625c0aab0a3e5"),
    ),
    "FP16": (
        FileSpec(f"{MODEL_NAME}.xml", 218215, "sha384",
                 "cffe8df7d053b9cbf858a21faa32e30cb8a645416e9ee4ce3fbcc3106094505477d66a06b7e46d6ddb9c2de4b0cee319"),
        FileSpec(f"{MODEL_NAME}.bin", 8197354, "sha384",
                 "dabb7be42c5be008de354c6670aa8291c2d18e59f18a1c138df9b5200929a03c1e323930a1d21ecff69d3f06007de67c"),
    ),
    "FP16-INT8": (
        FileSpec(f"{MODEL_NAME}.xml", None, None, None),
        FileSpec(f"{MODEL_NAME}.bin", None, None, None),
    ),
}

INPUT_NAME = "data"
PAF_OUTPUT = "Mconv7_stage2_L1"
HEATMAP_OUTPUT = "Mconv7_stage2_L2"


def default_precision(device: str = "CPU") -> str:
    """FP16 for the Neural Compute Stick 2 (it runs FP16 only), FP16-INT8 elsewhere (fastest on CPU)."""
    return "FP16" if "MYRIAD" in device.upper() else DEFAULT_PRECISION


def cache_dir() -> Path:
    """Per-user model cache: ``models/`` in the per-user cache (``~/.cache/pose_fast/models`` on Linux)."""
    return user_cache_dir("models")


def check_precision(precision: str) -> str:
    """The precision's canonical name (``fp16-int8`` -> ``FP16-INT8``); ModelError for an unknown one."""
    canonical = str(precision).strip().upper()
    if canonical not in PRECISIONS:
        raise ModelError(f"unknown precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    return canonical


def _ir_in(folder: Path, precision: str) -> Optional[Path]:
    xml = folder / MODEL_NAME / precision / f"{MODEL_NAME}.xml"
    return xml if xml.is_file() and xml.with_suffix(".bin").is_file() else None


def resolve_model(model: Optional[str | os.PathLike] = None, precision: Optional[str] = None,
                  device: str = "CPU", download: bool = True,
                  progress: Optional[Callable[[int, Optional[int]], None]] = None) -> Path:
    """Return the path of the model's ``.xml``, downloading it into the cache if nothing else has it.

    Parameters
    ----------
    model : path, optional
        An explicit ``.xml`` (its ``.bin`` beside it). Wins over everything else.
    precision : {"FP32", "FP16", "FP16-INT8"}, optional
        Default: :func:`default_precision` for ``device``.
    download : bool
        Fetch from the Open Model Zoo storage when no local copy exists.
    progress : callable, optional
        ``progress(bytes_done, bytes_total)`` during downloads.
    """
    if model is not None:
        xml = Path(model).expanduser()
        if xml.suffix.lower() != ".xml":
            raise ModelError(f"--model must be an OpenVINO IR .xml file, got {xml}")
        if not xml.is_file():
            raise ModelError(f"model file {xml} does not exist: pass the path of human-pose-estimation-0001.xml")
        if not xml.with_suffix(".bin").is_file():
            raise ModelError(f"model weights {xml.with_suffix('.bin')} are missing: put the .bin beside the .xml")
        return xml
    precision = check_precision(precision or default_precision(device))
    env_dir = os.environ.get("POSE_FAST_MODEL_DIR")
    if env_dir:
        found = _ir_in(Path(env_dir).expanduser(), precision)
        if found:
            return found
    found = _ir_in(cache_dir(), precision)
    if found:
        return found
    if not download:
        raise ModelError(_not_found_message(precision, env_dir))
    return fetch_model(precision, progress=progress)


def _not_found_message(precision: str, env_dir: Optional[str]) -> str:
    where = f"{cache_dir() / MODEL_NAME / precision}"
    looked = f" (POSE_FAST_MODEL_DIR={env_dir} has no {MODEL_NAME}/{precision}/)" if env_dir else ""
    return (f"model {MODEL_NAME} {precision} not found{looked}: run `pose-fast fetch-model --precision "
            f"{precision}`, or put {MODEL_NAME}.xml and .bin in {where}, or pass --model PATH.xml")


def file_digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _copy_stream(src, dst, total: Optional[int], progress) -> int:
    done = 0
    for block in iter(lambda: src.read(1 << 16), b""):
        dst.write(block)
        done += len(block)
        if progress:
            progress(done, total)
    return done


def _fetch_file(source: str, target: Path, progress) -> None:
    """Copy ``source`` (URL or local path) to ``target``; raises OSError/URLError on failure."""
    if "://" in source and not source.startswith("file://"):
        with urllib.request.urlopen(source, timeout=30) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length else None
            with open(target, "wb") as out:
                done = _copy_stream(response, out, total, progress)
            if total is not None and done != total:  # urllib does not notice a connection closed early
                raise OSError(f"the connection closed after {done} of {total} bytes")
    else:
        path = Path(source[len("file://"):] if source.startswith("file://") else source)
        with open(path, "rb") as src, open(target, "wb") as out:
            _copy_stream(src, out, path.stat().st_size, progress)


def _join(base: str, name: str) -> str:
    if "://" in base and not base.startswith("file://"):
        return base.rstrip("/") + "/" + name
    return str(Path(base[len("file://"):] if base.startswith("file://") else base) / name)


def fetch_model(precision: str = DEFAULT_PRECISION, source: Optional[str] = None,
                target_dir: Optional[Path] = None, checksums: Optional[dict] = None,
                progress: Optional[Callable[[int, Optional[int]], None]] = None) -> Path:
    """Download (or copy) one precision into the cache and verify it; return the ``.xml`` path.

    ``source`` is a base URL or a folder holding the two files (default: the official storage for that
    precision); a folder laid out as ``<dir>/human-pose-estimation-0001/<precision>/`` works too.
    ``checksums`` replaces :data:`CHECKSUMS` (tests use it). Files are written to a temporary folder next to
    the target and moved into place only when every file checks out.
    """
    precision = check_precision(precision)
    specs = (checksums or CHECKSUMS)[precision]
    base = source or BASE_URLS[precision]
    if "://" not in base and (Path(base) / MODEL_NAME / precision).is_dir():
        base = str(Path(base) / MODEL_NAME / precision)
    final_dir = Path(target_dir or cache_dir()) / MODEL_NAME / precision
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{precision}-", dir=final_dir.parent))
    try:
        for spec in specs:
            url = _join(base, spec.name)
            target = tmp_dir / spec.name
            try:
                _fetch_file(url, target, progress)
            except (OSError, urllib.error.URLError) as exc:
                reason = getattr(exc, "reason", None) or exc
                raise ModelError(f"could not download {url} ({reason}): when offline, copy {MODEL_NAME}.xml "
                                 f"and .bin ({precision}) into {final_dir} or set POSE_FAST_MODEL_DIR") from None
            _verify_file(target, spec, url, final_dir)
        verify_ir(tmp_dir / f"{MODEL_NAME}.xml")
        final_dir.mkdir(parents=True, exist_ok=True)
        for spec in specs:
            os.replace(tmp_dir / spec.name, final_dir / spec.name)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return final_dir / f"{MODEL_NAME}.xml"


def _verify_file(path: Path, spec: FileSpec, url: str, final_dir: Path) -> None:
    size = path.stat().st_size
    if spec.size is not None and size != spec.size:
        raise ModelError(f"{url} has {size} bytes, expected {spec.size}: the download was refused; retry, or "
                         f"copy the official files into {final_dir}")
    if spec.digest is not None:
        got = file_digest(path, spec.algorithm)
        if got != spec.digest:
            raise ModelError(f"{url} failed its {spec.algorithm} check: the download was refused; retry, or "
                             f"copy the official files into {final_dir}")


def verify_ir(xml: Path) -> None:
    """Check that OpenVINO reads the IR and that it has the pose model's input and outputs."""
    from ._ov import Core

    try:
        net = Core().read_model(str(xml))
    except Exception as exc:  # noqa: BLE001 - OpenVINO raises RuntimeError subclasses of many kinds
        raise ModelError(f"OpenVINO cannot read {xml} ({first_line(exc)}): the files are damaged; fetch them again "
                         f"with `pose-fast fetch-model`") from None
    inputs = {name for port in net.inputs for name in port.get_names()}
    outputs = {name for port in net.outputs for name in port.get_names()}
    missing = {INPUT_NAME} - inputs | {PAF_OUTPUT, HEATMAP_OUTPUT} - outputs
    if missing:
        raise ModelError(f"{xml} is not {MODEL_NAME}: it lacks {', '.join(sorted(missing))}")


def print_progress(done: int, total: Optional[int]) -> None:
    """A one-line progress bar on stderr (used by the command line); not on a log file or a pipe, where ``\r``
    redraws would pile up: there one line when a file is complete."""
    if not sys.stderr.isatty():
        if total and done >= total:
            sys.stderr.write(f"  {total / 1e6:.1f} MB downloaded\n")
            sys.stderr.flush()
        return
    if total:
        width = 30
        filled = int(width * done / total)
        sys.stderr.write(f"\r  [{'#' * filled}{'.' * (width - filled)}] {done / 1e6:6.1f}/{total / 1e6:.1f} MB")
        if done >= total:
            sys.stderr.write("\n")
    else:
        sys.stderr.write(f"\r  {done / 1e6:6.1f} MB")
    sys.stderr.flush()

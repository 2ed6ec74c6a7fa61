"""Model resolution and verified download, against a real HTTP server on 127.0.0.1."""
import functools
import hashlib
import http.server
import io
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from pose_fast import model
from pose_fast.model import MODEL_NAME, FileSpec, ModelError, fetch_model, resolve_model


@pytest.fixture
def user_cache(tmp_path, monkeypatch):
    """An empty per-user cache, and no POSE_FAST_MODEL_DIR."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("POSE_FAST_MODEL_DIR", raising=False)
    return tmp_path / "cache" / "pose_fast" / "models"


def _sha256_specs(folder: Path) -> dict:
    """Test-only checksums: the shared FP16-INT8 files' sizes and sha256 sums."""
    specs = []
    for suffix in (".xml", ".bin"):
        path = folder / f"{MODEL_NAME}{suffix}"
        specs.append(FileSpec(path.name, path.stat().st_size, "sha256",
                              hashlib.sha256(path.read_bytes()).hexdigest()))
    return {"FP16-INT8": tuple(specs)}


class _Handler(http.server.SimpleHTTPRequestHandler):
    corrupt = False    # serve 4 KiB of zeros as the .bin
    flipped = False    # serve the .bin with one byte changed (right size, wrong checksum)
    truncated = False  # announce the .bin's full size but close the connection halfway

    def log_message(self, *args):
        pass

    def send_head(self):
        if not self.path.endswith(".bin") or not (self.corrupt or self.flipped or self.truncated):
            return super().send_head()
        real = Path(self.translate_path(self.path)).read_bytes()
        if self.corrupt:
            body = length = b"\0" * 4096
        elif self.flipped:
            middle = len(real) // 2
            body = length = real[:middle] + bytes([real[middle] ^ 0xFF]) + real[middle + 1:]
        else:
            body, length = real[:len(real) // 2], real
        self.send_response(200)
        self.send_header("Content-Length", str(len(length)))
        self.end_headers()
        return io.BytesIO(body)


@pytest.fixture
def model_server(model_dir):
    """Serve ``shared/models`` over HTTP on a free loopback port; ``.corrupt = True`` damages the .bin."""
    handler = type("Handler", (_Handler,), {})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(handler, directory=str(model_dir)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.handler = handler
    server.base = f"http://127.0.0.1:{server.server_address[1]}/{MODEL_NAME}/FP16-INT8/"
    yield server
    server.shutdown()
    server.server_close()


def test_explicit_path_wins(model_xml, user_cache):
    assert resolve_model(model_xml) == model_xml


def test_model_dir_from_environment(model_dir, user_cache, monkeypatch):
    monkeypatch.setenv("POSE_FAST_MODEL_DIR", str(model_dir))
    assert resolve_model(precision="FP16-INT8") == model_dir / MODEL_NAME / "FP16-INT8" / f"{MODEL_NAME}.xml"


def test_precision_follows_the_device():
    assert model.default_precision("CPU") == "FP16-INT8"
    assert model.default_precision("MYRIAD") == "FP16"
    assert model.default_precision("MULTI:MYRIAD,CPU") == "FP16"


def test_nothing_found_says_where_to_put_files(user_cache):
    with pytest.raises(ModelError) as err:
        resolve_model(precision="FP16", download=False)
    assert "pose-fast fetch-model --precision FP16" in str(err.value)
    assert str(user_cache / MODEL_NAME / "FP16") in str(err.value)


def test_unknown_precision():
    with pytest.raises(ModelError, match="unknown precision 'INT4'"):
        resolve_model(precision="INT4")


def test_download_verifies_and_lands_in_the_cache(model_server, model_xml, user_cache):
    seen = []
    xml = fetch_model("FP16-INT8", source=model_server.base, checksums=_sha256_specs(model_xml.parent),
                      progress=lambda done, total: seen.append((done, total)))
    assert xml == user_cache / MODEL_NAME / "FP16-INT8" / f"{MODEL_NAME}.xml"
    assert xml.read_bytes() == model_xml.read_bytes()
    assert seen and seen[-1][0] == seen[-1][1] == model_xml.with_suffix(".bin").stat().st_size
    assert resolve_model(precision="FP16-INT8") == xml  # the cache is now found first
    assert [p.name for p in xml.parent.parent.iterdir()] == ["FP16-INT8"], "no temporary folder is left"


def test_corrupted_download_is_refused_and_leaves_nothing(model_server, model_xml, user_cache):
    model_server.handler.corrupt = True
    with pytest.raises(ModelError, match="the download was refused"):
        fetch_model("FP16-INT8", source=model_server.base, checksums=_sha256_specs(model_xml.parent))
    leftovers = list((user_cache / MODEL_NAME).rglob("*")) if (user_cache / MODEL_NAME).exists() else []
    assert leftovers == []


def test_checksum_mismatch_of_the_right_size_is_refused(model_server, model_xml, user_cache):
    model_server.handler.flipped = True
    with pytest.raises(ModelError, match="failed its sha256 check: the download was refused"):
        fetch_model("FP16-INT8", source=model_server.base, checksums=_sha256_specs(model_xml.parent))
    assert not (user_cache / MODEL_NAME / "FP16-INT8").exists()
    assert list((user_cache / MODEL_NAME).iterdir()) == [], "no temporary folder is left"


def test_download_cut_short_is_refused(model_server, model_xml, user_cache):
    # No checksum (as for FP16-INT8): the announced length is what catches a connection closed halfway.
    model_server.handler.truncated = True
    with pytest.raises(ModelError, match=r"could not download .*\.bin \(the connection closed after \d+ of \d+ bytes"):
        fetch_model("FP16-INT8", source=model_server.base)
    assert list((user_cache / MODEL_NAME).iterdir()) == [], "no temporary folder is left"


def test_unverifiable_precision_must_still_be_the_pose_model(model_server, model_xml, user_cache):
    # FP16-INT8 has no published checksum: a damaged .bin of the right name is caught by OpenVINO reading it.
    model_server.handler.corrupt = True
    with pytest.raises(ModelError, match="cannot read"):
        fetch_model("FP16-INT8", source=model_server.base)
    assert not (user_cache / MODEL_NAME / "FP16-INT8").exists()


def test_offline_download_says_where_to_put_files(user_cache):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ModelError) as err:
        fetch_model("FP16", source=f"http://127.0.0.1:{port}/")
    message = str(err.value)
    assert "could not download" in message and "when offline, copy" in message
    assert str(user_cache / MODEL_NAME / "FP16") in message


def test_official_checksums_are_pinned():
    for precision in ("FP32", "FP16"):
        for spec in model.CHECKSUMS[precision]:
            assert spec.algorithm == "sha384" and len(spec.digest) == 96 and spec.size > 100_000
    assert model.BASE_URLS["FP16"].endswith("/2023.0/models_bin/1/human-pose-estimation-0001/FP16/")
    assert "/2022.1/models_bin/3/" in model.BASE_URLS["FP16-INT8"]


def test_fetch_model_command_copies_from_a_folder(model_dir, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "pose_fast.cli.main", "fetch-model", "--from", str(model_dir), "--to", str(tmp_path)],
        capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()) == tmp_path / MODEL_NAME / "FP16-INT8" / f"{MODEL_NAME}.xml"


def test_fetch_model_command_error_is_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "pose_fast.cli.main", "fetch-model", "--precision", "FP16",
         "--from", str(tmp_path / "none"), "--to", str(tmp_path)],
        capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("Error: could not download")


def test_engine_downloads_on_first_use_with_progress(model_server, model_xml, user_cache, monkeypatch):
    from pose_fast.engines.local import Engine

    monkeypatch.setitem(model.BASE_URLS, "FP16-INT8", model_server.base)  # the storage, served from shared/
    seen = []
    engine = Engine(precision="FP16-INT8", cache_dir="", progress=lambda done, total: seen.append((done, total)))
    try:
        assert engine.model_path == user_cache / MODEL_NAME / "FP16-INT8" / f"{MODEL_NAME}.xml"
    finally:
        engine.close()
    assert seen and seen[-1] == (model_xml.with_suffix(".bin").stat().st_size,) * 2


def test_demo_announces_the_first_use_download(model_server, model_xml, user_cache, monkeypatch, video_path):
    from click.testing import CliRunner

    from pose_fast.cli.main import cli

    monkeypatch.setitem(model.BASE_URLS, "FP16-INT8", model_server.base)
    result = CliRunner().invoke(cli, ["demo", "-i", str(video_path("store-aisle")), "--no-show", "--no-db",
                                      "--limit", "1"])
    assert result.exit_code == 0, result.output
    assert "downloading the model human-pose-estimation-0001" in result.output
    # not a terminal (as in a log): no redrawn bar, one line per file (.xml, .bin) when it is complete
    assert "\r" not in result.output and result.output.count(" MB downloaded\n") == 2, result.output
    assert (user_cache / MODEL_NAME / "FP16-INT8" / f"{MODEL_NAME}.bin").is_file()

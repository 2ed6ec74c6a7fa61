"""A real KServe v2 gRPC server for the remote-engine tests: PyPI ``kserve`` serving the pose IR through OpenVINO.

Run it in its own process (and its own virtualenv: ``.ci/remote.sh`` makes ``.venv-kserve``), because kserve's
protobuf definitions clash with the client library's inside one process::

    .venv-kserve/bin/python tests/kserve_server.py --xml MODEL.xml [--port 0] [--name NAME] [--dynamic-width]

or from the tests, through :class:`ServerProcess` (stdlib only, so the client's process can import this module).

It binds only 127.0.0.1 and serves gRPC only (no REST port). ``--port 0`` picks a free port. Once the model is
compiled and the port is bound it prints ``READY <port>`` on stdout, so a test can wait for that line. SIGTERM stops it.

Besides kserve's own API it answers the model-repository ``RepositoryIndex`` call (the Triton extension of the
KServe v2 protocol, which kserve lacks), so the client's "the server has: ..." message can be tested for real. Like
OpenVINO Model Server and Triton, it rejects an input of the wrong name or shape with ``INVALID_ARGUMENT``.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
from concurrent import futures
from pathlib import Path
from typing import Optional

MODEL_NAME = "human-pose-estimation-0001"
SERVICE = "inference.GRPCInferenceService"
DEFAULT_VENV_PYTHON = Path(__file__).resolve().parents[1] / ".venv-kserve" / "bin" / "python"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--xml", required=True, help="the OpenVINO IR (.xml) of human-pose-estimation-0001")
    parser.add_argument("--port", type=int, default=0, help="gRPC port on 127.0.0.1 (0: a free one)")
    parser.add_argument("--name", default=MODEL_NAME, help="the model name served")
    parser.add_argument("--dynamic-width", action="store_true", help="serve an input of width -1 (any width)")
    parser.add_argument("--delay-ms", type=float, default=0.0,
                        help="answer each request this much later (to test client timeouts)")
    parser.add_argument("--streams", type=int, default=0,
                        help="parallel OpenVINO infer requests (0: the device's optimum for THROUGHPUT)")
    return parser.parse_args(argv)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return _varint((number << 3) | 2) + _varint(len(payload)) + payload


def repository_index_response(names) -> bytes:
    """``inference.RepositoryIndexResponse`` with one READY ``ModelIndex`` per name (hand-encoded protobuf)."""
    return b"".join(_field(1, _field(1, n.encode()) + _field(2, b"1") + _field(3, b"READY")) for n in names)


def server_python() -> str:
    """The interpreter that has kserve: ``POSE_FAST_KSERVE_PYTHON``, else ``<project>/.venv-kserve``."""
    path = os.environ.get("POSE_FAST_KSERVE_PYTHON") or str(DEFAULT_VENV_PYTHON)
    if not Path(path).is_file():
        raise RuntimeError(f"no Python with kserve at {path}: run `bash .ci/test-setup.sh` (it makes .venv-kserve "
                           f"through .ci/remote.sh), or set POSE_FAST_KSERVE_PYTHON")
    return path


class ServerProcess:
    """This server in a child process: ``with ServerProcess(xml) as server: server.url``.

    ``port=0`` lets the server pick a free loopback port; pass the old port to restart it at the same address.
    """

    def __init__(self, xml, port: int = 0, name: str = MODEL_NAME, dynamic_width: bool = False,
                 delay_ms: float = 0.0, streams: int = 0, python: Optional[str] = None):
        self.args = [python or server_python(), str(Path(__file__).resolve()), "--xml", str(xml), "--port", str(port),
                     "--name", name, "--delay-ms", str(delay_ms), "--streams", str(streams)]
        if dynamic_width:
            self.args.append("--dynamic-width")
        self.name = name
        self.port = port
        self.proc: Optional[subprocess.Popen] = None
        self._log = None

    @property
    def url(self) -> str:
        return f"grpc://127.0.0.1:{self.port}/{self.name}"

    def start(self, timeout: float = 120.0) -> ServerProcess:
        self._log = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=self._log, text=True)
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in self.proc.stdout], daemon=True).start()
        try:
            line = lines.get(timeout=timeout)
        except queue.Empty:
            line = ""
        if not line.startswith("READY "):
            self.stop()
            raise RuntimeError(f"the KServe test server did not start: {self.log()[-2000:]}")
        self.port = int(line.split()[1])
        return self

    def log(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read()

    def kill(self) -> None:
        """SIGKILL: the server vanishes without a goodbye."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()

    def __enter__(self):
        return self.start() if self.proc is None else self

    def __exit__(self, *exc):
        self.stop()


def main(argv=None) -> int:
    args = parse_args(argv)
    # kserve parses sys.argv when imported: hide ours from it.
    sys.argv = sys.argv[:1]
    import grpc
    import kserve
    import numpy as np
    import openvino as ov
    from grpc import aio
    from kserve.errors import InvalidInput
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc
    from kserve.protocol.grpc.interceptors import ExceptionToStatusInterceptor
    from kserve.protocol.grpc.server import GRPCServer
    from kserve.protocol.grpc.servicer import InferenceServicer
    from kserve.protocol.infer_type import InferOutput, InferResponse

    ov_type_names = {"f32": "FP32", "f16": "FP16", "u8": "UINT8"}

    class PoseModel(kserve.Model):
        """human-pose-estimation-0001 compiled for the CPU with a pool of infer requests."""

        def __init__(self, name: str, xml: str, dynamic_width: bool, streams: int, delay_ms: float):
            super().__init__(name)
            self.xml, self.dynamic_width, self.streams, self.delay_s = xml, dynamic_width, streams, delay_ms / 1000

            self.load()

        def load(self) -> bool:
            core = ov.Core()
            model = core.read_model(self.xml)
            if self.dynamic_width and model.inputs[0].get_partial_shape().rank.get_length() == 4:
                shape = model.inputs[0].get_partial_shape()
                model.reshape({model.inputs[0].get_any_name(): ov.PartialShape([1, 3, shape[2], -1])})
            # f32 as pose_fast's local engine computes (OpenVINO picks bf16 by itself on AVX-512 BF16 and AMX CPUs)
            config = {"PERFORMANCE_HINT": "THROUGHPUT", "INFERENCE_PRECISION_HINT": "f32"}
            if self.streams:
                config["NUM_STREAMS"] = str(self.streams)
            self.compiled = core.compile_model(model, "CPU", config)
            count = int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
            self.requests = queue.Queue()
            for _ in range(max(1, count)):
                self.requests.put(self.compiled.create_infer_request())
            self.executor = futures.ThreadPoolExecutor(max_workers=max(1, count), thread_name_prefix="ov-infer")
            self.ready = True
            return self.ready

        @staticmethod
        def _tensor_types(ports) -> list:
            out = []
            for port in ports:
                dims = [d.get_length() if d.is_static else -1 for d in port.get_partial_shape()]
                datatype = ov_type_names[port.get_element_type().get_type_name()]
                out.append({"name": port.get_any_name(), "datatype": datatype, "shape": dims})
            return out

        def get_input_types(self) -> list:
            return self._tensor_types(self.compiled.inputs)

        def get_output_types(self) -> list:
            return self._tensor_types(self.compiled.outputs)

        def _run(self, batch):
            request = self.requests.get()
            try:
                request.infer({0: batch})
                return [(port.get_any_name(), np.array(request.get_tensor(port).data))
                        for port in self.compiled.outputs]
            finally:
                self.requests.put(request)

        def _check(self, tensor) -> None:
            """Reject a request the model cannot run with INVALID_ARGUMENT, as OVMS and Triton do."""
            port = self.compiled.inputs[0]
            want = [d.get_length() if d.is_static else -1 for d in port.get_partial_shape()]
            shape = [int(d) for d in tensor.shape]
            if tensor.name != port.get_any_name() or len(shape) != len(want) or \
                    any(w not in (-1, s) for w, s in zip(want, shape)):
                raise InvalidInput(f"invalid input {tensor.name} {shape}: the model takes "
                                   f"{port.get_any_name()} {want}")

        async def predict(self, payload, headers=None, response_headers=None):
            self._check(payload.inputs[0])
            batch = payload.inputs[0].as_numpy()
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            loop = asyncio.get_running_loop()
            results = await loop.run_in_executor(self.executor, self._run, batch)
            outputs = []
            for name, array in results:
                out = InferOutput(name=name, shape=list(array.shape), datatype="FP32")
                out.set_data_from_numpy(array.astype(np.float32, copy=False), binary_data=True)
                outputs.append(out)
            return InferResponse(response_id=payload.id or "", model_name=self.name, infer_outputs=outputs,
                                 use_binary_outputs=True)

    class LoopbackGRPCServer(GRPCServer):
        """kserve's gRPC server, bound to 127.0.0.1 only, plus RepositoryIndex; prints READY <port>."""

        async def start(self, max_workers):
            servicer = InferenceServicer(self._data_plane, self._model_repository_extension)
            self._server = aio.server(futures.ThreadPoolExecutor(max_workers=max_workers),
                                      interceptors=(ExceptionToStatusInterceptor(),))
            grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, self._server)
            registry = self._data_plane.model_registry

            async def repository_index(_request: bytes, _context) -> bytes:
                return repository_index_response(sorted(registry.get_models()))

            self._server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, {
                "RepositoryIndex": grpc.unary_unary_rpc_method_handler(
                    repository_index, request_deserializer=None, response_serializer=None)}),))
            port = self._server.add_insecure_port(f"127.0.0.1:{self._port}")
            await self._server.start()
            print(f"READY {port}", flush=True)
            await self._server.wait_for_termination()

    class LoopbackModelServer(kserve.ModelServer):
        """kserve.ModelServer serving gRPC on 127.0.0.1 only (its REST server would bind 0.0.0.0)."""

        def start(self, models) -> None:
            for model in models:
                self.register_model(model)
                model.start()
            self._grpc_server = LoopbackGRPCServer(self.grpc_port, self.dataplane, self.model_repository_extension,
                                                   kwargs={}, grace_period=1)
            asyncio.run(self._serve_until_signal())

        async def _serve_until_signal(self) -> None:
            loop = asyncio.get_running_loop()
            stop = asyncio.Event()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
            serving = asyncio.ensure_future(self._grpc_server.start(self.max_threads))
            stopping = asyncio.ensure_future(stop.wait())
            await asyncio.wait([serving, stopping], return_when=asyncio.FIRST_COMPLETED)
            if serving.done():
                serving.result()  # a failed start (port taken...) raises here
                return
            await self._grpc_server.stop()
            await serving

    model = PoseModel(args.name, args.xml, args.dynamic_width, args.streams, args.delay_ms)
    server = LoopbackModelServer(grpc_port=args.port, enable_grpc=True, enable_latency_logging=False,
                                 max_threads=8, grace_period=1)
    server.start([model])
    return 0


if __name__ == "__main__":
    sys.exit(main())

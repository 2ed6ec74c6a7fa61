"""A real RTSP server for the tests: GStreamer's (gst-rtsp-server, Debian's packages), serving a video file.

Runs under the system Python, which has the GObject bindings (``python3-gi``)::

    /usr/bin/python3 tests/rtsp_server.py PORT MOUNT VIDEO

Serves ``rtsp://127.0.0.1:PORT/MOUNT``: the video decoded and re-encoded as H.264 at its own frame rate, for each
client from the start (a client that reaches the end gets the end of the stream, and a reconnecting client starts
the video again: a loop). Prints ``ready`` once it listens; stops on SIGTERM/SIGINT.
"""
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main(port: str, mount: str, video: str) -> None:
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        f'( filesrc location="{video}" ! decodebin ! videoconvert ! video/x-raw,format=I420 '
        f"! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=10 "
        f"! rtph264pay name=pay0 pt=96 config-interval=1 )")
    factory.set_shared(False)
    server.get_mount_points().add_factory(f"/{mount}", factory)
    if server.attach(None) == 0:
        sys.exit(f"rtsp_server: cannot listen on 127.0.0.1:{port}")
    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    print("ready", flush=True)
    loop.run()


if __name__ == "__main__":
    main(*sys.argv[1:4])

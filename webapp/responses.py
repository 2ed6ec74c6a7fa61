"""Every answer of the API is JSON, errors included: ``{"error": "<one line>", "status": <code>}``.

:func:`json_error` builds one; :func:`register_error_handlers` makes Flask's own 404, 405, 413 ... and any
uncaught exception (500, its traceback in the log) answer in that shape. Error text never shows an absolute file
path: a path on the server is shortened to its file name, and a stream URL's user and password are masked
(:func:`public_text`).
"""
from __future__ import annotations

import logging
import re

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

__all__ = ["NO_CACHE", "json_error", "public_errors", "public_text", "register_error_handlers"]

log = logging.getLogger(__name__)

#: Headers for answers that must not be cached (live numbers, errors).
NO_CACHE = {"Cache-Control": "no-store, no-cache, must-revalidate, max-age=0", "Pragma": "no-cache"}

_ABSOLUTE_PATH = re.compile(r"(?<![\w:/.])(?:/[^\s/'\"(),;:]+)+/([^\s/'\"(),;:]+)")
_CREDENTIALS = re.compile(r"(://)[^\s/@'\"]+@")


def public_text(text: str) -> str:
    """``text`` with every absolute path shortened to its last part (``/home/me/x/events.db`` -> ``events.db``)
    and the credentials of a URL masked (``rtsp://admin:secret@cam/`` -> ``rtsp://***@cam/``)."""
    return _ABSOLUTE_PATH.sub(r"\1", _CREDENTIALS.sub(r"\1***@", str(text)))


def public_errors(value):
    """``value`` (JSON-like) with :func:`public_text` applied to every ``"error"`` field, however deep."""
    if isinstance(value, dict):
        return {key: public_text(item) if key == "error" and isinstance(item, str) else public_errors(item)
                for key, item in value.items()}
    if isinstance(value, list):
        return [public_errors(v) for v in value]
    return value


def json_error(message: str, status: int, **extra):
    """A JSON error response: one line of ``message`` (paths shortened), the status, and ``extra`` fields."""
    line = public_text(str(message).strip().splitlines()[0] if str(message).strip() else f"HTTP {status}")
    response = jsonify({"error": line, "status": status, **extra})
    response.status_code = status
    response.headers.update(NO_CACHE)
    return response


def register_error_handlers(app: Flask) -> None:
    """Flask's HTTP errors and uncaught exceptions answer JSON (see the module docstring)."""

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        response = json_error(exc.description or exc.name, exc.code or 500)
        for name, value in exc.get_headers():  # e.g. Allow on a 405
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    @app.errorhandler(Exception)
    def _uncaught(exc: Exception):
        if isinstance(exc, HTTPException):
            return _http_error(exc)
        log.exception("unhandled error in %s", type(exc).__name__)
        return json_error("internal error: the server could not answer this request (see its log)", 500)

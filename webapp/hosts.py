"""Only known names in ``Host``: the defence against DNS rebinding.

A page on any web site can make a browser send requests to 127.0.0.1 through a name the attacker controls (DNS
rebinding): the request then carries that name in ``Host``. So every request must name this server: an IP address
(a rebinding needs a name), ``localhost``, the host the server is bound to, or a name given with
``--allowed-host`` (``ALLOWED_HOSTS``, env ``POSE_FAST_ALLOWED_HOSTS``, comma-separated). Anything else is a 400.
"""
from __future__ import annotations

import ipaddress
from typing import Iterable

from flask import Flask, request

from .responses import json_error

__all__ = ["host_name", "is_allowed", "install_host_check"]


def host_name(header: str) -> str:
    """The name in a ``Host`` header, without its port or IPv6 brackets, lower case (``[::1]:5000`` -> ``::1``)."""
    text = (header or "").strip().lower()
    if text.startswith("["):
        return text[1:].split("]", 1)[0]
    if text.count(":") == 1:
        text = text.split(":", 1)[0]
    return text.rstrip(".")


def is_allowed(name: str, allowed: Iterable[str]) -> bool:
    """True for an IP address, ``localhost`` and the names in ``allowed``."""
    if not name:
        return False
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        pass
    return name == "localhost" or name in {host_name(a) for a in allowed}


def install_host_check(app: Flask) -> None:
    """Answer 400 JSON to a request whose ``Host`` names neither this server nor an allowed name."""
    allowed = [str(app.config.get("HOST") or ""), *app.config.get("ALLOWED_HOSTS", ())]

    @app.before_request
    def _check_host():
        raw = request.headers.get("Host", "")
        if not is_allowed(host_name(raw), allowed):
            return json_error(f"unknown host {host_name(raw) or raw!r}: this server answers to its address, "
                              f"localhost and the names given with --allowed-host", 400)
        return None

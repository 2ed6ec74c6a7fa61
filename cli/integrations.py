"""What ``pose-fast demo`` and ``pose-fast web`` share for MQTT, metrics, zones and lines: the options, reading
them from a config file, and building the objects (errors as one line)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional, Tuple

import click

from .errors import UserError

__all__ = ["mqtt_options", "zone_options", "read_config", "zones_for", "start_mqtt", "close_mqtt", "camera_name",
           "mqtt_settings"]


def mqtt_options(func):
    """``--mqtt URL`` (env POSE_FAST_MQTT) and ``--mqtt-ca FILE``."""
    func = click.option("--mqtt-ca", default=None, type=click.Path(dir_okay=False),
                        help="CA certificate for an mqtts:// broker (default: the system's).")(func)
    func = click.option("--mqtt", "mqtt_url", default=None, envvar="POSE_FAST_MQTT", metavar="URL",
                        help="Publish events, people counts and Home Assistant discovery to this broker: "
                             "mqtt://[user:pass@]host[:port][/prefix] or mqtts://... (env POSE_FAST_MQTT).")(func)
    return func


def zone_options(func):
    """``--zone NAME=x,y x,y x,y...``, ``--line NAME=x,y x,y`` (repeatable) and ``--config FILE``."""
    func = click.option("--line", "lines", multiple=True, metavar="NAME=x,y x,y",
                        help="A line to count crossings of, in fractions of the frame (0-1); crossing it from the "
                             "left to the right of its first->second point is 'in'. Repeatable.")(func)
    func = click.option("--zone", "zones", multiple=True, metavar="NAME=x,y x,y x,y...",
                        help="A zone (polygon, fractions of the frame 0-1) with zone_enter/zone_exit events. "
                             "Repeatable.")(func)
    func = click.option("--config", "config_path", default=None, envvar="POSE_FAST_CONFIG", metavar="FILE",
                        type=click.Path(dir_okay=False),
                        help="TOML config file: [[cameras]] (name, url or device, input_height) with their own "
                             "[[cameras.zones]]/[[cameras.lines]], top-level [[zones]]/[[lines]] (name, points), and "
                             "[mqtt] url/ca (env POSE_FAST_CONFIG). See the README.")(func)
    return func


def read_config(path) -> dict:
    """The parsed TOML file at ``path`` ({} for None); a missing or malformed file is a one-line error."""
    if not path:
        return {}
    from pose_fast.cameras import CameraConfigError, load_config_file

    try:
        return load_config_file(path)
    except CameraConfigError as exc:
        raise UserError(str(exc)) from None


def zones_for(config: dict, camera: Optional[str], zone_texts=(), line_texts=()) -> Tuple[list, list]:
    """The zones and lines of ``camera`` (None: the top-level ones) in ``config``, plus the command line's."""
    from pose_fast.zones import ZoneError, parse_line_option, parse_zone_option, zones_from_config

    try:
        found = zones_from_config(config)
        zones, lines = (list(x) for x in found.get(camera, ([], [])))
        zones += [parse_zone_option(t) for t in zone_texts]
        lines += [parse_line_option(t) for t in line_texts]
    except ZoneError as exc:
        raise UserError(str(exc)) from None
    names = [z.name for z in zones] + [ln.name for ln in lines]
    for name in names:
        if names.count(name) > 1:
            raise UserError(f"zone or line name {name!r} is used twice: names must be unique per camera")
    return zones, lines


def mqtt_settings(config: dict, url: Optional[str], ca: Optional[str]) -> Tuple[Optional[str], Optional[str]]:
    """The broker URL and CA file: the options over the config file's ``[mqtt]`` table (or ``mqtt = "URL"``)."""
    section = config.get("mqtt")
    if isinstance(section, str):
        section = {"url": section}
    if section is not None and not isinstance(section, dict):
        raise UserError("mqtt in the config file must be a URL or a table with url (and ca)")
    section = section or {}
    return url or section.get("url"), ca or section.get("ca")


def camera_name(spec) -> str:
    """A short name for a source the demo was given: a file's stem, ``camera<N>`` for an index, a URL's host."""
    text = str(spec)
    if text.isdigit():
        return f"camera{text}"
    if "://" in text:
        from urllib.parse import urlsplit

        parts = urlsplit(text)
        return (parts.hostname or "stream") + (parts.path.replace("/", "_") if parts.path.strip("/") else "")
    return Path(text).stem or text


def start_mqtt(url: str, database, cameras: dict, ca=None):
    """An MQTT publisher started on ``url`` (a one-line error for a bad URL or refused credentials; a broker that
    is down is a warning and retried)."""
    from pose_fast.integrations.mqtt import MqttError, MqttPublisher, parse_mqtt_url

    try:
        parsed = parse_mqtt_url(url)
    except MqttError as exc:
        raise UserError(str(exc)) from None
    if ca and not os.path.isfile(ca):
        raise UserError(f"--mqtt-ca {ca}: no such file")
    if ca and not parsed.tls:
        raise UserError("--mqtt-ca is for mqtts:// URLs; use mqtts://host to connect with TLS")
    publisher = MqttPublisher(parsed, database, cameras=cameras, ca=ca)
    try:
        publisher.start()
    except MqttError as exc:
        raise UserError(str(exc)) from None
    if not publisher.connected.is_set():
        click.secho(f"warning: the MQTT broker {parsed} is not reachable; retrying in the background (events wait "
                    f"in the database and are published when it is back)", fg="yellow", err=True)
    return publisher


def close_mqtt(holder: List) -> None:
    """Close the publisher in ``holder`` (if any): what the broker accepts within a few seconds is sent first."""
    for publisher in holder:
        publisher.close(timeout=5.0)
        left = publisher.outbox_depth
        if left:
            click.secho(f"warning: {left} events were not acknowledged by the MQTT broker {publisher.url}; they are "
                        f"published at the next start", fg="yellow", err=True)

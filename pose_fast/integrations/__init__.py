"""Integrations people wire a camera monitor into: MQTT with Home Assistant discovery
(:mod:`~pose_fast.integrations.mqtt`) and Prometheus metrics (:mod:`~pose_fast.integrations.metrics`).

A service layer: these modules read the events database and the pipeline's numbers, and run in threads of their
own; nothing in the core imports them, the front ends (``pose_fast.cli``, ``pose_fast.webapp``) do. Import the
submodules directly (each pulls in its library: paho-mqtt, prometheus-client).
"""
from __future__ import annotations

__all__: list = []

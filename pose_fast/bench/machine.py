"""What the numbers were measured on: :func:`machine_info` (CPU model and cores, OS, Python, NumPy, OpenVINO, the
device's full name, the load average)."""
from __future__ import annotations

import os
import platform
from typing import Optional

import numpy as np

__all__ = ["machine_info"]


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _physical_cores() -> Optional[int]:
    try:
        pairs = set()
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            phys = core = None
            for line in fh:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                if key == "physical id":
                    phys = value.strip()
                elif key == "core id":
                    core = value.strip()
                elif not line.strip():
                    if core is not None:
                        pairs.add((phys, core))
                    phys = core = None
            if core is not None:
                pairs.add((phys, core))
        return len(pairs) or None
    except OSError:
        return None


def machine_info(device: str = "CPU", core=None) -> dict:
    """What the numbers were measured on: CPU model and cores, OS, Python, OpenVINO, the device's full name."""
    from .. import _ov

    logical = os.cpu_count() or 0
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = logical
    info = {
        "cpu": _cpu_model(),
        "logical_cpus": logical,
        "usable_cpus": usable,
        "physical_cores": _physical_cores(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "openvino": _ov.VERSION.split("-")[0],
        "openvino_build": _ov.VERSION,
        "device_name": None,
    }
    try:
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        info["load_average"] = None
    if core is not None:
        try:
            name = device.split(":")[-1].split(",")[0].split("(")[0]
            info["device_name"] = str(core.get_property(name, "FULL_DEVICE_NAME"))
        except Exception:  # noqa: BLE001 - AUTO and friends have no single name
            info["device_name"] = None
    return info

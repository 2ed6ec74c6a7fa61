"""ISO-8601 UTC instants, as every API and file of pose_fast writes them: ``2026-11-25T07:00:00.123Z``.

Milliseconds, truncated (never rounded up into the next second), fixed width, so the text sorts as the instants do.
"""
from __future__ import annotations

import math
import re
import time
from datetime import datetime, timezone

__all__ = ["iso_utc", "parse_iso_utc"]

_last_second = (None, "")  # (second, its text), replaced as one tuple: safe with several threads


def iso_utc(ts: float) -> str:
    """Seconds since the epoch -> ``YYYY-MM-DDTHH:MM:SS.mmmZ``."""
    global _last_second
    sec = math.floor(ts)
    ms = min(999, int((ts - sec) * 1000.0))
    cached_sec, prefix = _last_second
    if cached_sec != sec:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        _last_second = (sec, prefix)
    return f"{prefix}.{ms:03d}Z"


_FRACTION = re.compile(r"(?<=:\d\d)[.,](\d+)")


def parse_iso_utc(text: str) -> str:
    """An ISO-8601 date or date-time (``Z``, an offset, or none meaning UTC) -> the :func:`iso_utc` form;
    ValueError if it is not one."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    # Python 3.9's fromisoformat takes only 3 or 6 fractional digits: pad or cut to 6
    value = _FRACTION.sub(lambda m: "." + (m.group(1) + "00000")[:6], value, count=1)
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"not an ISO-8601 date-time: {text!r} (e.g. 2026-11-25T07:00:00Z)") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    try:
        dt = dt.astimezone(timezone.utc)
    except OverflowError:  # 0001-01-01T00:00+23:59 is before year 1 in UTC; 9999-12-31T23:59-23:59 after 9999
        raise ValueError(f"{text!r} is outside the years 1 to 9999 in UTC") from None
    # by hand: strftime("%Y") drops the leading zeros of years before 1000 on some platforms, and then the text
    # would not sort as the instants do
    return (f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}."
            f"{dt.microsecond // 1000:03d}Z")

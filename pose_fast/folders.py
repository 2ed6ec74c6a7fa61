"""The per-user folders pose_fast writes to (platformdirs): caches (models, compiled models, numba) and data
(the events database).

On Linux ``$XDG_CACHE_HOME/pose_fast`` (``~/.cache/pose_fast``) and ``$XDG_DATA_HOME/pose_fast``
(``~/.local/share/pose_fast``); on macOS ``~/Library/Caches/pose_fast`` and ``~/Library/Application Support/
pose_fast``; on Windows under ``%LOCALAPPDATA%\\pose_fast``.
"""
from __future__ import annotations

from pathlib import Path

import platformdirs

__all__ = ["user_cache_dir", "user_data_dir"]

APP = "pose_fast"


def user_cache_dir(*parts: str) -> Path:
    """``<per-user cache>/pose_fast/<parts...>`` (not created)."""
    return Path(platformdirs.user_cache_dir(APP, appauthor=False)).joinpath(*parts)


def user_data_dir(*parts: str) -> Path:
    """``<per-user data>/pose_fast/<parts...>`` (not created)."""
    return Path(platformdirs.user_data_dir(APP, appauthor=False)).joinpath(*parts)

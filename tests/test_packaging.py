"""The distribution as pip installs it: one importable top-level name, the front ends inside it."""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_installs_only_pose_fast(tmp_path):
    """Before, it installed top-level ``cli`` and ``webapp`` packages too, which any other distribution with a
    ``cli`` package overwrote (and a user's own ``cli.py`` shadowed)."""
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                           "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    (wheel,) = tmp_path.glob("pose_fast-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/RECORD"))
        entry_points = archive.read(f"{info}/entry_points.txt").decode()
        top_level = archive.read(f"{info}/top_level.txt").decode().split()
    assert {name.split("/")[0] for name in names} == {"pose_fast", info}
    assert top_level == ["pose_fast"]
    for member in ("pose_fast/cli/main.py", "pose_fast/cli/demo.py", "pose_fast/webapp/__init__.py",
                   "pose_fast/webapp/templates/index.html", "pose_fast/webapp/static/app.js",
                   "pose_fast/_decode.pyx"):
        assert member in names, member
    assert "pose-fast = pose_fast.cli.main:cli" in entry_points
    # every package of the source tree is in the wheel (pyproject.toml lists them)
    for init in [*ROOT.glob("pose_fast/**/__init__.py"), ROOT / "cli" / "__init__.py", ROOT / "webapp" / "__init__.py"]:
        relative = init.relative_to(ROOT).as_posix()
        member = relative if relative.startswith("pose_fast/") else f"pose_fast/{relative}"
        assert member in names, f"{member} is missing from the wheel: add its package to pyproject.toml"


def test_a_users_own_cli_module_does_not_shadow_the_command(tmp_path):
    """A folder with its own ``cli.py`` and ``webapp.py``: the demo script still finds pose_fast's front ends."""
    (tmp_path / "cli.py").write_text("raise SystemExit('the user module was imported')\n")
    (tmp_path / "webapp.py").write_text("raise SystemExit('the user module was imported')\n")
    proc = subprocess.run([sys.executable, str(ROOT / "demo.py"), "--help"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    assert "Usage: pose-fast demo" in proc.stdout

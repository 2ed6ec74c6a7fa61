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
                   "pose_fast/_decode.pyx", "pose_fast/_track.pyx", "pose_fast/_track_ref.py"):
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


def _python_env(python, stdlib=None):
    import os

    env = dict(os.environ)
    env.pop("POSE_FAST_STDLIB", None)
    if stdlib is not None:
        env["POSE_FAST_STDLIB"] = str(stdlib)
    proc = subprocess.run([str(python), str(ROOT / ".ci" / "python_env.py")], capture_output=True, text=True,
                          env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_test_setup_tells_a_pep668_python_from_one_that_takes_pip_install(tmp_path):
    """.ci/test-setup.sh installs into .venv only where pip refuses (PEP 668: EXTERNALLY-MANAGED in the standard
    library folder, as on Debian 12), and never when a virtualenv is active; a fake standard library stands in
    for Debian's here."""
    managed, plain = tmp_path / "managed", tmp_path / "plain"
    managed.mkdir()
    plain.mkdir()
    (managed / "EXTERNALLY-MANAGED").write_text("[externally-managed]\nError=use a virtualenv\n")
    in_venv = sys.prefix != sys.base_prefix
    assert _python_env(sys.executable, managed) == ("venv" if in_venv else "externally-managed")
    assert _python_env(sys.executable, plain) == ("venv" if in_venv else "plain")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    assert _python_env(venv / "bin" / "python", managed) == "venv"


def test_ci_env_activates_only_the_venv_the_set_up_made(tmp_path):
    """`. .ci/env` (the README's test command) activates .venv when .ci/test-setup.sh made it, else nothing."""
    import os

    activate = tmp_path / ".venv" / "bin" / "activate"
    activate.parent.mkdir(parents=True)
    activate.write_text(f'VIRTUAL_ENV="{tmp_path / ".venv"}"; export VIRTUAL_ENV\n')
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    script = f"set -euo pipefail; . {ROOT / '.ci' / 'env'}; echo \"${{VIRTUAL_ENV:-none}}\""

    def active():
        proc = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip()

    assert active() == "none"  # a .venv the set-up did not make (someone's own) is left alone
    (tmp_path / ".venv" / ".pose-fast-setup").touch()
    assert active() == str(tmp_path / ".venv")
    env["VIRTUAL_ENV"] = "/elsewhere"  # a virtualenv already active wins
    assert active() == "/elsewhere"


def test_ci_runs_the_readmes_test_command_as_written():
    """The README's second command (set-up, the .venv it may make, the tests) is the line .ci/run runs."""
    import re

    blocks = re.findall(r"^```bash\n(.*?)\n```", (ROOT / "README.md").read_text(encoding="utf-8"), re.M | re.S)
    command = blocks[1].strip()
    assert command.startswith("bash .ci/test-setup.sh && . .ci/env && ")
    assert command in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()


def _runtime_dependencies():
    """{name: requirement} of pyproject.toml's [project] dependencies (markers dropped)."""
    import re

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.9/3.10
        import tomli as tomllib
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return {re.split(r"[<>=!~; \[]", spec, maxsplit=1)[0].lower(): spec.split(";")[0].strip()
            for spec in project["dependencies"]}


def test_the_raspberry_pi_install_lists_every_runtime_dependency():
    """The README's Pi section installs pose_fast with --no-deps: its own pip line must install every runtime
    dependency but openvino (the archive's) and numba (optional there), with pyproject's lower bounds."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("# The runtime dependencies, from PyPI")
    line = readme[start:readme.index("\n# pose_fast itself", start)]
    assert line.count("pip install ") == 1, line
    missing = [spec for name, spec in _runtime_dependencies().items()
               if name not in ("openvino", "numba") and f'"{spec}' not in line]
    assert not missing, f"the README's Raspberry Pi pip line lacks {missing}"

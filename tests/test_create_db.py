"""`pose-fast create-db` and `python create_db.py`: create, migrate, idempotent, default path, one-line errors."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner
from support import make_v1_database

from pose_fast.cli.db import create_db
from pose_fast.events import SCHEMA_VERSION, EventStore, read_events

ROOT = Path(__file__).resolve().parents[1]


def run_script(*args, env=None):
    return subprocess.run([sys.executable, "create_db.py", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env=dict(os.environ, **(env or {})))


def test_script_creates_then_is_idempotent(tmp_path):
    path = tmp_path / "new" / "events.sqlite3"
    first = run_script("--db", str(path))
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == f"Events database {path}: created (schema version {SCHEMA_VERSION}), 0 events."
    with EventStore(path) as store:
        store.add("enter", 1, 0, 1.7e9, 1, "cam", "CPU")
    again = run_script("--db", str(path))
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == f"Events database {path}: up to date (schema version {SCHEMA_VERSION}), 1 events."
    assert read_events(path)[1] == 1


def test_migrates_an_older_database(tmp_path):
    path = tmp_path / "v1.db"
    make_v1_database(path, [("enter", 1, "2025-01-01T00:00:00.000Z", "cam", 0, 1, "CPU")])
    result = CliRunner().invoke(create_db, ["--db", str(path)])
    assert result.exit_code == 0, result.output
    assert f"migrated from schema version 1 to {SCHEMA_VERSION}, 1 events." in result.output
    assert read_events(path, kind="enter")[1] == 1


def test_default_path_comes_from_the_environment(tmp_path):
    result = run_script(env={"POSE_FAST_DB": str(tmp_path / "env.db")})
    assert result.returncode == 0, result.stderr
    assert str(tmp_path / "env.db") in result.stdout
    if sys.platform.startswith("linux"):
        env = {"XDG_DATA_HOME": str(tmp_path / "xdg")}
        clean = {k: v for k, v in os.environ.items() if k != "POSE_FAST_DB"}
        result = subprocess.run([sys.executable, "create_db.py"], cwd=ROOT, capture_output=True, text=True,
                                timeout=60, env=dict(clean, **env))
        assert result.returncode == 0, result.stderr
        assert (tmp_path / "xdg" / "pose_fast" / "events.sqlite3").is_file()
    # --db wins over the environment
    result = run_script("--db", str(tmp_path / "flag.db"), env={"POSE_FAST_DB": str(tmp_path / "env2.db")})
    assert result.returncode == 0 and (tmp_path / "flag.db").is_file() and not (tmp_path / "env2.db").exists()


def test_errors_are_one_line_with_exit_code_2(tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("hello\n" * 500)
    result = run_script("--db", str(bad))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"Error: cannot open the events database {bad}: the file is not an SQLite database; use --db/POSE_FAST_DB "
        f"to choose another"]
    assert "Traceback" not in result.stderr

    blocker = tmp_path / "file"
    blocker.write_text("")
    result = run_script("--db", str(blocker / "sub" / "e.db"))  # a folder that cannot be created
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "cannot open the events database" in result.stderr


def test_pose_fast_group_runs_the_command(tmp_path):
    from pose_fast.cli.main import cli

    result = CliRunner().invoke(cli, ["create-db", "--db", str(tmp_path / "x.db")])
    assert result.exit_code == 0, result.output
    assert "created" in result.output and (tmp_path / "x.db").is_file()

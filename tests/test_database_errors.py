"""A database that cannot be reached or opened: one clear line and a non-zero exit, never a traceback.

Covers `python -m litesubs migrate` (what `make run` runs first), `check-config`, and the app's own
start-up (the lifespan migration), each as a real process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.app_server import free_port

UNREACHABLE_POSTGRES = "postgresql://litesubs:hunter2secret@127.0.0.1:1/litesubs"
UNREACHABLE_LINE = (
    "litesubs: database error: cannot use PostgreSQL at 127.0.0.1:1 (database litesubs, user litesubs): "
    'connection to server at "127.0.0.1", port 1 failed: Connection refused'
)


def run(*args: str, **variables: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL")}
    return subprocess.run(
        [sys.executable, "-m", "litesubs", *args],
        env={**env, **variables},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


@pytest.mark.parametrize("command", ["migrate", "check-config"])
def test_unreachable_postgres_is_one_line_naming_host_and_port(command: str) -> None:
    result = run(command, DATABASE_URL=UNREACHABLE_POSTGRES)

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [UNREACHABLE_LINE]
    assert "hunter2secret" not in result.stderr + result.stdout


@pytest.mark.parametrize("command", ["migrate", "check-config"])
def test_an_sqlite_path_that_cannot_be_opened_is_one_line(command: str, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-directory" / "litesubs.db"

    result = run(command, DATABASE_URL=f"sqlite:///{missing}")

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"litesubs: database error: cannot use the SQLite database {missing}: unable to open database file"
    ]


def test_check_config_checks_that_redis_answers(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'litesubs.db'}"

    silent = run("check-config", DATABASE_URL=database, REDIS_URL="redis://:hunter2secret@127.0.0.1:1/0")
    assert silent.returncode == 1
    [line] = silent.stderr.strip().splitlines()
    assert line.startswith("litesubs: Redis at redis://:***@127.0.0.1:1/0 does not answer: ")

    answering = run("check-config", DATABASE_URL=database, REDIS_URL="redis://127.0.0.1:6379/0")
    assert answering.returncode == 0, answering.stderr
    assert answering.stdout.strip() == (
        "Configuration OK: database sqlite answers, Redis answers, payments: test mode (no real payments)."
    )


def test_the_app_stops_at_start_up_with_one_line(tmp_path: Path) -> None:
    venv_bin = Path(sys.executable).parent
    env = {
        **os.environ,
        "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
        "REFLEX_TELEMETRY_ENABLED": "false",
        "DATABASE_URL": UNREACHABLE_POSTGRES,
        "REFLEX_WEB_WORKDIR": str(tmp_path / "web"),
        "REFLEX_STATES_WORKDIR": str(tmp_path / "states"),
    }
    port = str(free_port())
    result = subprocess.run(
        [str(venv_bin / "reflex"), "run", "--env", "prod", "--backend-only", "--backend-port", port],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        cwd=Path(__file__).resolve().parent.parent,
    )

    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert UNREACHABLE_LINE in output.splitlines()
    assert "Traceback" not in output
    assert "hunter2secret" not in output

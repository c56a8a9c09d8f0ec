""".ci/run fails loudly without PostgreSQL or Redis, makes sure the `test` database exists, and runs the tests
with CI=1 (which turns the tests' skips for a missing database into failures).

The services are played by small stand-ins for `pg_isready`, `psql`, `pg_ctlcluster`, `redis-cli`,
`redis-server` and `make` first on PATH, so these tests neither stop nor change the machine's real ones.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from litesubs.settings import REPO_ROOT

ANSWERS = "exit 0"
SILENT = "exit 1"


def run_ci(tmp_path: Path, **tools: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    """Run .ci/run with each tool replaced by a script whose body is given (every call is logged)."""
    bin_dir, calls = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    defaults = {
        "pg_isready": ANSWERS,
        "psql": ANSWERS,
        "pg_ctlcluster": SILENT,
        "redis-cli": ANSWERS,
        "redis-server": ANSWERS,
        "make": 'echo "make CI=$CI $*" >> "$CALLS"',
    }
    for name, body in {**defaults, **tools}.items():
        script = bin_dir / name
        script.write_text(f'#!/usr/bin/env bash\necho "{name} $*" >> "$CALLS"\n{body}\n')
        script.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "CALLS": str(calls)}
    env["CI_SERVICE_WAIT_SECONDS"] = "2"
    env.pop("CI", None)
    result = subprocess.run(
        [str(REPO_ROOT / ".ci" / "run")], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    return result, calls


def test_postgresql_that_never_answers_stops_the_run_with_one_line(tmp_path: Path) -> None:
    result, calls = run_ci(tmp_path, pg_isready=SILENT)

    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith(".ci/run: PostgreSQL")
    assert "make " not in calls.read_text()


def test_redis_that_never_answers_stops_the_run_with_one_line(tmp_path: Path) -> None:
    result, calls = run_ci(tmp_path, **{"redis-cli": SILENT})

    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        ".ci/run: Redis at 127.0.0.1:6379 did not answer within 2s; the tests need it (see README, Tests)."
    )
    assert "redis-server --daemonize yes" in calls.read_text()
    assert "make " not in calls.read_text()


def test_a_missing_test_database_is_created_and_the_tests_run_with_ci_set(tmp_path: Path) -> None:
    result, calls = run_ci(tmp_path, psql='[[ "$*" == *"-d test"* ]] && exit 2; exit 0')

    assert result.returncode == 0, result.stderr
    log = calls.read_text()
    assert "CREATE DATABASE test" in log
    assert log.splitlines()[-1] == "make CI=1 test"

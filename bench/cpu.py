"""CPU time from /proc: of a process tree (the app server and its workers) and of a database's backends.

Throughput on a shared machine swings with whatever else runs; the CPU a request costs hardly does, and on a
machine whose cores the app and the database share, throughput is bounded by it.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import Engine, text

TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    """Seconds of CPU (user and system) a process used so far; 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def session_pids(session_id: int) -> set[int]:
    """Every process of a session (a server started with `start_new_session`: its workers included)."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if int(fields[3]) == session_id:
                pids.add(int(entry.name))
    return pids


def database_backends(engine: Engine) -> set[int]:
    """The backends serving the engine's database, except the one asking."""
    with engine.connect() as connection:
        return set(
            connection.execute(
                text("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
            ).scalars()
        )


class CpuMeter:
    """CPU seconds of the app's processes and of the database's backends between `start` and `stop`."""

    def __init__(self, engine: Engine, app_session: int) -> None:
        self._engine, self._session = engine, app_session

    def start(self) -> None:
        self._app = {pid: process_cpu(pid) for pid in session_pids(self._session)}
        self._database = {pid: process_cpu(pid) for pid in database_backends(self._engine)}

    def stop(self) -> tuple[float, float]:
        """(app seconds, database seconds) since `start`. Processes that started meanwhile count from zero; those
        that ended are left out (what they used is gone from /proc), so a churning pool is undercounted."""
        return _since(session_pids(self._session), self._app), _since(database_backends(self._engine), self._database)


def _since(now_running: set[int], at_start: dict[int, float]) -> float:
    return sum(max(0.0, cpu - at_start.get(pid, 0.0)) for pid in now_running if (cpu := process_cpu(pid)))

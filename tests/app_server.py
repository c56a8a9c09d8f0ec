"""Start the production build of Litesubs on a free port, as users run it (`make serve`)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from litesubs.settings import REPO_ROOT

STARTUP_TIMEOUT_SECONDS = 900


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class AppServer:
    base_url: str
    database_url: str
    process: subprocess.Popen
    log_path: Path

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def start_app_server(
    database_url: str, log_path: Path, work_dir: Path, extra_env: dict[str, str] | None = None
) -> AppServer:
    """Run `reflex run --env prod --single-port` and wait until /api/health answers 200.

    The frontend is built in `work_dir`, not in the checkout's `.web`, so test runs never trip over
    a developer's `make run` or another test run.
    """
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    venv_bin = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
        "REFLEX_USE_NPM": "1",
        "REFLEX_TELEMETRY_ENABLED": "false",
        "DATABASE_URL": database_url,
        "LITESUBS_BASE_URL": base_url,
        "REFLEX_WEB_WORKDIR": str(work_dir / "web"),
        "REFLEX_STATES_WORKDIR": str(work_dir / "states"),
        **(extra_env or {}),
    }
    log = log_path.open("w")
    process = subprocess.Popen(
        [f"{venv_bin}/reflex", "run", "--env", "prod", "--single-port", "--frontend-port", str(port)],
        cwd=REPO_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = AppServer(base_url=base_url, database_url=database_url, process=process, log_path=log_path)
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the app exited with {process.returncode}:\n{server.log_tail()}")
        try:
            if httpx.get(f"{base_url}/api/health", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(1)
    server.stop()
    raise RuntimeError(f"the app did not answer within {STARTUP_TIMEOUT_SECONDS}s:\n{server.log_tail()}")

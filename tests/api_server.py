"""Serve the FastAPI app of `create_api()` over real HTTP, in this process, for tests of the HTTP doors.

Granian (the server Reflex runs on) embedded in a background thread: requests go through a real
socket, concurrent requests run concurrently, and the app reads this process's settings, so a test
switches configuration with environment variables and cache clears. Starts in well under a second,
unlike the full production build of `tests/app_server.py`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from granian.constants import Interfaces
from granian.server.embed import Server

from litesubs.api.app import create_api
from tests.app_server import free_port

STARTUP_TIMEOUT_SECONDS = 20


@contextmanager
def serve_api() -> Iterator[str]:
    """Yield the base URL of the running API; stop it afterwards."""
    port = free_port()
    server = Server(create_api(), address="127.0.0.1", port=port, interface=Interfaces.ASGI, log_enabled=False)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(server.serve(),), name="api-server", daemon=True)
    thread.start()
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_listening(base_url)
        yield base_url
    finally:
        loop.call_soon_threadsafe(server.stop)
        thread.join(timeout=10)
        loop.close()


def wait_until_listening(base_url: str) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{base_url}/api/not-a-route", timeout=1)
        except httpx.TransportError:
            time.sleep(0.05)
        else:
            return
    raise RuntimeError(f"the API did not listen on {base_url} within {STARTUP_TIMEOUT_SECONDS}s")

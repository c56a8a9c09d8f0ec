"""A creator's webhook receiver for tests: a real HTTP server on localhost that checks every delivery's
signature with the `standardwebhooks` package, as the README tells creators to.

Answers are scripted: `answer(status, ...)` queues answers for the next requests; then 200.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError


@dataclass(frozen=True)
class Received:
    """One request as the receiver saw it, and whether it verified with `secret`."""

    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    hold_seconds: float = 0


class Receiver:
    def __init__(self) -> None:
        self.secrets: list[str] = []
        self.received: list[Received] = []
        self._answers: deque[Answer] = deque()
        self._lock = threading.Lock()
        self.url = ""

    def answer(self, status: int, *, times: int = 1, **fields: Any) -> None:
        with self._lock:
            self._answers.extend([Answer(status, **fields)] * times)

    def verify_with(self, *secrets: str) -> None:
        """Check signatures with these secrets: a request verifies if any of them verifies it."""
        self.secrets = list(secrets)

    def verified(self) -> list[Received]:
        return [request for request in self.received if request.verified]

    def types(self) -> list[str]:
        return [request.event["type"] for request in self.verified()]

    def wait_for(self, count: int, *, timeout: float = 10) -> list[Received]:
        """Wait until `count` requests arrived (and return them all)."""
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return list(self.received)

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        body = handler.rfile.read(int(handler.headers.get("content-length", 0)))
        headers = {name.lower(): value for name, value in handler.headers.items()}
        verified = False
        for secret in self.secrets:
            try:
                Webhook(secret).verify(body, headers)
            except WebhookVerificationError:
                continue
            verified = True
        with self._lock:
            self.received.append(Received(handler.path, headers, body, verified))
            answer = self._answers.popleft() if self._answers else Answer(200)
        if answer.hold_seconds:
            time.sleep(answer.hold_seconds)
        handler.send_response(answer.status)
        for name, value in answer.headers.items():
            handler.send_header(name, value)
        handler.send_header("content-length", str(len(answer.body)))
        handler.end_headers()
        handler.wfile.write(answer.body)


@contextmanager
def running_receiver() -> Iterator[Receiver]:
    receiver = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            receiver._handle(self)

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    thread = threading.Thread(target=server.serve_forever, name="webhook-receiver", daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()

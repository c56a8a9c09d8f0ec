"""A small Stripe-compatible server for tests, which the real `stripe` SDK talks to through STRIPE_API_BASE.

It speaks Stripe's wire format (form-encoded requests with bracketed keys, JSON objects and
errors shaped like Stripe's) for the few endpoints Litesubs uses: Checkout Sessions (create,
retrieve, list by payment) and refunds (honouring `Idempotency-Key`). Tests play Stripe's part with
`complete` (the buyer paid) and `dispute`, and build, sign and deliver webhook events with `event`,
`sign` and `deliver`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

import httpx

API_VERSION = "2025-01-27.acacia"


def _new_id(prefix: str) -> str:
    return f"{prefix}_test_{secrets.token_hex(12)}"


def decode_form(body: str) -> dict[str, Any]:
    """Stripe's form encoding back into nested data: `a[b][0][c]=1` → {"a": {"b": [{"c": "1"}]}}."""
    root: dict[str, Any] = {}
    for key, value in parse_qsl(body, keep_blank_values=True):
        parts = re.findall(r"[^\[\]]+", key)
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return _lists_from_indexed_dicts(root)


def _lists_from_indexed_dicts(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    converted = {key: _lists_from_indexed_dicts(item) for key, item in value.items()}
    if converted and all(key.isdigit() for key in converted):
        return [converted[key] for key in sorted(converted, key=int)]
    return converted


@dataclass
class FakeStripe:
    """The server's state: what Litesubs created, and what tests made happen."""

    api_key: str
    base_url: str = ""
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    charges: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    refunds_by_idempotency_key: dict[str, dict[str, Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    # --- What Stripe does when the buyer acts ---------------------------------------------

    def complete(
        self, session_id: str, *, paid: bool = True, amount_total: int | None = None, currency: str | None = None
    ) -> dict[str, Any]:
        """The buyer finished the Checkout page: paid now (card) or later (`paid=False`: a bank debit)."""
        with self.lock:
            session = self.sessions[session_id]
            if amount_total is not None:
                session["amount_total"] = amount_total
            if currency is not None:
                session["currency"] = currency
            session["status"] = "complete"
            session["payment_intent"] = session["payment_intent"] or _new_id("pi")
            if paid:
                self._settle(session)
            return dict(session)

    def pay_later(self, session_id: str) -> dict[str, Any]:
        """The asynchronous payment of a completed session succeeded."""
        with self.lock:
            self._settle(self.sessions[session_id])
            return dict(self.sessions[session_id])

    def charge_of(self, session_id: str) -> dict[str, Any]:
        payment_intent = self.sessions[session_id]["payment_intent"]
        return next(dict(charge) for charge in self.charges.values() if charge["payment_intent"] == payment_intent)

    def dispute(self, session_id: str, *, status: str = "needs_response", reason: str = "fraudulent") -> dict[str, Any]:
        """The buyer's bank disputes the session's charge (a chargeback); `status` `won` or `lost` once closed."""
        charge = self.charge_of(session_id)
        return {
            "id": f"dp_{charge['id']}",
            "object": "dispute",
            "amount": charge["amount"],
            "charge": charge["id"],
            "currency": charge["currency"],
            "payment_intent": charge["payment_intent"],
            "reason": reason,
            "status": status,
        }

    def _settle(self, session: dict[str, Any]) -> None:
        session["payment_status"] = "paid"
        charge_id = _new_id("ch")
        self.charges[charge_id] = {
            "id": charge_id,
            "object": "charge",
            "amount": session["amount_total"],
            "amount_refunded": 0,
            "currency": session["currency"],
            "paid": True,
            "payment_intent": session["payment_intent"],
            "refunded": False,
            "status": "succeeded",
        }

    # --- Webhook events -------------------------------------------------------------------

    @staticmethod
    def event(event_type: str, data_object: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": _new_id("evt"),
            "object": "event",
            "api_version": API_VERSION,
            "created": int(time.time()),
            "data": {"object": data_object},
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": event_type,
        }

    @staticmethod
    def sign(payload: str, secret: str, *, timestamp: int | None = None) -> str:
        """Stripe's signature header: `t=<unix>,v1=<hex HMAC-SHA256 of "t.payload">`."""
        timestamp = int(time.time()) if timestamp is None else timestamp
        digest = hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256).hexdigest()
        return f"t={timestamp},v1={digest}"

    @classmethod
    def deliver(
        cls, url: str, event: dict[str, Any], *, secret: str | None, timestamp: int | None = None
    ) -> httpx.Response:
        """POST the event as Stripe does, signed with `secret` (unsigned when None)."""
        payload = json.dumps(event)
        headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "Stripe/1.0"}
        if secret is not None:
            headers["Stripe-Signature"] = cls.sign(payload, secret, timestamp=timestamp)
        return httpx.post(url, content=payload.encode(), headers=headers, timeout=30)

    # --- The API --------------------------------------------------------------------------

    def handle(
        self, method: str, path: str, params: dict[str, Any], idempotency_key: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.requests.append((method, path, params))
            if (method, path) == ("POST", "/v1/checkout/sessions"):
                return 200, self._create_session(params)
            if (method, path) == ("GET", "/v1/checkout/sessions"):
                found = [s for s in self.sessions.values() if s["payment_intent"] == params.get("payment_intent")]
                return 200, {"object": "list", "data": found[:1], "has_more": False, "url": path}
            if method == "GET" and path.startswith("/v1/checkout/sessions/"):
                return self._found("checkout.session", self.sessions.get(path.rsplit("/", 1)[1]), "id")
            if (method, path) == ("POST", "/v1/refunds"):
                if idempotency_key in self.refunds_by_idempotency_key:
                    return 200, self.refunds_by_idempotency_key[idempotency_key]
                status, refund = self._refund(params)
                if status == 200 and idempotency_key is not None:
                    self.refunds_by_idempotency_key[idempotency_key] = refund
                return status, refund
        return 404, _error(f"Unrecognized request URL ({method}: {path}).", param=None)

    def _create_session(self, params: dict[str, Any]) -> dict[str, Any]:
        items = params["line_items"]
        session_id = _new_id("cs")
        session = {
            "id": session_id,
            "object": "checkout.session",
            "amount_total": sum(int(i["price_data"]["unit_amount"]) * int(i.get("quantity", 1)) for i in items),
            "cancel_url": params["cancel_url"],
            "client_reference_id": params.get("client_reference_id"),
            "created": int(time.time()),
            "currency": items[0]["price_data"]["currency"],
            "customer_email": params.get("customer_email"),
            "livemode": False,
            "metadata": params.get("metadata", {}),
            "mode": params["mode"],
            "payment_intent": None,
            "payment_status": "unpaid",
            "status": "open",
            "success_url": params["success_url"],
            "url": f"{self.base_url}/c/pay/{session_id}",
        }
        self.sessions[session_id] = session
        return session

    def _refund(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        charge = next((c for c in self.charges.values() if c["payment_intent"] == params.get("payment_intent")), None)
        if charge is None:
            return 404, _error(f"No such payment_intent: '{params.get('payment_intent')}'", param="payment_intent")
        amount = int(params.get("amount", charge["amount"] - charge["amount_refunded"]))
        if amount > charge["amount"] - charge["amount_refunded"]:
            return 400, _error("Refund amount is greater than the unrefunded amount.", param="amount", code=None)
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] == charge["amount"]
        refund = {
            "id": _new_id("re"),
            "object": "refund",
            "amount": amount,
            "charge": charge["id"],
            "currency": charge["currency"],
            "payment_intent": charge["payment_intent"],
            "status": "succeeded",
        }
        return 200, refund

    @staticmethod
    def _found(kind: str, found: dict[str, Any] | None, param: str) -> tuple[int, dict[str, Any]]:
        if found is None:
            return 404, _error(f"No such {kind}", param=param)
        return 200, found


def _error(message: str, *, param: str | None, code: str | None = "resource_missing") -> dict[str, Any]:
    return {"error": {"type": "invalid_request_error", "code": code, "message": message, "param": param}}


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self._answer("GET", decode_form(self.path.partition("?")[2]))

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        self._answer("POST", decode_form(body))

    def _answer(self, method: str, params: dict[str, Any]) -> None:
        stripe = self.server.stripe
        if self.headers.get("Authorization") != f"Bearer {stripe.api_key}":
            status, body = 401, {"error": {"type": "invalid_request_error", "message": "Invalid API Key provided."}}
        else:
            path = self.path.split("?", 1)[0]
            status, body = stripe.handle(method, path, params, self.headers.get("Idempotency-Key"))
        encoded = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(encoded)))
        self.send_header("Request-Id", _new_id("req"))
        self.end_headers()
        self.wfile.write(encoded)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read `FakeStripe.requests` instead."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    stripe: FakeStripe


def start_stripe_server(api_key: str) -> tuple[FakeStripe, ThreadingHTTPServer]:
    """Serve a fresh FakeStripe on a free local port in a background thread; call `shutdown()` to stop."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.stripe = FakeStripe(api_key=api_key, base_url=f"http://127.0.0.1:{server.server_address[1]}")
    threading.Thread(target=server.serve_forever, name="fake-stripe", daemon=True).start()
    return server.stripe, server

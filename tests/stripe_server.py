"""A small Stripe-compatible server for tests, which the real `stripe` SDK talks to through STRIPE_API_BASE.

It speaks Stripe's wire format (form-encoded requests with bracketed keys, JSON objects and
errors shaped like Stripe's) for the few endpoints Litesubs uses: Checkout Sessions (create,
retrieve, list by payment) and refunds (honouring `Idempotency-Key`). Tests play Stripe's part with
`complete` (the buyer paid) and `dispute`, and build, sign and deliver webhook events with `event`,
`sign` and `deliver`.

Connect: Express accounts (create, retrieve), account links, login links, the `Stripe-Account`
header (a connected account's sessions, charges and refunds are visible only through it) and
application fees. Tests play the creator's part at Stripe's onboarding with `finish_onboarding`,
`ask_for`, `pause_payouts`, and make Stripe refuse the next Connect request with `refuse_next`.
Stripe's hosted pages (onboarding, Express dashboard, Checkout) are tiny HTML pages linking back.
"""

from __future__ import annotations

import hashlib
import hmac
import html
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
    # The Stripe-Account header of each request in `requests` (None: the platform's own account).
    request_accounts: list[str | None] = field(default_factory=list)
    accounts: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The account each session, charge and refund lives on (None: the platform's own).
    owners: dict[str, str | None] = field(default_factory=dict)
    # Application fees asked for per session, in minor units.
    fees: dict[str, int] = field(default_factory=dict)
    # Account links handed out: link id -> (account, return_url, refresh_url).
    links: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    refusal: str | None = None
    # Refunds made per (account, Idempotency-Key): Stripe scopes idempotency keys to the account.
    refunds_by_idempotency_key: dict[tuple[str | None, str], dict[str, Any]] = field(default_factory=dict)
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
            "application_fee_amount": self.fees.get(session["id"]),
            "currency": session["currency"],
            "paid": True,
            "payment_intent": session["payment_intent"],
            "refunded": False,
            "status": "succeeded",
        }
        self.owners[charge_id] = self.owners.get(session["id"])

    # --- What Stripe does when a creator onboards (Connect) -------------------------------

    def finish_onboarding(self, account_id: str, *, payouts: bool = True) -> dict[str, Any]:
        """The creator gave Stripe everything: the account takes charges (and is paid out unless `payouts=False`)."""
        with self.lock:
            account = self.accounts[account_id]
            account.update(charges_enabled=True, payouts_enabled=payouts, details_submitted=True)
            account["requirements"] = _requirements([], disabled_reason=None)
            return dict(account)

    def ask_for(self, account_id: str, due: list[str], *, details_submitted: bool = True) -> dict[str, Any]:
        """Stripe needs more before the account can take charges."""
        with self.lock:
            account = self.accounts[account_id]
            account.update(charges_enabled=False, payouts_enabled=False, details_submitted=details_submitted)
            account["requirements"] = _requirements(due, disabled_reason="requirements.past_due")
            return dict(account)

    def pause_payouts(self, account_id: str, due: list[str]) -> dict[str, Any]:
        """Sales still work, but Stripe holds the account's payouts until it gets `due`."""
        with self.lock:
            account = self.accounts[account_id]
            account.update(charges_enabled=True, payouts_enabled=False, details_submitted=True)
            account["requirements"] = _requirements(due, disabled_reason=None)
            return dict(account)

    def refuse_next(self, message: str) -> None:
        """The next Connect request (account, account link or login link) fails with Stripe's `message`."""
        with self.lock:
            self.refusal = message

    def account_for(self, email: str) -> dict[str, Any] | None:
        """The connected account Litesubs created for the creator with this email, if any."""
        with self.lock:
            return next((dict(a) for a in self.accounts.values() if a["email"] == email), None)

    # --- Webhook events -------------------------------------------------------------------

    @staticmethod
    def event(event_type: str, data_object: dict[str, Any], *, account: str | None = None) -> dict[str, Any]:
        """An event as Stripe sends it; a Connect event names the connected `account` it happened on."""
        event = {
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
        if account is not None:
            event["account"] = account
        return event

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
        self,
        method: str,
        path: str,
        params: dict[str, Any],
        account: str | None = None,
        idempotency_key: str | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """Answer one API request; `account` is its Stripe-Account header (acting on a connected account)."""
        with self.lock:
            self.requests.append((method, path, params))
            self.request_accounts.append(account)
            if account is not None and account not in self.accounts:
                return 403, _error(f"No such account: '{account}'", param=None, code="account_invalid")
            if path.startswith(("/v1/accounts", "/v1/account_links")):
                return self._connect(method, path, params)
            if (method, path) == ("POST", "/v1/checkout/sessions"):
                return 200, self._create_session(params, account)
            if (method, path) == ("GET", "/v1/checkout/sessions"):
                found = [
                    s
                    for s in self.sessions.values()
                    if s["payment_intent"] == params.get("payment_intent") and self.owners.get(s["id"]) == account
                ]
                return 200, {"object": "list", "data": found[:1], "has_more": False, "url": path}
            if method == "GET" and path.startswith("/v1/checkout/sessions/"):
                session_id = path.rsplit("/", 1)[1]
                return self._found("checkout.session", self._owned(self.sessions, session_id, account), "id")
            if (method, path) == ("POST", "/v1/refunds"):
                key = (account, idempotency_key) if idempotency_key is not None else None
                if key in self.refunds_by_idempotency_key:
                    return 200, self.refunds_by_idempotency_key[key]
                status, refund = self._refund(params, account)
                if status == 200 and key is not None:
                    self.refunds_by_idempotency_key[key] = refund
                return status, refund
        return 404, _error(f"Unrecognized request URL ({method}: {path}).", param=None)

    def _owned(self, objects: dict[str, dict[str, Any]], object_id: str, account: str | None) -> dict[str, Any] | None:
        """The object if it lives on `account`: Stripe shows a connected account's objects only through its header."""
        found = objects.get(object_id)
        return found if found is not None and self.owners.get(object_id) == account else None

    def _connect(self, method: str, path: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if self.refusal is not None:
            message, self.refusal = self.refusal, None
            return 400, _error(message, param=None, code=None)
        parts = path.strip("/").split("/")
        if (method, path) == ("POST", "/v1/accounts"):
            return 200, self._create_account(params)
        if (method, path) == ("POST", "/v1/account_links"):
            return self._account_link(params)
        if method == "GET" and len(parts) == 3:
            return self._found("account", self.accounts.get(parts[2]), "account")
        if method == "POST" and len(parts) == 4 and parts[3] == "login_links":
            return self._login_link(parts[2])
        return 404, _error(f"Unrecognized request URL ({method}: {path}).", param=None)

    def _create_account(self, params: dict[str, Any]) -> dict[str, Any]:
        account_id = _new_id("acct")
        account = {
            "id": account_id,
            "object": "account",
            "type": params.get("type"),
            "email": params.get("email"),
            "capabilities": {name: "inactive" for name in params.get("capabilities", {})},
            "charges_enabled": False,
            "payouts_enabled": False,
            "details_submitted": False,
            "metadata": params.get("metadata", {}),
            "requirements": _requirements(
                ["business_type", "external_account", "individual.dob.day", "tos_acceptance.date"],
                disabled_reason="requirements.past_due",
            ),
        }
        self.accounts[account_id] = account
        return account

    def _account_link(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        account_id = params.get("account", "")
        if account_id not in self.accounts:
            return 400, _error(f"No such account: '{account_id}'", param="account")
        if params.get("type") != "account_onboarding" or not params.get("return_url") or not params.get("refresh_url"):
            return 400, _error("type, return_url and refresh_url are required.", param="type", code="parameter_missing")
        link_id = secrets.token_hex(8)
        self.links[link_id] = (account_id, params["return_url"], params["refresh_url"])
        now = int(time.time())
        return 200, {
            "object": "account_link",
            "created": now,
            "expires_at": now + 300,
            "url": f"{self.base_url}/setup/e/{link_id}",
        }

    def _login_link(self, account_id: str) -> tuple[int, dict[str, Any]]:
        account = self.accounts.get(account_id)
        if account is None:
            return 404, _error(f"No such account: '{account_id}'", param="account")
        if not account["details_submitted"]:
            return 400, _error(
                "Cannot create a login link for an account that has not completed onboarding.", param=None, code=None
            )
        return 200, {
            "object": "login_link",
            "created": int(time.time()),
            "url": f"{self.base_url}/express/{account_id}",
        }

    def hosted_page(self, path: str) -> str | None:
        """Stripe's pages a browser is sent to, as a few words and a way back; None for any other path."""
        with self.lock:
            parts = path.strip("/").split("/")
            if parts[:2] == ["setup", "e"] and len(parts) == 3 and parts[2] in self.links:
                account_id, return_url, refresh_url = self.links[parts[2]]
                return _page(
                    f"Stripe onboarding for {account_id}",
                    ("Return to the platform", return_url),
                    ("Link expired", refresh_url),
                )
            if parts[0] == "express" and len(parts) == 2 and parts[1] in self.accounts:
                return _page(f"Stripe Express dashboard of {parts[1]}")
            if parts[:2] == ["c", "pay"] and len(parts) == 3 and parts[2] in self.sessions:
                session = self.sessions[parts[2]]
                return _page(f"Stripe Checkout {session['id']}", ("Back", session["cancel_url"]))
        return None

    def _create_session(self, params: dict[str, Any], account: str | None = None) -> dict[str, Any]:
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
        self.owners[session_id] = account
        fee = (params.get("payment_intent_data") or {}).get("application_fee_amount")
        if fee is not None:
            self.fees[session_id] = int(fee)
        return session

    def _refund(self, params: dict[str, Any], account: str | None = None) -> tuple[int, dict[str, Any]]:
        charge = next(
            (
                c
                for c in self.charges.values()
                if c["payment_intent"] == params.get("payment_intent") and self.owners.get(c["id"]) == account
            ),
            None,
        )
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


def _requirements(due: list[str], *, disabled_reason: str | None) -> dict[str, Any]:
    return {
        "currently_due": list(due),
        "eventually_due": list(due),
        "past_due": [],
        "pending_verification": [],
        "disabled_reason": disabled_reason,
    }


def _page(title: str, *links: tuple[str, str]) -> str:
    anchors = "".join(f'<p><a href="{html.escape(url)}">{html.escape(text)}</a></p>' for text, url in links)
    heading = html.escape(title)
    return f"<!doctype html><html><head><title>{heading}</title></head><body><h1>{heading}</h1>{anchors}</body></html>"


def _error(message: str, *, param: str | None, code: str | None = "resource_missing") -> dict[str, Any]:
    return {"error": {"type": "invalid_request_error", "code": code, "message": message, "param": param}}


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        if path == "/favicon.ico":
            self._send(204, b"", "image/x-icon")
            return
        page = self.server.stripe.hosted_page(path)
        if page is not None:
            self._send(200, page.encode(), "text/html; charset=utf-8")
            return
        self._answer("GET", decode_form(query))

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        self._answer("POST", decode_form(body))

    def _answer(self, method: str, params: dict[str, Any]) -> None:
        stripe = self.server.stripe
        if self.headers.get("Authorization") != f"Bearer {stripe.api_key}":
            status, body = 401, {"error": {"type": "invalid_request_error", "message": "Invalid API Key provided."}}
        else:
            status, body = stripe.handle(
                method,
                self.path.split("?", 1)[0],
                params,
                self.headers.get("Stripe-Account") or None,
                self.headers.get("Idempotency-Key"),
            )
        self._send(status, json.dumps(body).encode(), "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Request-Id", _new_id("req"))
        self.end_headers()
        self.wfile.write(body)

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

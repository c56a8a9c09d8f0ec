"""The buyer's path: pack page, test-mode checkout, success page and wallet. Thin doors into payments/."""

from __future__ import annotations

from typing import TypedDict
from urllib.parse import quote

import reflex as rx

from litesubs import routes
from litesubs.formatting import format_count, iso, last_valid_day
from litesubs.payments import checkout
from litesubs.services.errors import DomainError, NotFound, Unauthorized
from litesubs.services.money import format_money
from litesubs.services.packs import public_pack
from litesubs.services.wallet import WalletAccount, wallet_for_buyer
from litesubs.settings import get_settings
from litesubs.state.session import SessionState

KIND_LABELS = {
    "purchase": "Purchase",
    "adjustment": "Adjustment",
    "debit": "Spent",
    "hold": "Held",
    "capture": "Captured",
    "release": "Released",
    "credit": "Granted",
    "refund": "Refund",
    "expiry": "Expired",
    "dispute": "Dispute",
}


def _summary(summary: checkout.CheckoutSummary) -> dict:
    return {
        "session_id": summary.session_id,
        "status": summary.status,
        "pack_public_id": summary.pack_public_id,
        "pack_href": f"{routes.BUY}/{summary.pack_public_id}",
        "pack_name": summary.pack_name,
        "creator_name": summary.creator_name,
        "price": format_money(summary.amount, summary.currency),
        "credits": format_count(summary.credits),
        "balance": format_count(summary.balance),
    }


class BuyState(SessionState):
    """`/buy/[public_id]`: anyone may look; buying needs an account."""

    found: bool = True
    loaded: bool = False
    pack: dict = {}
    blocker: str = ""
    own_pack: bool = False
    prompt: bool = False
    busy: bool = False
    test_mode: bool = True

    def _public_id(self) -> str:
        return str(self.router.page.params.get("public_id", ""))

    @rx.event
    def load(self) -> None:
        viewer = self._page_user()
        self.loaded, self.busy, self.test_mode = False, False, get_settings().test_mode
        try:
            offer = public_pack(public_id=self._public_id())
        except NotFound:
            self.found, self.pack, self.loaded = False, {}, True
            return
        here = f"{routes.BUY}/{offer.public_id}"
        self.found = True
        self.pack = {
            "name": offer.name,
            "description": offer.description,
            "creator_name": offer.creator_name,
            "price": format_money(offer.price_amount, offer.currency),
            "credits": format_count(offer.credits),
            "expiry": f"Credits valid through {last_valid_day(offer.expires_at)}" if offer.expires_at else "",
            "status": offer.status,
            "register_href": f"{routes.REGISTER}?next={quote(here + '?buy=1', safe='')}",
            "login_href": f"{routes.LOGIN}?next={quote(here + '?buy=1', safe='')}",
        }
        self.blocker = checkout.purchase_blocker(buyer_id=viewer.id if viewer else None, pack=offer) or ""
        self.own_pack = viewer is not None and viewer.id == offer.creator_id
        self.prompt = viewer is not None and self.router.url.query_parameters.get("buy") == "1" and not self.blocker
        self.loaded = True

    @rx.event
    def buy(self) -> rx.event.EventSpec | None:
        try:
            user = self._require_user()
            url = checkout.start_checkout(buyer_id=user.id, public_id=self._public_id())
        except Unauthorized:
            return self._login_redirect()
        except DomainError as error:
            self.blocker = error.message
            return rx.toast.error(error.message)
        self.busy = True
        # In this tab, also for Stripe's page on another host (Reflex then assigns window.location):
        # `is_external=True` would open a new tab, which popup blockers stop after the websocket round trip.
        return rx.redirect(url)


class TestCheckoutState(SessionState):
    """`/checkout/[session_id]`: the in-app checkout of test mode."""

    found: bool = True
    loaded: bool = False
    checkout: dict = {}
    paying: bool = False

    def _session_id(self) -> str:
        return str(self.router.page.params.get("session_id", ""))

    @rx.event
    def load(self) -> rx.event.EventSpec | None:
        user = self._page_user()
        if user is None:
            return self._login_redirect()
        self.paying = False
        try:
            self.checkout = _summary(checkout.get_test_checkout(buyer_id=user.id, session_id=self._session_id()))
            self.found = True
        except NotFound:
            self.found, self.checkout = False, {}
        self.loaded = True
        return None

    @rx.event
    def pay(self) -> rx.event.EventSpec | None:
        try:
            user = self._require_user()
            summary = checkout.pay_test_checkout(buyer_id=user.id, session_id=self._session_id())
        except Unauthorized:
            return self._login_redirect()
        except DomainError as error:
            return rx.toast.error(error.message)
        self.paying = True
        return rx.redirect(f"{routes.CHECKOUT_SUCCESS}?session_id={quote(summary.session_id)}")

    @rx.event
    def cancel(self) -> rx.event.EventSpec | None:
        try:
            user = self._require_user()
            public_id = checkout.cancel_test_checkout(buyer_id=user.id, session_id=self._session_id())
        except Unauthorized:
            return self._login_redirect()
        except DomainError as error:
            return rx.toast.error(error.message)
        return rx.redirect(f"{routes.BUY}/{public_id}")


class CheckoutSuccessState(SessionState):
    """`/checkout/success?session_id=...`: settles the checkout if paid and shows the new balance."""

    found: bool = True
    loaded: bool = False
    checkout: dict = {}

    @rx.event
    def load(self) -> rx.event.EventSpec | None:
        user = self._page_user()
        if user is None:
            return self._login_redirect()
        session_id = self.router.url.query_parameters.get("session_id", "")
        try:
            self.checkout = _summary(checkout.fulfil_session_id(buyer_id=user.id, session_id=session_id))
            self.found = True
        except NotFound:
            self.found, self.checkout = False, {}
        except DomainError as error:
            self.found, self.checkout = True, {"status": "unavailable", "message": error.message}
        self.loaded = True
        return None


class WalletLotView(TypedDict):
    remaining: str
    granted: str
    source: str
    expires_at: str


class WalletPurchaseView(TypedDict):
    pack_name: str
    price: str
    credits: str
    status: str
    date: str


class WalletEntryView(TypedDict):
    when: str
    what: str
    delta: str
    positive: bool
    reason: str
    balance_after: str


class BuyAgainView(TypedDict):
    public_id: str
    name: str
    label: str


class WalletAccountView(TypedDict):
    creator_name: str
    status: str
    balance: str
    buy_again: list[BuyAgainView]
    lots: list[WalletLotView]
    purchases: list[WalletPurchaseView]
    entries: list[WalletEntryView]


def _account(account: WalletAccount) -> WalletAccountView:
    return {
        "creator_name": account.creator_name,
        "status": account.status,
        "balance": format_count(account.balance),
        "buy_again": [
            {
                "public_id": pack.public_id,
                "name": pack.name,
                "label": f"{format_count(pack.credits)} credits · {format_money(pack.price_amount, pack.currency)}",
            }
            for pack in account.buy_again
        ],
        "lots": [
            {
                "remaining": format_count(lot.remaining),
                "granted": format_count(lot.granted),
                "source": "Purchased" if lot.source == "purchase" else "Granted",
                "expires_at": iso(lot.expires_at),
            }
            for lot in account.lots
        ],
        "purchases": [
            {
                "pack_name": p.pack_name,
                "price": format_money(p.amount, p.currency),
                "credits": format_count(p.credits),
                "status": p.status,
                "date": iso(p.paid_at or p.created_at),
            }
            for p in account.purchases
        ],
        "entries": [
            {
                "when": iso(e.created_at),
                "what": KIND_LABELS.get(e.kind, e.kind),
                "delta": f"{e.delta:+,}",
                "positive": e.delta > 0,
                "reason": e.reason,
                "balance_after": format_count(e.balance_after),
            }
            for e in account.recent_entries
        ],
    }


class WalletState(SessionState):
    """`/wallet`: the signed-in buyer's credits with every creator."""

    loaded: bool = False
    accounts: list[WalletAccountView] = []
    buying: str = ""  # the pack whose checkout is opening

    @rx.event
    def load(self) -> rx.event.EventSpec | None:
        user = self._page_user()
        if user is None:
            return self._login_redirect()
        self.accounts = [_account(account) for account in wallet_for_buyer(buyer_id=user.id)]
        self.buying = ""
        self.loaded = True
        return None

    @rx.event
    def buy_again(self, public_id: str) -> rx.event.EventSpec | None:
        """Straight into checkout for a pack bought before (the checkout re-checks that it is on sale)."""
        try:
            user = self._require_user()
            url = checkout.start_checkout(buyer_id=user.id, public_id=str(public_id))
        except Unauthorized:
            return self._login_redirect()
        except DomainError as error:
            return rx.toast.error(error.message)
        self.buying = str(public_id)
        return rx.redirect(url)

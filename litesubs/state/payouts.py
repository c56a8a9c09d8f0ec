"""`/dashboard/payouts` ("Get paid", platform mode): connect a Stripe account, see its state, open its dashboard."""

from __future__ import annotations

import reflex as rx

from litesubs.payments import connect
from litesubs.services.errors import DomainError, NotFound, Unauthorized
from litesubs.state.session import SessionState


class PayoutsState(SessionState):
    loaded: bool = False
    # not_connected, details_needed, ready, payouts_paused; "unavailable" outside platform mode.
    state: str = "not_connected"
    still_needed: list[str] = []
    can_open_dashboard: bool = False
    fee_note: str = ""
    error: str = ""
    busy: bool = False

    def _show(self, setup: connect.PayoutSetup) -> None:
        self.state = setup.state
        self.still_needed = list(setup.still_needed)
        self.can_open_dashboard = setup.details_submitted

    @rx.event
    def load(self) -> rx.event.EventSpec | None:
        user = self._page_user()
        if user is None:
            return self._login_redirect()
        self.error, self.busy = "", False
        onboarding = self.router.url.query_parameters.get("onboarding", "")
        try:
            if onboarding == "refresh":  # Stripe's link expired or was used: straight back with a new one
                return rx.redirect(connect.start_onboarding(creator_id=user.id))
            setup, self.error = connect.setup_for_page(creator_id=user.id, back_from_stripe=onboarding == "return")
            self._show(setup)
        except NotFound:
            self.state = "unavailable"
        except DomainError as error:  # the refresh link could not be renewed: show where things stand
            self.error = error.message
            self._show(connect.payout_setup(creator_id=user.id))
        self.fee_note = connect.fee_note()
        self.loaded = True
        return None

    @rx.event
    def start_onboarding(self) -> rx.event.EventSpec | None:
        """Connect with Stripe (or continue where the creator left off): off to Stripe's hosted onboarding."""
        try:
            user = self._require_user()
            url = connect.start_onboarding(creator_id=user.id)
        except Unauthorized:
            return self._login_redirect()
        except DomainError as error:
            self.error = error.message
            self._show(connect.payout_setup(creator_id=user.id))
            return None
        self.busy, self.error = True, ""
        return rx.redirect(url)

    @rx.event
    def open_dashboard(self) -> rx.event.EventSpec | None:
        try:
            user = self._require_user()
            url = connect.dashboard_link(creator_id=user.id)
        except Unauthorized:
            return self._login_redirect()
        except DomainError as error:
            self.error = error.message
            return None
        self.error = ""
        return rx.redirect(url)

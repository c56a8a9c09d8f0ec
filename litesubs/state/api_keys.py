"""`/dashboard/api-keys`: the creator's API keys (create, show the secret once, revoke) and how to call the API."""

from __future__ import annotations

from urllib.parse import quote

import reflex as rx

from litesubs.api.v1 import PREFIX
from litesubs.formatting import iso
from litesubs.models import ApiKey
from litesubs.services import api_keys
from litesubs.services.customer_accounts import page_customers
from litesubs.services.errors import DomainError, InvalidRequest, Unauthorized
from litesubs.settings import get_settings
from litesubs.state.session import SessionState

EXAMPLE_EMAIL = "buyer@example.com"


def _row(key: ApiKey) -> dict:
    return {
        "id": key.id,
        "name": key.name,
        "prefix": key.prefix + "…",
        "created": iso(key.created_at),
        "last_used": iso(key.last_used_at),
        "status": "revoked" if key.revoked_at else "active",
    }


def curl_example(*, base_url: str, email: str) -> str:
    """Two calls a creator can paste into a terminal: read a customer, then spend one credit safely."""
    customer_url = f"{base_url}{PREFIX}/customers/{quote(email, safe='@+')}"
    return (
        f'curl "{customer_url}" \\\n'
        '  -H "Authorization: Bearer $LITESUBS_API_KEY"\n\n'
        f'curl -X POST "{customer_url}/debit" \\\n'
        '  -H "Authorization: Bearer $LITESUBS_API_KEY" \\\n'
        '  -H "Idempotency-Key: $(uuidgen)" \\\n'
        '  -H "Content-Type: application/json" \\\n'
        '  -d \'{"amount": 1, "reason": "One report generated"}\''
    )


class ApiKeysState(SessionState):
    keys: list[dict] = []
    loaded: bool = False
    create_open: bool = False
    create_errors: dict[str, str] = {}
    create_form_key: int = 0
    # The new key's secret, shown once: it stays in this tab's state only until its dialog closes.
    new_secret: str = ""
    new_key_name: str = ""
    secret_open: bool = False
    example: str = ""

    def _reload(self, creator_id: int) -> None:
        self.keys = [_row(key) for key in api_keys.list_keys(creator_id=creator_id)]
        newest = page_customers(creator_id=creator_id, limit=1).customers
        self.example = curl_example(
            base_url=get_settings().base_url, email=newest[0].email if newest else EXAMPLE_EMAIL
        )
        self.loaded = True

    @rx.event
    def load(self) -> rx.event.EventSpec | None:
        user = self._page_user()
        if user is None:
            return self._login_redirect()
        self.create_open, self.secret_open, self.new_secret = False, False, ""
        self._reload(user.id)
        return None

    @rx.event
    def open_create(self) -> None:
        self.create_errors = {}
        self.create_form_key += 1
        self.create_open = True

    @rx.event
    def set_create_open(self, is_open: bool) -> None:
        self.create_open = bool(is_open)

    @rx.event
    def create(self, form: dict[str, str]) -> rx.event.EventSpec | None:
        try:
            user = self._require_user()
            key, secret = api_keys.create_key(creator_id=user.id, name=str(form.get("name", "")))
        except Unauthorized:
            return self._login_redirect()
        except InvalidRequest as error:
            self.create_errors = {error.field: error.message}
            return None
        except DomainError as error:
            return rx.toast.error(error.message)
        self.create_open = False
        self.new_secret, self.new_key_name, self.secret_open = secret, key.name, True
        self._reload(user.id)
        return None

    @rx.event
    def set_secret_open(self, is_open: bool) -> None:
        """Closing the dialog forgets the secret for good."""
        self.secret_open = bool(is_open)
        if not self.secret_open:
            self.new_secret = ""

    @rx.event
    def revoke(self, key_id: int) -> rx.event.EventSpec | None:
        try:
            user = self._require_user()
            key = api_keys.revoke_key(creator_id=user.id, key_id=int(key_id))
        except Unauthorized:
            return self._login_redirect()
        except DomainError as error:
            return rx.toast.error(error.message)
        self._reload(user.id)
        return rx.toast.success(f'"{key.name}" is revoked: requests with it now get 401.')

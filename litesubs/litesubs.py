"""The Reflex app: pages and the mounted HTTP API, nothing else."""

import sys

import reflex as rx

from litesubs import routes
from litesubs.api.app import ApiV1Direct, create_api, mounted_api_v1
from litesubs.api.cors import ApiV1Cors
from litesubs.pages.account import account_page
from litesubs.pages.api_keys import api_keys_page
from litesubs.pages.auth import (
    forgot_password_page,
    login_page,
    register_page,
    reset_password_page,
    verify_email_page,
)
from litesubs.pages.buying import buy_page, checkout_success_page, test_checkout_page, wallet_page
from litesubs.pages.customers import customer_page, customers_page
from litesubs.pages.dashboard import dashboard_page
from litesubs.pages.landing import landing
from litesubs.pages.packs import packs_page
from litesubs.pages.payouts import payouts_page
from litesubs.pages.webhooks import webhooks_page
from litesubs.startup import migrate_on_start, settings_or_exit
from litesubs.state.api_keys import ApiKeysState
from litesubs.state.auth import (
    AccountSettingsState,
    AuthFormState,
    ForgotPasswordState,
    ResetPasswordState,
    VerifyEmailState,
)
from litesubs.state.buying import BuyState, CheckoutSuccessState, TestCheckoutState, WalletState
from litesubs.state.customers import CustomersState, CustomerState
from litesubs.state.dashboard import DashboardState
from litesubs.state.packs import PacksState
from litesubs.state.payouts import PayoutsState
from litesubs.state.session import SessionState
from litesubs.state.webhooks import WebhooksState
from litesubs.worker import embedded_worker

settings_or_exit()
# API requests run in worker threads that mostly wait on PostgreSQL. When a reply arrives, often to a thread
# holding a customer's row lock, it gets the interpreter within 0.5 ms instead of Python's default 5 ms
# (measured under load on 2 cores: ~15 % more debits a second; see bench/README.md).
sys.setswitchinterval(0.0005)


class LitesubsApp(rx.App):
    """Reflex's app, wrapped in API v1's own CORS rules (outside Reflex's CORS middleware, see `ApiV1Cors`), with
    API v1's requests going straight to its app (`ApiV1Direct`)."""

    def __call__(self) -> ApiV1Cors:
        return ApiV1Cors(ApiV1Direct(super().__call__(), mounted_api_v1(self.api_transformer)))


app = LitesubsApp(stylesheets=["/styles.css"], api_transformer=create_api())
app.register_lifespan_task(migrate_on_start)
app.register_lifespan_task(embedded_worker)

app.add_page(
    landing, route=routes.LANDING, title="Litesubs — sell prepaid credit packs", on_load=SessionState.load_viewer
)
app.add_page(
    register_page, route=routes.REGISTER, title="Create your account · Litesubs", on_load=AuthFormState.open_form
)
app.add_page(login_page, route=routes.LOGIN, title="Sign in · Litesubs", on_load=AuthFormState.open_form)
app.add_page(
    forgot_password_page,
    route=routes.FORGOT_PASSWORD,
    title="Forgot password · Litesubs",
    on_load=ForgotPasswordState.open_form,
)
app.add_page(
    reset_password_page,
    route=routes.RESET_PASSWORD,
    title="Choose a new password · Litesubs",
    on_load=ResetPasswordState.check_link,
)
app.add_page(
    verify_email_page, route=routes.VERIFY_EMAIL, title="Confirm your email · Litesubs", on_load=VerifyEmailState.verify
)

app.add_page(dashboard_page, route=routes.DASHBOARD, title="Overview · Litesubs", on_load=DashboardState.load)
app.add_page(packs_page, route=routes.PACKS, title="Packs · Litesubs", on_load=PacksState.load)
app.add_page(customers_page, route=routes.CUSTOMERS, title="Customers · Litesubs", on_load=CustomersState.load)
app.add_page(
    customer_page, route=routes.CUSTOMERS + "/[customer_id]", title="Customer · Litesubs", on_load=CustomerState.load
)
app.add_page(payouts_page, route=routes.PAYOUTS, title="Get paid · Litesubs", on_load=PayoutsState.load)
app.add_page(api_keys_page, route=routes.API_KEYS, title="API keys · Litesubs", on_load=ApiKeysState.load)
app.add_page(webhooks_page, route=routes.WEBHOOKS, title="Webhooks · Litesubs", on_load=WebhooksState.load)
app.add_page(wallet_page, route=routes.WALLET, title="Wallet · Litesubs", on_load=WalletState.load)
app.add_page(buy_page, route=routes.BUY + "/[public_id]", title="Buy credits · Litesubs", on_load=BuyState.load)
app.add_page(
    checkout_success_page, route=routes.CHECKOUT_SUCCESS, title="Payment · Litesubs", on_load=CheckoutSuccessState.load
)
app.add_page(
    test_checkout_page,
    route=routes.CHECKOUT + "/[session_id]",
    title="Checkout · Litesubs",
    on_load=TestCheckoutState.load,
)
app.add_page(account_page, route=routes.SETTINGS, title="Account · Litesubs", on_load=AccountSettingsState.load)

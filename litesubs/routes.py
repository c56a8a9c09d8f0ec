"""Route paths, named once; links and redirects use these."""

LANDING = "/"
REGISTER = "/register"
LOGIN = "/login"
DASHBOARD = "/dashboard"
PACKS = "/dashboard/packs"
CUSTOMERS = "/dashboard/customers"
API_KEYS = "/dashboard/api-keys"
PAYOUTS = "/dashboard/payouts"
WEBHOOKS = "/dashboard/webhooks"
SETTINGS = "/account"
WALLET = "/wallet"
BUY = "/buy"
CHECKOUT = "/checkout"
CHECKOUT_SUCCESS = "/checkout/success"
FORGOT_PASSWORD = "/forgot-password"  # noqa: S105 - a route, not a password
RESET_PASSWORD = "/reset-password"  # noqa: S105 - a route, not a password
VERIFY_EMAIL = "/verify-email"

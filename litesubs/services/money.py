"""Money: integer minor units with an ISO currency, parsed from text with Decimal and formatted in one place."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from litesubs.services.errors import InvalidRequest


@dataclass(frozen=True)
class Currency:
    code: str
    symbol: str
    minimum: int  # Stripe's minimum charge, in minor units
    exponent: int = 2


CURRENCIES: dict[str, Currency] = {
    c.code: c
    for c in (
        Currency("USD", "$", 50),
        Currency("EUR", "€", 50),
        Currency("GBP", "£", 30),
        Currency("CAD", "CA$", 50),
        Currency("AUD", "A$", 50),
    )
}
DEFAULT_CURRENCY = "USD"
MAXIMUM_PRICE = 99_999_999  # 999,999.99 in minor units


def currency(code: str) -> Currency:
    try:
        return CURRENCIES[code.strip().upper()]
    except KeyError:
        raise InvalidRequest("currency", f"Choose one of {', '.join(CURRENCIES)}.") from None


def parse_price(text: str, code: str, *, field: str = "price") -> int:
    """'9.99' → 999 minor units, checked against Stripe's minimum and our maximum."""
    cur = currency(code)
    cleaned = text.strip().replace(",", "").removeprefix(cur.symbol).strip()
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise InvalidRequest(field, "Enter a price such as 9.99.") from None
    if not value.is_finite() or value != value.quantize(Decimal(1).scaleb(-cur.exponent)):
        raise InvalidRequest(field, f"Use at most {cur.exponent} decimals.")
    amount = int((value * 10**cur.exponent).to_integral_value(ROUND_HALF_UP))
    if amount < cur.minimum:
        raise InvalidRequest(
            field, f"The lowest price Stripe accepts in {cur.code} is {format_money(cur.minimum, cur.code)}."
        )
    if amount > MAXIMUM_PRICE:
        raise InvalidRequest(field, f"The highest price is {format_money(MAXIMUM_PRICE, cur.code)}.")
    return amount


def format_money(amount: int, code: str) -> str:
    """999, 'USD' → '$9.99'; -50, 'EUR' → '-€0.50'."""
    cur = CURRENCIES.get(code.upper(), Currency(code.upper(), code.upper() + " ", 0))
    sign = "-" if amount < 0 else ""
    whole, minor = divmod(abs(amount), 10**cur.exponent)
    return f"{sign}{cur.symbol}{whole:,}.{minor:0{cur.exponent}d}"


def decimal_text(amount: int, code: str) -> str:
    """999, 'USD' → '9.99': what a price input shows when editing."""
    exponent = currency(code).exponent
    whole, minor = divmod(amount, 10**exponent)
    return f"{whole}.{minor:0{exponent}d}"

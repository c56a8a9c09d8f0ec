"""Prices are parsed with Decimal into minor units and formatted in one place."""

from __future__ import annotations

import pytest

from litesubs.services.errors import InvalidRequest
from litesubs.services.money import decimal_text, format_money, parse_price


@pytest.mark.parametrize(
    ("text", "code", "amount"),
    [
        ("9.99", "USD", 999),
        ("0.50", "usd", 50),
        ("1,234.5", "EUR", 123450),
        ("£0.30", "GBP", 30),
        ("999999.99", "USD", 99999999),
    ],
)
def test_parse_price_into_minor_units(text: str, code: str, amount: int) -> None:
    assert parse_price(text, code) == amount


@pytest.mark.parametrize(
    ("text", "code", "message"),
    [
        ("0.49", "USD", "lowest price Stripe accepts in USD is $0.50"),
        ("0.29", "GBP", "lowest price Stripe accepts in GBP is £0.30"),
        ("1000000", "USD", "highest price is $999,999.99"),
        ("9.999", "USD", "at most 2 decimals"),
        ("nine", "USD", "Enter a price such as 9.99"),
        ("NaN", "USD", "at most 2 decimals"),
        ("5", "XYZ", "Choose one of USD, EUR, GBP"),
    ],
)
def test_bad_prices_are_refused_with_a_message(text: str, code: str, message: str) -> None:
    with pytest.raises(InvalidRequest) as error:
        parse_price(text, code)
    assert message in error.value.message


def test_format_money() -> None:
    assert format_money(123456789, "USD") == "$1,234,567.89"
    assert format_money(-50, "EUR") == "-€0.50"
    assert decimal_text(999, "GBP") == "9.99"

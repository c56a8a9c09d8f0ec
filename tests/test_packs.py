"""Packs: validation, ownership, price lock after the first sale, sales figures, public view, overview."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from litesubs.models import utcnow
from litesubs.services import packs
from litesubs.services.errors import InvalidRequest, NotFound
from litesubs.services.overview import CHART_DAYS, creator_overview
from litesubs.services.packs import PackFields
from tests.conftest import create_user
from tests.factories import make_pack, record_paid_purchase


def test_create_pack_stores_minor_units_and_an_unguessable_link(engine: Engine) -> None:
    creator = create_user(engine)
    pack = make_pack(engine, creator.id, name="  Coaching  ", price="40", credits="1,000", currency="eur")
    assert (pack.name, pack.price_amount, pack.currency, pack.credits, pack.expires_at) == (
        "Coaching",
        4000,
        "EUR",
        1000,
        None,
    )
    assert len(pack.public_id) >= 16
    assert packs.pack_link(pack.public_id).endswith(f"/buy/{pack.public_id}")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "x" * 81}, "name"),
        ({"price": "0.10"}, "price"),
        ({"price": "1000000.00"}, "price"),
        ({"credits": "0"}, "credits"),
        ({"credits": "1000000001"}, "credits"),
        ({"credits": "2.5"}, "credits"),
        ({"credits": "²"}, "credits"),
        ({"expires_on": "2020-01-01"}, "expires_on"),
        ({"expires_on": "soon"}, "expires_on"),
        ({"currency": "BTC"}, "currency"),
    ],
)
def test_invalid_fields_are_named(engine: Engine, fields: dict[str, str], field: str) -> None:
    creator = create_user(engine)
    with pytest.raises(InvalidRequest) as error:
        make_pack(engine, creator.id, **fields)
    assert error.value.field == field
    assert packs.list_packs(creator_id=creator.id, engine=engine) == []


def test_expiry_date_means_valid_through_that_day(engine: Engine) -> None:
    creator = create_user(engine)
    pack = make_pack(engine, creator.id, expires_on="2099-12-31")
    assert pack.expires_at == datetime(2100, 1, 1, tzinfo=UTC)


def test_another_creator_cannot_touch_a_pack(engine: Engine) -> None:
    owner, intruder = create_user(engine), create_user(engine)
    pack = make_pack(engine, owner.id)
    with pytest.raises(NotFound):
        packs.set_pack_active(creator_id=intruder.id, pack_id=pack.id, active=False, engine=engine)
    with pytest.raises(NotFound):
        packs.update_pack(creator_id=intruder.id, pack_id=pack.id, fields=PackFields("x", "1", "1"), engine=engine)
    assert packs.list_packs(creator_id=intruder.id, engine=engine) == []
    assert packs.list_packs(creator_id=owner.id, engine=engine)[0].status == "active"


def test_price_and_credits_are_fixed_once_sold_but_name_stays_editable(engine: Engine) -> None:
    creator, buyer = create_user(engine), create_user(engine)
    pack = make_pack(engine, creator.id)
    edited = packs.update_pack(
        creator_id=creator.id, pack_id=pack.id, fields=PackFields("Starter", "12.00", "150"), engine=engine
    )
    assert (edited.price_amount, edited.credits) == (1200, 150)
    record_paid_purchase(engine, edited, buyer.id)
    with pytest.raises(InvalidRequest, match="has sales"):
        packs.update_pack(
            creator_id=creator.id, pack_id=pack.id, fields=PackFields("Starter", "15.00", "150"), engine=engine
        )
    renamed = packs.update_pack(
        creator_id=creator.id,
        pack_id=pack.id,
        fields=PackFields("Starter plus", "12.00", "150", description="Now with more"),
        engine=engine,
    )
    assert (renamed.name, renamed.description, renamed.price_amount) == ("Starter plus", "Now with more", 1200)


def test_list_counts_only_paid_sales_and_reports_status(engine: Engine) -> None:
    creator = create_user(engine)
    pack = make_pack(engine, creator.id, price="5.00")
    for status in ("paid", "paid", "refunded", "pending"):
        record_paid_purchase(engine, pack, create_user(engine).id, status=status)
    packs.set_pack_active(creator_id=creator.id, pack_id=pack.id, active=False, engine=engine)
    [summary] = packs.list_packs(creator_id=creator.id, engine=engine)
    assert (summary.sold, summary.revenue, summary.status) == (2, 1000, "disabled")
    later = utcnow() + timedelta(days=400)
    expiring = make_pack(engine, creator.id, expires_on=(utcnow() + timedelta(days=3)).date().isoformat())
    assert packs.public_pack(public_id=expiring.public_id, engine=engine, now=later).status == "expired"


def test_public_pack_names_the_creator_and_unknown_links_are_not_found(engine: Engine) -> None:
    creator = create_user(engine, name="Studio Nine")
    pack = make_pack(engine, creator.id)
    view = packs.public_pack(public_id=pack.public_id, engine=engine)
    assert (view.creator_name, view.price_amount, view.status) == ("Studio Nine", 900, "active")
    with pytest.raises(NotFound):
        packs.public_pack(public_id="no-such-pack", engine=engine)


def test_overview_sums_sales_per_currency_and_charts_the_main_one(engine: Engine) -> None:
    creator = create_user(engine)
    empty = creator_overview(creator_id=creator.id, engine=engine)
    assert (empty.revenue, empty.packs_sold, empty.chart, empty.pack_count) == ({}, 0, [], 0)

    usd = make_pack(engine, creator.id, price="10.00", credits="100")
    eur = make_pack(engine, creator.id, price="3.00", credits="10", currency="EUR")
    now = utcnow()
    record_paid_purchase(engine, usd, create_user(engine).id, paid_at=now - timedelta(days=2))
    record_paid_purchase(engine, usd, create_user(engine).id, paid_at=now)
    record_paid_purchase(engine, eur, create_user(engine).id, paid_at=now)
    record_paid_purchase(engine, usd, create_user(engine).id, status="refunded")
    overview = creator_overview(creator_id=creator.id, engine=engine, now=now)
    assert overview.revenue == {"USD": 2000, "EUR": 300}
    assert (overview.packs_sold, overview.credits_sold, overview.pack_count) == (3, 210, 2)
    assert overview.chart_currency == "USD"
    assert len(overview.chart) == CHART_DAYS
    assert overview.chart[-1].amount == 1000
    assert overview.chart[-3].amount == 1000
    assert sum(point.amount for point in overview.chart) == 2000

"""The low-balance mail: tells a buyer their credits with a creator run low, with a one-click "Buy again".

The creator turns it on (`User.low_balance_mail`, off by default). It goes out exactly when the
`credits.low` webhook event does: when a change takes the balance from at or above the creator's
low-balance threshold (`webhooks.low_balance_threshold`) to below it, so once per crossing.
`webhooks.credits_changed` finds the crossing and calls `queue_low_balance_mail`, in the transaction of the change,
so the debit paths pay for this only on the rare change that crosses.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, select
from sqlalchemy.orm import aliased

from litesubs import routes
from litesubs.models import Customer, Pack, Purchase, User
from litesubs.services import mail
from litesubs.services.money import format_money

_BUYER, _CREATOR = aliased(User), aliased(User)
_PEOPLE = (
    select(_CREATOR.low_balance_mail, _CREATOR.name, _BUYER.name, _BUYER.email, Customer.buyer_id)
    .join(_CREATOR, _CREATOR.id == Customer.creator_id)
    .join(_BUYER, _BUYER.id == Customer.buyer_id)
)


def queue_low_balance_mail(
    connection: Connection, *, creator_id: int, customer_id: int, balance: int, now: datetime
) -> None:
    """Queue the mail for a balance that just fell below the threshold, if the creator wants it sent."""
    people = connection.execute(_PEOPLE.where(Customer.id == customer_id, Customer.creator_id == creator_id)).first()
    if people is None or not people[0]:
        return
    _wants, creator_name, buyer_name, buyer_email, buyer_id = people
    pack = last_pack_on_sale(connection, creator_id=creator_id, buyer_id=buyer_id, now=now)
    message = mail.render(
        "low_balance",
        to=buyer_email,
        subject=f"Your credits with {creator_name} are running low",
        name=buyer_name,
        creator_name=creator_name,
        balance=balance,
        pack_name=pack.name if pack else "",
        credits=pack.credits if pack else 0,
        price=format_money(pack.price_amount, pack.currency) if pack else "",
        buy_url=mail.link(f"{routes.BUY}/{pack.public_id}", buy="1") if pack else "",
        wallet_url=mail.link(routes.WALLET),
    )
    mail.send_later_on(connection, message, now=now)


def last_pack_on_sale(connection: Connection, *, creator_id: int, buyer_id: int, now: datetime) -> Pack | None:
    """The pack of `creator_id` the buyer paid for last, if it is still on sale (active and not expired)."""
    row = connection.execute(
        select(
            Pack.name, Pack.credits, Pack.price_amount, Pack.currency, Pack.public_id, Pack.is_active, Pack.expires_at
        )
        .join(Purchase, Purchase.pack_id == Pack.id)
        .where(Purchase.creator_id == creator_id, Purchase.buyer_id == buyer_id, Purchase.status == "paid")
        .order_by(Purchase.paid_at.desc(), Purchase.id.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    on_sale = row.is_active and (row.expires_at is None or row.expires_at > now)  # packs.pack_status "active"
    return Pack(**row._asdict(), creator_id=creator_id) if on_sale else None
